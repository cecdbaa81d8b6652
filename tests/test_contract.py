"""Conformance of every installed adapter to the contract in backends/base.py."""

from __future__ import annotations

import numpy as np
import pytest

from backends import registry
from backends.base import (
    KINDS,
    BackendInfo,
    ModelSpec,
    OptimizerSpec,
    Schedule,
    SpecError,
    StackedBatches,
    UnknownKind,
    forward,
    init_weights,
    softmax_cross_entropy,
)
from tests.conftest import backend_params, backend_path_params

MODEL = ModelSpec(input_dim=12, num_classes=4, hidden=(16, 8))
RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 12)).astype(np.float32)
Y = RNG.integers(0, 4, 40)


@pytest.fixture(params=backend_path_params())
def backend(request):
    name, mode, path = request.param
    return registry.create(name, mode=mode, compiler=path)


def test_describe(backend):
    info = backend.describe()
    assert isinstance(info, BackendInfo)
    assert info.name == backend.name
    assert info.mode == backend.mode and info.device == "cpu" and info.dtype == "float32"
    assert isinstance(info.version, str) and info.version[0].isdigit()
    assert info.compiler == backend.path.name and info.compiler_detail == backend.path.detail


def test_weights_round_trip(backend):
    w = init_weights(MODEL, seed=1)
    state = backend.init(MODEL, OptimizerSpec("sgd", lr=0.1), w)
    got = backend.get_weights(state)
    assert [g.shape for g in got] == [a.shape for a in w]
    for g, a in zip(got, w):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, a)


def test_evaluate_matches_reference_at_init(backend):
    w = init_weights(MODEL, seed=2)
    state = backend.init(MODEL, OptimizerSpec("adam", lr=1e-3), w)
    loss, acc = backend.evaluate(state, *backend.to_device(X, Y))
    logits, _ = forward([a.astype(np.float64) for a in w], X.astype(np.float64))
    ref_loss, _ = softmax_cross_entropy(logits, Y)
    assert isinstance(loss, float) and isinstance(acc, float)
    assert abs(loss - ref_loss) < 1e-5
    assert acc == pytest.approx(float((logits.argmax(1) == Y).mean()))


def test_train_step_lowers_loss_and_leaves_initial_weights_alone(backend):
    w = init_weights(MODEL, seed=3)
    w_copy = [a.copy() for a in w]
    state = backend.init(MODEL, OptimizerSpec("sgd", lr=0.1, momentum=0.9), w)
    x, y = backend.to_device(X, Y)
    losses = []
    for _ in range(15):
        state, loss = backend.train_step(state, x, y)
        losses.append(loss)
    backend.sync(losses[-1])
    values = [backend.to_float(v) for v in losses]
    assert all(np.isfinite(values))
    assert values[-1] < values[0]
    for a, b in zip(w, w_copy):  # the caller's arrays are never updated in place
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(g, a) for g, a in zip(backend.get_weights(state), w))


def _one_by_one(backend, opt: OptimizerSpec, w, batches) -> tuple[object, list[float]]:
    """The state after ``train_step`` on each of ``batches``, and each step's loss, read
    at once."""
    state, losses = backend.init(MODEL, opt, w), []
    for xb, yb in batches:
        state, loss = backend.train_step(state, xb, yb)
        losses.append(backend.to_float(loss))
    return state, losses


def assert_losses_survive_later_steps(backend) -> None:
    """The runner reads a block's losses after the block: each loss ``train_step`` returned
    must still hold its own step's value (a path replaying into static buffers, as CUDA
    graphs do, returns copies)."""
    w = init_weights(MODEL, seed=5)
    opt = OptimizerSpec("adam", lr=1e-2)
    batches = backend.split_batches(*backend.to_device(X, Y), 8)
    state, held = backend.init(MODEL, opt, w), []
    for xb, yb in batches:
        state, loss = backend.train_step(state, xb, yb)
        held.append(loss)
    backend.sync(held[-1])
    late = [backend.to_float(v) for v in held]
    np.testing.assert_allclose(late, _one_by_one(backend, opt, w, batches)[1], rtol=1e-6)
    assert len(set(late)) == len(late) == 5


def test_losses_stay_valid_after_later_steps(backend):
    assert_losses_survive_later_steps(backend)


def assert_blocks_are_their_steps(backend) -> None:
    """``train_steps`` on windows of ``split_batches`` (as the runner calls it: the first
    step alone, then longer blocks, then what is left of the epoch) gives every step's loss
    and the weights that ``train_step`` gives step by step; each block's losses are read
    after the last block, so they too must outlive later steps."""
    w = init_weights(MODEL, seed=6)
    batches = backend.split_batches(*backend.to_device(X, Y), 8)
    # Adam, and a schedule (the optimizer's step count and lr advance inside a loop too)
    schedule = Schedule("cosine", lr_warmup_steps=1, horizon=5)
    for opt in (
        OptimizerSpec("adam", lr=1e-2),
        OptimizerSpec("sgd", lr=0.1, momentum=0.9, schedule=schedule),
    ):
        expected_state, expected = _one_by_one(backend, opt, w, batches)
        state, held = backend.init(MODEL, opt, w), []
        for a, b in ((0, 1), (1, 3), (3, 5)):
            state, losses = backend.train_steps(state, batches[a:b])
            held.append(losses)
        backend.sync_losses(held[-1])
        got = [backend.host_losses(losses) for losses in held]
        assert [(g.dtype, g.shape) for g in got] == [(np.float64, (n,)) for n in (1, 2, 2)]
        np.testing.assert_allclose(np.concatenate(got), expected, rtol=1e-5)
        for g, e in zip(backend.get_weights(state), backend.get_weights(expected_state)):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)


def test_a_block_of_steps_is_those_steps_one_by_one(backend):
    assert_blocks_are_their_steps(backend)


def test_stacked_batches_are_windows_on_one_array():
    x, y = np.arange(5 * 2 * 3).reshape(5, 2, 3), np.arange(10).reshape(5, 2)
    batches = StackedBatches(x, y)
    assert len(batches) == 5
    window = batches[1:4]
    assert (window.start, window.stop, len(window)) == (1, 4, 3) and window.x is x
    assert len(window[1:]) == 2 and window[1:].start == 2  # a window of a window
    np.testing.assert_array_equal(window[0][1], y[1])
    np.testing.assert_array_equal(window[-1][0], x[3])
    assert [b[1][0] for b in window] == [2, 4, 6]
    assert len(batches[4:2]) == 0 and len(batches[3:99]) == 2
    assert (batches[-2:].start, len(batches[-2:])) == (3, 2)
    with pytest.raises(IndexError):
        window[3]
    with pytest.raises(ValueError, match="contiguous"):
        batches[::2]


def test_runs_in_one_process_are_independent(backend):
    """A second init from the same weights must not inherit the first run's optimizer state."""
    w = init_weights(MODEL, seed=4)
    opt = OptimizerSpec("adam", lr=1e-2)
    x, y = backend.to_device(X, Y)
    firsts = []
    for _ in range(2):
        state = backend.init(MODEL, opt, w)
        for _ in range(3):
            state, _ = backend.train_step(state, x, y)
        firsts.append(backend.get_weights(state))
    for a, b in zip(*firsts):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_split_batches_drops_the_remainder(backend):
    x, y = backend.to_device(X, Y)
    batches = backend.split_batches(x, y, 16)
    assert len(batches) == 2
    for xb, yb in batches:
        assert tuple(np.asarray(xb).shape) == (16, 12) and tuple(np.asarray(yb).shape) == (16,)
    np.testing.assert_array_equal(np.asarray(batches[1][1]), Y[16:32])


@pytest.mark.parametrize("name", backend_params())
def test_every_optimizer_kind_is_mapped(name):
    """Adding a kind to base.KINDS fails here until every backend maps it; the registry's
    word (what a sweep checks without importing the framework) is the class's."""
    cls = registry.load(name)
    assert set(cls.kinds) == set(KINDS)
    entry = registry.entry(name)
    assert (set(entry.kinds), set(entry.variants)) == (set(cls.kinds), set(cls.variants))


def test_an_unknown_kind_never_falls_through_to_another_optimizer(backend):
    opt = OptimizerSpec("sgd", lr=0.1)
    object.__setattr__(opt, "kind", "lamb")  # past validation, as a new kind would arrive
    with pytest.raises(UnknownKind, match=f"'lamb' is not implemented by the {backend.name}"):
        backend.init(MODEL, opt, init_weights(MODEL, seed=0))


@pytest.mark.parametrize("name", backend_params())
def test_unknown_mode_and_missing_device_are_clear_errors(name):
    with pytest.raises(SpecError, match="mode='jit'.*eager"):
        registry.create(name, mode="jit")
    cls = registry.load(name)
    if "gpu" not in cls.devices():
        with pytest.raises(SpecError, match="device='gpu'"):
            registry.create(name, mode="eager", device="gpu")


def test_not_installed_backend_names_the_fix(monkeypatch):
    from backends.registry import REGISTRY, BackendNotInstalled, Entry

    monkeypatch.setitem(
        REGISTRY, "ghost", Entry("ghost", "ghost.backend:Ghost", ("no_such_module_xyz",), "ghost")
    )
    assert not registry.is_installed("ghost")
    with pytest.raises(BackendNotInstalled, match=r"pip install -e '\.\[ghost\]'"):
        registry.load("ghost")


def test_registry_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys; from backends import registry; registry.installed(); "
        "import benchmarks.record.sweep, benchmarks.record.store, benchmarks.checks.parity, benchmarks.run.execute, "
        "benchmarks.run.driver, benchmarks.app.pipeline, benchmarks.checks.overhead, benchmarks.track.compare, "
        "benchmarks.app.cli; "
        "print(sorted(m for m in ('torch','tensorflow','jax','keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The JAX backend's optimizers beyond the shared contract: schedules past their horizon,
the stock variant's defaults, and an eager step that compiles nothing after warm-up."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from backends.base import KINDS, ModelSpec, OptimizerSpec, Schedule, init_weights
from tests.conftest import require_backend

require_backend("jax")

import jax  # noqa: E402

from backends.jax import backend as jb  # noqa: E402
from backends.numpy.backend import NumpyBackend  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = ModelSpec(input_dim=12, num_classes=4, hidden=(16,))
RNG = np.random.default_rng(0)
BATCHES = [
    (RNG.standard_normal((16, 12)).astype(np.float32), RNG.integers(0, 4, 16)) for _ in range(10)
]


def _run(be, opt: OptimizerSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    state = be.init(MODEL, opt, init_weights(MODEL, seed=0))
    losses = []
    for xb, yb in BATCHES:
        state, loss = be.train_step(state, *be.to_device(xb, yb))
        losses.append(be.to_float(loss))
    return np.array(losses), [np.asarray(w, dtype=np.float64) for w in be.get_weights(state)]


def _max_diff(a, b) -> float:
    (la, wa), (lb, wb) = a, b
    return max(np.abs(la - lb).max(), *(np.abs(x - y).max() for x, y in zip(wa, wb)))


def test_both_variants_map_every_kind():
    assert set(jb.OPTIMIZERS) == {"spec", "stock"} == set(jb.JaxBackend.variants)
    for table in jb.OPTIMIZERS.values():
        assert set(table) == set(KINDS)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_a_schedule_holds_its_last_lr_past_the_horizon(mode):
    """Run 10 updates of a 4-step schedule: updates 5..10 at the last lr, as the reference."""
    sched = Schedule("step", lr_warmup_steps=1, boundaries=(0.5,), gamma=0.3, horizon=4)
    ref_be = NumpyBackend(mode="eager", dtype="float64")
    for opt in (
        OptimizerSpec("rmsprop", lr=1e-2, rho=0.9, momentum=0.9, centered=True, schedule=sched),
        OptimizerSpec("adam", lr=1e-2, weight_decay=1e-2, schedule=sched),
    ):
        got = _run(jb.JaxBackend(mode), opt)
        assert _max_diff(got, _run(ref_be, opt)) < 1e-5, opt.kind
        constant_tail = replace(opt, schedule=Schedule())  # not the same run: lr differs
        assert _max_diff(got, _run(ref_be, constant_tail)) > 1e-4, opt.kind


@pytest.mark.parametrize(
    "preset, as_spec",
    [
        (OptimizerSpec("sgd", lr=0.1, momentum=0.9), OptimizerSpec("sgd", lr=0.1, momentum=0.9)),
        # optax.adamw's default weight_decay (its float32 bias correction is < 1e-5 here)
        (
            OptimizerSpec("adam", lr=1e-2, weight_decay=1e-2),
            OptimizerSpec("adam", lr=1e-2, weight_decay=1e-4),
        ),
        # optax.adagrad's initial accumulator and eps (inside the root: negligible at s >= 0.1)
        (
            OptimizerSpec("adagrad", lr=1e-2, eps=1e-10),
            OptimizerSpec("adagrad", lr=1e-2, initial_accumulator=0.1, eps=1e-7),
        ),
    ],
    ids=["sgd", "adamw", "adagrad"],
)
def test_stock_is_the_spec_at_optax_defaults(preset, as_spec):
    """The stock variant differs from the spec by optax's defaults, and by nothing else."""
    ref = _run(NumpyBackend(mode="eager", dtype="float64"), as_spec)
    stock = jb.JaxBackend("compiled", variant="stock")
    assert _max_diff(_run(stock, preset), ref) < 1e-5
    assert stock.describe().extra["variant"] == "stock"


@pytest.mark.parametrize("variant", ["spec", "stock"])
def test_eager_steps_compile_nothing_after_the_first(variant):
    """No per-step recompilation on the eager path (``b**t`` with a concrete t once made
    two small jits every Adam step), a schedule included."""
    sched = Schedule("cosine", lr_warmup_steps=2, horizon=20)
    compiles = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    be = jb.JaxBackend("eager", variant=variant)
    for opt in (OptimizerSpec("adam", lr=1e-3), OptimizerSpec("adam", lr=1e-3, schedule=sched)):
        state = be.init(MODEL, opt, init_weights(MODEL, seed=0))
        x, y = be.to_device(*BATCHES[0])
        for _ in range(2):
            state, loss = be.train_step(state, x, y)
        be.sync(loss)
        jax.monitoring.register_event_duration_secs_listener(listener)
        try:
            for _ in range(4):
                state, loss = be.train_step(state, x, y)
            be.sync(loss)
        finally:
            jax.monitoring.unregister_event_duration_listener(listener)
        assert compiles == [], opt


def test_a_loop_compiles_once_for_windows_of_every_start_and_length():
    """``jit_loop`` takes a window's start and length as traced values: the runner's blocks
    (the first step, warm-up, timed blocks, an epoch's remainder) share one compilation."""
    compiles = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    be = jb.JaxBackend("compiled", compiler="jit_loop")
    state = be.init(MODEL, OptimizerSpec("sgd", lr=0.1, momentum=0.9), init_weights(MODEL, 0))
    x, y = (np.concatenate([b[i] for b in BATCHES]) for i in (0, 1))
    batches = be.split_batches(*be.to_device(x, y), 16)
    state, losses = be.train_steps(state, batches[0:1])  # compiles
    be.sync_losses(losses)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for a, b in ((1, 4), (4, 9), (9, 10), (0, 10)):
            state, losses = be.train_steps(state, batches[a:b])
            assert len(be.host_losses(losses)) == b - a
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []

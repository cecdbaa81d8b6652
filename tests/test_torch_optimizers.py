"""The torch adapter's optimizers: the stock variant at torch's defaults, and learning-rate
schedules on every CPU path, including the device-side table the cudagraph path replays
(exercised here on the CPU: the same tensors, without the graph)."""

from __future__ import annotations

import numpy as np
import pytest

from backends.base import ModelSpec, OptimizerSpec, Schedule, init_weights
from backends.numpy.backend import NumpyBackend
from tests.conftest import require_backend

require_backend("torch")

import torch  # noqa: E402

from backends.torch import backend as tb  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = ModelSpec(input_dim=12, num_classes=4, hidden=(16,))
RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 12)).astype(np.float32)
Y = RNG.integers(0, 4, 64)
COSINE = Schedule("cosine", lr_warmup_steps=2, final_fraction=0.1)


def _params():
    return [torch.zeros(3, 2, requires_grad=True), torch.zeros(2, requires_grad=True)]


def _group(opt: OptimizerSpec, variant: str) -> tuple[type, dict]:
    optimizer = tb.make_optimizer(_params(), opt, variant)
    return type(optimizer), optimizer.param_groups[0]


def test_spec_passes_every_hyperparameter():
    cls, g = _group(
        OptimizerSpec("rmsprop", lr=1e-3, rho=0.9, momentum=0.5, centered=True, weight_decay=1e-4),
        "spec",
    )
    assert cls is torch.optim.RMSprop
    assert (g["alpha"], g["momentum"], g["centered"], g["weight_decay"]) == (0.9, 0.5, True, 1e-4)
    cls, g = _group(OptimizerSpec("adagrad", lr=1e-2, initial_accumulator=0.1), "spec")
    assert cls is torch.optim.Adagrad
    assert (g["eps"], g["initial_accumulator_value"], g["lr_decay"]) == (1e-8, 0.1, 0.0)


def test_stock_takes_only_stock_arguments():
    cls, g = _group(
        OptimizerSpec("rmsprop", lr=1e-3, rho=0.9, momentum=0.5, centered=True, weight_decay=1e-4),
        "stock",
    )
    assert (g["lr"], g["momentum"], g["centered"]) == (1e-3, 0.5, True)
    assert (g["alpha"], g["eps"], g["weight_decay"]) == (0.99, 1e-8, 0)  # torch's defaults
    cls, g = _group(OptimizerSpec("adagrad", lr=1e-2, initial_accumulator=0.1), "stock")
    assert (g["eps"], g["initial_accumulator_value"]) == (1e-10, 0)
    cls, g = _group(OptimizerSpec("adam", lr=1e-3, weight_decay=5e-4, eps=1e-6), "stock")
    assert cls is torch.optim.AdamW and (g["weight_decay"], g["eps"]) == (1e-2, 1e-8)
    cls, g = _group(OptimizerSpec("adam", lr=1e-3, beta1=0.8), "stock")
    assert cls is torch.optim.Adam and g["betas"] == (0.9, 0.999)
    cls, g = _group(OptimizerSpec("sgd", lr=0.1, momentum=0.9, weight_decay=5e-4), "stock")
    assert (g["momentum"], g["weight_decay"], g["dampening"]) == (0.9, 0, 0)


def test_describe_records_the_variant():
    assert tb.TorchBackend("eager", variant="stock").describe().extra["variant"] == "stock"


def test_a_constant_schedule_keeps_the_plain_path():
    be = tb.TorchBackend("eager")
    state = be.init(MODEL, OptimizerSpec("sgd", lr=0.1).for_run(10), init_weights(MODEL, 0))
    assert state.lr is None and state.optimizer.param_groups[0]["lr"] == 0.1


def _run(backend, opt: OptimizerSpec, steps: int) -> list[np.ndarray]:
    state = backend.init(MODEL, opt, init_weights(MODEL, 0))
    x, y = backend.to_device(X, Y)
    batches = backend.split_batches(x, y, 16)
    for i in range(steps):
        state, _ = backend.train_step(state, *batches[i % len(batches)])
    return backend.get_weights(state)


@pytest.mark.parametrize("path", ["eager", "inductor"])
@pytest.mark.parametrize(
    "opt",
    [
        OptimizerSpec("adam", lr=1e-2, weight_decay=1e-2, schedule=COSINE),
        OptimizerSpec("rmsprop", lr=1e-2, momentum=0.9, centered=True, schedule=COSINE),
        OptimizerSpec("adagrad", lr=0.1, schedule=Schedule("step", boundaries=(0.5,), gamma=0.1)),
    ],
    ids=["adamw", "rmsprop", "adagrad"],
)
def test_schedule_matches_the_reference_past_its_horizon(path, opt):
    """The run goes 4 steps past the horizon, where the last learning rate holds."""
    opt = opt.for_run(8)
    mode = "eager" if path == "eager" else "compiled"
    got = _run(tb.TorchBackend(mode, compiler=path), opt, 12)
    want = _run(NumpyBackend("eager", dtype="float64"), opt, 12)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_device_lr_walks_the_table_and_holds_the_last():
    table = np.array([0.1, 0.2, 0.3])
    lr = tb.DeviceLR(table, torch.device("cpu"))
    seen = []
    for _ in range(5):
        lr.advance()
        seen.append(float(lr.lr))
    np.testing.assert_allclose(seen, [0.1, 0.2, 0.3, 0.3, 0.3], rtol=1e-7)
    assert lr.lr.dim() == 0 and lr.lr.dtype == torch.float32


@pytest.mark.parametrize("kind", ["sgd", "adam", "rmsprop", "adagrad"])
def test_optimizers_read_the_device_lr_at_each_step(kind):
    """What the cudagraph path relies on: the optimizer holds the DeviceLR tensor itself
    (no copy at construction), so advancing it in place changes the next update. On the CPU
    the kernels read it with item(); on a GPU they read it on the device."""
    table = np.array([0.1, 0.01, 0.05, 0.2])
    opt = OptimizerSpec(kind, lr=0.1, **({"momentum": 0.9} if kind in ("sgd", "rmsprop") else {}))
    grads = [np.full((3, 2), 0.5, np.float32), np.full(2, -0.25, np.float32)]

    def run(device_lr: bool) -> list[np.ndarray]:
        params = _params()
        lr = tb.DeviceLR(table, torch.device("cpu")) if device_lr else tb.HostLR(table)
        optimizer = tb.make_optimizer(params, opt, lr=lr.lr if device_lr else None)
        for _ in range(len(table)):
            for p, g in zip(params, grads):
                p.grad = torch.from_numpy(g.copy())
            if device_lr:
                lr.advance()
            else:
                lr.apply(optimizer)
            optimizer.step()
        return [p.detach().numpy().copy() for p in params]

    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

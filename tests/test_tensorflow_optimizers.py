"""The TensorFlow adapter's optimizers: what its two variants take from a spec, and the
learning-rate table (parity, in test_parity.py, checks the numbers of the ``spec`` variant)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from backends.base import KINDS, OptimizerSpec, Schedule
from tests.conftest import require_backend

require_backend("tensorflow")
pytestmark = pytest.mark.slow

from backends.tensorflow import backend as tfb  # noqa: E402

keras = tfb.keras
COSINE = Schedule("cosine", lr_warmup_steps=2, final_fraction=0.1, horizon=6)


def _config(optimizer) -> dict:
    """An optimizer's arguments (its name is a per-instance counter)."""
    return {k: v for k, v in optimizer.get_config().items() if k != "name"}


def test_both_variants_map_every_kind():
    assert set(tfb.OPTIMIZERS) == {"spec", "stock"}
    for variant, table in tfb.OPTIMIZERS.items():
        assert set(table) == set(KINDS), variant
    assert set(tfb.L2_DECAY) == set(KINDS)


@pytest.mark.parametrize("preset", [n for k in KINDS.values() for n in k.presets])
def test_stock_is_keras_own_optimizer_given_only_the_stock_arguments(preset):
    """A stock optimizer is Keras' class itself, and a spec that differs only in what
    stock_arguments leaves out (betas, eps, rho, the accumulator, L2 decay) builds the same."""
    kind = next(k for k in KINDS.values() if preset in k.presets)
    opt = OptimizerSpec(kind.name, **kind.presets[preset])
    stock = tfb.make_optimizer(opt, "stock")
    assert type(stock).__module__.startswith("keras.src.optimizers.")
    others = {
        "beta1": 0.5,
        "beta2": 0.9,
        "eps": 1e-3,
        "rho": 0.5,
        "initial_accumulator": 0.7,
        "weight_decay": 0.3 if kind.name != "adam" or opt.weight_decay else 0.0,
    }
    changed = replace(opt, **{k: v for k, v in others.items() if k in kind.hyperparameters})
    assert _config(tfb.make_optimizer(changed, "stock")) == _config(stock)


def test_stock_arguments_reach_keras():
    rms = tfb.make_optimizer(
        OptimizerSpec("rmsprop", lr=0.01, momentum=0.5, centered=True), "stock"
    )
    assert (rms.momentum, rms.centered, rms.rho, rms.epsilon) == (0.5, True, 0.9, 1e-7)
    assert (
        type(tfb.make_optimizer(OptimizerSpec("adam", lr=1e-3), "stock")) is keras.optimizers.Adam
    )
    adamw = tfb.make_optimizer(OptimizerSpec("adam", lr=1e-3, weight_decay=0.1), "stock")
    assert type(adamw) is keras.optimizers.AdamW and adamw.weight_decay == 0.004


def test_a_constant_schedule_keeps_keras_plain_learning_rate():
    """No schedule: the float lr a Keras user passes (Keras' lr variable, Keras' own SGD)."""
    for variant in ("spec", "stock"):
        sgd = tfb.make_optimizer(OptimizerSpec("sgd", lr=0.1, momentum=0.9), variant)
        assert type(sgd) is keras.optimizers.SGD
        assert isinstance(sgd._learning_rate, keras.Variable)


def test_the_learning_rate_table_is_looked_up_at_each_update_and_holds_past_the_horizon():
    opt = OptimizerSpec("sgd", lr=0.1, momentum=0.9, schedule=COSINE)
    table = opt.lr_table()
    for variant in ("spec", "stock"):
        schedule = tfb.make_optimizer(opt, variant)._learning_rate
        assert isinstance(schedule, tfb.LrTable)
        got = [float(schedule(np.int64(i))) for i in range(len(table) + 3)]
        want = [float(np.float32(table[min(i, len(table) - 1)])) for i in range(len(table) + 3)]
        assert got == want


def test_describe_records_the_variant():
    for variant in ("spec", "stock"):
        info = tfb.TensorflowBackend("eager", variant=variant).describe()
        assert info.extra["variant"] == variant


def test_an_xla_loop_is_one_program_for_windows_of_every_start_and_length():
    """``xla_loop`` takes a window's start and length as tensors, and XLA must not bake
    them in: with ``xs[start + i]`` it did (a slice's begin is a compile-time constant to
    XLA), and every block of a run compiled anew. Same HLO for two windows = one program."""
    tf = tfb.tf
    from backends.base import ModelSpec, init_weights

    be = tfb.TensorflowBackend(compiler="xla_loop")
    model = ModelSpec(12, 4, (8,))
    state = be.init(model, OptimizerSpec("adam", lr=1e-3), init_weights(model, 0))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((80, 12)).astype(np.float32), rng.integers(0, 4, 80)
    b = be.split_batches(*be.to_device(x, y), 16)
    hlo = [
        state.block_fn.experimental_get_compiler_ir(b.x, b.y, tf.constant(a), tf.constant(n))(
            stage="hlo"
        )
        for a, n in ((0, 1), (2, 3))
    ]
    assert hlo[0] == hlo[1]
    state, losses = be.train_steps(state, b[2:5])  # tensors, not ints: one trace
    state, losses = be.train_steps(state, b[0:1])
    assert state.block_fn.experimental_get_tracing_count() == 1

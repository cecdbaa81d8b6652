"""The TensorFlow adapter's optimizers: what its two variants take from a spec, and the
learning-rate table (parity, in test_parity.py, checks the numbers of the ``spec`` variant)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from backends.base import KINDS, OptimizerSpec, Schedule

pytest.importorskip("tensorflow")
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

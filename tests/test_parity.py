"""Every installed backend follows the float64 NumPy reference step by step.

Each backend runs in its own worker process, as `optbench parity` runs it."""

from __future__ import annotations

import pytest

from backends.base import MODES
from benchmarks.parity import PRESETS, ParityConfig, passed, run_parity
from tests.conftest import backend_params


@pytest.mark.parametrize("name", backend_params())
def test_parity_every_optimizer_and_mode(name):
    rows = run_parity([name], cfg=ParityConfig(steps=20, tolerance=1e-5))
    checked = [r for r in rows if r["variant"] != "stock-keras"]
    assert {(r["optimizer"], r["mode"]) for r in checked} == {
        (o, m) for o in PRESETS for m in MODES
    }
    bad = [r for r in checked if not r["ok"]]
    assert not bad, f"rows outside 1e-5: {bad}"
    assert passed(rows)


def test_parity_detects_a_wrong_optimizer(monkeypatch):
    """The check can fail: a reference run with another learning rate is far off."""
    import numpy as np

    from benchmarks import parity

    cfg = ParityConfig(steps=5)
    ref = parity.reference_trajectories(["sgd"], cfg)
    model, batches = parity._batches(cfg)
    from backends.base import OptimizerSpec
    from backends.numpy.backend import NumpyBackend

    wrong = parity.trajectory(
        NumpyBackend(mode="eager"), model, OptimizerSpec("sgd", lr=0.1001), batches, cfg.seed
    )
    loss_diff, weight_diff = parity.compare(wrong, ref["sgd"])
    assert weight_diff > 1e-5 and np.isfinite(loss_diff)

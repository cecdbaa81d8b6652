"""Every installed backend follows the float64 NumPy reference step by step.

Each backend runs in its own worker process, as `optbench parity` runs it."""

from __future__ import annotations

import pytest

from backends import optimizers, registry
from backends.base import KINDS, MODES, candidate_paths
from benchmarks.checks.parity import PRESETS, ParityConfig, block_sizes, passed, run_parity
from tests.conftest import backend_params

#: the catalogue's stock hypotheses, as measured against its spec presets (docs/methodology.md):
#: backend -> preset -> whether that framework's own class at its defaults *is* the spec
STOCK_IS_SPEC = {
    "torch": {"adamax": True, "adadelta": True, "adadelta_keras": False, "amsgrad": True},
    # optax's Lion decays by 1e-3 by default: too little to see in 20 steps at lr 1e-4
    "jax": {
        "adamax": True,
        "adadelta": True,
        "adadelta_keras": False,
        "lion_decay": False,
        "amsgrad": False,  # optax takes the max of the bias-corrected v
    },
    # Keras adds Adamax's eps outside the max, and defaults Adadelta to rho 0.95, eps 1e-7
    "tensorflow": {
        "adamax": False,
        "adadelta": False,
        "adadelta_keras": True,
        "lion": True,
        "amsgrad": False,  # Keras' Adam: eps before the bias correction, float32 corrections
    },
}


@pytest.mark.parametrize("name", backend_params())
def test_parity_every_optimizer_and_path(name):
    """Every path a backend has on the CPU (eager, and each compiler) follows the reference,
    for every built-in preset and the shipped catalogue's (backends/catalogue/: plugins on
    the same contract, held to the same gate); the catalogue's stock rows measure what each
    framework's defaults are (:data:`STOCK_IS_SPEC`). One worker per backend for both."""
    catalogue = [optimizers.load(source) for source in optimizers.CATALOGUE]
    names = [*PRESETS, *(k.name for k in catalogue)]
    rows = run_parity([name], optimizers=names, cfg=ParityConfig(steps=20))
    checked = [r for r in rows if r["ok"] is not None]
    presets = [*PRESETS, *(n for k in catalogue for n in k.presets)]
    paths = registry.entry(name).paths
    assert {(r["optimizer"], r["mode"], r["compiler"]) for r in checked} == {
        (o, m, p.name) for o in presets for m in MODES for p in candidate_paths(paths, m, "cpu")
    }
    bad = [r for r in checked if not r["ok"]]
    assert not bad, f"rows outside {ParityConfig().tolerance:g}: {bad}"
    assert passed(rows)
    stock = {r["optimizer"]: r for r in rows if r["variant"] == "stock"}
    assert ("lion" in stock) == (name in ("jax", "tensorflow"))  # a stock Lion where one ships
    for preset, same in STOCK_IS_SPEC.get(name, {}).items():
        near = stock[preset]["max_abs_weight_diff"] <= ParityConfig().tolerance
        assert near == same, (preset, stock[preset])


def test_every_kind_has_parity_presets():
    """Adding a kind to base.KINDS without presets fails here: parity must cover it."""
    assert {p.kind for p in PRESETS.values()} == set(KINDS)
    for kind in KINDS.values():
        assert kind.presets, kind.name


def test_stock_rows_never_fail_the_check(fakes):
    """A backend's stock variant (each framework's defaults, off the spec) is shown with
    ok=None; the check ignores it."""
    rows = run_parity(["mirror"], ["eager"], ["sgd", "sgd_momentum"], ParityConfig(steps=3))
    assert [(r["variant"], r["optimizer"], r["ok"]) for r in rows] == [
        ("spec", "sgd", True),
        ("spec", "sgd_momentum", True),
        ("stock", "sgd_momentum", None),
    ]
    assert rows[2]["max_abs_weight_diff"] > 1e-3 and passed(rows)


def test_parity_detects_a_wrong_optimizer(monkeypatch):
    """The check can fail: a reference run with another learning rate is far off."""
    import numpy as np

    from benchmarks.checks import parity

    cfg = ParityConfig(steps=5)
    ref = parity.reference_trajectories({"sgd": parity.PRESETS["sgd"]}, cfg)
    model, batches = parity._batches(cfg)
    from backends.base import OptimizerSpec
    from backends.numpy.backend import NumpyBackend

    wrong = parity.trajectory(
        NumpyBackend(mode="eager"), model, OptimizerSpec("sgd", lr=0.1001), batches, cfg.seed
    )
    loss_diff, weight_diff = parity.compare(wrong, ref["sgd"])
    assert weight_diff > 1e-5 and np.isfinite(loss_diff)


def test_parity_steps_in_blocks_as_the_runner_does():
    """The first steps one at a time (a per-step bug shows at once), then longer blocks (a
    path that loops over a block on the device is checked looping); all steps, once."""
    assert block_sizes(20) == [1, 1, 2, 3, 5, 8]
    assert block_sizes(10) == [1, 1, 2, 3, 3]
    assert block_sizes(1) == [1]
    assert all(sum(block_sizes(n)) == n for n in range(1, 60))

"""How fast the machine is right now: a fixed reference kernel, timed in the worker around
each run, so that a comparison can tell a slower framework from a slower machine.

On a shared machine the level of a whole sweep moves: two sweeps of one commit 75 s apart
measured torch Adam 0.65x apart, and no statistic of one sweep can see that. ``optbench
compare`` therefore also measures each group's change with every current run scaled to
the baseline's machine speed (the ratio of the two runs' ``reference_ms``), and calls a
change only where that view and the plain one agree. The kernel is a noisy sample of the
machine's speed (on a 2-core VM it followed a torch training loop with a correlation of
0.89 over 150 s of large swings, but only 0.42-0.45 per 0.5 s window), so it only ever
vetoes a call; docs/regression-tracking.md gives what that bought on real noise.

The kernel runs on one thread, whatever the run's thread count: a run given half the
threads is slower, and the kernel is not, so that slowdown is still seen. It is skipped for
a comparison whose NumPy versions differ (the kernel itself may have changed) and for runs
on a GPU (whose speed the CPU's load does not set).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

#: matrix size and repeats: about 1.5 ms a probe on a 2-core Xeon (two probes a run)
N, REPEATS = 192, 7
_A: np.ndarray | None = None


def reference_ms() -> float:
    """Median ms of the reference kernel (``(A @ A) @ A``, float32, one thread) right now."""
    from threadpoolctl import threadpool_limits

    global _A
    if _A is None:
        _A = np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)
    times = []
    with threadpool_limits(1):
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            (_A @ _A) @ _A
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def machine_factor(base: pd.DataFrame, current: pd.DataFrame) -> pd.Series:
    """Per ``run_id`` (the index of both runs tables): current's reference time over the
    baseline's, where both sides timed it on the CPU; a run's throughput times this is its
    throughput at the baseline's machine speed (1.2: the machine was 20% slower now)."""
    if "reference_ms" not in base or "reference_ms" not in current:
        return pd.Series(dtype=float)
    ids = base.index.intersection(current.index)
    b, c = base.loc[ids], current.loc[ids]
    ok = (b["device"] == "cpu") & (b["reference_ms"] > 0) & (c["reference_ms"] > 0)
    return (c.loc[ok, "reference_ms"] / b.loc[ok, "reference_ms"]).astype(float)


def rescale(rates: pd.DataFrame, factor: pd.Series) -> pd.DataFrame:
    """Block rates (:func:`benchmarks.core.stats.block_rates` rows) of the runs ``factor`` names,
    multiplied by it; other runs as they were."""
    if factor.empty:
        return rates
    return rates.assign(rate=rates["rate"] * rates["run_id"].map(factor).fillna(1.0).to_numpy())


def numpy_versions_differ(envs: list[dict[str, Any]]) -> bool:
    versions = {str((e.get("packages") or {}).get("numpy", "")) for e in envs}
    return len(versions) > 1

"""Throughput statistics shared by the report and the regression comparison.

Every timed block of a run gives one throughput (steps x batch_size / seconds). Groups of
runs are summarised by the median of their pooled blocks, with a two-stage bootstrap
(runs resampled, then blocks within each run) so that run-to-run spread counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

N_BOOT = 1000


def block_rates(runs: pd.DataFrame, timings: pd.DataFrame | None, keep: list[str]) -> pd.DataFrame:
    """One row per timed block of an ok or diverged run: ``run_id``, the ``keep`` columns
    of its run, and ``rate`` (samples/s).

    Blocks of at least half the full size (``full_block_steps``: ``block_steps``, or a whole
    epoch where an epoch is shorter); all timed blocks where a run has none. The runner computes its
    ``samples_per_s`` with this function too. Diverged runs count up to the block that diverged, which is dropped (NaN/inf
    arithmetic can run at another speed); leaving them out entirely would unbalance the
    pools: a backend's fast SGD runs diverge at high learning rates while its slower Adam
    runs stay, skewing its median.
    """
    cols = ["run_id", *keep, "rate"]
    if timings is None or timings.empty or runs is None or runs.empty:
        return pd.DataFrame(columns=cols)
    live = runs[runs["status"].isin(["ok", "diverged"])]
    # a full block: block_steps, or a whole epoch where an epoch is shorter (runner.py)
    size = "full_block_steps" if "full_block_steps" in live else "block_steps"
    extra = [c for c in ("batch_size", size, "status") if c not in keep]
    t = timings[timings["phase"] == "timed"].merge(live[["run_id", *keep, *extra]], on="run_id")
    last = t.groupby("run_id")["block"].transform("max")
    t = t[~((t["status"] == "diverged") & (t["block"] == last))]
    t = t[t["seconds"] > 0]
    full_size = t[size].fillna(t.groupby("run_id")["steps"].transform("max"))
    # at least half a full block: blocks cut short by an epoch end or an evaluation point
    # still count, a stub of a step or two (where one sync weighs more) does not
    t = t.assign(full=t["steps"] * 2 >= full_size)
    has_full = t.groupby("run_id")["full"].transform("any")
    t = t[t["full"] | ~has_full]
    return t.assign(rate=t["steps"] * t["batch_size"] / t["seconds"])[cols].reset_index(drop=True)


def per_run(rates: pd.DataFrame) -> list[np.ndarray]:
    """The block throughputs of each run in ``rates`` (rows of :func:`block_rates`)."""
    return [g["rate"].to_numpy(dtype=float) for _, g in rates.groupby("run_id", sort=True)]


def bootstrap_medians(runs: list[np.ndarray], n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``n_boot`` replicates of the pooled median, resampling runs and then blocks within runs.

    A run drawn k times counts with weight k (a weighted median), which keeps this vectorised.
    """
    runs = [np.asarray(r, float) for r in runs if len(r)]
    if not runs:
        return np.full(n_boot, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(runs), size=(n_boot, len(runs)))
    counts = np.stack([(picks == i).sum(axis=1) for i in range(len(runs))], axis=1)
    values = np.concatenate(
        [r[rng.integers(0, len(r), size=(n_boot, len(r)))] for r in runs], axis=1
    )
    weights = np.concatenate(
        [np.repeat(counts[:, [i]], len(r), axis=1) for i, r in enumerate(runs)], axis=1
    )
    order = np.argsort(values, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    idx = (cum < cum[:, -1:] / 2).sum(axis=1)
    return values[np.arange(n_boot), idx]


def median_ci(
    runs: list[np.ndarray], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Median of the pooled blocks and its 95% two-stage bootstrap interval."""
    runs = [np.asarray(r, float) for r in runs if len(r)]
    if not runs:
        return (math.nan, math.nan, math.nan)
    lo, hi = np.percentile(bootstrap_medians(runs, n_boot, seed), [2.5, 97.5])
    return (float(np.median(np.concatenate(runs))), float(lo), float(hi))

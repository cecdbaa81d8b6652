"""The regression verdict of a throughput change between two sides: the one rule that
``optbench compare``, its re-measurement (:mod:`benchmarks.track.recheck`) and the history page
call a group ``slower``, ``faster`` or ``same`` by. (It lived in the report's analysis,
which never used it: the tracking layer reached up into the report for its own rule.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.core import stats

#: the verdicts of :func:`throughput_change`
SLOWER, FASTER, SAME, NO_TIMINGS = "slower", "faster", "same", "no timings"


def throughput_change(
    runs: pd.DataFrame,
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    by: list[str],
    threshold: float,
    floors: dict[tuple, float] | None = None,
    at_machine_speed: pd.DataFrame | None = None,
    level: float = 0.95,
    robust: bool = False,
) -> pd.DataFrame:
    """Per ``by`` group of ``runs`` (the runs both sides hold): the median samples/s of the
    pooled blocks on each side, and the change (current / baseline: the geometric mean of
    matched runs' ratios, :func:`benchmarks.core.stats.paired_ratio`) with its 95% bootstrap
    interval, and a verdict: ``slower`` when the ratio is below ``1 - t`` and the whole
    interval below 1, ``faster`` when above ``1 + t`` and the whole interval above 1,
    ``same`` otherwise, ``no timings`` where a side has no timed block; ``t`` is the larger
    of ``threshold`` and the group's noise ``floor`` (``floors``: the largest change between
    repeated sweeps of an unchanged commit, see :mod:`benchmarks.track.baselines`).

    ``baseline``/``current``: :func:`benchmarks.core.stats.block_rates` rows of each side.
    ``at_machine_speed``: ``current``'s rows scaled to the baseline's machine speed
    (:mod:`benchmarks.core.reference`); given, the change is measured both ways
    (``machine_ratio`` the second) and a group is ``slower`` or ``faster`` only where both
    say so: a change that the machine's own speed explains, or that only the scaling
    shows, is not called. ``level``: the one-sided confidence of the bounds;
    ``robust``: the median pair's change (:func:`benchmarks.core.stats.paired_ratio`).
    """
    rows = []
    floors = floors or {}
    # each run's block throughputs, once per side
    by_b = {r: g["rate"].to_numpy(float) for r, g in baseline.groupby("run_id")}
    by_c = {r: g["rate"].to_numpy(float) for r, g in current.groupby("run_id")}
    by_m = (
        {r: g["rate"].to_numpy(float) for r, g in at_machine_speed.groupby("run_id")}
        if at_machine_speed is not None
        else None
    )

    def verdict(ratio: float, lo: float, hi: float, t: float) -> str:
        if ratio < 1 - t and hi < 1:
            return SLOWER
        if ratio > 1 + t and lo > 1:
            return FASTER
        return SAME

    for key, grp in runs.groupby(by, sort=True):
        rids = sorted(set(grp["run_id"]))
        # matched pairs: the same run (configuration) on each side, in run_id order
        both = [r for r in rids if r in by_b and r in by_c]
        row: dict[str, Any] = dict(zip(by, key))
        row.update(
            runs=len(rids),
            baseline_samples_per_s=math.nan,
            current_samples_per_s=math.nan,
            ratio=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            floor=floors.get(tuple(key), 0.0),
            verdict=NO_TIMINGS,
        )
        if both:
            pooled = [np.concatenate([side[r] for r in rids if r in side]) for side in (by_b, by_c)]
            mb, mc = (float(np.median(p)) for p in pooled)
            ratio, lo, hi = stats.paired_ratio(
                [by_b[r] for r in both], [by_c[r] for r in both], level=level, robust=robust
            )
            t = max(threshold, floors.get(tuple(key), 0.0))
            called = verdict(ratio, lo, hi, t)
            if by_m is not None:
                m = stats.paired_ratio(
                    [by_b[r] for r in both], [by_m[r] for r in both], level=level, robust=robust
                )
                row.update(machine_ratio=m[0])
                if verdict(*m, t) != called:
                    called = SAME
            row.update(
                baseline_samples_per_s=mb,
                current_samples_per_s=mc,
                ratio=ratio,
                ci_low=lo,
                ci_high=hi,
                verdict=called,
            )
        rows.append(row)
    return pd.DataFrame(rows)

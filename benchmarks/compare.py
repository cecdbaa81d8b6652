"""Regression tracking: compare a results folder against a baseline, with statistics.

Runs are matched by ``run_id`` (a hash of the whole configuration, so the same sweep gives
the same ids on any machine and commit). For each backend x mode x device x optimizer x
batch size (runs of a group differ only in learning rate and seed, which cost the same per
step), the timed blocks of the matched runs are pooled on each side and the ratio of
median throughputs (current / baseline) gets a 95% bootstrap interval (resampling runs,
then blocks within runs, as the report does; the statistic is
:func:`benchmarks.report.analysis.throughput_change`). A group is

- ``slower`` when the ratio is below ``1 - threshold`` and the whole interval is below 1,
- ``faster`` when above ``1 + threshold`` and the whole interval is above 1,
- ``same`` otherwise (a change smaller than the threshold, or within the noise).

Besides speed, a run that finished in the baseline but diverged or failed now, and a final
test accuracy lower by more than ``acc_tolerance``, are regressions too. ``optbench
compare`` exits 1 when there is any regression, so CI can fail loudly on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import stats
from benchmarks.report.analysis import CELL, SLOWER, cell_spread, throughput_change
from benchmarks.schema import Status
from benchmarks.store import Store

GROUP = ["backend", "mode", "device", "optimizer", "batch_size"]


@dataclass
class Comparison:
    groups: pd.DataFrame  # one row per GROUP: medians, ratio, interval, verdict
    status_changes: pd.DataFrame  # runs ok in the baseline, not ok now
    accuracy_drops: pd.DataFrame  # runs whose final test accuracy fell beyond the tolerance
    matched: int
    only_baseline: int
    only_current: int
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # tables missing, damaged or rebuilt

    @property
    def regressions(self) -> int:
        slower = int((self.groups["verdict"] == SLOWER).sum()) if len(self.groups) else 0
        return slower + len(self.status_changes) + len(self.accuracy_drops)


def compare(
    baseline: Path, current: Path, threshold: float = 0.05, acc_tolerance: float = 0.01
) -> Comparison:
    """Compare ``current`` against ``baseline`` (both results folders)."""
    if not 0 < threshold < 1:
        raise ValueError(
            f"threshold={threshold} is invalid: give a fraction in (0, 1), e.g. 0.05 for 5%"
        )
    if not acc_tolerance >= 0:
        raise ValueError(f"acc_tolerance={acc_tolerance} is invalid: must be >= 0")
    base, cur = Store.open(baseline), Store.open(current)
    b_runs, c_runs = base.runs(), cur.runs()  # rebuilt from parts/ where damaged
    if b_runs.empty:
        raise ValueError(f"{baseline}: runs.parquet holds no runs; nothing to compare against")
    if c_runs.empty:
        raise ValueError(f"{current}: runs.parquet holds no runs; nothing to compare")
    ids = sorted(set(b_runs["run_id"]) & set(c_runs["run_id"]))
    if not ids:
        raise ValueError(
            f"no run of {current} matches a run of {baseline}: compare results of the same sweep "
            "(runs match by their configuration)"
        )
    b = b_runs.set_index("run_id").loc[ids].copy()
    c = c_runs.set_index("run_id").loc[ids].copy()
    for frame in (b, c):  # a store where no run finished may lack the measured columns
        for col, empty in (("final_test_acc", math.nan), ("error", "")):
            if col not in frame:
                frame[col] = empty
    warnings = _environment_warnings(base.environment(), cur.environment())
    warnings += _path_changes(b, c)

    groups = throughput_change(
        b.reset_index(),
        stats.block_rates(b.reset_index(), base.table("timings"), GROUP),
        stats.block_rates(c.reset_index(), cur.table("timings"), GROUP),
        GROUP,
        threshold,
    )

    cfg = ["backend", "mode", "device", "optimizer", "lr", "batch_size", "seed"]
    ok = Status.OK.value
    changed = (b["status"] == ok) & (c["status"] != ok)
    status_changes = pd.DataFrame(
        {
            **{k: b.loc[changed, k] for k in cfg},
            "baseline_status": b.loc[changed, "status"],
            "current_status": c.loc[changed, "status"],
            "current_error": c.loc[changed, "error"],
        }
    ).reset_index()
    both_ok = (b["status"] == ok) & (c["status"] == ok)
    drop = b["final_test_acc"] - c["final_test_acc"]
    # A cell where the baseline's backends (or seeds) already end far apart is chaotic: a
    # change there is a regression only beyond that spread.
    spread = cell_spread(b_runs).set_index(CELL)["spread"]
    cells = pd.MultiIndex.from_frame(b[CELL])
    allowed = pd.Series(spread.reindex(cells).fillna(0.0).to_numpy(), index=b.index)
    allowed = allowed.clip(lower=acc_tolerance)
    dropped = both_ok & (drop > allowed)
    absorbed = int((both_ok & (drop > acc_tolerance) & ~dropped).sum())
    accuracy_drops = pd.DataFrame(
        {
            **{k: b.loc[dropped, k] for k in cfg},
            "baseline_acc": b.loc[dropped, "final_test_acc"],
            "current_acc": c.loc[dropped, "final_test_acc"],
            "allowed_drop": allowed[dropped],
        }
    ).reset_index()
    notes = [f"baseline: {n}" for n in base.notes] + [f"current: {n}" for n in cur.notes]
    if absorbed:
        notes.append(
            f"{absorbed} accuracy drop(s) above {acc_tolerance:g} not counted: within their "
            "configuration's spread between backends or seeds in the baseline (a chaotic cell)"
        )
    return Comparison(
        groups,
        status_changes,
        accuracy_drops,
        len(ids),
        len(set(b_runs["run_id"]) - set(ids)),
        len(set(c_runs["run_id"]) - set(ids)),
        warnings,
        notes,
    )


def _path_changes(b: pd.DataFrame, c: pd.DataFrame) -> list[str]:
    """Runs of the same configuration on another compiled path (a re-measured default)."""
    if "compiler" not in b or "compiler" not in c:
        return []
    moved = pd.DataFrame({"backend": b["backend"], "device": b["device"], "was": b["compiler"]})
    moved["now"] = c["compiler"]
    moved = moved[moved["was"].fillna("") != moved["now"].fillna("")].drop_duplicates()
    return [
        f"{r.backend} on the {r.device} ran {r.was!r} in the baseline and {r.now!r} now "
        "(see compiler_choice): a speed change there is the path's as much as the framework's"
        for r in moved.itertuples()
    ]


def _environment_warnings(b: dict[str, Any], c: dict[str, Any]) -> list[str]:
    """Differences that make a speed comparison unfair (another CPU, thread count, versions)."""
    out = []
    for key in ("cpu_model", "threads_per_worker", "host"):
        if b.get(key) != c.get(key):
            out.append(f"{key} differs: baseline {b.get(key)!r}, current {c.get(key)!r}")
    bp, cp = b.get("packages") or {}, c.get("packages") or {}
    for pkg in sorted(set(bp) | set(cp)):
        if bp.get(pkg) != cp.get(pkg) and pkg != "optbench":
            out.append(f"{pkg} {bp.get(pkg)} -> {cp.get(pkg)}")
    return out


def format_comparison(cmp: Comparison, baseline: Path, current: Path, threshold: float) -> str:
    lines = [
        f"baseline {baseline}\ncurrent  {current}",
        f"{cmp.matched} runs matched ({cmp.only_baseline} only in the baseline, {cmp.only_current} only in current)",
    ]
    lines += cmp.notes
    if cmp.warnings:
        lines.append(
            "environment differs (speed may not be comparable): " + "; ".join(cmp.warnings)
        )
    g = cmp.groups.copy()
    if len(g):
        g["baseline samples/s"] = g["baseline_samples_per_s"].map(
            lambda v: f"{v:,.0f}" if v == v else "-"
        )
        g["current samples/s"] = g["current_samples_per_s"].map(
            lambda v: f"{v:,.0f}" if v == v else "-"
        )
        g["ratio"] = [
            f"{r:.3f} [{lo:.3f}, {hi:.3f}]" if r == r else "-"
            for r, lo, hi in zip(g["ratio"], g["ci_low"], g["ci_high"])
        ]
        cols = [*GROUP, "runs", "baseline samples/s", "current samples/s", "ratio", "verdict"]
        lines.append(
            f"\nthroughput (ratio = current / baseline, 95% bootstrap interval; threshold {threshold:.0%}):"
        )
        lines.append(g[cols].to_string(index=False))
    if len(cmp.status_changes):
        lines.append("\nruns that finished in the baseline and do not now:")
        lines.append(cmp.status_changes.to_string(index=False))
    if len(cmp.accuracy_drops):
        lines.append("\nfinal test accuracy lower than the baseline's:")
        lines.append(cmp.accuracy_drops.to_string(index=False))
    n = cmp.regressions
    lines.append(f"\n{'REGRESSION' if n else 'OK'}: {n} regression(s)")
    return "\n".join(lines)

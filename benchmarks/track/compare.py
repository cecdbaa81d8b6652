"""Regression tracking: compare a results folder against a baseline, with statistics.

Runs are matched by ``run_id`` (a hash of the whole configuration, so the same sweep gives
the same ids on any machine and commit). For each backend x mode x device x optimizer x
batch size (runs of a group differ only in learning rate and seed, which cost the same per
step), the change is the block-weighted geometric mean of the matched runs' throughput
ratios (current / baseline) with one-sided 95% bootstrap bounds
(:func:`benchmarks.core.stats.paired_ratio`, via
:func:`benchmarks.track.change.throughput_change`). With ``t`` the larger of
``threshold`` and the group's noise floor (:mod:`benchmarks.track.baselines`: the change that
repeated sweeps of an unchanged commit showed), a group is

- ``slower`` when the ratio is below ``1 - t`` and its upper bound below 1,
- ``faster`` when above ``1 + t`` and its lower bound above 1,
- ``same`` otherwise (a change smaller than ``t``, or within the noise).

Where both sides timed the reference kernel (:mod:`benchmarks.core.reference`), the change is
also measured with each current run scaled to the baseline's machine speed, and a group is
``slower`` or ``faster`` only where both measurements say so.

Besides speed, a run that finished in the baseline but diverged or failed now, and a final
test accuracy lower by more than ``acc_tolerance``, are regressions too. ``optbench
compare`` exits 1 when there is any regression, so CI can fail loudly on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.core import reference, stats
from benchmarks.core.environment import package_changes
from benchmarks.record.schema import CONFIG_COLUMNS, Status
from benchmarks.record.store import Store
from benchmarks.report.analysis import CELL, cell_spread
from benchmarks.report.document import markdown_table
from benchmarks.track import baselines, recheck
from benchmarks.track.change import FASTER, SAME, SLOWER, throughput_change

COMPARED = baselines.COMPARED  # data set, backend, mode, device, variant, optimizer, batch size
#: a noise floor above this makes a group untrackable: the output says so
BLIND_FLOOR = 0.5
#: what ``--fail-on`` can choose: the kinds of regression
FAIL_ON = ("throughput", "accuracy", "status")


@dataclass
class Comparison:
    groups: pd.DataFrame  # one row per COMPARED: medians, ratio, interval, verdict
    status_changes: pd.DataFrame  # runs ok in the baseline, not ok now
    accuracy_drops: pd.DataFrame  # runs whose final test accuracy fell beyond the tolerance
    matched: int
    only_baseline: int
    only_current: int
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # tables missing, damaged or rebuilt

    @property
    def by_kind(self) -> dict[str, int]:
        """Regressions per kind of :data:`FAIL_ON`."""
        slower = int((self.groups["verdict"] == SLOWER).sum()) if len(self.groups) else 0
        return {
            "throughput": slower,
            "accuracy": len(self.accuracy_drops),
            "status": len(self.status_changes),
        }

    @property
    def regressions(self) -> int:
        return sum(self.by_kind.values())

    @property
    def improvements(self) -> int:
        return int((self.groups["verdict"] == FASTER).sum()) if len(self.groups) else 0

    def failed(self, fail_on: tuple[str, ...] = FAIL_ON) -> bool:
        """Whether a regression of a kind in ``fail_on`` was found (the exit code's question)."""
        return any(self.by_kind[k] for k in fail_on)


def compare(
    baseline: Path,
    current: Path,
    threshold: float = 0.05,
    acc_tolerance: float = 0.01,
    recheck_rounds: int = 0,
    log: Callable[[str], None] = lambda s: None,
    recheck_budget_s: float = recheck.BUDGET_S,
) -> Comparison:
    """Compare ``current`` against ``baseline`` (both results folders). With
    ``recheck_rounds``, the groups called slower or faster are re-measured with both sides'
    code, interleaved (:mod:`benchmarks.track.recheck`), for at least that many rounds and, where
    that is inconclusive, more within ``recheck_budget_s`` seconds; a call is taken back only
    where the re-measurement shows the change within the threshold. ``log`` hears its
    progress."""
    if not 0 < threshold < 1:
        raise ValueError(
            f"threshold={threshold} is invalid: give a fraction in (0, 1), e.g. 0.05 for 5%"
        )
    if not acc_tolerance >= 0:
        raise ValueError(f"acc_tolerance={acc_tolerance} is invalid: must be >= 0")
    base, cur = Store.open(baseline), Store.open(current)
    b_runs, c_runs = base.runs(), cur.runs()  # rebuilt from parts/ where damaged
    ids = _matched(b_runs, c_runs, baseline, current)
    b = b_runs.set_index("run_id").loc[ids].copy()
    c = c_runs.set_index("run_id").loc[ids].copy()
    for frame in (b, c):  # a store where no run finished may lack the measured columns
        for col, empty in (("final_test_acc", math.nan), ("error", "")):
            if col not in frame:
                frame[col] = empty
    envs = [_environment(store) for store in (base, cur)]
    warnings = _environment_warnings(*envs)
    warnings += _path_changes(b, c)
    floor, floor_from = baselines.floors(Path(baseline), envs[1])
    c_rates = stats.block_rates(c.reset_index(), cur.table("timings"), COMPARED)
    at_machine_speed, scaled = _machine_speed(envs, b, c, c_rates, len(ids))
    groups = throughput_change(
        b.reset_index(),
        stats.block_rates(b.reset_index(), base.table("timings"), COMPARED),
        c_rates,
        COMPARED,
        threshold,
        {tuple(r[:-2]): r[-2] for r in floor.itertuples(index=False)},
        at_machine_speed,
    )

    rechecked = ""
    if recheck_rounds:
        groups, rechecked = recheck.recheck(
            groups, COMPARED, base, cur, threshold, recheck_rounds, log, recheck_budget_s
        )
    status_changes, accuracy_drops, absorbed = _run_changes(b, c, b_runs, acc_tolerance)
    notes = [f"baseline: {n}" for n in base.notes] + [f"current: {n}" for n in cur.notes]
    notes += _notes(groups, floor_from, [scaled, rechecked], acc_tolerance, absorbed)
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


def _matched(b_runs: pd.DataFrame, c_runs: pd.DataFrame, baseline: Path, current: Path) -> list:
    """The run ids both folders hold; ValueError, naming what differs, where none."""
    if b_runs.empty:
        raise ValueError(f"{baseline}: runs.parquet holds no runs; nothing to compare against")
    if c_runs.empty:
        raise ValueError(f"{current}: runs.parquet holds no runs; nothing to compare")
    ids = sorted(set(b_runs["run_id"]) & set(c_runs["run_id"]))
    if not ids:
        # every configuration column whose values differ (the run id hashes them; the
        # compiler columns are results of the run, not what makes it the same run)
        keys = [c for c in CONFIG_COLUMNS if c not in ("run_id", "compiler", "compiler_choice")]
        keys.append("lr")
        differ = [
            f"{col} {sorted(set(b_runs[col].astype(str)))} vs {sorted(set(c_runs[col].astype(str)))}"
            for col in keys
            if col in b_runs
            and col in c_runs
            and set(b_runs[col].astype(str)) != set(c_runs[col].astype(str))
        ]
        raise ValueError(
            f"no run of {current} matches a run of {baseline}: compare results of the same sweep "
            "(runs match by their configuration)"
            + (f"; they differ in {'; '.join(differ)}" if differ else "")
        )
    return ids


def _environment(store: Store) -> dict[str, Any]:
    """A side's environment.json; without it, nothing says the two are comparable."""
    env = store.environment()
    if not env:
        raise ValueError(
            f"{store.path}: environment.json is missing, so the machine and versions the "
            "runs were measured on are unknown; compare folders that optbench run wrote"
        )
    return env


def _machine_speed(
    envs: list[dict[str, Any]], b: pd.DataFrame, c: pd.DataFrame, c_rates: pd.DataFrame, n: int
) -> tuple[pd.DataFrame | None, str]:
    """The current rates at the baseline machine's speed (None where they cannot be), and
    the note that says so."""
    if reference.numpy_versions_differ(envs):
        return None, (
            "throughput not checked at the machine's speed: the NumPy versions differ, and "
            "with them the reference kernel"
        )
    factor = reference.machine_factor(b, c)
    if not len(factor):
        return None, ""
    return reference.rescale(c_rates, factor), (
        f"throughput also checked at the machine's speed (a reference kernel timed "
        f"around each run) for {len(factor)} of {n} matched runs: during the "
        f"current runs the machine was {_speed_change(float(np.median(factor)))} "
        "during the baseline's (median over runs); a change is called only where "
        "both views agree"
    )


#: the run columns compare's status and accuracy tables name a run by
RUN_KEY = [
    "dataset",
    "backend",
    "mode",
    "device",
    "variant",
    "optimizer",
    "lr",
    "batch_size",
    "seed",
]


def _run_changes(
    b: pd.DataFrame, c: pd.DataFrame, b_runs: pd.DataFrame, acc_tolerance: float
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The runs ok in the baseline and not now; those whose accuracy dropped beyond the
    allowance; how many drops a chaotic cell's spread absorbed."""
    cfg = RUN_KEY
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
    return status_changes, accuracy_drops, absorbed


def _notes(
    groups: pd.DataFrame, floor_from: str, said: list[str], acc_tolerance: float, absorbed: int
) -> list[str]:
    """What the comparison notes: blind groups, the noise floor, ``said`` (the machine
    speed's and the re-measurement's notes, where any), absorbed accuracy drops."""
    notes = []
    blind = groups[groups["floor"] > BLIND_FLOOR] if len(groups) else groups
    if len(blind):
        notes.append(
            f"{len(blind)} group(s) cannot be tracked on this machine: their repeated sweeps "
            f"moved by more than {BLIND_FLOOR:.0%} (e.g. {blind.iloc[0]['backend']} "
            f"{blind.iloc[0]['optimizer']} batch {blind.iloc[0]['batch_size']}, "
            f"{blind.iloc[0]['floor']:.0%}), so only a larger slowdown would be flagged; measure on a "
            "quieter machine or with fewer threads per run"
        )
    notes.append(
        f"noise floor from {floor_from}: a group is slower only beyond the larger of the "
        "threshold and the change its repeated sweeps showed"
        if floor_from
        else "no noise floor: the baseline holds one sweep and none with repeats is saved for "
        "this machine (optbench baseline save ... --repeat FOLDER learns it); sweep-to-sweep "
        "drift on a busy machine may be flagged"
    )
    notes += [n for n in said if n]
    if absorbed:
        notes.append(
            f"{absorbed} accuracy drop(s) above {acc_tolerance:g} not counted: within their "
            "configuration's spread between backends or seeds in the baseline (a chaotic cell)"
        )
    return notes


def _speed_change(factor: float) -> str:
    """``factor`` (current reference time / baseline's) in words."""
    if abs(factor - 1) < 0.005:
        return "as fast as"
    if factor > 1:
        return f"{factor - 1:.0%} slower than"
    return f"{1 / factor - 1:.0%} faster than"


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
    return out + package_changes(b, c)


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
        speed = ["at machine speed"] if "machine_ratio" in g else []
        if speed:
            g["at machine speed"] = g["machine_ratio"].map(lambda v: f"{v:.3f}" if v == v else "-")
        again = ["re-measured"] if "recheck_ratio" in g else []
        if again:
            g["re-measured"] = recheck.describe(g)
        cols = [
            *_shown(g),
            "runs",
            "baseline samples/s",
            "current samples/s",
            "ratio",
            *speed,
            *again,
            "verdict",
        ]
        lines.append(
            f"\nthroughput (ratio = current / baseline, one-sided 95% bounds; threshold {threshold:.0%}"
            + (
                f"; re-measured: one-sided {recheck.LEVEL:.0%} bounds, {recheck.SAME_LEVEL:.0%}"
                " where a call is taken back (an equivalence test); xN: rounds"
                if again and g["recheck_ratio"].notna().any()
                else ""
            )
            + "):"
        )
        if again:  # what the re-measurement did to each call, beside it
            g["verdict"] = recheck.verdict_text(g)
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


def _shown(groups: pd.DataFrame) -> list[str]:
    """The :data:`COMPARED` columns worth a column in a table: the data set and variant only where a
    comparison has several (most have one of each)."""
    return [c for c in COMPARED if c not in ("dataset", "variant") or groups[c].nunique() > 1]


def format_markdown(cmp: Comparison, baseline: Path, current: Path, threshold: float) -> str:
    """The comparison as a pull-request comment: the verdict first, then regressions and
    improvements, each a table (groups that did not change are counted, not listed)."""
    n, kinds = cmp.regressions, cmp.by_kind
    head = (
        f"**optbench: {n} regression(s)** ("
        + ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
        + f"), {cmp.improvements} improvement(s)"
        if n
        else f"**optbench: no regression**, {cmp.improvements} improvement(s)"
    )
    lines = [
        head,
        "",
        f"`{current}` against `{baseline}`: {cmp.matched} runs matched; throughput ratio = "
        f"current / baseline with one-sided 95% bounds, threshold {threshold:.0%}"
        + (
            f"; re-measured: both sides run again in turn, one-sided {recheck.LEVEL:.0%} bounds, "
            f"{recheck.SAME_LEVEL:.0%} where a call is taken back (an equivalence test)."
            if "recheck_ratio" in cmp.groups and cmp.groups["recheck_ratio"].notna().any()
            else "."
        ),
    ]
    g = cmp.groups
    speed = ["at machine speed"] if "machine_ratio" in g else []
    again = ["re-measured", "re-measurement"] if "recheck_ratio" in g else []
    cols = [*_shown(g), "ratio", "interval", *speed, *again, "floor"]
    for title, verdict in (("Slower", SLOWER), ("Faster", FASTER)):
        sel = g[g["verdict"] == verdict] if len(g) else g
        if len(sel):
            shown = sel.assign(
                **{"re-measured": recheck.describe(sel), "re-measurement": sel["recheck"]}
                if again
                else {},
                ratio=sel["ratio"].map(lambda v: f"{v:.3f}"),
                **{"at machine speed": sel["machine_ratio"].map(lambda v: f"{v:.3f}")}
                if speed
                else {},
                interval=[f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(sel["ci_low"], sel["ci_high"])],
                floor=sel["floor"].map(lambda v: f"{v:.0%}" if v else "-"),
            )
            lines += ["", f"### {title}", "", _md_table(shown[cols])]
    if again:
        back = g[recheck.taken_back(g)]
        if len(back):
            shown = back.assign(
                ratio=back["ratio"].map(lambda v: f"{v:.3f}"),
                **{"re-measured": recheck.describe(back)},
                **{"first call": back["first_verdict"]},
            )
            title = "Flagged, then taken back: re-measured in turn, the whole interval lay within the threshold"
            lines += [
                "",
                f"### {title}",
                "",
                _md_table(shown[[*_shown(g), "ratio", "re-measured", "first call"]]),
            ]
    for title, df in (
        ("Runs that finished in the baseline and do not now", cmp.status_changes),
        ("Final test accuracy lower than the baseline's", cmp.accuracy_drops),
    ):
        if len(df):
            lines += ["", f"### {title}", "", _md_table(df.drop(columns="run_id", errors="ignore"))]
    same = int((g["verdict"] == SAME).sum()) if len(g) else 0
    lines += ["", f"{same} group(s) unchanged."]
    if cmp.warnings:
        lines += ["", "Environment differs: " + "; ".join(cmp.warnings)]
    lines += [""] + [f"- {note}" for note in cmp.notes]
    return "\n".join(lines)


def _md_table(df: pd.DataFrame) -> str:
    """Compare's tables: cells as ``str`` writes them, escaped (:func:`markdown_table`)."""
    return markdown_table(df.columns, df.itertuples(index=False), text=str)

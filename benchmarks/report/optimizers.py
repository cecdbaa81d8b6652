"""The optimizer verdict: which optimizer to train with, per data set and batch size, and how
sure the sweep lets us be. DataFrames in, DataFrames out, no formatting; where the data
cannot support a number, a ``*_note`` column says why instead of inventing one.

The figures come from one backend's spec runs (:func:`verdict_series`: the spec series with
the most seeds per configuration; ties go to the registry's order, whose first entry is the
float64 reference), so that seeds, not frameworks, make the spread. Per (data set, batch
size, optimizer, schedule):

- **best learning rate**: the highest mean final *validation* accuracy over seeds, among
  the learning rates where no seed diverged (ties to the smaller lr). Test accuracy is
  reported at that lr and never used to choose.
- **interval**: the min-max of the final test accuracy over the seeds (with the two or three
  seeds a sweep affords, a t-interval would rest on an assumed normal error and mostly show
  its t quantile); none with one seed.
- **time to target**: per seed, the step of the first evaluation whose validation accuracy
  reaches the data set's target, and that many steps at the optimizer's step time on that
  workload (the median samples/s of all its runs, every lr and seed: robust to a busy
  machine's stalls, which the raw training clock is not, and to one run's noise); the median
  over seeds, a seed that never reaches it counting as infinitely slow. The target is the
  sweep's (settings ``targets``) or
  :data:`TARGET_FRACTION` x the best mean validation accuracy of any optimizer on that data
  set, rounded down to :data:`TARGET_STEP` (:func:`choose_targets`).
- **robustness**: the width in decades (log10 max/min) of the run of neighbouring learning
  rates around the best whose mean validation accuracy is within ``tolerance`` of the best,
  none diverged; **largest stable lr**: the largest with no diverged seed.

Across workloads (data set x batch size), :mod:`benchmarks.report.profiles` gives Dolan &
More's profiles of the time to target, with AlgoPerf's score, the cells where the backends'
spec runs part, and what each framework's stock optimizer (its own defaults) changes at the
best spec learning rate.

    oa = analyse_optimizers(runs, curves, targets={"digits": 0.95})
    oa.recommended  # one row per data set x batch size
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backends import registry
from benchmarks.record.schema import FINISHED
from benchmarks.report.profiles import (
    KEY,
    WORKLOAD,
    agreement,
    matching,
    performance_profile,
    profile_ratios,
    stock_drift,
)
from benchmarks.report.profiles import TAU_MAX as TAU_MAX
from benchmarks.report.profiles import TAUS as TAUS  # re-exported, as TAU_MAX: opt.TAUS
from benchmarks.report.runs import (
    GROUP,
    OK,
    SPEC,
    STOCK,
    counts,
    curves_with_defaults,
    with_defaults,
)

#: mean validation accuracies this close to the best count as as good (robustness, choice)
TOLERANCE = 0.01
TARGET_FRACTION = 0.97
TARGET_STEP = 0.005

# the notes that stand in for a number the data cannot give
ONLY_ONE = "the only one"
SMALLEST, LARGEST = "the smallest tried", "the largest tried"
ONE_LR = "cannot conclude (one learning rate)"
ONE_SEED = "one seed: no interval"
AT_EDGE = "reaches the edge of the grid: at least this wide"
NO_VAL = "no validation accuracy"
ALL_DIVERGED = "a seed diverged at every learning rate"
NONE_OK = "no run finished ok"
NONE_STABLE = "none: a seed diverged at every learning rate"
STABLE_EDGE = "the largest tried: the edge lies beyond"
NO_CURVE = "no validation curve"
#: why a workload's recommendation is the one it is: the best validation accuracy, no other
#: within the tolerance of it; or the fastest to the target of those within it; or, where
#: several are as fast within :data:`TIE_MARGIN`, the fewest steps to the target, then the
#: best validation accuracy; or none of those separates them ("any of")
BEST_VAL = "best validation accuracy"
FASTEST_NEAR = "fastest to the target within the tolerance of the best validation accuracy"
TIED_STEPS = "as fast to the target within the tie margin: fewest steps to the target"
TIED_VAL = "as fast and as many steps to the target: best validation accuracy"
ANY_OF = "as fast, as many steps and as accurate: any of them"
#: times to target within ``1 + TIE_MARGIN`` of the fastest are tied: the noise of that
#: time. Two NumPy optimizer sweeps of one commit on a quiet 2-core AMD EPYC VM (2026-12-08,
#: 2 threads): the ratio of two optimizers' times on one workload moved by up to 1.76x
#: between them (112 pairs; median 1.13x, 95th percentile 1.36x), though their steps to the
#: target were identical: a run's samples/s moved by 24% (median; 90th percentile 1.9x).
#: At 0.15 the pick at digits batch 128 flipped between those sweeps (adam, adagrad); at 0.8
#: all four workloads' picks were the same in both
TIE_MARGIN = 0.8
TARGET_SET = "set by the sweep"

LR_COLUMNS = [
    *KEY,
    "lr",
    "runs",
    "ok",
    "diverged",
    "failed",
    "skipped",
    "seeds",
    "val_acc",
    "test_acc",
    "test_min",
    "test_max",
    "test_loss",
    "candidate",
]
VERDICT_COLUMNS = [
    *KEY,
    "lrs",
    "best_lr",
    "best_lr_note",
    "val_acc",
    "test_acc",
    "test_low",
    "test_high",
    "interval_note",
    "seeds",
    "test_loss",
    "target",
    "target_source",
    "target_seeds",
    "reached",
    "steps",
    "time_s",
    "reach_note",
    "robust_low",
    "robust_high",
    "decades",
    "robust_note",
    "stable_lr",
    "stable_note",
    "runs",
    "ok",
    "diverged",
    "failed",
    "skipped",
]


@dataclass
class OptimizerAnalysis:
    series: dict[str, str] | None  # the verdict backend's series (GROUP -> value)
    series_why: str
    tolerance: float
    lrs: pd.DataFrame  # lr_table: per KEY x lr
    verdict: pd.DataFrame  # one row per KEY (VERDICT_COLUMNS)
    targets: pd.DataFrame  # per data set: target, source
    recommended: pd.DataFrame  # one row per workload
    ratios: pd.DataFrame  # per workload x solver: time_s, ratio
    profile: pd.DataFrame  # per solver: rho at TAUS, score
    agreement: pd.DataFrame  # disagreements of spec runs, with at_best
    drift: pd.DataFrame  # DRIFT_COLUMNS
    drift_curves: pd.DataFrame  # the curves the drift figure draws
    stock_runs: int = 0
    missing: list[str] = field(default_factory=list)  # what the folder lacks, as sentences


# --- which backend --------------------------------------------------------------------


def verdict_series(runs: pd.DataFrame) -> tuple[dict[str, str] | None, str]:
    """The series whose spec runs the verdict uses, and why: the most seeds per configuration
    (median over its configurations, finished runs); ties go to the registry's order (its
    first entry is the reference), then to the series' names. None where no spec run
    finished."""
    runs = with_defaults(runs)
    done = runs[(runs["variant"] == SPEC) & runs["status"].isin(FINISHED)]
    if done.empty:
        return None, "no spec run finished"
    per_config = done.groupby([*GROUP, *KEY, "lr"])["seed"].nunique()
    seeds = per_config.groupby(level=list(range(len(GROUP)))).median()
    order = {n: i for i, n in enumerate(registry.NAMES)}
    ranked = sorted(seeds.items(), key=lambda kv: (-kv[1], order.get(kv[0][0], len(order)), kv[0]))
    (key, n), rest = ranked[0], ranked[1:]
    tied = ["/".join(map(str, k)) for k, m in rest if m == n]
    if not rest:
        why = f"the only spec series, with {n:g} seed(s) per configuration"
    else:
        why = f"{n:g} seed(s) per configuration, the most of any spec series"
        if tied:
            why += f"; tied with {', '.join(tied)}, the registry's order decides"
    return dict(zip(GROUP, key)), why


# --- per learning rate, and the best ---------------------------------------------------


def lr_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (KEY, lr) of one series' spec runs: status counts, seeds (ok runs), the means over
    them of final validation and test accuracy and test loss, the test accuracy's min and
    max, and whether the lr is a ``candidate`` for the best (no seed diverged, a validation
    accuracy known)."""
    runs = with_defaults(runs)
    rows = []
    for key, df in runs.groupby([*KEY, "lr"], sort=True):
        ok = df[df["status"] == OK]
        n = counts(df["status"])
        val = ok["final_val_acc"].dropna()
        test = ok["final_test_acc"].dropna()
        rows.append(
            {
                **dict(zip([*KEY, "lr"], key)),
                **n,
                "seeds": int(ok["seed"].nunique()),
                "val_acc": val.mean() if len(val) else math.nan,
                "test_acc": test.mean() if len(test) else math.nan,
                "test_min": test.min() if len(test) else math.nan,
                "test_max": test.max() if len(test) else math.nan,
                "test_loss": ok["final_test_loss"].mean() if len(ok) else math.nan,
                "candidate": n["diverged"] == 0 and len(val) > 0,
            }
        )
    return pd.DataFrame(rows, columns=LR_COLUMNS)


def robust_range(g: pd.DataFrame, best: int, tolerance: float) -> tuple[int, int]:
    """Indices (into ``g``, sorted by lr) of the widest run of neighbouring candidate lrs
    around ``best`` whose mean validation accuracy is within ``tolerance`` of the best's."""
    floor = g["val_acc"].iloc[best] - tolerance - 1e-12
    good = (g["candidate"] & (g["val_acc"] >= floor)).to_list()
    lo = hi = best
    while lo > 0 and good[lo - 1]:
        lo -= 1
    while hi < len(g) - 1 and good[hi + 1]:
        hi += 1
    return lo, hi


def best_lrs(lrs: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per KEY of :func:`lr_table`: the best lr (see the module), its figures, robustness and
    largest stable lr, with the notes where a figure cannot be given."""
    rows = []
    for key, g in lrs.groupby(KEY, sort=True):
        g = g.sort_values("lr").reset_index(drop=True)
        row: dict[str, Any] = dict(zip(KEY, key))
        row.update({c: int(g[c].sum()) for c in ("runs", "ok", "diverged", "failed", "skipped")})
        row.update(lrs=len(g), **_stable(g))
        cand = g[g["candidate"]]
        if cand.empty:
            if g["ok"].sum() == 0 and g["diverged"].sum() == 0:
                note = NONE_OK
            elif ((g["diverged"] > 0) | (g["ok"] == 0)).all():
                note = ALL_DIVERGED
            else:
                note = NO_VAL
            rows.append({**row, "best_lr": math.nan, "best_lr_note": note})
            continue
        i = int(cand.sort_values(["val_acc", "lr"], ascending=[False, True]).index[0])
        b = g.iloc[i]
        if len(g) == 1:
            best_note = ONLY_ONE
        else:
            best_note = SMALLEST if i == 0 else LARGEST if i == len(g) - 1 else ""
        row.update(
            best_lr=float(b["lr"]),
            best_lr_note=best_note,
            val_acc=b["val_acc"],
            test_acc=b["test_acc"],
            seeds=int(b["seeds"]),
            test_loss=b["test_loss"],
        )
        if b["seeds"] > 1:
            row.update(
                test_low=b["test_min"],
                test_high=b["test_max"],
                interval_note=f"min-max over {int(b['seeds'])} seeds",
            )
        else:
            row.update(interval_note=ONE_SEED)
        if len(g) == 1:
            row.update(robust_note=ONE_LR)
        else:
            lo, hi = robust_range(g, i, tolerance)
            edge = lo == 0 or hi == len(g) - 1
            row.update(
                robust_low=float(g["lr"].iloc[lo]),
                robust_high=float(g["lr"].iloc[hi]),
                decades=math.log10(g["lr"].iloc[hi] / g["lr"].iloc[lo]),
                robust_note=AT_EDGE if edge else "",
            )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=BEST_COLUMNS)


#: what :func:`best_lrs` gives: the verdict less the target and the time to it
BEST_COLUMNS = [
    c
    for c in VERDICT_COLUMNS
    if c
    not in ("target", "target_source", "target_seeds", "reached", "steps", "time_s", "reach_note")
]


def _stable(g: pd.DataFrame) -> dict[str, Any]:
    """The largest lr of ``g`` (sorted by lr) with no diverged seed and a run finished ok."""
    stable = g[(g["diverged"] == 0) & (g["ok"] > 0)]["lr"]
    if stable.empty:
        return {
            "stable_lr": math.nan,
            "stable_note": NONE_STABLE if g["diverged"].any() else NONE_OK,
        }
    top = float(stable.max())
    return {"stable_lr": top, "stable_note": STABLE_EDGE if top >= g["lr"].max() else ""}


# --- the target and the time to it ----------------------------------------------------


def choose_targets(best: pd.DataFrame, targets: dict[str, float] | None = None) -> pd.DataFrame:
    """Per data set of ``best`` (:func:`best_lrs`): the validation accuracy to reach and where
    it comes from: ``targets`` (the sweep's settings) where it names the data set, else
    :data:`TARGET_FRACTION` x the best mean validation accuracy (at the best lr) of any
    optimizer and batch size, rounded down to :data:`TARGET_STEP`."""
    targets = targets or {}
    rows = []
    for ds in sorted(best["dataset"].unique()) if len(best) else []:
        if ds in targets:
            rows.append({"dataset": ds, "target": float(targets[ds]), "source": TARGET_SET})
            continue
        vals = best.loc[best["dataset"] == ds, "val_acc"].dropna() if "val_acc" in best else []
        if len(vals) == 0:
            rows.append({"dataset": ds, "target": math.nan, "source": f"none: {NO_VAL}"})
            continue
        top = float(vals.max())
        t = round(math.floor(TARGET_FRACTION * top / TARGET_STEP + 1e-9) * TARGET_STEP, 6)
        rows.append(
            {
                "dataset": ds,
                "target": t,
                "source": f"{TARGET_FRACTION:g} x the best mean validation accuracy "
                f"({top:.3f}), rounded down to {TARGET_STEP:g}",
            }
        )
    return pd.DataFrame(rows, columns=["dataset", "target", "source"])


def seed_reach(
    runs: pd.DataFrame, curves: pd.DataFrame | None, best: pd.DataFrame, targets: pd.DataFrame
) -> pd.DataFrame:
    """Per ok run at its KEY's best lr: the step of the first evaluation with validation
    accuracy >= its data set's target, and the time to it: that many steps at its KEY's
    step time (the median ``samples_per_s`` of all its finished runs, every lr and seed; the
    training clock, ``wall_s`` less ``compile_s``, where none has a timed block); inf where
    its validation curve never gets there, NaN where it has none."""
    cols = [*KEY, "lr", "seed", "run_id", "has_curve", "step", "time_s"]
    runs = with_defaults(runs)
    curves = curves_with_defaults(curves)
    if best.empty or "best_lr" not in best:
        return pd.DataFrame(columns=cols)
    at = best.dropna(subset=["best_lr"]).merge(targets[["dataset", "target"]], on="dataset")
    ok = runs[runs["status"] == OK].merge(at[[*KEY, "best_lr", "target"]], on=KEY)
    ok = ok[np.isclose(ok["lr"], ok["best_lr"])]
    val = (
        curves.dropna(subset=["val_acc"]).sort_values(["run_id", "step"])
        if curves is not None
        else pd.DataFrame(columns=["run_id", "step", "wall_s", "val_acc"])
    )
    by_run = dict(tuple(val.groupby("run_id")))
    # a step's cost is the optimizer's on this workload, whatever the lr or seed: the median
    # of all its runs' samples/s, not one run's (identical math, adam and adamw without
    # decay, read 2.18 and 1.46 ms to the target from one run each)
    timed = runs[runs["status"].isin(FINISHED)]
    pooled = (
        timed.dropna(subset=["samples_per_s"]).groupby(KEY)["samples_per_s"].median().to_dict()
        if "samples_per_s" in timed
        else {}
    )
    rows = []
    for r in ok.to_dict("records"):
        c = by_run.get(r["run_id"])
        row = {**{k: r[k] for k in [*KEY, "lr", "seed", "run_id"]}, "has_curve": c is not None}
        if c is None or not r["target"] == r["target"]:
            row.update(step=math.nan, time_s=math.nan)
        else:
            hit = c[c["val_acc"] >= r["target"] - 1e-12]
            if hit.empty:
                row.update(step=math.inf, time_s=math.inf)
            else:
                step = float(hit.iloc[0]["step"])
                rate = pooled.get(tuple(r[k] for k in KEY))
                if rate is not None and rate == rate and rate > 0:
                    # at the steady-state step time (median timed blocks): a stall of a
                    # shared machine in one run must not decide the ranking
                    time_s = step * float(r["batch_size"]) / float(rate)
                else:  # no timed block (a short run): the training clock after the first step
                    compile_s = r.get("compile_s")
                    compile_s = compile_s if compile_s == compile_s and compile_s is not None else 0
                    time_s = max(float(hit.iloc[0]["wall_s"]) - compile_s, 0.0)
                row.update(step=step, time_s=time_s)
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _reach_summary(reach: pd.DataFrame) -> pd.DataFrame:
    """Per KEY of :func:`seed_reach`: seeds with a curve, seeds that reached the target,
    and the median step and time (inf where most did not)."""
    rows = []
    for key, g in reach.groupby(KEY, sort=True):
        known = g[g["has_curve"] & g["time_s"].notna()]
        n, hit = len(known), int(np.isfinite(known["time_s"]).sum())
        row = {**dict(zip(KEY, key)), "target_seeds": n, "reached": hit}
        if n == 0:
            row.update(steps=math.nan, time_s=math.nan, reach_note=NO_CURVE)
        else:
            row.update(
                steps=float(np.median(known["step"])),
                time_s=float(np.median(known["time_s"])),
                reach_note="" if hit == n else f"reached by {hit} of {n} seeds",
            )
        rows.append(row)
    return pd.DataFrame(
        rows, columns=[*KEY, "target_seeds", "reached", "steps", "time_s", "reach_note"]
    )


# --- the recommendation ----------------------------------------------------------------


def recommend(
    verdict: pd.DataFrame, tolerance: float = TOLERANCE, margin: float = TIE_MARGIN
) -> pd.DataFrame:
    """Per workload: the optimizer to use, and why (``reason``):

    1. the best mean validation accuracy (at its best lr) where no other is within
       ``tolerance`` of it (:data:`BEST_VAL`; also where none of those within it reaches
       the target);
    2. else the fastest to the target of those within it (:data:`FASTEST_NEAR`): a
       difference in accuracy that small is seed noise with a handful of seeds;
    3. where others reach it within ``margin`` of the fastest's time (the time's own noise
       between two sweeps of one commit), those are tied, and the deterministic measures
       decide: fewest steps to the target (:data:`TIED_STEPS`), then the best validation
       accuracy (:data:`TIED_VAL`); where neither separates them, ``any_of`` lists them
       (the page says "any of A, B"; :data:`ANY_OF`).

    Rows of ``verdict`` (the pick's) plus ``reason``, ``any_of`` (the solvers nothing
    separates, as (optimizer, schedule), where there are several), ``tied`` (the solvers
    tied on time, the pick first), ``runner_up`` (a solver, or None) and ``margin`` (what
    separates it from the pick, in words), ``near`` (how many were within the tolerance),
    ``compared`` (how many had a best lr) and ``best_val_optimizer``; ``optimizer`` is ""
    where none has a best lr."""
    rows = []
    for _, g in verdict.groupby(WORKLOAD, sort=True):
        c = g.dropna(subset=["val_acc"]) if "val_acc" in g else g.iloc[0:0]
        if c.empty:
            empty = {k: g.iloc[0][k] if k in WORKLOAD else "" for k in KEY}
            rows.append(
                {**empty, "reason": "", "any_of": [], "tied": [], "runner_up": None, "margin": "",
                 "near": 0, "compared": 0, "best_val_optimizer": ""}
            )  # fmt: skip
            continue
        by_val = c.sort_values(["val_acc", "time_s", "optimizer"], ascending=[False, True, True])
        top = by_val.iloc[0]
        near = c[c["val_acc"] >= top["val_acc"] - tolerance - 1e-12]
        fast = near[np.isfinite(near["time_s"].astype(float))]
        pick, reason, tied, runner, gap = top, BEST_VAL, [top], None, ""
        if len(near) > 1 and len(fast):
            by_time = fast.sort_values(
                ["time_s", "steps", "val_acc", "optimizer"], ascending=[True, True, False, True]
            )
            fastest = float(by_time.iloc[0]["time_s"])
            within = by_time[by_time["time_s"] <= fastest * (1 + margin) + 1e-12]
            if len(within) == 1:
                pick, reason = by_time.iloc[0], FASTEST_NEAR
                tied = [pick]
                if len(by_time) > 1:
                    runner = by_time.iloc[1]
                    gap = f"{runner['time_s'] / max(fastest, 1e-12):.2f}x the time to the target"
            else:
                ranked = within.sort_values(
                    ["steps", "val_acc", "optimizer"], ascending=[True, False, True]
                )
                pick, runner = ranked.iloc[0], ranked.iloc[1]
                tied = [r for _, r in ranked.iterrows()]
                if runner["steps"] > pick["steps"]:
                    reason = TIED_STEPS
                    gap = f"{runner['steps'] - pick['steps']:.0f} more steps to the target"
                elif runner["val_acc"] < pick["val_acc"] - 1e-12:
                    reason = TIED_VAL
                    gap = f"{pick['val_acc'] - runner['val_acc']:.4f} lower validation accuracy"
                else:
                    reason = ANY_OF
                    gap = "nothing: as fast, as many steps, as accurate"
        elif len(by_val) > 1:
            runner = by_val.iloc[1]
            gap = f"{top['val_acc'] - runner['val_acc']:.4f} lower validation accuracy"
        any_of = (
            [t for t in tied if t["steps"] == pick["steps"] and t["val_acc"] >= pick["val_acc"] - 1e-12]
            if reason == ANY_OF
            else [pick]
        )  # fmt: skip
        rows.append(
            {
                **pick.to_dict(),
                "reason": reason,
                "any_of": [_solver(t) for t in any_of] if len(any_of) > 1 else [],
                "tied": [_solver(t) for t in tied] if len(tied) > 1 else [],
                "runner_up": _solver(runner) if runner is not None else None,
                "margin": gap,
                "near": len(near),
                "compared": len(c),
                "best_val_optimizer": top["optimizer"],
            }
        )
    return pd.DataFrame(rows)


def _solver(r: pd.Series) -> tuple[str, str]:
    return (str(r["optimizer"]), str(r["schedule"]))


# --- everything, once ------------------------------------------------------------------


def analyse_optimizers(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    targets: dict[str, float] | None = None,
    tolerance: float = TOLERANCE,
) -> OptimizerAnalysis:
    """The optimizer verdict of a results folder's tables (see the module). ``targets``:
    the validation accuracy to reach per data set (the sweep settings' ``targets``; a data
    set it does not name gets :func:`choose_targets`' rule)."""
    runs, curves = with_defaults(runs), curves_with_defaults(curves)
    series, why = verdict_series(runs)
    stock_n = int((runs["variant"] == STOCK).sum())
    missing = []
    mine = runs[(runs["variant"] == SPEC) & matching(runs, GROUP, series or {})]
    if series is None:
        missing.append("No spec run finished: there is nothing to choose from")
    elif mine[mine["status"] == OK]["final_val_acc"].isna().all():
        missing.append(
            "runs.parquet holds no validation accuracy (final_val_acc; the sweep predates the "
            "validation split): the best learning rate is chosen on validation accuracy only, "
            "never on test accuracy, so none is chosen"
        )
    elif curves is None or curves["val_acc"].isna().all():
        missing.append(
            "curves.parquet holds no validation curve (val_acc): no steps or time to the "
            "target, and no performance profile"
        )
    lrs = lr_table(mine)
    best = best_lrs(lrs, tolerance)
    tg = choose_targets(best, targets)
    reach = _reach_summary(seed_reach(mine, curves, best, tg))
    verdict = pd.DataFrame(columns=VERDICT_COLUMNS)
    if len(best):
        verdict = best.merge(tg.rename(columns={"source": "target_source"}), on="dataset")
        verdict = verdict.merge(reach, on=KEY, how="left").reindex(columns=VERDICT_COLUMNS)
    ratios = profile_ratios(verdict)
    drift, drawn = stock_drift(runs, curves, verdict, series)
    return OptimizerAnalysis(
        series,
        why,
        tolerance,
        lrs,
        verdict,
        tg,
        recommend(verdict, tolerance),
        ratios,
        performance_profile(ratios),
        agreement(runs, verdict),
        drift,
        drawn,
        stock_n,
        missing,
    )

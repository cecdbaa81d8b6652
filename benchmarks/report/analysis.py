"""Every statistic the report, ``optbench compare`` and the console summary show: DataFrames
in, DataFrames out, no formatting.

Throughput follows the runner's timing protocol: every timed block of a run (a diverged
run's up to the block that diverged) gives one throughput (steps x batch_size / seconds);
full blocks only, as ``samples_per_s`` does (all timed blocks where a run has none). A
group's figure is the median of its pooled blocks with a 95% two-stage bootstrap interval
(runs, then blocks within runs); the primitives are :mod:`benchmarks.stats`'.

Statuses are :mod:`benchmarks.schema`'s: "failed" counts :data:`~benchmarks.schema.FAILED`
runs (error, timeout, crashed); skipped runs are counted apart.

Every figure here compares frameworks on the *spec* variant (each framework corrected to one
formula); *stock* runs (a framework's own optimizer at its defaults) enter only the
optimizer analysis' drift (:mod:`benchmarks.report.optimizers`), and the problems. The
verdict and the throughput compare every series on the seeds all of them ran
(:func:`shared_seeds`): a backend given extra seeds for the optimizer verdict (a sweep's
``[optimizer_seeds]``) is not pooled over more seeds than the others. Every grouping holds
the data set (a sweep may train on several). Tables written before a column existed are
read with :func:`with_defaults`.

:func:`analyse` computes everything a report shows, once::

    an = analyse(runs, curves, timings)
    an.verdict  # one row per batch size x backend x mode x compiler x device
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmarks import stats
from benchmarks.schema import FAILED, FINISHED, RUN_COLUMN_DEFAULTS, Status

if TYPE_CHECKING:  # it imports this module
    from benchmarks.report.optimizers import OptimizerAnalysis

DEFAULT_TARGET = 0.90
GROUP = ["backend", "mode", "compiler", "device"]  # a series: one framework set up one way
CONFIG = ["dataset", "optimizer", "lr", "batch_size"]
OK, DIVERGED, SKIPPED = Status.OK.value, Status.DIVERGED.value, Status.SKIPPED.value
#: runs' ``variant``: every framework corrected to one formula, or its own optimizer at its defaults
SPEC, STOCK = "spec", "stock"

#: columns that older results folders (or hand-made tables) lack, and the value they stand
#: for there (the schema's, where it has one)
RUN_DEFAULTS: dict[str, Any] = {
    "dataset": "",
    **{
        c: RUN_COLUMN_DEFAULTS[c]
        for c in ("variant", "schedule", "final_val_acc", "final_val_loss")
    },
}
CURVE_DEFAULTS: dict[str, Any] = {"val_loss": math.nan, "val_acc": math.nan}

THROUGHPUT_COLUMNS = ["samples_per_s", "ci_low", "ci_high", "blocks", "timed_runs"]
MEANS_COLUMNS = [
    *GROUP,
    *CONFIG,
    "runs",
    "ok",
    "diverged",
    "failed",
    "skipped",
    "acc",
    "val_acc",
    "loss",
    "diverged_steps",
]
VERDICT_COLUMNS = [
    "dataset",
    "batch_size",
    *GROUP,
    "samples_per_s",
    "ci_low",
    "ci_high",
    "blocks",
    "throughput_source",
    "relative",
    "separable",
    "noisy",
    "tflops",
    "fraction_of_peak",
    "compile_s",
    "best_test_acc",
    "best_val_acc",
    "best_optimizer",
    "best_lr",
    "best_chosen_by",
    "target_time_s",
    "target_steps",
    "target_optimizer",
    "target_lr",
    "runs",
    "ok",
    "diverged",
    "failed",
    "skipped",
]
#: throughput_source of a verdict row
FROM_BLOCKS, FROM_RUNS = "timed blocks", "runs.samples_per_s"
#: best_chosen_by of a verdict row: the final accuracy its best optimizer/lr was chosen by
BY_VALIDATION, BY_TEST = "validation", "test"


def with_defaults(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with every column of :data:`RUN_DEFAULTS` (missing ones, and empty text
    cells, at their default); the same frame where nothing is missing."""
    missing = {c: v for c, v in RUN_DEFAULTS.items() if c not in runs}
    blank = [
        c
        for c in ("variant", "schedule")
        if c in runs and (runs[c].isna() | (runs[c].astype(str) == "")).any()
    ]
    if not missing and not blank:
        return runs
    out = runs.assign(**missing)
    for c in blank:
        out[c] = out[c].where(out[c].notna() & (out[c].astype(str) != ""), RUN_DEFAULTS[c])
    return out


def curves_with_defaults(curves: pd.DataFrame | None) -> pd.DataFrame | None:
    """``curves`` with the validation columns (NaN where the folder predates them)."""
    if curves is None:
        return None
    missing = {c: v for c, v in CURVE_DEFAULTS.items() if c not in curves}
    return curves.assign(**missing) if missing else curves


def spec_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the spec variant (all of an older folder's)."""
    runs = with_defaults(runs)
    return runs[runs["variant"] == SPEC]


def shared_seeds(runs: pd.DataFrame) -> list[float]:
    """The seeds that every series of ``runs`` ran (whatever the outcome), in order: what a
    comparison of frameworks holds each of them to. Empty where the series share none."""
    per_series = [set(g["seed"].dropna()) for _, g in runs.groupby(GROUP)]
    return sorted(set.intersection(*per_series)) if per_series else []


def on_shared_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``runs`` on :func:`shared_seeds` (all of them where the series share none)."""
    seeds = shared_seeds(runs)
    return runs[runs["seed"].isin(seeds)] if seeds else runs


def seeds_left_out(runs: pd.DataFrame) -> pd.DataFrame:
    """Per series of ``runs`` that ran seeds beyond :func:`shared_seeds`: those seeds
    (``seeds``, a list) and their runs; empty where every series ran the same seeds."""
    cols = [*GROUP, "seeds", "runs"]
    shared = shared_seeds(runs)
    extra = runs[~runs["seed"].isin(shared)] if shared else runs.iloc[:0]
    rows = [
        {**dict(zip(GROUP, key)), "seeds": sorted(g["seed"].dropna().unique()), "runs": len(g)}
        for key, g in extra.groupby(GROUP, sort=True)
    ]
    return pd.DataFrame(rows, columns=cols)


def workload(df: pd.DataFrame) -> list[str]:
    """The columns a speed or accuracy is compared within: data set (where ``df`` has it) and
    batch size."""
    return [c for c in ("dataset", "batch_size") if c in df]


def counts(status: pd.Series) -> dict[str, int]:
    """Runs by outcome: ok, diverged, failed (error, timeout, crashed) and skipped."""
    return {
        "runs": len(status),
        "ok": int((status == OK).sum()),
        "diverged": int((status == DIVERGED).sum()),
        "failed": int(status.isin(FAILED).sum()),
        "skipped": int((status == SKIPPED).sum()),
    }


# --- throughput ------------------------------------------------------------------------


def block_rates(runs: pd.DataFrame, timings: pd.DataFrame | None) -> pd.DataFrame:
    """One row per timed block (see :func:`benchmarks.stats.block_rates`) with its config."""
    return stats.block_rates(with_defaults(runs), timings, [*GROUP, *CONFIG, "seed"])


def throughput(rates: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Median samples/s with its 95% interval, blocks and runs, per ``by`` group."""
    rows = []
    for key, df in rates.groupby(by, sort=True):
        per_run = stats.per_run(df)
        med, lo, hi = stats.median_ci(per_run)
        rows.append(
            {
                **dict(zip(by, key)),
                "samples_per_s": med,
                "ci_low": lo,
                "ci_high": hi,
                "blocks": len(df),
                "timed_runs": len(per_run),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *THROUGHPUT_COLUMNS])


# --- accuracy and time to target -------------------------------------------------------


def evaluated(runs: pd.DataFrame, curves: pd.DataFrame | None) -> pd.DataFrame:
    """Curve rows with a test evaluation, of ok runs, with the run's config."""
    if curves is None or curves.empty or runs.empty:
        return pd.DataFrame(
            columns=["run_id", "step", "epoch", "wall_s", "test_loss", "test_acc"]
            + [*GROUP, *CONFIG, "seed"]
        )
    runs = with_defaults(runs)
    ok = runs[runs["status"] == OK][["run_id", *GROUP, *CONFIG, "seed"]]
    return curves.dropna(subset=["test_acc"]).merge(ok, on="run_id")


def choose_target(
    runs: pd.DataFrame, curves: pd.DataFrame | None, target: float | None = None
) -> tuple[float, str]:
    """The test accuracy to reach and why: 0.90 unless no run reaches it (then 90% of the
    best, rounded down to 0.05)."""
    if target is not None:
        return target, f"set by the caller: {target:.2f}"
    best = evaluated(runs, curves)["test_acc"].max() if curves is not None else math.nan
    if not best == best or best >= DEFAULT_TARGET:
        return DEFAULT_TARGET, f"a fixed {DEFAULT_TARGET:.2f}"
    chosen = math.floor(0.9 * best * 20) / 20
    return (
        chosen,
        f"{chosen:.2f}: no run reaches {DEFAULT_TARGET:.2f} (best {best:.3f}), so 90% of the best, rounded down to 0.05",
    )


def time_to_target(runs: pd.DataFrame, curves: pd.DataFrame | None, target: float) -> pd.DataFrame:
    """Per (group, config): the median over seeds of the training wall-clock and steps at the
    first evaluation with test accuracy >= target (NaN unless every ok seed gets there)."""
    ev = evaluated(runs, curves)
    cols = [*GROUP, *CONFIG, "time_s", "step"]
    if ev.empty:
        return pd.DataFrame(columns=cols)
    ev = ev.sort_values(["run_id", "step"])
    first = ev[ev["test_acc"] >= target].groupby("run_id").first()[["wall_s", "step"]]
    runs = with_defaults(runs)
    ok = runs[runs["status"] == OK].set_index("run_id")[[*GROUP, *CONFIG, "compile_s"]]
    per_run = ok.join(first, how="left")
    # after the first step: its compile time depends on each framework's in-process caches
    # (warm after a worker's first run in some, per learning rate in others), so it is shown apart
    per_run["wall_s"] = per_run["wall_s"] - per_run["compile_s"].fillna(0)
    agg = per_run.groupby([*GROUP, *CONFIG]).agg(
        time_s=("wall_s", lambda s: s.median() if s.notna().all() else math.nan),
        step=("step", lambda s: s.median() if s.notna().all() else math.nan),
    )
    return agg.reset_index()[cols]


def config_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (group, config): mean final test accuracy/loss and validation accuracy over ok
    seeds, and status counts."""
    rows = []
    for key, df in with_defaults(runs).groupby([*GROUP, *CONFIG], sort=True):
        ok = df[df["status"] == OK]
        rows.append(
            {
                **dict(zip([*GROUP, *CONFIG], key)),
                **counts(df["status"]),
                "acc": ok["final_test_acc"].mean() if len(ok) else math.nan,
                "val_acc": ok["final_val_acc"].mean() if len(ok) else math.nan,
                "loss": ok["final_test_loss"].mean() if len(ok) else math.nan,
                "diverged_steps": ",".join(f"{s:g}" for s in df["diverged_step"].dropna()),
            }
        )
    return pd.DataFrame(rows, columns=MEANS_COLUMNS)


def hosts(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per host (``host``, ``runs``), busiest first: more than one row means the sweep
    ran on several machines (a cluster executor), whose speeds compare only with care."""
    if "host" not in runs:
        return pd.DataFrame(columns=["host", "runs"])
    named = runs["host"].fillna("").astype(str)
    counts = named[named != ""].value_counts()
    return pd.DataFrame({"host": counts.index, "runs": counts.to_numpy()})


# --- where backends disagree ----------------------------------------------------------

#: a configuration run by several backends (or seeds): the cell they are compared in
CELL = ["dataset", "device", "optimizer", "lr", "batch_size"]
#: final test accuracy spread between backends above which a cell is flagged (0.5 points)
DISAGREE_ACC = 0.005


def cell_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """Per :data:`CELL`: the final test accuracy spread (max - min) over every ok run, and
    between backends (of their means over seeds) and within a backend (the largest, over
    seeds), with the number of runs that diverged. What :func:`disagreements` flags and what
    ``optbench compare`` allows a chaotic cell to move. Spec runs only: stock optimizers
    differ by design (see :func:`benchmarks.report.optimizers.stock_drift`)."""
    cols = [*CELL, "spread", "backend_spread", "seed_spread", "backends", "runs", "diverged"]
    runs = spec_runs(runs)
    if runs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, df in runs.groupby(CELL, sort=True):
        ok = df[df["status"] == OK].dropna(subset=["final_test_acc"])
        acc = ok["final_test_acc"]
        per_backend = ok.groupby("backend")["final_test_acc"]
        rows.append(
            {
                **dict(zip(CELL, key)),
                "spread": acc.max() - acc.min() if len(acc) > 1 else 0.0,
                "backend_spread": _range(per_backend.mean()),
                "seed_spread": per_backend.apply(_range).max() if len(ok) else 0.0,
                "backends": ok["backend"].nunique(),
                "runs": len(df),
                "diverged": int((df["status"] == DIVERGED).sum()),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _range(s: pd.Series) -> float:
    return float(s.max() - s.min()) if len(s) > 1 else 0.0


def disagreements(runs: pd.DataFrame, tolerance: float = DISAGREE_ACC) -> pd.DataFrame:
    """Cells where backends' final test accuracies differ by more than ``tolerance``, each
    with the likely reason. Parity proves the same step; a trajectory at the edge of
    stability amplifies float rounding, so runs that agree for 20 steps can part later."""
    spread = cell_spread(runs)
    flagged = spread[(spread["backends"] > 1) & (spread["backend_spread"] > tolerance)].copy()
    reasons = []
    for r in flagged.itertuples():
        if r.diverged:
            why = f"at the edge of stability: {r.diverged} of {r.runs} runs diverged"
        elif r.seed_spread >= r.backend_spread / 2:
            why = f"within seed-to-seed noise (seeds alone differ by {100 * r.seed_spread:.1f} points)"
        else:
            why = (
                "float rounding amplified by a chaotic trajectory: the backends follow the "
                "reference step by step (parity), and part later"
            )
        reasons.append(why)
    flagged["reason"] = reasons
    return flagged.reset_index(drop=True)


# --- the verdict -----------------------------------------------------------------------


def verdict(
    runs: pd.DataFrame,
    by_batch: pd.DataFrame | None,
    means: pd.DataFrame,
    ttt: pd.DataFrame,
    peak_tflops: float | None = None,
) -> pd.DataFrame:
    """The main table: one row per data set x batch size x backend x mode x compiler x
    device (spec runs: every framework on the same formula).

    ``by_batch``: :func:`throughput` per ``["batch_size", *GROUP]``, or None where no
    timings were recorded (then the runs' own ``samples_per_s``, without interval);
    ``means``: :func:`config_means`; ``ttt``: :func:`time_to_target`; ``peak_tflops``:
    the device's float32 peak where known (:func:`peak_of`), for ``fraction_of_peak``.
    The runs are taken as given: :func:`analyse` passes them on :func:`shared_seeds`.

    The best optimizer/lr is :func:`best_config`'s (by validation accuracy where recorded);
    the time to target is the fastest optimizer/lr's to reach the test accuracy ``ttt`` holds.
    """
    runs = spec_runs(runs)
    if runs.empty:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    by = ["dataset", "batch_size", *GROUP]
    tp = by_batch.set_index(by) if by_batch is not None else None
    rows = []
    for key, df in runs.groupby(by, sort=True):
        row = dict(zip(by, key))
        row.update(counts(df["status"]))
        row.update(_speed(df, tp, key))
        finished = df[df["status"].isin(FINISHED)]
        row["compile_s"] = finished["compile_s"].median() if len(finished) else math.nan
        has = "num_params" in finished and len(finished)
        params = finished["num_params"].median() if has else math.nan
        row["tflops"] = tflops(row["samples_per_s"], params)
        on_gpu = peak_tflops and row["device"] == "gpu"
        row["fraction_of_peak"] = row["tflops"] / peak_tflops if on_gpu else math.nan
        row.update(best_config(means, row))
        row.update(_fastest_to_target(ttt, row))
        rows.append(row)
    out = pd.DataFrame(rows)
    fastest = out.groupby(["dataset", "batch_size"])["samples_per_s"].transform("max")
    out["relative"] = out["samples_per_s"] / fastest
    out["separable"] = _separable(out)
    out["noisy"] = out["ci_high"] / out["ci_low"] > NOISY_RATIO
    out = out.sort_values(
        ["dataset", "batch_size", "samples_per_s"],
        ascending=[True, True, False],
        na_position="last",
    )
    return out[VERDICT_COLUMNS].reset_index(drop=True)


#: a 95% interval whose ends differ by more than this factor is flagged noisy
NOISY_RATIO = 1.5


def _separable(v: pd.DataFrame) -> pd.Series:
    """Per verdict row: is its speed told apart from the fastest of its batch size (95%
    intervals disjoint)? For the fastest row: from the runner-up. Where intervals overlap,
    the order is noise as much as speed."""
    out = pd.Series(True, index=v.index)
    for _, g in v.dropna(subset=["samples_per_s"]).groupby(workload(v)):
        g = g.sort_values("samples_per_s", ascending=False)
        if len(g) < 2:
            continue
        top, second = g.iloc[0], g.iloc[1]
        for i, r in g.iterrows():
            other = second if i == g.index[0] else top
            overlap = r["ci_low"] <= other["ci_high"] and other["ci_low"] <= r["ci_high"]
            out[i] = not overlap  # an interval missing (NaN) compares False: separable
    return out


def _speed(df: pd.DataFrame, tp: pd.DataFrame | None, key: tuple) -> dict[str, Any]:
    if tp is not None and key in tp.index:
        r = tp.loc[key]
        return {
            "samples_per_s": r["samples_per_s"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "blocks": int(r["blocks"]),
            "throughput_source": FROM_BLOCKS,
        }
    ok = df.loc[df["status"] == OK, "samples_per_s"].dropna()
    if tp is None and len(ok):  # no timings.parquet: the runs' own medians, no interval
        return {
            "samples_per_s": ok.median(),
            "ci_low": math.nan,
            "ci_high": math.nan,
            "blocks": 0,
            "throughput_source": FROM_RUNS,
        }
    return {
        "samples_per_s": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "blocks": 0,
        "throughput_source": "",
    }


def _of_row(table: pd.DataFrame, row: dict[str, Any]) -> pd.DataFrame:
    """The configurations of ``table`` in the verdict row's data set, batch size and series."""
    if table.empty:
        return table
    by = ["dataset", "batch_size", *GROUP]
    return table[table[by].apply(tuple, axis=1) == tuple(row[g] for g in by)]


def best_config(means: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
    """The verdict row's best optimizer/lr in ``means`` (:func:`config_means`), the optimizer
    verdict's rule (:mod:`benchmarks.report.optimizers`): the highest mean final validation
    accuracy, among the configurations where no run diverged (all that finished, where every
    one had a diverged run); ties to the smaller lr. Its test accuracy is reported
    (``best_test_acc``), never used to choose, except where no validation accuracy was
    recorded (a folder from before it): then by test accuracy, ``best_chosen_by`` says which."""
    out = {
        "best_test_acc": math.nan,
        "best_val_acc": math.nan,
        "best_optimizer": "",
        "best_lr": math.nan,
        "best_chosen_by": "",
    }
    sel = _of_row(means, row)
    sel = sel[(sel["ok"] > 0) & sel["acc"].notna()] if len(sel) else sel
    if sel.empty:
        return out
    calm = sel[sel["diverged"] == 0]
    sel = calm if len(calm) else sel
    by_val = sel["val_acc"].notna().any()
    col = "val_acc" if by_val else "acc"
    best = sel.dropna(subset=[col]).sort_values([col, "lr"], ascending=[False, True]).iloc[0]
    out.update(
        best_test_acc=best["acc"],
        best_val_acc=best["val_acc"],
        best_optimizer=best["optimizer"],
        best_lr=best["lr"],
        best_chosen_by=BY_VALIDATION if by_val else BY_TEST,
    )
    return out


def _fastest_to_target(ttt: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
    """The verdict row's optimizer/lr of :func:`time_to_target` that reaches the target
    soonest (ties to the smaller lr)."""
    out = {
        "target_time_s": math.nan,
        "target_steps": math.nan,
        "target_optimizer": "",
        "target_lr": math.nan,
    }
    sel = _of_row(ttt, row)
    sel = sel.dropna(subset=["time_s"]) if len(sel) else sel
    if sel.empty:
        return out
    best = sel.sort_values(["time_s", "lr"]).iloc[0]
    out.update(
        target_time_s=best["time_s"],
        target_steps=best["step"],
        target_optimizer=best["optimizer"],
        target_lr=best["lr"],
    )
    return out


def tflops(samples_per_s: float, num_params: float) -> float:
    """Achieved TFLOP/s of an MLP's training step: 6 flops per parameter per sample (2 in
    the forward matmuls, 4 in the backward's two), the optimizer's elementwise work left out."""
    return 6 * samples_per_s * num_params / 1e12


#: float32 peaks without tensor cores (TF32 off, as the suite runs), TFLOP/s, from the
#: vendors' datasheets: NVIDIA H100 SXM5 and H200 67 (H100 PCIe 51), A100 19.5
PEAK_FP32_TFLOPS = {
    "H200": 67.0,
    "H100 SXM": 67.0,
    "H100 80GB HBM3": 67.0,
    "H100 PCIe": 51.0,
    "A100": 19.5,
}
PEAK_SOURCE = "NVIDIA datasheets: H100 SXM5 and H200 67, H100 PCIe 51, A100 19.5 TFLOP/s float32 (no tensor cores)"


def peak_of(gpu_names: list[str]) -> tuple[str, float] | None:
    """The (name, float32 peak) of the first GPU the table knows, by name substring."""
    for name in gpu_names:
        for key, peak in PEAK_FP32_TFLOPS.items():
            if key.lower() in str(name).lower():
                return name, peak
    return None


def best_paths(v: pd.DataFrame) -> pd.DataFrame:
    """Each backend at its fastest measured path: the row of ``v`` (:func:`verdict`) with the
    most samples/s per batch size x backend x device (eager included)."""
    v = v.dropna(subset=["samples_per_s"])
    at = workload(v)
    return (
        v.sort_values("samples_per_s", ascending=False)
        .groupby([*at, "backend", "device"], sort=False)
        .head(1)
        .sort_values([*at, "samples_per_s"], ascending=[*([True] * len(at)), False])
        .reset_index(drop=True)
    )


def fastest(v: pd.DataFrame) -> pd.DataFrame:
    """The fastest series per (data set and) batch size: a row of ``v`` (:func:`verdict`) each."""
    v = v.dropna(subset=["samples_per_s"])
    return (
        v.sort_values("samples_per_s", ascending=False)
        .groupby(workload(v), sort=True)
        .head(1)
        .sort_values(workload(v))
        .reset_index(drop=True)
    )


def ranking(v: pd.DataFrame) -> pd.DataFrame:
    """Per backend and device, at its fastest path of each batch size (:func:`best_paths`):
    the geometric mean over batch sizes (and data sets) of its speed relative to the fastest (``relative``),
    fastest first, with ``paths``: the path(s) that were its fastest."""
    best = best_paths(v)
    if best.empty:
        return pd.DataFrame(columns=["backend", "device", "relative", "paths"])
    by = ["backend", "device"]
    geo = best.groupby(by)["relative"].apply(lambda s: float(np.exp(np.log(s).mean())))
    used = best.groupby(by)["compiler"].apply(lambda s: ", ".join(dict.fromkeys(s)))
    out = pd.DataFrame({"relative": geo, "paths": used}).reset_index()
    return out.sort_values("relative", ascending=False).reset_index(drop=True)


def cold_starts(runs: pd.DataFrame) -> pd.DataFrame:
    """The first step of each worker's first run (a compile with empty in-process caches)."""
    cols = [*GROUP, "compile_s"]
    if "worker_run_index" not in runs or "compile_s" not in runs:
        return pd.DataFrame(columns=cols)
    first = runs[
        (pd.to_numeric(runs["worker_run_index"], errors="coerce") == 1) & runs["compile_s"].notna()
    ]
    return first[cols].reset_index(drop=True)


#: a later run's first step shorter than this fraction of the cold start reuses what the
#: worker's first run compiled
REUSED_FRACTION = 0.5
#: a first step shorter than this (seconds) holds no compile worth reusing
NO_COMPILE_S = 0.01


def first_step_reuse(runs: pd.DataFrame) -> pd.DataFrame:
    """Per series with a cold start (:func:`cold_starts`): the cold start (``cold_s``, the
    median over its workers), the median first step of its workers' later runs (``later_s``,
    finished runs; NaN where there are none) and how many (``later_runs``), and ``reused``:
    whether those later first steps are shorter than :data:`REUSED_FRACTION` of the cold
    start, i.e. the framework keeps what it compiled across runs (False where the cold start
    was no compile to speak of, under :data:`NO_COMPILE_S`)."""
    cols = [*GROUP, "cold_s", "later_s", "later_runs", "reused"]
    cold = cold_starts(runs)
    if cold.empty:
        return pd.DataFrame(columns=cols)
    index = pd.to_numeric(runs["worker_run_index"], errors="coerce")
    later = runs[(index > 1) & runs["status"].isin(FINISHED) & runs["compile_s"].notna()]
    later = later.groupby(GROUP)["compile_s"].agg(["median", "size"])
    rows = []
    for key, g in cold.groupby(GROUP, sort=True):
        c = float(g["compile_s"].median())
        m, n = later.loc[key] if key in later.index else (math.nan, 0)
        rows.append(
            {
                **dict(zip(GROUP, key)),
                "cold_s": c,
                "later_s": m,
                "later_runs": int(n),
                "reused": bool(c >= NO_COMPILE_S and m < REUSED_FRACTION * c),
            }
        )
    return pd.DataFrame(rows, columns=cols)


# --- learning rates --------------------------------------------------------------------


def stable_lrs(means: pd.DataFrame) -> pd.DataFrame:
    """Largest learning rate whose runs all finished ok, per group x data set x optimizer x batch size
    (a column ``batch <n>`` each): "≥ lr" where it is the largest lr tried, "none" where
    every lr diverged, "-" where no run of the cell finished. ``means``: :func:`config_means`.
    """
    if means.empty:
        return pd.DataFrame()
    bss = sorted(means["batch_size"].dropna().unique())
    rows = []
    by = [*GROUP, "dataset", "optimizer"]
    for key, df in means.groupby(by, sort=True):
        row = dict(zip(by, key))
        for bs in bss:
            sub = df[df["batch_size"] == bs]
            stable = sub[(sub["ok"] == sub["runs"]) & (sub["ok"] > 0)]["lr"]
            if sub.empty or (sub["ok"] + sub["diverged"] == 0).all():
                cell = "-"
            elif stable.empty:
                cell = "none"
            else:
                cell = ("≥ " if stable.max() >= sub["lr"].max() else "") + f"{stable.max():g}"
            row[f"batch {int(bs)}"] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def stable_lr_splits(stable: pd.DataFrame) -> list[tuple[str, str]] | None:
    """(optimizer, batch column) cells of :func:`stable_lrs` where the series disagree (the
    optimizer prefixed by its data set where there are several); None where there are fewer
    than two series to compare."""
    if stable.empty or len(stable[GROUP].drop_duplicates()) < 2:
        return None
    cols = [c for c in stable.columns if c.startswith("batch ")]
    several = stable["dataset"].nunique() > 1
    return [
        (f"{ds} {opt}" if several else opt, c)
        for (ds, opt), g in stable.groupby(["dataset", "optimizer"])
        for c in cols
        if g.loc[g[c] != "-", c].nunique() > 1
    ]


def convergence_lrs(means: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    """Per (data set, optimizer, batch size): the lr with the best median (over series) final
    accuracy, preferring lrs at which no series diverged; ties go to the smaller lr."""
    out: dict[tuple[str, str, int], float] = {}
    if means.empty:
        return out
    for (ds, opt, bs), df in means.groupby(["dataset", "optimizer", "batch_size"], sort=True):
        per_lr = df.groupby("lr").agg(
            acc=("acc", "median"), bad=("diverged", "sum"), ok=("ok", "sum")
        )
        per_lr = per_lr[per_lr["ok"] > 0]
        if per_lr.empty:
            continue
        calm = per_lr[per_lr["bad"] == 0]
        pick = (
            (calm if len(calm) else per_lr)
            .reset_index()
            .sort_values(["acc", "lr"], ascending=[False, True])
        )
        out[(ds, opt, int(bs))] = float(pick.iloc[0]["lr"])
    return out


# --- problems --------------------------------------------------------------------------


def problems(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run that did not finish ok: its configuration and what happened."""
    bad = runs[runs["status"] != OK]
    if bad.empty:
        return pd.DataFrame()
    msg = np.where(
        bad["status"] == DIVERGED,
        "loss blew up at step " + bad["diverged_step"].map(lambda s: f"{s:g}" if s == s else "?"),
        bad["error"],
    )
    cols = [
        c
        for c in [
            "backend",
            "mode",
            "device",
            "dataset",
            "optimizer",
            "variant",
            "lr",
            "batch_size",
            "seed",
            "status",
        ]
        if c in bad
    ]
    frames = bad["traceback"].map(last_frames) if "traceback" in bad else ""
    out = bad[cols].assign(message=msg, last_frames=frames)
    return out.sort_values(["status", *cols[:-1]]).reset_index(drop=True)


def last_frames(traceback: object, lines: int = 4) -> str:
    """The end of a worker's traceback (where it raised), or "" where there is none."""
    if not isinstance(traceback, str):
        return ""
    return "\n".join([ln for ln in traceback.strip().splitlines() if ln.strip()][-lines:])


def problem_groups(problems: pd.DataFrame) -> pd.DataFrame:
    """Identical problems (same status and message) once each: how many runs, which (the
    first three), and the last frames of the first one's traceback."""
    cols = ["status", "message", "runs", "first runs", "last_frames"]
    if problems.empty:
        return pd.DataFrame(columns=cols)
    who = [c for c in ("backend", "optimizer", "lr", "batch_size", "seed") if c in problems]
    rows = []
    for (status, message), g in problems.groupby(["status", "message"], sort=True):
        names = [
            " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in r)
            for r in g[who].itertuples(index=False)
        ]
        rows.append(
            {
                "status": status,
                "message": message,
                "runs": len(g),
                "first runs": "; ".join(names[:3]) + ("; ..." if len(names) > 3 else ""),
                "last_frames": g["last_frames"].iloc[0],
            }
        )
    return pd.DataFrame(rows, columns=cols)


def backends_as_run(runs: pd.DataFrame) -> pd.DataFrame:
    """What each series' worker reported about itself (version, compiler, threads), and how
    its path was chosen."""
    cols = [
        c
        for c in (
            "framework_version",
            "compiler_detail",
            "compiler_choice",
            "threads",
            "threads_reported",
            "matmul_precision",
        )
        if c in runs
    ]
    finished = runs[runs["status"].isin(FINISHED)]
    if finished.empty or not cols:
        return pd.DataFrame()
    return finished.groupby(GROUP, sort=True)[cols].first().reset_index()


def series(runs: pd.DataFrame) -> list[tuple[str, ...]]:
    """The (backend, mode, compiler, device) series of ``runs``, in their order."""
    return [tuple(k) for k in runs[GROUP].drop_duplicates().itertuples(index=False)]


# --- everything a report shows, once ---------------------------------------------------


@dataclass
class Analysis:
    target: float
    target_why: str
    # rates, by_batch, by_optimizer, time_to_target and verdict: on the shared seeds
    rates: pd.DataFrame | None  # block_rates; None where no timings were recorded
    by_batch: pd.DataFrame | None  # throughput per data set x batch size x series
    by_optimizer: pd.DataFrame  # throughput per series x data set x optimizer x batch size
    means: pd.DataFrame  # config_means of every spec run, all seeds (lr sensitivity)
    time_to_target: pd.DataFrame
    verdict: pd.DataFrame
    stable_lrs: pd.DataFrame
    convergence_lrs: dict[tuple[str, str, int], float]
    problems: pd.DataFrame
    disagreements: pd.DataFrame  # cells where backends' accuracies part (with the reason)
    peak: tuple[str, float] | None = None  # the GPU and its float32 peak TFLOP/s, if known
    spec: pd.DataFrame | None = None  # the spec runs every framework comparison uses
    optimizers: OptimizerAnalysis | None = None  # the optimizer verdict
    stock_runs: int = 0  # runs of the stock variant (left out of the framework comparison)
    seeds: list[float] = field(default_factory=list)  # the seeds the verdict compares on
    seeds_left_out: pd.DataFrame | None = None  # seeds_left_out of the spec runs


def analyse(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    timings: pd.DataFrame | None,
    target: float | None = None,
    gpus: list[str] | None = None,
    targets: dict[str, float] | None = None,
) -> Analysis:
    """Every statistic of a results folder's tables, computed once (``target``: the test
    accuracy to reach, None to choose it with :func:`choose_target`; ``gpus``: the GPU names
    of environment.json, for the fraction of peak; ``targets``: the validation accuracy to
    reach per data set for the optimizer verdict, from the sweep's settings, see
    :func:`benchmarks.report.optimizers.analyse_optimizers`).

    The framework comparison (throughput, verdict, accuracies, disagreements) uses the spec
    runs, the verdict and the throughput those on the seeds every series ran
    (:func:`shared_seeds`); the problems every run."""
    # here: the optimizer analysis builds on this module's functions
    from benchmarks.report.optimizers import analyse_optimizers

    runs, curves = with_defaults(runs), curves_with_defaults(curves)
    spec = spec_runs(runs)
    compared = on_shared_seeds(spec)
    tgt, why = choose_target(compared, curves, target)
    rates = block_rates(compared, timings) if timings is not None else None
    by_batch = throughput(rates, ["dataset", "batch_size", *GROUP]) if rates is not None else None
    opt_by = [*GROUP, "dataset", "optimizer", "batch_size"]
    by_opt = (
        throughput(rates, opt_by)
        if rates is not None and len(rates)
        else pd.DataFrame(columns=[*opt_by, *THROUGHPUT_COLUMNS])
    )
    means = config_means(spec)
    ttt = time_to_target(compared, curves, tgt)
    on_gpu = "device" in runs and (runs["device"] == "gpu").any()
    peak = peak_of(gpus or []) if on_gpu else None
    return Analysis(
        tgt,
        why,
        rates,
        by_batch,
        by_opt,
        means,
        ttt,
        verdict(compared, by_batch, config_means(compared), ttt, peak[1] if peak else None),
        stable_lrs(means),
        convergence_lrs(means),
        problems(runs),
        disagreements(spec),
        peak,
        spec,
        analyse_optimizers(runs, curves, targets),
        int((runs["variant"] == STOCK).sum()),
        shared_seeds(spec),
        seeds_left_out(spec),
    )

"""The framework comparison: throughput, time to target, accuracy means, the verdict and
its best paths, cold starts, stable learning rates, and the cells where backends' accuracies
part. DataFrames in, DataFrames out, no formatting.

Throughput follows the runner's timing protocol: every timed block of a run (a diverged
run's up to the block that diverged) gives one throughput (steps x batch_size / seconds);
full blocks only, as ``samples_per_s`` does (all timed blocks where a run has none). A
group's figure is the median of its pooled blocks with a 95% two-stage bootstrap interval
(runs, then blocks within runs); the primitives are :mod:`benchmarks.core.stats`'."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.core import stats
from benchmarks.core.flops import tflops
from benchmarks.record.schema import FINISHED
from benchmarks.report.runs import (
    BY_TEST,
    BY_VALIDATION,
    CONFIG,
    DEFAULT_TARGET,
    DIVERGED,
    FROM_BLOCKS,
    FROM_RUNS,
    GROUP,
    MEANS_COLUMNS,
    OK,
    THROUGHPUT_COLUMNS,
    VERDICT_COLUMNS,
    counts,
    spec_runs,
    with_defaults,
    workload,
)


def block_rates(runs: pd.DataFrame, timings: pd.DataFrame | None) -> pd.DataFrame:
    """One row per timed block (see :func:`benchmarks.core.stats.block_rates`) with its config."""
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

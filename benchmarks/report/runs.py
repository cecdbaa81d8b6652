"""The run tables read one way everywhere: their column names and defaults (older folders
lack some columns; :func:`with_defaults` fills them in), the spec runs every framework
comparison uses and the seeds they share, status counts, the series, and the runs that
went wrong (:func:`problems`). Statuses are :mod:`benchmarks.record.schema`'s."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.record.schema import FAILED, FINISHED, RUN_COLUMN_DEFAULTS, Status

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

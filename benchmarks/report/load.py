"""A results folder, read through :class:`benchmarks.record.store.Store` for the report: what is
missing, unreadable or rebuilt from parts/ becomes a note on the page, not an exception
(runs that neither the table nor parts/ can supply are a StoreError: no page of "0 runs")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.record.schema import Status
from benchmarks.record.store import Store
from benchmarks.report.analysis import GROUP, RUN_DEFAULTS, curves_with_defaults

TEXT = ("run_id", *GROUP, "dataset", "optimizer", "variant", "schedule", "status", "error")
NUMERIC = (
    "lr",
    "batch_size",
    "seed",
    "diverged_step",
    "compile_s",
    "samples_per_s",
    "steps",
    "train_wall_s",
    "final_test_loss",
    "final_test_acc",
    "final_val_loss",
    "final_val_acc",
    "block_steps",
    "num_params",
)


@dataclass
class Results:
    path: Path
    env: dict[str, Any]
    runs: pd.DataFrame  # every column of TEXT and NUMERIC present, even with no runs
    curves: pd.DataFrame | None  # with val_loss and val_acc (NaN where not recorded)
    timings: pd.DataFrame | None
    parity: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)  # what is missing or unreadable

    @property
    def gpu_names(self) -> list[str]:
        """The GPUs environment.json names (for the fraction of peak)."""
        gpus = self.env.get("gpus") or []
        return [str(g.get("name", "")) for g in gpus if isinstance(g, dict)]

    @property
    def targets(self) -> dict[str, float]:
        """The sweep's validation-accuracy targets per data set (settings ``targets``)."""
        t = ((self.env.get("sweep") or {}).get("settings") or {}).get("targets") or {}
        return {str(k): float(v) for k, v in t.items()} if isinstance(t, dict) else {}


def load(path: Path | str) -> Results:
    """Open a results folder (StoreError if it is not one, or if neither runs.parquet nor
    parts/ holds its runs); missing or damaged tables become notes."""
    store = Store.open(Path(path))
    notes: list[str] = []
    try:
        env = store.environment()
        if not isinstance(env, dict):
            raise ValueError(
                f"environment.json is unreadable (expected an object, found {type(env).__name__})"
            )
    except ValueError as exc:  # StoreError too
        env = {}
        notes.append(f"{exc}; the environment is not shown.")
    runs = store.runs()
    curves, timings = store.table("curves"), store.table("timings")
    notes += store.notes
    if runs.empty:
        notes.append("runs.parquet holds no runs: the sweep recorded nothing.")
    try:
        parity = store.parity()
    except ValueError as exc:
        notes.append(f"{exc}.")
        parity = None
    dataset = ((env.get("sweep") or {}).get("settings") or {}).get("dataset") or ""
    runs = _normalise(runs, str(dataset))
    return Results(store.path, env, runs, curves_with_defaults(curves), timings, parity, notes)


def _normalise(runs: pd.DataFrame, dataset: str = "") -> pd.DataFrame:
    """Every TEXT and NUMERIC column, of its type; columns an older folder lacks at
    :data:`~benchmarks.report.analysis.RUN_DEFAULTS` (its data set: the sweep's)."""
    runs = runs.copy()
    defaults = {**RUN_DEFAULTS, "dataset": dataset, "status": Status.ERROR.value}
    for col in TEXT:
        if col not in runs:
            runs[col] = defaults.get(col, "")
        runs[col] = runs[col].fillna("").astype(str)
        if col in ("variant", "schedule"):
            runs[col] = runs[col].replace("", defaults[col])
    for col in NUMERIC:
        values = pd.to_numeric(runs[col], errors="coerce") if col in runs else np.nan
        if isinstance(values, pd.Series) and pd.api.types.is_extension_array_dtype(values):
            values = values.astype("float64")  # nullable Int64: a missing value must be NaN
        runs[col] = values
    return runs

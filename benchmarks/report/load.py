"""A results folder, read through :class:`benchmarks.store.Store` for the report: what is
missing, unreadable or rebuilt from parts/ becomes a note on the page, not an exception
(runs that neither the table nor parts/ can supply are a StoreError: no page of "0 runs")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report.analysis import GROUP
from benchmarks.schema import Status
from benchmarks.store import Store

TEXT = ("run_id", *GROUP, "optimizer", "status", "error")
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
    "block_steps",
    "num_params",
)


@dataclass
class Results:
    path: Path
    env: dict[str, Any]
    runs: pd.DataFrame  # every column of TEXT and NUMERIC present, even with no runs
    curves: pd.DataFrame | None
    timings: pd.DataFrame | None
    parity: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)  # what is missing or unreadable

    @property
    def gpu_names(self) -> list[str]:
        """The GPUs environment.json names (for the fraction of peak)."""
        gpus = self.env.get("gpus") or []
        return [str(g.get("name", "")) for g in gpus if isinstance(g, dict)]


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
    return Results(store.path, env, _normalise(runs), curves, timings, parity, notes)


def _normalise(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    for col in TEXT:
        if col not in runs:
            runs[col] = Status.ERROR.value if col == "status" else ""
        runs[col] = runs[col].fillna("").astype(str)
    for col in NUMERIC:
        values = pd.to_numeric(runs[col], errors="coerce") if col in runs else np.nan
        if isinstance(values, pd.Series) and pd.api.types.is_extension_array_dtype(values):
            values = values.astype("float64")  # nullable Int64: a missing value must be NaN
        runs[col] = values
    return runs

"""A results folder, read through :class:`benchmarks.store.Store` for the report: what is
missing or unreadable becomes a note on the page, not an exception."""

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


def load(path: Path | str) -> Results:
    """Open a results folder (StoreError if it is not one); missing tables become notes."""
    store = Store.open(Path(path))
    notes: list[str] = []
    try:
        env = store.environment()
        if not isinstance(env, dict):
            raise ValueError(f"expected an object, found {type(env).__name__}")
    except (OSError, ValueError) as exc:
        env = {}
        notes.append(f"environment.json is unreadable ({exc}); the environment is not shown.")
    tables = {name: _read_table(store, name, notes) for name in ("runs", "curves", "timings")}
    runs = tables["runs"] if tables["runs"] is not None else pd.DataFrame()
    if tables["runs"] is not None and runs.empty:
        notes.append("runs.parquet holds no runs: the sweep recorded nothing.")
    try:
        parity = store.parity()
    except ValueError as exc:
        notes.append(f"{exc}.")
        parity = None
    return Results(
        store.path, env, _normalise(runs), tables["curves"], tables["timings"], parity, notes
    )


def _read_table(store: Store, name: str, notes: list[str]) -> pd.DataFrame | None:
    try:
        df = store.table(name)
    except Exception as exc:  # noqa: BLE001 - a broken table is reported on the page
        notes.append(f"{name}.parquet is unreadable ({type(exc).__name__}: {exc}).")
        return None
    if df is None:
        notes.append(f"{name}.parquet is missing.")
    return df


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

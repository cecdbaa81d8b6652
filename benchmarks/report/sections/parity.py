"""Parity: every backend against the float64 NumPy reference, from parity.json.

Rows whose ``ok`` is None are informational variants (e.g. a framework's stock optimizer
beside the corrected one): shown, not checked against the tolerance."""

from __future__ import annotations

import pandas as pd

from benchmarks.report import format as fmt
from benchmarks.report.analysis import Analysis
from benchmarks.report.document import Bold, Code, Section, para, table
from benchmarks.report.load import Results

TITLE = "Parity with the float64 NumPy reference"
COLUMNS = ("variant", "error", "ok", "max_abs_loss_diff", "max_abs_weight_diff", "compiler")
RESULT = {True: "ok", False: "FAIL"}  # anything else: an informational row
INFO = "reference only"


def build(res: Results, an: Analysis) -> Section:
    if res.parity is None:
        return Section(
            "parity",
            TITLE,
            [
                para(
                    "Parity was not recorded for this sweep. Record it with ",
                    Code("optbench parity"),
                    ", or run the sweep with ",
                    Code("--parity"),
                    " (writes parity.json into the results folder).",
                    cls="muted",
                )
            ],
        )
    cfg = res.parity.get("config") or {}
    rows = pd.DataFrame(res.parity.get("rows") or [])
    head = para(
        "Every backend against the float64 NumPy reference from identical weights and batches: "
        + ", ".join(f"{k} {v}" for k, v in cfg.items())
        + ".",
        cls="note",
    )
    if rows.empty:
        return Section("parity", TITLE, [head, para("parity.json holds no rows.")])
    for col in COLUMNS:
        if col not in rows:
            rows[col] = None
    checked = rows["ok"].map(lambda ok: ok in RESULT)
    shown = pd.DataFrame(
        {
            "backend": rows["backend"],
            "optimizer": rows["optimizer"],
            "mode": rows["mode"],
            "compiler": rows["compiler"].fillna(""),
            "variant": rows["variant"],
            "max |Δ loss|": rows["max_abs_loss_diff"].map(lambda v: fmt.num(v, ".2e")),
            "max |Δ weight|": rows["max_abs_weight_diff"].map(lambda v: fmt.num(v, ".2e")),
            "result": rows["ok"].map(lambda ok: RESULT.get(ok, INFO)),
            "error": rows["error"].fillna(""),
        }
    )
    if not shown["compiler"].astype(bool).any():  # parity.json from before compiler paths
        shown = shown.drop(columns="compiler")
    failed = int((rows["ok"] == False).sum())  # noqa: E712 - ok is True/False/None
    summary = (
        f"{failed} row(s) outside the tolerance."
        if failed
        else "Every checked row is within the tolerance."
    )
    variants = list(dict.fromkeys(v for v in rows.loc[~checked, "variant"] if v))
    info = ""
    if variants:
        info = " " + ", ".join(f'"{v}"' for v in variants) + " rows are shown for comparison only."
    elif not checked.all():
        info = f' Rows marked "{INFO}" are shown for comparison only.'
    return Section(
        "parity",
        TITLE,
        [head, para(Bold(summary), info), table(shown, numeric=("max |Δ loss|", "max |Δ weight|"))],
    )

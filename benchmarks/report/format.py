"""How numbers, durations and series are written in the report's tables and sentences."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from benchmarks.report.analysis import GROUP


def num(v: Any, spec: str = ",.0f") -> str:
    """A number in ``spec``; "-" where it is missing."""
    return "-" if v is None or (isinstance(v, float) and not v == v) else format(v, spec)


def sig(v: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits, trailing zeros kept so that a column's
    numbers read alike: "0.0100", "0.00955", "45.6", "1,230"; "-" where it is missing."""
    if v is None or not v == v:
        return "-"
    v = float(f"{float(v):.{digits - 1}e}")  # rounded first: 0.009996 is "0.0100"
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = digits - 1 - math.floor(math.log10(abs(v)))
    return f"{v:,.{max(decimals, 0)}f}"


def secs(v: Any) -> str:
    """A duration: "12.5 ms" below a second, "3.69 s" above."""
    if v is None or not v == v:
        return "-"
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def cfg(opt: str, lr: Any) -> str:
    """An optimizer configuration: "adam 0.001"; "" where there is none."""
    return f"{opt} {lr:g}" if opt and lr == lr else ""


def interval(lo: Any, hi: Any) -> str:
    return f"{num(lo)} – {num(hi)}"


def drop_constant(
    df: pd.DataFrame, cols: tuple[str, ...] = ("dataset", "mode", "compiler", "device")
) -> pd.DataFrame:
    """Drop dataset/mode/compiler/device columns where every row has the same value (the
    page says them once)."""
    return df.drop(columns=[c for c in cols if c in df and len(df) and df[c].nunique() == 1])


def labeller(df: pd.DataFrame) -> Callable[[Mapping[str, Any]], str]:
    """A function naming a series (a row with backend, mode, compiler, device): the backend,
    then whichever of mode, compiler and device vary in ``df``, e.g. "name (eager, gpu)"
    (a compiler named like its mode is said once)."""
    varying = [c for c in ("mode", "compiler", "device") if c in df and df[c].nunique() > 1]

    def label(r: Mapping[str, Any]) -> str:
        parts = [str(r[c]) for c in varying if r.get(c, "") != ""]
        if "mode" in varying and "compiler" in varying and r["compiler"] == r["mode"]:
            parts.remove(str(r["compiler"]))
        return f"{r['backend']} ({', '.join(parts)})" if parts else str(r["backend"])

    return label


def path_label(r: Mapping[str, Any]) -> str:
    """A series as "backend/mode/compiler/device"."""
    return "/".join(str(r[c]) for c in GROUP)

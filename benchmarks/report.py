"""The report of one results folder: report.html, report.md and summary.csv, written into it.

``write_report(path)`` reads the store (``benchmarks.store``) and answers one question:
which framework trains this MLP fastest on this machine, and do the optimizers behave the
same? The HTML page is self-contained (inline CSS, figures as PNG data URIs, no script, no
external reference); the Markdown file holds the same tables; summary.csv the verdict table.

Throughput follows the runner's timing protocol: every timed block of a run (a diverged
run's up to the block that diverged) gives one
throughput (steps x batch_size / seconds); full blocks only, as ``samples_per_s`` does
(all timed blocks where a run has none). A group's figure is the median of its pooled
blocks with a 95% two-stage bootstrap interval (runs, then blocks within runs).
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import plots, stats
from benchmarks.store import FAILED, Store, StoreError

QUESTION = "Which framework trains this MLP fastest on this machine, and do the optimizers behave the same?"
DEFAULT_TARGET = 0.90
GROUP = ["backend", "mode", "device"]
CONFIG = ["optimizer", "lr", "batch_size"]
NOT_FINISHED = (*FAILED, "skipped")
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


class ReportError(StoreError):
    """The report cannot be written (e.g. the folder is read-only); a message, not a traceback."""


@dataclass
class Results:
    path: Path
    env: dict[str, Any]
    runs: pd.DataFrame
    curves: pd.DataFrame | None
    timings: pd.DataFrame | None
    parity: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)  # what is missing or unreadable


@dataclass
class Section:
    id: str
    title: str
    html: str
    md: str


# --- loading ---------------------------------------------------------------------------


def load(path: Path) -> Results:
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
    return Results(
        store.path,
        env,
        _normalise_runs(runs),
        tables["curves"],
        tables["timings"],
        _read_parity(store.path, notes),
        notes,
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


def _read_parity(path: Path, notes: list[str]) -> dict[str, Any] | None:
    f = path / "parity.json"
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
        if not isinstance(data.get("rows"), list):
            raise ValueError("no 'rows' list")
        return data
    except (OSError, ValueError, AttributeError) as exc:
        notes.append(f"parity.json is unreadable ({exc}).")
        return None


def _normalise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    for col in ("run_id", *GROUP, "optimizer", "status", "error"):
        if col not in runs:
            runs[col] = "" if col != "status" else "error"
        runs[col] = runs[col].fillna("").astype(str)
    for col in NUMERIC:
        runs[col] = pd.to_numeric(runs[col], errors="coerce") if col in runs else np.nan
    return runs


# --- throughput ------------------------------------------------------------------------


def block_rates(res: Results) -> pd.DataFrame:
    """One row per timed block (see :func:`benchmarks.stats.block_rates`) with its config."""
    return stats.block_rates(res.runs, res.timings, [*GROUP, *CONFIG, "seed"])


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
    return pd.DataFrame(
        rows, columns=[*by, "samples_per_s", "ci_low", "ci_high", "blocks", "timed_runs"]
    )


# --- accuracy and time to target -------------------------------------------------------


def choose_target(res: Results, target: float | None = None) -> tuple[float, str]:
    """The test accuracy to reach: 0.90 unless no run reaches it (then 90% of the best, rounded down)."""
    if target is not None:
        return target, f"set by the caller: {target:.2f}"
    best = _evaluated(res)["test_acc"].max() if res.curves is not None else math.nan
    if not best == best or best >= DEFAULT_TARGET:
        return DEFAULT_TARGET, f"a fixed {DEFAULT_TARGET:.2f}"
    chosen = math.floor(0.9 * best * 20) / 20
    return (
        chosen,
        f"{chosen:.2f}: no run reaches {DEFAULT_TARGET:.2f} (best {best:.3f}), so 90% of the best, rounded down to 0.05",
    )


def _evaluated(res: Results) -> pd.DataFrame:
    """Curve rows with a test evaluation, of ok runs, with the run's config."""
    if res.curves is None or res.curves.empty or res.runs.empty:
        return pd.DataFrame(
            columns=[
                "run_id",
                "step",
                "epoch",
                "wall_s",
                "test_loss",
                "test_acc",
                *GROUP,
                *CONFIG,
                "seed",
            ]
        )
    ok = res.runs[res.runs["status"] == "ok"][["run_id", *GROUP, *CONFIG, "seed"]]
    c = res.curves.dropna(subset=["test_acc"]).merge(ok, on="run_id")
    return c


def time_to_target(res: Results, target: float) -> pd.DataFrame:
    """Per (group, config): the median over seeds of the training wall-clock and steps at the
    first evaluation with test accuracy >= target (NaN unless every ok seed gets there)."""
    ev = _evaluated(res)
    cols = [*GROUP, *CONFIG, "time_s", "step"]
    if ev.empty:
        return pd.DataFrame(columns=cols)
    ev = ev.sort_values(["run_id", "step"])
    first = ev[ev["test_acc"] >= target].groupby("run_id").first()[["wall_s", "step"]]
    ok = res.runs[res.runs["status"] == "ok"].set_index("run_id")[[*GROUP, *CONFIG, "compile_s"]]
    per_run = ok.join(first, how="left")
    # after the first step: its compile time depends on each framework's in-process caches
    # (warm after a worker's first run in torch, per learning rate in jax), so it is shown apart
    per_run["wall_s"] = per_run["wall_s"] - per_run["compile_s"].fillna(0)
    agg = per_run.groupby([*GROUP, *CONFIG]).agg(
        time_s=("wall_s", lambda s: s.median() if s.notna().all() else math.nan),
        step=("step", lambda s: s.median() if s.notna().all() else math.nan),
    )
    return agg.reset_index()[cols]


def config_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (group, config): mean final test accuracy/loss over ok seeds, and status counts."""
    rows = []
    for key, df in runs.groupby([*GROUP, *CONFIG], sort=True):
        ok = df[df["status"] == "ok"]
        rows.append(
            {
                **dict(zip([*GROUP, *CONFIG], key)),
                "runs": len(df),
                "ok": len(ok),
                "diverged": int((df["status"] == "diverged").sum()),
                "failed": int(df["status"].isin(NOT_FINISHED).sum()),
                "acc": ok["final_test_acc"].mean() if len(ok) else math.nan,
                "loss": ok["final_test_loss"].mean() if len(ok) else math.nan,
                "diverged_steps": ",".join(f"{s:g}" for s in df["diverged_step"].dropna()),
            }
        )
    return pd.DataFrame(rows)


# --- the verdict -----------------------------------------------------------------------


def verdict(res: Results, target: float) -> pd.DataFrame:
    """The main table: one row per batch size x backend x mode x device."""
    runs = res.runs
    if runs.empty:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    by = ["batch_size", *GROUP]
    tp = throughput(block_rates(res), by).set_index(by) if res.timings is not None else None
    means = config_means(runs)
    ttt = time_to_target(res, target)
    rows = []
    for key, df in runs.groupby(by, sort=True):
        row = dict(zip(by, key))
        row.update(_counts(df))
        row.update(_speed(df, tp, key))
        ok = df[df["status"].isin(["ok", "diverged"])]
        row["compile_s"] = ok["compile_s"].median() if len(ok) else math.nan
        row.update(_best(means, row, "acc", "best", ascending=False))
        row.update(_best(ttt, row, "time_s", "target", ascending=True, extra="step"))
        rows.append(row)
    out = pd.DataFrame(rows)
    fastest = out.groupby("batch_size")["samples_per_s"].transform("max")
    out["relative"] = out["samples_per_s"] / fastest
    out = out.sort_values(
        ["batch_size", "samples_per_s"], ascending=[True, False], na_position="last"
    )
    return out[VERDICT_COLUMNS].reset_index(drop=True)


VERDICT_COLUMNS = [
    "batch_size",
    *GROUP,
    "samples_per_s",
    "ci_low",
    "ci_high",
    "blocks",
    "throughput_source",
    "relative",
    "compile_s",
    "best_test_acc",
    "best_optimizer",
    "best_lr",
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


def _counts(df: pd.DataFrame) -> dict[str, int]:
    st = df["status"]
    return {
        "runs": len(df),
        "ok": int((st == "ok").sum()),
        "diverged": int((st == "diverged").sum()),
        "failed": int(st.isin(FAILED).sum()),
        "skipped": int((st == "skipped").sum()),
    }


def _speed(df: pd.DataFrame, tp: pd.DataFrame | None, key: tuple) -> dict[str, Any]:
    if tp is not None and key in tp.index:
        r = tp.loc[key]
        return {
            "samples_per_s": r["samples_per_s"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "blocks": int(r["blocks"]),
            "throughput_source": "timed blocks",
        }
    ok = df.loc[df["status"] == "ok", "samples_per_s"].dropna()
    if tp is None and len(ok):  # no timings.parquet: the runs' own medians, no interval
        return {
            "samples_per_s": ok.median(),
            "ci_low": math.nan,
            "ci_high": math.nan,
            "blocks": 0,
            "throughput_source": "runs.samples_per_s",
        }
    return {
        "samples_per_s": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "blocks": 0,
        "throughput_source": "",
    }


def _best(
    table: pd.DataFrame,
    row: dict[str, Any],
    col: str,
    prefix: str,
    ascending: bool,
    extra: str | None = None,
) -> dict[str, Any]:
    name = {"best": "best_test_acc", "target": "target_time_s"}[prefix]
    out = {name: math.nan, f"{prefix}_optimizer": "", f"{prefix}_lr": math.nan}
    if extra:
        out["target_steps"] = math.nan
    if table.empty:
        return out
    sel = table[
        (table["batch_size"] == row["batch_size"])
        & (table[GROUP].apply(tuple, axis=1) == tuple(row[g] for g in GROUP))
    ].dropna(subset=[col])
    if sel.empty:
        return out
    best = sel.sort_values([col, "lr"], ascending=[ascending, True]).iloc[0]
    out.update(
        {name: best[col], f"{prefix}_optimizer": best["optimizer"], f"{prefix}_lr": best["lr"]}
    )
    if extra:
        out["target_steps"] = best[extra]
    return out


def headline(v: pd.DataFrame) -> str:
    """One sentence: the fastest per batch size and the geometric-mean relative speed."""
    v = v.dropna(subset=["samples_per_s"])
    if v.empty:
        return "No run produced a throughput figure, so there is no speed verdict."
    label = _labeller(v)
    winners = [
        f"batch {bs}: <b>{label(r)}</b>"
        for bs, r in v.sort_values("samples_per_s", ascending=False)
        .groupby("batch_size", sort=True)
        .head(1)
        .sort_values("batch_size")
        .set_index("batch_size")
        .iterrows()
    ]
    geo = (
        v.groupby(GROUP)["relative"]
        .apply(lambda s: float(np.exp(np.log(s).mean())))
        .sort_values(ascending=False)
    )
    ranking = ", ".join(f"{label(dict(zip(GROUP, k)))} {g:.2f}" for k, g in geo.items())
    return (
        f"Fastest at {'; '.join(winners)}. Speed relative to the fastest, geometric mean over "
        f"batch sizes: {ranking}."
    )


def _labeller(df: pd.DataFrame):
    plain = df[["mode", "device"]].drop_duplicates().shape[0] <= 1

    def label(r) -> str:
        return str(r["backend"]) if plain else f"{r['backend']} ({r['mode']}, {r['device']})"

    return label


# --- learning rates --------------------------------------------------------------------


def stable_lrs(runs: pd.DataFrame) -> pd.DataFrame:
    """Largest learning rate whose runs all finished ok, per group x optimizer x batch size."""
    means = config_means(runs)
    if means.empty:
        return pd.DataFrame()
    bss = sorted(means["batch_size"].dropna().unique())
    rows = []
    for key, df in means.groupby([*GROUP, "optimizer"], sort=True):
        row = dict(zip([*GROUP, "optimizer"], key))
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


def convergence_lrs(runs: pd.DataFrame) -> dict[tuple[str, int], float]:
    """Per (optimizer, batch size): the lr with the best median (over backends) final accuracy,
    preferring lrs at which no backend diverged; ties go to the smaller lr."""
    means = config_means(runs)
    out: dict[tuple[str, int], float] = {}
    if means.empty:
        return out
    for (opt, bs), df in means.groupby(["optimizer", "batch_size"], sort=True):
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
        out[(opt, int(bs))] = float(pick.iloc[0]["lr"])
    return out


def problems(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run that did not finish ok: its configuration and what happened."""
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame()
    msg = np.where(
        bad["status"] == "diverged",
        "loss blew up at step " + bad["diverged_step"].map(lambda s: f"{s:g}" if s == s else "?"),
        bad["error"],
    )
    cols = [
        c
        for c in ["backend", "mode", "device", "optimizer", "lr", "batch_size", "seed", "status"]
        if c in bad
    ]
    return bad[cols].assign(message=msg).sort_values(["status", *cols[:-1]]).reset_index(drop=True)


# --- figures ---------------------------------------------------------------------------

Figure = tuple[str, str]  # (caption, data URI)


def _keys(df: pd.DataFrame) -> list[plots.Key]:
    return [tuple(k) for k in df[GROUP].drop_duplicates().itertuples(index=False)]


def _grid_cells(runs: pd.DataFrame) -> list[tuple[str, int]]:
    """(optimizer, batch size) panels: a row per optimizer, a column per batch size."""
    opts = list(dict.fromkeys(runs["optimizer"]))  # the sweep's order
    bss = sorted(int(b) for b in runs["batch_size"].dropna().unique())
    return [(o, b) for o in opts for b in bss]


def _seed_band(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean over seeds per step, with the min-max spread as lo/hi."""
    g = df.dropna(subset=[y]).groupby("step")
    return pd.DataFrame(
        {"x": g[x].mean(), "y": g[y].mean(), "lo": g[y].min(), "hi": g[y].max()}
    ).reset_index(drop=True)


CONVERGENCE = (  # x, y, x label, y label, log x, log y, caption
    (
        "step",
        "train_loss",
        "step",
        "training loss (log scale)",
        False,
        True,
        "Training loss vs step",
    ),
    (
        "wall_s",
        "train_loss",
        "training wall-clock (s, log scale)",
        "training loss (log scale)",
        True,
        True,
        "Training loss vs training wall-clock (log scale: backends differ ten-fold; the first point is the end of the "
        "first step, which includes compilation; evaluation time is excluded)",
    ),
    ("epoch", "test_acc", "epoch", "test accuracy", False, False, "Test accuracy vs epoch"),
)


def convergence_figures(
    res: Results, style: dict[plots.Key, plots.Style]
) -> tuple[list[Figure], dict]:
    lrs = convergence_lrs(res.runs)
    if res.curves is None or res.curves.empty or not lrs:
        return [], lrs
    live = res.runs[res.runs["status"].isin(["ok", "diverged"])][
        ["run_id", *GROUP, *CONFIG, "seed"]
    ]
    c = res.curves.merge(live, on="run_id")
    cells = _grid_cells(res.runs)
    figures = []
    for x, y, xlabel, ylabel, logx, logy, caption in CONVERGENCE:
        panels = []
        for opt, bs in cells:
            lr = lrs.get((opt, bs))
            sub = c[(c["optimizer"] == opt) & (c["batch_size"] == bs) & (c["lr"] == lr)]
            lines = {k: _seed_band(g, x, y) for k, g in sub.groupby(GROUP)}
            lines = {k: v for k, v in lines.items() if len(v)}
            title = f"{opt}, batch {bs}" + (f", lr {lr:g}" if lr is not None else "")
            panels.append(plots.Panel(title, lines, note="" if lines else "no ok run"))
        fig = plots.line_grid(
            panels, _ncols(cells), xlabel, ylabel, style, logx=logx, logy=logy, nest=not logx
        )
        figures.append((caption, plots.to_data_uri(fig)))
    return figures, lrs


def _ncols(cells: list[tuple[str, int]]) -> int:
    return max(1, len({b for _, b in cells}))


def lr_figures(res: Results, style: dict[plots.Key, plots.Style]) -> list[Figure]:
    means = config_means(res.runs)
    if means.empty or means["ok"].sum() == 0:
        return []
    cells = _grid_cells(res.runs)
    figures = []
    for col, ylabel, caption in (
        ("acc", "final test accuracy", "Final test accuracy vs learning rate"),
        ("loss", "final test loss (cross-entropy)", "Final test loss vs learning rate"),
    ):
        panels = []
        for opt, bs in cells:
            sub = means[(means["optimizer"] == opt) & (means["batch_size"] == bs)]
            lines, marks = {}, {}
            for k, g in sub.groupby(GROUP):
                pts = g[g["ok"] > 0]
                lines[k] = pd.DataFrame({"x": pts["lr"], "y": pts[col]}) if len(pts) else None
                marks[k] = list(g.loc[g["diverged"] > 0, "lr"])
            lrs = sorted(means.loc[means["optimizer"] == opt, "lr"].unique())
            panels.append(
                plots.Panel(
                    f"{opt}, batch {bs}",
                    {k: v for k, v in lines.items() if v is not None},
                    {k: v for k, v in marks.items() if v},
                    xticks=lrs,
                )
            )
        fig = plots.line_grid(
            panels,
            _ncols(cells),
            "learning rate (log scale)",
            ylabel,
            style,
            logx=True,
            mark_label="diverged (drawn at the top)",
        )
        figures.append((caption, plots.to_data_uri(fig)))
    return figures


def heatmap_figures(res: Results) -> list[Figure]:
    means = config_means(res.runs)
    if means.empty:
        return []
    label = _labeller(means)
    means = means.assign(text=[_cell_text(r) for r in means.itertuples()])
    figures = []
    for opt, df in means.groupby("optimizer", sort=False):
        if df["ok"].sum() + df["diverged"].sum() == 0:
            continue
        panels = [(label(dict(zip(GROUP, k))), k) for k in sorted(_keys(df))]
        fig = plots.heatmap_grid(df, panels)
        figures.append(
            (f"{opt}: final test accuracy per learning rate x batch size", plots.to_data_uri(fig))
        )
    return figures


def _cell_text(r) -> str:
    if r.diverged:
        return "div" if r.ok == 0 else f"div {r.diverged}/{r.runs}"
    if r.ok == 0:
        return "fail"
    return f"{r.acc:.3f}"


def throughput_figure(res: Results, style: dict[plots.Key, plots.Style]) -> list[Figure]:
    rates = block_rates(res)
    if rates.empty:
        return []
    by = [*GROUP, "batch_size"]
    subsets = [("all optimizers pooled", rates)] + [
        (f"{o} only", g) for o, g in rates.groupby("optimizer", sort=False)
    ]
    panels = []
    for title, df in subsets:
        tp = throughput(df, by)
        lines = {
            k: pd.DataFrame(
                {
                    "x": g["batch_size"],
                    "y": g["samples_per_s"],
                    "lo": g["ci_low"],
                    "hi": g["ci_high"],
                }
            )
            for k, g in tp.groupby(GROUP)
        }
        panels.append(plots.Panel(title, lines))
    bss = sorted(rates["batch_size"].unique())
    fig = plots.line_grid(
        panels,
        len(panels),
        "batch size (samples, log scale)",
        "samples/s (log scale)",
        style,
        spread="errorbar",
        logx=True,
        logy=True,
        xticks=bss,
        row_h=3.6,
        kilo_y=True,
    )
    return [
        (
            "Throughput vs batch size: median of timed blocks, bars = 95% bootstrap interval",
            plots.to_data_uri(fig),
        )
    ]


# --- formatting ------------------------------------------------------------------------


def _num(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None or (isinstance(v, float) and not v == v) else format(v, spec)


def _secs(v: Any) -> str:
    if v is None or not v == v:
        return "-"
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def _cfg(opt: str, lr: Any) -> str:
    return f"{opt} {lr:g}" if opt and lr == lr else ""


def verdict_display(v: pd.DataFrame, target: float, have_curves: bool = True) -> pd.DataFrame:
    """The verdict table as the page shows it; mode/device columns only where they vary."""
    rows = []
    for r in v.to_dict("records"):
        ci = f"{_num(r['ci_low'])} – {_num(r['ci_high'])}" if r["ci_low"] == r["ci_low"] else "-"
        reached = r["target_time_s"] == r["target_time_s"]
        rows.append(
            {
                "batch": int(r["batch_size"]),
                "backend": r["backend"],
                "mode": r["mode"],
                "device": r["device"],
                "median samples/s": _num(r["samples_per_s"]),
                "95% interval": ci,
                "× fastest": _num(r["relative"], ".2f"),
                "first step": _secs(r["compile_s"]),
                "best acc": _num(r["best_test_acc"], ".3f"),
                "best at": _cfg(r["best_optimizer"], r["best_lr"]),
                f"time to {target:.2f}": _secs(r["target_time_s"])
                if reached
                else "not reached"
                if have_curves
                else "-",
                "steps": _num(r["target_steps"], ".0f"),
                "reached with": _cfg(r["target_optimizer"], r["target_lr"]),
                "ok / div / fail": f"{r['ok']} / {r['diverged']} / {r['failed'] + r['skipped']}",
            }
        )
    return _drop_constant(pd.DataFrame(rows))


def _drop_constant(df: pd.DataFrame, cols: tuple[str, ...] = ("mode", "device")) -> pd.DataFrame:
    """Drop mode/device columns where every row has the same value (the page says them once)."""
    return df.drop(columns=[c for c in cols if c in df and len(df) and df[c].nunique() == 1])


NUMERIC_DISPLAY = {
    "batch",
    "median samples/s",
    "95% interval",
    "× fastest",
    "first step",
    "best acc",
    "steps",
    "ok / div / fail",
    "max |Δ loss|",
    "max |Δ weight|",
    "lr",
    "batch_size",
    "seed",
}
SMALL_DISPLAY = {"best at", "reached with", "95% interval"}


def _td_class(col: str) -> str:
    classes = [
        c
        for c, on in (
            ("num", col in NUMERIC_DISPLAY or col.startswith("time to")),
            ("small", col in SMALL_DISPLAY),
        )
        if on
    ]
    return f" class='{' '.join(classes)}'" if classes else ""


def html_table(df: pd.DataFrame, cls: str = "") -> str:
    if df is None or df.empty:
        return "<p class='muted'>(nothing to show)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        tds = "".join(
            f"<td{_td_class(c)}>{html.escape(_cell(v))}</td>" for c, v in zip(df.columns, row)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<div class='scroll'><table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def md_table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "(nothing to show)"
    esc = lambda v: _cell(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [
        "| " + " | ".join(esc(c) for c in df.columns) + " |",
        "|" + "|".join("---:" if "num" in _td_class(c) else "---" for c in df.columns) + "|",
    ]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not v == v):
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _para(text: str, cls: str = "") -> tuple[str, str]:
    """A paragraph as (html, md); ``text`` is HTML (values escaped by the caller)."""
    md = (
        text.replace("<b>", "**")
        .replace("</b>", "**")
        .replace("<code>", "`")
        .replace("</code>", "`")
    )
    md = html.unescape(re.sub(r"<[^>]+>", "", md))
    return (f"<p class='{cls}'>{text}</p>" if cls else f"<p>{text}</p>"), md


def _figure_html(figures: list[Figure]) -> str:
    return "".join(
        f"<figure><img src='{uri}' alt='{html.escape(cap)}'><figcaption>{html.escape(cap)}</figcaption></figure>"
        for cap, uri in figures
    )


def _section(id_: str, title: str, parts: list[tuple[str, str]]) -> Section:
    return Section(
        id_, title, "\n".join(h for h, _ in parts), "\n\n".join(m for _, m in parts if m)
    )


def _table_part(df: pd.DataFrame, cls: str = "") -> tuple[str, str]:
    return html_table(df, cls), md_table(df)


def _figs_part(figures: list[Figure], missing: str) -> tuple[str, str]:
    if not figures:
        return _para(html.escape(missing), "muted")
    return _figure_html(figures), "(" + "; ".join(
        c for c, _ in figures
    ) + ": figures in report.html)"


# --- sections --------------------------------------------------------------------------


def _kv(pairs: list[tuple[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(k, v) for k, v in pairs if v not in (None, "", [])], columns=["item", "value"]
    )


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, (list, tuple)) else str(values)


def _machine(env: dict[str, Any]) -> list[tuple[str, Any]]:
    gpus = env.get("gpus") or []
    gpu = (
        "; ".join(
            g.get("name", str(g)) + (f" ({g['memory']})" if g.get("memory") else "")
            if isinstance(g, dict)
            else str(g)
            for g in gpus
        )
        or "none"
    )
    git = env.get("git") or {}
    commit = (git.get("commit") or "unknown")[:12]
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)"}.get(git.get("dirty"), "")
    pkgs = env.get("packages") or {}
    versions = ", ".join(
        f"{k} {v}" for k, v in pkgs.items() if v and k not in ("pyarrow", "mlxtend", "scikit-learn")
    )
    cores = f"{env.get('cpu_cores_physical', '?')} physical / {env.get('cpu_cores_logical', '?')} logical"
    return [
        ("CPU", f"{env.get('cpu_model', '?')}, {cores} cores" if env else ""),
        ("GPU", gpu if env else ""),
        ("memory", f"{env['memory_gb']} GB" if env.get("memory_gb") else ""),
        ("threads per worker", env.get("threads_per_worker")),
        (
            "thread env vars",
            ", ".join(f"{k}={v}" for k, v in (env.get("env") or {}).items())
            or ("none set" if env else ""),
        ),
        ("python", env.get("python")),
        ("packages", versions),
        ("git commit", f"{commit}{dirty}" if git else ""),
        ("host / OS", " / ".join(str(env[k]) for k in ("host", "os") if env.get(k))),
        ("command", " ".join(env.get("command") or [])),
        ("captured", env.get("captured_at")),
    ]


def _sweep(env: dict[str, Any], runs: pd.DataFrame) -> list[tuple[str, Any]]:
    sweep = env.get("sweep") or {}
    st = sweep.get("settings") or {}

    def axis(key: str, col: str) -> str:
        return (
            _join(st[key])
            if st.get(key)
            else _join(sorted(runs[col].dropna().unique()))
            if col in runs
            else ""
        )

    timing = st.get("timing") or {}
    opts = "; ".join(
        f"{name} ({', '.join([o.get('kind', '?')] + [f'{k}={v}' for k, v in (o.get('hyper') or {}).items()])}) "
        f"lr {_join(o.get('learning_rates') or st.get('learning_rates') or [])}"
        for name, o in (st.get("optimizers") or {}).items()
    ) or axis("", "optimizer")
    length = (
        f"{st['epochs']} epochs"
        if st.get("epochs")
        else (f"{st['max_steps']} steps" if st.get("max_steps") else "")
    )
    return [
        ("sweep", f"{sweep.get('name', '?')}: {st.get('description', '')}" if sweep else ""),
        ("source", sweep.get("source")),
        ("dataset", st.get("dataset") or axis("", "dataset")),
        (
            "model",
            f"MLP, hidden {st.get('hidden')}, {st.get('init', '')} init, {st.get('dtype', '')}"
            if st
            else "",
        ),
        (
            "training",
            f"{length}; test evaluation every {st.get('eval_every')} steps and at each epoch end; "
            f"diverged = loss > {st.get('diverge_factor')}x its start or non-finite"
            if st
            else "",
        ),
        (
            "timing",
            f"first step timed alone (compile); {timing.get('warmup_steps')} warm-up steps; "
            f"timed blocks of {timing.get('block_steps')} steps, one device sync each"
            if timing
            else "",
        ),
        ("backends", axis("backends", "backend")),
        ("modes / devices", f"{axis('modes', 'mode')} / {axis('devices', 'device')}"),
        ("optimizers", opts),
        ("batch sizes", axis("batch_sizes", "batch_size")),
        ("seeds", axis("seeds", "seed")),
        ("runs", f"{sweep.get('runs', '?')} planned, {len(runs)} recorded"),
    ]


def _backends_as_run(runs: pd.DataFrame) -> pd.DataFrame:
    cols = [
        c
        for c in (
            "framework_version",
            "compiler",
            "threads",
            "threads_reported",
            "matmul_precision",
        )
        if c in runs
    ]
    ok = runs[runs["status"].isin(["ok", "diverged"])]
    if ok.empty or not cols:
        return pd.DataFrame()
    return ok.groupby(GROUP, sort=True)[cols].first().reset_index()


def environment_section(res: Results) -> Section:
    parts = []
    if not res.env:
        parts.append(
            _para(
                "environment.json is missing: the machine and versions were not recorded.", "warn"
            )
        )
    machine, sweep = _kv(_machine(res.env)), _kv(_sweep(res.env, res.runs))
    parts.append(
        (
            f"<div class='cols'><div><h3>Machine and software</h3>{html_table(machine, 'kv')}</div>"
            f"<div><h3>Sweep</h3>{html_table(sweep, 'kv')}</div></div>",
            f"### Machine and software\n\n{md_table(machine)}\n\n### Sweep\n\n{md_table(sweep)}",
        )
    )
    as_run = _backends_as_run(res.runs)
    if not as_run.empty:
        parts += [
            ("<h3>Backends as run (reported by each worker)</h3>", "### Backends as run"),
            _table_part(as_run),
        ]
    return _section("environment", "Environment and sweep", parts)


def _cold_starts(runs: pd.DataFrame) -> str:
    if "worker_run_index" not in runs or "compile_s" not in runs:
        return ""
    first = runs[
        (pd.to_numeric(runs["worker_run_index"], errors="coerce") == 1) & runs["compile_s"].notna()
    ]
    parts = [f"{_label_of(r)} {_secs(r['compile_s'])}" for _, r in first.iterrows()]
    return ", ".join(parts)


def _label_of(r) -> str:
    return "/".join(str(r[c]) for c in ("backend", "mode", "device"))


def verdict_section(res: Results, v: pd.DataFrame, target: float, target_why: str) -> Section:
    if res.runs.empty:
        return _section(
            "verdict",
            "Verdict",
            [_para("No runs were recorded, so there is nothing to compare.", "warn")],
        )
    notes = [
        "<b>One row per batch size</b>: throughput grows several-fold with the batch, so a single figure pooled "
        "over batch sizes would mostly measure the batch-size mix; backends are compared within a batch size.",
        "<b>Throughput</b>: each timed block gives steps x batch size / seconds (blocks of at least half the "
        "full size; diverged runs up to the block that diverged, so that every backend's pool holds the same "
        "configurations; the rule of the runner's samples_per_s; warm-up and the first step excluded), pooled "
        "over the group's runs "
        "(optimizers, learning rates and seeds); median with a 95% two-stage bootstrap interval "
        f"(resampling runs, then blocks within runs; {stats.N_BOOT} replicates).",
        f"<b>Target accuracy {target:.2f}</b> ({html.escape(target_why)}): time is training wall-clock "
        "after the first step (evaluation excluded) at the first evaluation reaching it, for the "
        "best optimizer/lr of that row (median over seeds; evaluations every few steps, so it is resolved to them).",
        "<b>Best acc</b>: final test accuracy of the best optimizer/lr (mean over seeds). "
        "<b>First step</b>: median time of the first training step (tracing, compilation, first "
        "allocations), shown apart from the time to target because it depends on each framework's "
        "in-process caches: torch reuses its compiled graph across runs, jax compiles once per "
        "learning rate, tensorflow traces each run anew. <b>ok / div / fail</b>: runs that finished, diverged, or failed (error, timeout, crashed or skipped); see Problems.",
    ]
    cold = _cold_starts(res.runs)
    if cold:
        notes.append(
            "<b>Cold start</b> (first step of each worker's first run: a compile with empty in-process "
            "caches; later runs reuse them, hence the small medians above): "
            + html.escape(cold)
            + "."
        )
    same = [f"{c} {res.runs[c].iloc[0]}" for c in ("mode", "device") if res.runs[c].nunique() == 1]
    if same:
        notes.append("Every run used " + html.escape(", ".join(same)) + ".")
    if (v["throughput_source"] == "runs.samples_per_s").any():
        notes.append(
            "timings.parquet is missing: samples/s is the median of the runs' own medians, without interval."
        )
    if res.curves is None:
        notes.append("curves.parquet is missing: no time or steps to the target accuracy.")
    parts = [
        _para(headline(v), "headline"),
        _table_part(verdict_display(v, target, res.curves is not None), "verdict"),
    ]
    parts += [_para(n, "note") for n in notes]
    return _section("verdict", "Verdict: speed and accuracy per batch size", parts)


def convergence_section(res: Results, style) -> Section:
    figures, lrs = convergence_figures(res, style) if not res.runs.empty else ([], {})
    why = (
        "curves.parquet is missing, so there are no curves."
        if res.curves is None
        else "No run finished, so there are no curves."
    )
    parts = []
    if figures:
        parts.append(
            _para(
                "Each panel uses one learning rate for all backends: the lr with the best median final test "
                "accuracy across backends among those where no backend diverged (named in the panel title). "
                "Lines are the mean over seeds; the shaded band is the min-max over seeds where there are "
                "several. Training loss is the mean minibatch loss of the block ending at that step. Where backends "
                "agree, their curves coincide; they are drawn as nested strokes of decreasing width so that each stays "
                "visible.",
                "note",
            )
        )
    parts.append(_figs_part(figures, why))
    return _section("convergence", "Convergence", parts)


def lr_section(res: Results, style) -> Section:
    parts = [
        _para(
            "Final test accuracy and loss against the learning rate, one line per backend (mean over seeds); "
            "an x at the top marks a learning rate where a run diverged. Identical lines mean the backends "
            'agree; the heatmaps show the same accuracies per learning rate x batch size ("div" = diverged).',
            "note",
        )
    ]
    parts.append(
        _figs_part(
            lr_figures(res, style) if not res.runs.empty else [],
            "No run finished: nothing to plot.",
        )
    )
    parts.append(_figs_part(heatmap_figures(res) if not res.runs.empty else [], ""))
    table = stable_lrs(res.runs) if not res.runs.empty else pd.DataFrame()
    parts += [
        (
            "<h3>Largest stable learning rate per batch size</h3>",
            "### Largest stable learning rate per batch size",
        ),
        _para(
            "Largest lr at which every run of the cell finished without diverging; "
            '"≥" means the largest lr tried was stable (the edge lies beyond the sweep), '
            '"none" that every lr tried diverged.',
            "note",
        ),
        _table_part(_drop_constant(table)),
    ]
    agreement = _agreement(table)
    if agreement:
        parts.append(_para(agreement))
    return _section("lr-sensitivity", "Learning-rate sensitivity", [p for p in parts if p[0]])


def _agreement(table: pd.DataFrame) -> str:
    if table.empty or len(table[GROUP].drop_duplicates()) < 2:
        return ""
    cols = [c for c in table.columns if c.startswith("batch ")]
    split = [
        f"{opt} at {c}"
        for opt, g in table.groupby("optimizer")
        for c in cols
        if g.loc[g[c] != "-", c].nunique() > 1
    ]
    if not split:
        return "All backends agree on the largest stable learning rate."
    return (
        "Backends disagree on the largest stable learning rate for: "
        + html.escape("; ".join(split))
        + "."
    )


def throughput_by_optimizer(res: Results) -> pd.DataFrame:
    """Median samples/s (95% interval) per group x optimizer, a column per batch size."""
    rates = block_rates(res)
    if rates.empty:
        return pd.DataFrame()
    tp = throughput(rates, [*GROUP, "optimizer", "batch_size"])
    tp["cell"] = [
        f"{_num(r.samples_per_s)} ({_num(r.ci_low)} – {_num(r.ci_high)})" for r in tp.itertuples()
    ]
    wide = tp.pivot(index=[*GROUP, "optimizer"], columns="batch_size", values="cell").fillna("-")
    wide.columns = [f"batch {int(c)}" for c in wide.columns]
    return _drop_constant(wide.reset_index())


def throughput_section(res: Results, style) -> Section:
    figures = throughput_figure(res, style) if not res.runs.empty else []
    why = (
        "timings.parquet is missing, so there is no per-block throughput."
        if res.timings is None
        else "No ok run has timed blocks: nothing to plot."
    )
    parts = [_figs_part(figures, why)]
    table = throughput_by_optimizer(res) if not res.runs.empty else pd.DataFrame()
    if not table.empty:
        parts += [
            (
                "<h3>Median samples/s per optimizer (95% interval)</h3>",
                "### Median samples/s per optimizer (95% interval)",
            ),
            _para(
                "The verdict pools both optimizers; their steps cost differently in some backends, "
                "which widens the pooled interval. Same method as the verdict, per optimizer.",
                "note",
            ),
            _table_part(table, "tp"),
        ]
    return _section("throughput", "Throughput scaling", parts)


def parity_section(res: Results) -> Section:
    if res.parity is None:
        return _section(
            "parity",
            "Parity with the float64 NumPy reference",
            [
                _para(
                    "Parity was not recorded for this sweep. Record it with <code>optbench parity</code>, or run the "
                    "sweep with <code>--parity</code> (writes parity.json into the results folder).",
                    "muted",
                )
            ],
        )
    cfg = res.parity.get("config") or {}
    rows = pd.DataFrame(res.parity.get("rows") or [])
    head = _para(
        "Every backend against the float64 NumPy reference from identical weights and batches: "
        + html.escape(", ".join(f"{k} {v}" for k, v in cfg.items()))
        + ".",
        "note",
    )
    if rows.empty:
        return _section(
            "parity",
            "Parity with the float64 NumPy reference",
            [head, _para("parity.json holds no rows.")],
        )
    for col in ("variant", "error", "ok", "max_abs_loss_diff", "max_abs_weight_diff"):
        if col not in rows:
            rows[col] = None
    shown = pd.DataFrame(
        {
            "backend": rows["backend"],
            "optimizer": rows["optimizer"],
            "mode": rows["mode"],
            "variant": rows["variant"],
            "max |Δ loss|": rows["max_abs_loss_diff"].map(lambda v: _num(v, ".2e")),
            "max |Δ weight|": rows["max_abs_weight_diff"].map(lambda v: _num(v, ".2e")),
            "result": rows["ok"].map(
                lambda ok: {True: "ok", False: "FAIL"}.get(ok, "reference only")
            ),
            "error": rows["error"].fillna(""),
        }
    )
    failed = int((rows["ok"] == False).sum())  # noqa: E712 - ok is True/False/None
    verdict_line = (
        f"<b>{failed} row(s) outside the tolerance.</b>"
        if failed
        else "<b>Every checked row is within the tolerance.</b>"
    )
    parts = [
        head,
        _para(
            verdict_line + ' "stock-keras" rows show uncorrected Keras Adam for comparison only.'
        ),
        _table_part(shown),
    ]
    return _section("parity", "Parity with the float64 NumPy reference", parts)


def problems_section(res: Results) -> Section:
    table = problems(res.runs) if not res.runs.empty else pd.DataFrame()
    if table.empty:
        msg = "No runs were recorded." if res.runs.empty else "None: every run finished ok."
        return _section("problems", "Problems", [_para(msg)])
    counts = ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().sort_index().items())
    return _section(
        "problems",
        "Problems",
        [
            _para(f"{len(table)} run(s) did not finish ok: {counts}."),
            _table_part(table, "problems"),
        ],
    )


# --- the page --------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 color:#1d2430;background:#f6f7f9;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:1.7em;margin:.2em 0}h2{border-bottom:2px solid #e3e6ea;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em;margin:1.3em 0 .4em}
.question{font-size:1.15em;color:#34495e;margin:.3em 0 1em}
nav{font-size:.92em;margin:.6em 0 1em}nav a{margin-right:14px;color:#2563a6;text-decoration:none}
.headline{background:#eef5ff;border-left:4px solid #2563a6;padding:10px 14px;font-size:1.02em}
.note{color:#4a5563;font-size:.9em;margin:.4em 0}.muted{color:#6b7280;font-style:italic}
.warn{background:#fff6e5;border-left:4px solid #e0a100;padding:8px 12px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0}
th,td{padding:4px 9px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv td:first-child{font-weight:600;white-space:nowrap;color:#34495e}
table.problems td:last-child{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}
figure{margin:1em 0 1.6em}figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:#4a5563;font-size:.9em;margin-top:4px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:24px}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
table.kv thead{display:none}table.kv{font-size:.84em}
table.verdict th{white-space:normal;vertical-align:bottom}table.verdict th,table.verdict td{padding:4px 6px}
table.tp td{white-space:nowrap;font-variant-numeric:tabular-nums}td.small{font-size:.88em;color:#4a5563}table.verdict td:nth-child(2){font-weight:600}
code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
"""


def build_sections(res: Results, target: float | None = None) -> tuple[list[Section], pd.DataFrame]:
    """Every section of the page, in order, and the verdict table."""
    tgt, why = choose_target(res, target)
    v = verdict(res, tgt)
    style = plots.styles(_keys(res.runs)) if not res.runs.empty else {}
    sections = [
        environment_section(res),
        verdict_section(res, v, tgt, why),
        convergence_section(res, style),
        lr_section(res, style),
        throughput_section(res, style),
        parity_section(res),
        problems_section(res),
    ]
    return sections, v


def _intro(res: Results) -> tuple[str, str]:
    name = (res.env.get("sweep") or {}).get("name") or res.path.name
    counts = (
        ", ".join(f"{n} {s}" for s, n in res.runs["status"].value_counts().sort_index().items())
        if len(res.runs)
        else "no runs"
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"optbench report: {name}"
    sub = f"{len(res.runs)} runs ({counts}); results folder <code>{html.escape(str(res.path))}</code>; written {stamp}."
    return title, sub


def render_html(res: Results, sections: list[Section]) -> str:
    title, sub = _intro(res)
    nav = "".join(f"<a href='#{s.id}'>{html.escape(s.title.split(':')[0])}</a>" for s in sections)
    notes = "".join(f"<p class='warn'>{html.escape(n)}</p>" for n in res.notes)
    body = "\n".join(
        f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>\n{s.html}\n</section>"
        for s in sections
    )
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body><main>"
        f"<h1>{html.escape(title)}</h1><p class='question'>{html.escape(QUESTION)}</p>"
        f"<p class='note'>{sub}</p><nav>{nav}</nav>{notes}\n{body}\n</main></body></html>\n"
    )


def render_md(res: Results, sections: list[Section]) -> str:
    title, sub = _intro(res)
    _, sub_md = _para(sub)
    notes = "".join(f"> {n}\n\n" for n in res.notes)
    body = "\n\n".join(f"## {s.title}\n\n{s.md}" for s in sections)
    return f"# {title}\n\n{QUESTION}\n\n{sub_md}\n\n{notes}{body}\n"


def write_report(results_dir: Path | str, target: float | None = None) -> dict[str, Path]:
    """Write report.html, report.md and summary.csv into ``results_dir``; returns their paths.

    Raises StoreError when the folder is not a results folder, ReportError when it cannot be
    written; anything missing inside it is said on the page.
    """
    res = load(Path(results_dir))
    sections, v = build_sections(res, target)
    out = {
        "html": res.path / "report.html",
        "md": res.path / "report.md",
        "csv": res.path / "summary.csv",
    }
    try:
        out["html"].write_text(render_html(res, sections), encoding="utf-8")
        out["md"].write_text(render_md(res, sections), encoding="utf-8")
        v.to_csv(out["csv"], index=False, float_format="%.6g")
    except OSError as exc:
        raise ReportError(
            f"cannot write the report into {str(res.path)!r} ({exc.strerror or exc}); "
            "copy the folder somewhere writable and report that"
        ) from None
    return out

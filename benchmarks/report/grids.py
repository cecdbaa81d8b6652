"""The report's grids of small multiples, a panel per (data set, optimizer, batch size) cell:
loss and accuracy curves, final accuracy and loss against the learning rate, and the
learning rate x batch size heatmaps.

A grid of more than :data:`SPLIT_PANELS` panels is drawn as one figure per optimizer
(:func:`optimizer_groups`), which the sections fold away under the optimizer's name: the
optimizer sweep's 8 optimizers x 4 workloads were figures of 32 panels, 48 in tall, that a
reader scrolled through to find one optimizer's four.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from benchmarks.record.schema import FINISHED, Status
from benchmarks.report.analysis import CONFIG, GROUP, series
from benchmarks.report.document import Figure
from benchmarks.report.figures import (
    DPI,
    SPLIT_DPI,
    Key,
    Panel,
    Style,
    _grid,
    line_grid,
    to_data_uri,
)
from benchmarks.report.format import labeller

#: the most panels a grid draws in one figure; larger grids are a figure per optimizer
SPLIT_PANELS = 8

#: what a section says above its folds of a figure per optimizer
PER_OPTIMIZER = (
    "One set of figures per optimizer, a panel per data set and batch size: open the one you want."
)

Cell = tuple[str, str, int]  # data set, optimizer, batch size

ONE_LR = (
    "One learning rate per optimizer only: nothing to compare across learning rates "
    "(each one's final accuracy is in the verdict tables)."
)


def why_nothing(runs: pd.DataFrame, what: str, otherwise: str = "") -> str:
    """Why a figure of ``runs`` has no ``what`` to draw: every run skipped (and why), every
    run diverged, else ``otherwise`` (by default: none finished)."""
    status = set(runs["status"]) if len(runs) else set()
    if status == {Status.SKIPPED.value}:
        reasons = "; ".join(dict.fromkeys(str(e) for e in runs["error"] if e)) or "no reason given"
        return f"Every run was skipped ({reasons}): nothing ran, so there are no {what}."
    if status == {Status.DIVERGED.value}:
        return (
            f"Every run diverged: no learning rate ran without diverging, so there are no {what} "
            "(the problems section lists each)."
        )
    return otherwise or f"No run finished, so there are no {what}."


def one_lr_only(means: pd.DataFrame) -> bool:
    """Whether every optimizer of ``means`` ran one learning rate only."""
    return not means.empty and bool((means.groupby("optimizer")["lr"].nunique() <= 1).all())


def grid_cells(runs: pd.DataFrame, optimizer: str | None = None) -> list[Cell]:
    """(data set, optimizer, batch size) panels: a row per data set and optimizer, a column
    per batch size; only ``optimizer``'s where one is named."""
    sets = list(dict.fromkeys(runs["dataset"]))
    opts = list(dict.fromkeys(runs["optimizer"]))  # the sweep's order
    bss = sorted(int(b) for b in runs["batch_size"].dropna().unique())
    return [(d, o, b) for d in sets for o in opts for b in bss if optimizer in (None, o)]


def optimizer_groups(runs: pd.DataFrame) -> list[str | None]:
    """The figures a grid of ``runs`` is drawn as: ``[None]`` for one figure of every
    panel, else each optimizer (in the sweep's order) for a figure of its own."""
    if runs.empty or len(grid_cells(runs)) <= SPLIT_PANELS:
        return [None]
    return list(dict.fromkeys(runs["optimizer"]))


def _ncols(cells: list[Cell]) -> int:
    return max(1, len({b for *_, b in cells}))


def _cell_title(cells: list[Cell], ds: str, opt: str, bs: int, own: bool = False) -> str:
    """ "opt, batch 32", led by the data set where the panels hold several; without the
    optimizer where the figure is its ``own`` (its caption names it)."""
    head = f"{ds}: " if len({c[0] for c in cells}) > 1 else ""
    return head + ("" if own else f"{opt}, ") + f"batch {bs}"


def _caption(caption: str, optimizer: str | None) -> str:
    return f"{optimizer}: {caption}" if optimizer else caption


def _seed_band(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean over seeds per step, with the min-max spread as lo/hi."""
    g = df.dropna(subset=[x, y]).groupby("step")
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
        "train_s",
        "train_loss",
        "training wall-clock after the first step (s, log scale)",
        "training loss (log scale)",
        True,
        True,
        "Training loss vs training wall-clock (log scale{spread}). The clock starts after "
        "the first step, so that a cold compile never poses as slowness (the verdict shows the first step "
        "apart); evaluation time is excluded",
    ),
    ("epoch", "test_acc", "epoch", "test accuracy", False, False, "Test accuracy vs epoch"),
)


def clock_spread(c: pd.DataFrame) -> float:
    """How far apart one panel's series are on the training clock: the slowest series' mean
    ``train_s`` over the fastest's at the last step every series reaches; NaN with fewer than
    two series (``c``: :func:`with_training_clock` rows of the panel)."""
    c = c.dropna(subset=["train_s"])
    if len(c[GROUP].drop_duplicates()) < 2:
        return math.nan
    last = c.groupby(GROUP)["step"].max().min()
    at = c[c["step"] == last].groupby(GROUP)["train_s"].mean()
    return float(at.max() / at.min()) if len(at) > 1 and at.min() > 0 else math.nan


def _spread_said(spreads: list[float]) -> str:
    """The caption's words for the largest of the panels' :func:`clock_spread`."""
    known = [r for r in spreads if r == r]
    if not known:
        return ""
    return (
        f": the slowest backend takes up to {max(known):.1f}x the fastest's time to the same step"
    )


def with_training_clock(c: pd.DataFrame) -> pd.DataFrame:
    """``train_s``: the training wall-clock after the first step (``wall_s - compile_s``),
    NaN at and before it, so a cold compile never poses as slowness."""
    return c.assign(train_s=(c["wall_s"] - c["compile_s"]).where(c["step"] > 1))


def convergence(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    lrs: dict[Cell, float],
    style: dict[Key, Style],
    optimizer: str | None = None,
) -> list[Figure]:
    """Loss and accuracy curves, a panel per (data set, optimizer, batch size) at its
    ``lrs`` lr; only ``optimizer``'s panels, its name leading the captions, where one is
    named."""
    if curves is None or curves.empty or not lrs:
        return []
    live = runs[runs["status"].isin(FINISHED)][["run_id", *GROUP, *CONFIG, "seed", "compile_s"]]
    c = with_training_clock(curves.merge(live, on="run_id"))
    cells = grid_cells(runs, optimizer)
    figures = []
    for x, y, xlabel, ylabel, logx, logy, caption in CONVERGENCE:
        panels, spreads = [], []
        for ds, opt, bs in cells:
            lr = lrs.get((ds, opt, bs))
            at = (c["dataset"] == ds) & (c["optimizer"] == opt) & (c["batch_size"] == bs)
            sub = c[at & (c["lr"] == lr)]
            if x == "train_s":
                spreads.append(clock_spread(sub))
            lines = {k: _seed_band(g, x, y) for k, g in sub.groupby(GROUP)}
            lines = {k: v for k, v in lines.items() if len(v)}
            title = _cell_title(cells, ds, opt, bs, bool(optimizer)) + (
                f", lr {lr:g}" if lr is not None else ""
            )
            panels.append(Panel(title, lines, note="" if lines else "no ok run"))
        fig = line_grid(
            panels, _ncols(cells), xlabel, ylabel, style, logx=logx, logy=logy, nest=not logx
        )
        said = caption.format(spread=_spread_said(spreads))
        figures.append(Figure(_caption(said, optimizer), to_data_uri(fig, _dpi(optimizer))))
    return figures


def _dpi(optimizer: str | None) -> int:
    """A split grid's figures (one optimizer each) at :data:`~.figures.SPLIT_DPI`."""
    return DPI if optimizer is None else SPLIT_DPI


def learning_rate(
    runs: pd.DataFrame,
    means: pd.DataFrame,
    style: dict[Key, Style],
    optimizer: str | None = None,
) -> list[Figure]:
    """Final test accuracy and loss vs the learning rate (``means``: config_means); only
    ``optimizer``'s panels where one is named."""
    if optimizer is not None:
        means = means[means["optimizer"] == optimizer]
    if means.empty or means["ok"].sum() == 0 or one_lr_only(means):
        return []  # nothing to draw, or a point per line: the section says which
    cells = grid_cells(runs, optimizer)
    figures = []
    for col, ylabel, caption in (
        ("acc", "final test accuracy", "Final test accuracy vs learning rate"),
        ("loss", "final test loss (cross-entropy)", "Final test loss vs learning rate"),
    ):
        panels = []
        for ds, opt, bs in cells:
            at = (means["dataset"] == ds) & (means["optimizer"] == opt)
            sub = means[at & (means["batch_size"] == bs)]
            lines, marks = {}, {}
            for k, g in sub.groupby(GROUP):
                pts = g[g["ok"] > 0]
                lines[k] = pd.DataFrame({"x": pts["lr"], "y": pts[col]}) if len(pts) else None
                marks[k] = list(g.loc[g["diverged"] > 0, "lr"])
            lrs = sorted(means.loc[means["optimizer"] == opt, "lr"].unique())
            panels.append(
                Panel(
                    _cell_title(cells, ds, opt, bs, bool(optimizer)),
                    {k: v for k, v in lines.items() if v is not None},
                    {k: v for k, v in marks.items() if v},
                    xticks=lrs,
                )
            )
        fig = line_grid(
            panels,
            _ncols(cells),
            "learning rate (log scale)",
            ylabel,
            style,
            logx=True,
            mark_label="diverged (drawn at the top)",
        )
        figures.append(Figure(_caption(caption, optimizer), to_data_uri(fig, _dpi(optimizer))))
    return figures


def heatmaps(means: pd.DataFrame, optimizer: str | None = None) -> list[Figure]:
    """Final test accuracy per learning rate x batch size, a figure per (data set and)
    optimizer; only ``optimizer``'s where one is named."""
    if means.empty:
        return []
    label = labeller(means)
    means = means.assign(text=[_cell_text(r) for r in means.itertuples()])
    several = means["dataset"].nunique() > 1
    figures = []
    for (ds, opt), df in means.groupby(["dataset", "optimizer"], sort=False):
        if optimizer not in (None, opt) or df["ok"].sum() + df["diverged"].sum() == 0:
            continue
        if df["lr"].nunique() == 1 and df["batch_size"].nunique() == 1:
            continue  # one cell a panel: the verdict tables hold it
        panels = [(label(dict(zip(GROUP, k))), k) for k in sorted(series(df))]
        fig = heatmap_grid(df, panels)
        name = f"{ds}, {opt}" if several else opt
        figures.append(
            Figure(f"{name}: final test accuracy per learning rate x batch size", to_data_uri(fig))
        )
    return figures


def _cell_text(r) -> str:
    if r.diverged:
        return "div" if r.ok == 0 else f"div {r.diverged}/{r.runs}"
    if r.ok == 0:
        return "fail"
    return f"{r.acc:.3f}"


def heatmap_grid(cells: pd.DataFrame, panels: list[tuple[str, Key]], ncols: int = 4) -> plt.Figure:
    """LR x batch-size heatmaps of final test accuracy, one panel per series key.

    ``cells``: the series columns (``analysis.GROUP``), lr, batch_size, acc, text; one row
    per cell ("div" / "fail" cells have acc NaN). ``panels``: (title, key), key a GROUP
    tuple (matched on three of its four columns, every panel was empty).
    """
    ok = cells["acc"].dropna()
    norm = Normalize(
        vmin=float(ok.min()) if len(ok) else 0.0, vmax=float(ok.max()) if len(ok) else 1.0
    )
    lrs = sorted(cells["lr"].unique())
    bss = sorted(cells["batch_size"].unique())
    fig, axes = _grid(len(panels), ncols, row_h=0.45 * len(lrs) + 1.3)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6")
    image = None
    keys = [tuple(k) for k in cells[GROUP].itertuples(index=False)]
    for ax, (title, key) in zip(axes.flat, panels):
        sub = cells[[k == key for k in keys]]
        grid = np.full((len(lrs), len(bss)), np.nan)
        for r in sub.itertuples():
            i, j = lrs.index(r.lr), bss.index(r.batch_size)
            grid[i, j] = r.acc
            colour = "white" if r.acc == r.acc and norm(r.acc) < 0.55 else "black"
            ax.text(
                j,
                i,
                r.text,
                ha="center",
                va="center",
                fontsize=9,
                color=colour,
                fontweight="bold" if r.text in ("div", "fail") else "normal",
            )
        image = ax.imshow(
            np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto", origin="lower"
        )
        ax.set_xticks(range(len(bss)), [str(b) for b in bss])
        ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_xlabel("batch size (samples)")
        ax.set_ylabel("learning rate")
        ax.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    if image is not None:
        cax = fig.add_axes((0.92, 0.15, 0.015, 0.7))
        fig.colorbar(image, cax=cax, label="final test accuracy")
    return fig

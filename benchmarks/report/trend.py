"""The history's figures: per batch size, a row per backend, throughput (median, 95%
interval) and best test accuracy over a machine's results folders; flagged steps ringed,
version and thread changes labelled. Drawn from plain tables (``optbench history``'s rows,
:mod:`benchmarks.track.history`), in the look of :mod:`benchmarks.report.figures`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from backends import registry
from benchmarks.report import figures as fg  # sets Agg before any figure is made
from benchmarks.report.document import Figure

RED, GREEN, GREY = "#c0392b", "#2e8b57", "#7f8c8d"
#: the rings' look
RING = dict(s=190, facecolors="none", linewidths=2.2, zorder=6)

#: where versions or threads changed, per backend: (x between two points, the labels)
Changes = Mapping[str, Sequence[tuple[float, Sequence[str]]]]


def _order(backends: Sequence[str]) -> list[str]:
    known = [b for b in registry.NAMES if b in backends]
    return known + sorted(set(backends) - set(known))


def trend_figures(
    rows: pd.DataFrame, series: list[str], ticks: list[str], changes: Changes, machine: str
) -> list[Figure]:
    """One figure per data set x batch size of ``rows`` (a history table's rows of one
    machine, with ``x``: the point's position); ``ticks``: each point's label; ``series``:
    the columns one line is drawn per."""
    import matplotlib.pyplot as plt

    style = fg.styles([tuple(k) for k in rows[series].drop_duplicates().itertuples(index=False)])
    out = []
    several = rows["dataset"].nunique() > 1
    for (dataset, bs), at_bs in rows.groupby(["dataset", "batch_size"], sort=True):
        backends = _order(at_bs["backend"].unique())
        fig, axes = plt.subplots(
            len(backends),
            2,
            figsize=(fg.WIDTH_IN, 2.5 * len(backends) + 0.9),
            squeeze=False,
            sharex=True,
        )
        for (ax_t, ax_a), be in zip(axes, backends):
            groups = at_bs[at_bs["backend"] == be].groupby(series, sort=True)
            for i, (key, df) in enumerate(groups):  # solid, unless the backend has several
                st = replace(style[tuple(key)], linestyle=fg.LINESTYLES[i % len(fg.LINESTYLES)])
                _series(ax_t, ax_a, df.sort_values("x"), st)
            _panels(ax_t, ax_a, be, changes.get(be, ()), len(ticks), groups.ngroups > 1)
        _x_axis(axes[-1], ticks)
        fig.legend(handles=_legend(), loc="upper center", ncol=3, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
        on = f"{dataset}, " if several else ""
        out.append(Figure(f"{on}batch {bs} on {machine}", fg.to_data_uri(fig)))
    return out


def _series(ax_t: Any, ax_a: Any, df: pd.DataFrame, st: Any) -> None:
    """One series' line on each panel, and its rings: red where its step got slower (left)
    or a run regressed (right), green where it got faster."""
    y = df["samples_per_s"]
    err = [(y - df["ci_low"]).clip(lower=0), (df["ci_high"] - y).clip(lower=0)]
    line = dict(color=st.color, ls=st.linestyle, marker=st.marker, ms=5, lw=1.6, label=st.label)
    ax_t.errorbar(df["x"], y, yerr=err, capsize=3, **line)
    ax_a.plot(df["x"], df["best_test_acc"], **line)
    slow, fast = df[df["slower"] > 0], df[(df["faster"] > 0) & (df["slower"] == 0)]
    ax_t.scatter(slow["x"], slow["samples_per_s"], edgecolors=RED, **RING)
    ax_t.scatter(fast["x"], fast["samples_per_s"], edgecolors=GREEN, **RING)
    acc = df[(df["accuracy_drops"] + df["status_changes"]) > 0]
    shown = acc.dropna(subset=["best_test_acc"])
    ax_a.scatter(shown["x"], shown["best_test_acc"], edgecolors=RED, **RING)
    gone = acc[acc["best_test_acc"].isna()]  # no run finished: at the bottom
    ax_a.scatter(
        gone["x"],
        [0.04] * len(gone),
        marker="v",
        color=RED,
        s=70,
        transform=ax_a.get_xaxis_transform(),
        zorder=6,
    )


def _panels(
    ax_t: Any,
    ax_a: Any,
    be: str,
    said: Sequence[tuple[float, Sequence[str]]],
    n_points: int,
    legend: bool,
) -> None:
    """A backend's two panels: titles, scales, the changes labelled, the grid."""
    from matplotlib.ticker import FuncFormatter

    ax_t.set_ylim(0, ax_t.get_ylim()[1] * 1.06)  # from 0, the caps in view
    ax_t.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v / 1e3:,.0f}k" if v >= 1e3 else f"{v:.0f}")
    )
    ax_t.set_title(f"{be}: median samples/s, 95% interval", fontsize=10, loc="left")
    ax_a.set_title(f"{be}: best final test accuracy", fontsize=10, loc="left")
    for xc, labels in said:
        for ax in (ax_t, ax_a):
            ax.axvline(xc, color=GREY, ls=":", lw=1.2)
        ax_t.text(
            xc,
            0.04,
            "\n".join(labels),
            rotation=90,
            fontsize=8,
            color="#34495e",
            ha="right",
            va="bottom",
            transform=ax_t.get_xaxis_transform(),
        )
    if legend:
        ax_t.legend(fontsize=8, loc="lower left")
    for ax in (ax_t, ax_a):
        ax.grid(alpha=0.3)
        ax.set_xlim(-0.5, n_points - 0.5)


def _x_axis(bottom: Sequence[Any], ticks: list[str]) -> None:
    """The bottom row's x axis: at most about 12 labelled points."""
    every = max(1, math.ceil(len(ticks) / 12))
    for ax in bottom:
        ax.set_xticks(range(0, len(ticks), every))
        ax.set_xticklabels(ticks[::every], fontsize=8, rotation=30, ha="right")
        ax.set_xlabel("results folder, oldest first (short commit, * = uncommitted changes)")


def _legend() -> list[Any]:
    from matplotlib.lines import Line2D

    ring = dict(marker="o", ls="", ms=11, mfc="none", mew=2)
    return [
        Line2D(
            [],
            [],
            mec=RED,
            label="flagged: slower / accuracy drop / status change (vs. the point compared)",
            **ring,
        ),
        Line2D([], [], mec=GREEN, label="faster (vs. the point compared)", **ring),
        Line2D([], [], color=GREY, ls=":", label="version or thread change"),
    ]

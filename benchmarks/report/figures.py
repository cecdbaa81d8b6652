"""The report's figures: matplotlib only (Agg), returned as PNG data URIs.

Every figure draws a backend in the same colour and marker (``backends.registry``; a
backend the registry does not know gets a stable colour from a fallback palette); modes and
devices of one backend are told apart by line style and marker. Figures are ~10 in wide at
100 dpi so that they read at laptop width. The builders at the end make the report's figures from
:mod:`benchmarks.report.analysis` tables; the grids of a panel per data set, optimizer and
batch size are :mod:`benchmarks.report.grids`'.
"""

from __future__ import annotations

import base64
import io
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from backends import registry  # noqa: E402
from benchmarks.report.analysis import GROUP  # noqa: E402
from benchmarks.report.document import Figure  # noqa: E402
from benchmarks.report.format import labeller  # noqa: E402

WIDTH_IN = 11.0
DPI = 100
#: the per-optimizer figures (a split grid's, ``grids.SPLIT_PANELS``, and the stock drift's):
#: the optimizer sweep with every catalogue kind draws 12 optimizers x 6 of them; its page
#: read 4.0 MB at 100 dpi, 3.3 MB at 80 and 2.9 MB at 72 (the limit is 3 MB; still legible)
SPLIT_DPI = 72
PALETTE = 64  # colours of a figure's PNG: see to_data_uri
FALLBACK_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LINESTYLES = ("-", "--", ":", "-.")

Key = tuple[str, ...]  # a series: (backend, mode, compiler, device), as analysis.GROUP


def backend_color(name: str) -> str:
    """The registry's colour of a backend; other names get a stable colour from a fallback palette."""
    entry = registry.REGISTRY.get(name)
    if entry is not None and entry.color:
        return entry.color
    return FALLBACK_COLORS[zlib.crc32(name.encode()) % len(FALLBACK_COLORS)]


def backend_marker(name: str) -> str:
    entry = registry.REGISTRY.get(name)
    return entry.marker if entry is not None else "o"


@dataclass(frozen=True)
class Style:
    label: str
    color: str
    linestyle: str
    marker: str


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _path_index(key: Key) -> int:
    """A series' place among its backend's ways to run (its registry paths): the same for
    the series in every figure, whatever else a figure draws."""
    backend, _, compiler, _ = key
    names = (
        [p.name for p in registry.REGISTRY[backend].paths] if backend in registry.REGISTRY else []
    )
    return (
        names.index(compiler)
        if compiler in names
        else len(names) + zlib.crc32(compiler.encode()) % 8
    )


def _path_count(backend: str) -> int:
    entry = registry.REGISTRY.get(backend)
    return len(entry.paths) if entry is not None else 1


def styles(keys: Sequence[Key]) -> dict[Key, Style]:
    """Colour by backend; line style and marker by the series' path (:func:`_path_index`),
    the marker also by its device, so a series looks the same in every section and on the
    history page, and two paths of one backend differ in marker as well as line (eager and
    compiled paths told apart by '-' against '--' alone were hard to see in small panels).
    Labels name the mode, compiler and device only where they vary."""
    keys = sorted(set(keys))
    label = labeller(pd.DataFrame(keys, columns=GROUP))
    out = {}
    for k in keys:
        i = _path_index(k)
        own = backend_marker(k[0])  # the first path's on the CPU; the others' from the rest
        markers = [own, *(m for m in MARKERS if m != own)]
        out[k] = Style(
            label(dict(zip(GROUP, k))),
            backend_color(k[0]),
            LINESTYLES[i % len(LINESTYLES)],
            # a GPU series takes the markers after its backend's CPU paths'
            markers[(i + _path_count(k[0]) * (k[3] == "gpu")) % len(markers)],
        )
    return out


@dataclass
class Panel:
    """One axes: a line per series key. Each frame has columns x, y and optionally lo, hi."""

    title: str
    lines: dict[Key, pd.DataFrame] = field(default_factory=dict)
    marks: dict[Key, list[float]] = field(default_factory=dict)  # x positions marked at the top
    note: str = ""
    xticks: Sequence[float] | None = None


def to_data_uri(fig: plt.Figure, dpi: int = DPI) -> str:
    """Render a figure as a base64 PNG data URI and close it.

    The PNG is a :data:`PALETTE`-colour palette image: line plots on white use a few dozen
    colours and their anti-aliasing, and a palette keeps them legible at a quarter of the
    size (the NumPy optimizer sweep's 25 figures: 4.5 MB of RGBA PNG, 1.2 MB as 256-colour
    palettes). 64 colours still keep the seed bands and the grid lines (32 lost both), and
    the optimizer sweep's page with four backends (real NumPy curves, copied) came to 2.7 MB instead of 3.1 MB."""
    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(PALETTE, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _grid(n: int, ncols: int, row_h: float) -> tuple[plt.Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH_IN, row_h * nrows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def line_grid(
    panels: list[Panel],
    ncols: int,
    xlabel: str,
    ylabel: str,
    style: dict[Key, Style],
    *,
    spread: str = "band",
    logx: bool = False,
    logy: bool = False,
    mark_label: str = "diverged",
    xticks: Sequence[float] | None = None,
    row_h: float = 3.0,
    kilo_y: bool = False,
    nest: bool = False,
) -> plt.Figure:
    """Small multiples; ``spread`` draws lo/hi as a shaded band or as error bars.

    ``nest`` draws lines widest first, so that backends with identical curves stay visible
    as nested strokes. ``kilo_y`` labels the y axis in thousands (e.g. 250k).
    """
    fig, axes = _grid(len(panels), ncols, row_h)
    used: set[Key] = set()
    any_marks = False
    for ax, panel in zip(axes.flat, panels):
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        keys = sorted(panel.lines)
        for i, key in enumerate(keys):
            lw = 1.5 + 2.0 * (len(keys) - 1 - i) if nest else 1.8
            _draw_line(ax, panel.lines[key], style[key], spread, _dodge(i, len(keys), logx), lw)
            used.add(key)
        if panel.marks:  # headroom above the data for the markers
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * 1.5 if logy else hi + 0.15 * (hi - lo))
        for i, key in enumerate(sorted(panel.marks)):
            xs = [x * _dodge(i, len(panel.marks), logx) for x in panel.marks[key]]
            trans = blended_transform_factory(ax.transData, ax.transAxes)
            ax.scatter(
                xs,
                [0.95] * len(xs),
                transform=trans,
                marker="x",
                s=60,
                linewidths=2,
                color=style[key].color,
                zorder=5,
                clip_on=False,
            )
            used.add(key)
            any_marks = any_marks or bool(xs)
        _decorate(
            ax,
            panel,
            xlabel,
            ylabel,
            logx,
            logy,
            panel.xticks if panel.xticks is not None else xticks,
        )
        if kilo_y:
            ax.yaxis.set_major_locator(
                LogLocator(subs=(1.0, 2.0, 5.0)) if logy else ax.yaxis.get_major_locator()
            )
            ax.yaxis.set_major_formatter(FuncFormatter(_kilo))
            ax.yaxis.set_minor_formatter(NullFormatter())
        if logx and xticks is None and panel.xticks is None:
            _plain_log_ticks(ax.xaxis)
        if logy and not kilo_y:
            _plain_log_ticks(ax.yaxis)
    _legend(fig, [style[k] for k in sorted(used)], mark_label if any_marks else "")
    _layout(fig, len(used))
    return fig


def _layout(fig: plt.Figure, entries: int) -> None:
    """Tight layout below the legend's rows: about half an inch a row whatever the figure's
    height (7% of a 48 in grid of 32 panels was 3.4 in of white)."""
    rows = max(1, math.ceil(entries / 6))
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.25 + 0.25 * rows) / fig.get_figheight()))


def _plain_log_ticks(axis, fmt=None) -> None:
    """A log axis labelled in plain numbers (or ``fmt``'s), no minor labels: across less
    than a decade matplotlib labels its minor ticks ("2x10^-3", "6x10^-2"), and in a small
    panel they ran into each other. Labels at 1, 2 and 5 times the powers of ten where the
    axis spans about a decade, fewer where it spans more (at 2.5 decades "0.001 0.002 0.005
    0.01 0.02" ran together too). Call it once the axis' limits are set."""
    ax = axis.axes
    lo, hi = ax.get_xlim() if axis is ax.xaxis else ax.get_ylim()  # autoscaled by now
    span = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 5.0) if span < 1.3 else (1.0, 3.0) if span < 2.3 else (1.0,)
    axis.set_major_locator(LogLocator(subs=subs, numticks=12))
    axis.set_major_formatter(FuncFormatter(fmt or (lambda v, _pos=None: f"{v:g}")))
    axis.set_minor_formatter(NullFormatter())


def _dodge(i: int, n: int, logx: bool) -> float:
    """A small multiplicative x offset so that overlapping markers of several backends show."""
    return 1.0 + 0.04 * (i - (n - 1) / 2) if logx and n > 1 else 1.0


def _kilo(v: float, _pos: object = None) -> str:
    return f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k" if v >= 1e3 else f"{v:g}"


def _draw_line(ax, df: pd.DataFrame, st: Style, spread: str, dodge: float, lw: float) -> None:
    df = df.sort_values("x")
    if ax.get_xscale() == "log":
        df = df[df["x"] > 0]
    x = df["x"].to_numpy(float) * dodge
    y = df["y"].to_numpy(float)
    has_spread = {"lo", "hi"} <= set(df.columns) and df[["lo", "hi"]].notna().any().any()
    if spread == "errorbar" and has_spread:
        err = np.vstack([y - df["lo"].to_numpy(float), df["hi"].to_numpy(float) - y])
        ax.errorbar(
            x,
            y,
            yerr=np.clip(err, 0, None),
            color=st.color,
            ls=st.linestyle,
            marker=st.marker,
            ms=5,
            capsize=3,
            lw=1.6,
        )
        return
    ax.plot(
        x,
        y,
        color=st.color,
        ls=st.linestyle,
        lw=lw,
        marker=st.marker if len(x) <= 12 else None,
        ms=3 + lw,
        alpha=0.9,
    )
    if has_spread and not np.allclose(df["lo"], df["hi"], equal_nan=True):
        ax.fill_between(x, df["lo"], df["hi"], color=st.color, alpha=0.18, lw=0)


def _decorate(ax, panel: Panel, xlabel, ylabel, logx, logy, xticks) -> None:
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xticks is not None:
        ax.set_xticks(list(xticks))
        ax.set_xticklabels([f"{t:g}" for t in xticks])
        ax.xaxis.set_minor_locator(NullLocator())
    xs = [v for df in panel.lines.values() for v in df["x"]] + [
        v for m in panel.marks.values() for v in m
    ]
    if logx and xs:
        lo, hi = min(v for v in xs if v > 0), max(xs)
        ax.set_xlim(lo / 1.3, hi * 1.3)
    ax.grid(True, which="major", alpha=0.3)
    if not panel.lines and not panel.marks:
        ax.text(
            0.5,
            0.5,
            panel.note or "no data",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
    elif panel.note:
        ax.text(0.02, 0.02, panel.note, transform=ax.transAxes, fontsize=8, color="0.35")


def _legend(fig: plt.Figure, sts: list[Style], mark_label: str) -> None:
    handles = [
        Line2D([], [], color=s.color, ls=s.linestyle, marker=s.marker, lw=1.8, label=s.label)
        for s in sts
    ]
    if mark_label:
        handles.append(
            Line2D([], [], color="0.3", marker="x", ls="none", ms=8, mew=2, label=mark_label)
        )
    if handles:
        fig.legend(
            handles=handles,
            loc="upper center",
            ncol=min(len(handles), 6),
            frameon=False,
            bbox_to_anchor=(0.5, 1.0),
        )


# --- the report's figures (the per-cell grids: benchmarks.report.grids) -----------------


def throughput(
    rates: pd.DataFrame | None,
    by_batch: pd.DataFrame | None,
    by_optimizer: pd.DataFrame,
    style: dict[Key, Style],
) -> list[Figure]:
    """Samples/s vs batch size: all optimizers pooled, then each optimizer alone.

    ``rates``: block_rates; ``by_batch`` and ``by_optimizer``: throughput per batch size x
    series and per series x optimizer x batch size."""
    if rates is None or rates.empty or by_batch is None:
        return []
    sets = list(dict.fromkeys(rates["dataset"]))
    subsets = []
    for ds in sets:  # a data set's input size sets the step's cost: never pooled
        head = f"{ds}: " if len(sets) > 1 else ""
        subsets.append((f"{head}all optimizers pooled", by_batch[by_batch["dataset"] == ds]))
        subsets += [
            (
                f"{head}{o} only",
                by_optimizer[(by_optimizer["optimizer"] == o) & (by_optimizer["dataset"] == ds)],
            )
            for o in dict.fromkeys(rates.loc[rates["dataset"] == ds, "optimizer"])
        ]
    panels = []
    for title, tp in subsets:
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
        panels.append(Panel(title, lines))
    fig = line_grid(
        panels,
        1 + int(rates.groupby("dataset")["optimizer"].nunique().max()),  # a row per data set
        "batch size (samples, log scale)",
        "samples/s (log scale)",
        style,
        spread="errorbar",
        logx=True,
        logy=True,
        xticks=sorted(rates["batch_size"].unique()),
        row_h=3.6,
        kilo_y=True,
    )
    return [
        Figure(
            "Throughput vs batch size: median of timed blocks, bars = 95% bootstrap interval"
            + one_batch_size(rates),
            to_data_uri(fig),
        )
    ]


def one_batch_size(df: pd.DataFrame) -> str:
    """A caption's words where a figure against the batch size has one batch size to draw."""
    sizes = sorted(df["batch_size"].dropna().unique())
    if len(sizes) != 1:
        return ""
    return f"; one batch size only ({int(sizes[0])}): nothing to compare across batch sizes"


def verdict(v: pd.DataFrame, style: dict[Key, Style], target: float | None) -> list[Figure]:
    """The verdict at a glance: each backend at its fastest path (the series with the
    highest median samples/s at each batch size), samples/s with its 95% interval against
    the batch size, and beside it the time to the target accuracy. One figure per data set;
    none where nothing was timed. ``v``: the verdict table (``analysis.verdict``)."""
    if v.empty or v["samples_per_s"].isna().all():
        return []
    out = []
    several = v["dataset"].nunique() > 1
    for ds, d in v.groupby("dataset", sort=False):
        best = (
            d.dropna(subset=["samples_per_s"])
            .sort_values("samples_per_s", ascending=False)
            .drop_duplicates(["backend", "batch_size"])
        )
        lines: dict[Key, pd.DataFrame] = {}
        times: dict[Key, pd.DataFrame] = {}
        for _, g in best.groupby("backend", sort=True):
            # the backend's path at each batch size may differ: one line per backend, drawn
            # in the style of its fastest path at the largest batch size
            key = tuple(g.sort_values("batch_size").iloc[-1][GROUP])
            lines[key] = pd.DataFrame(
                {
                    "x": g["batch_size"],
                    "y": g["samples_per_s"],
                    "lo": g["ci_low"],
                    "hi": g["ci_high"],
                }
            )
            t = g.dropna(subset=["target_time_s"])
            t = t[np.isfinite(t["target_time_s"].astype(float))]
            if len(t):
                times[key] = pd.DataFrame({"x": t["batch_size"], "y": t["target_time_s"]})
        head = f"{ds}: " if several else ""
        panels = [Panel(f"{head}samples/s, each backend at its fastest path", lines)]
        if target is not None and times:  # else the caption says so: no empty axes
            panels.append(Panel(f"{head}time to test accuracy {target:.2f}", times))
        named = {k: replace(st, label=k[0]) for k, st in style.items()}
        fig = line_grid(
            panels,
            2,
            "batch size (samples, log scale)",
            "",
            named,
            spread="errorbar",
            logx=True,
            logy=True,
            xticks=sorted(v["batch_size"].unique()),
            row_h=2.8,  # the whole figure on the first screen of a 1280x800 window
            kilo_y=False,
        )
        for ax, ylabel, fmt in zip(
            fig.axes, ("samples/s (log scale)", "seconds (log scale)"), (_kilo, None)
        ):
            ax.set_ylabel(ylabel)
            _plain_log_ticks(ax.yaxis, fmt)
        _layout(fig, len(lines))  # again: the labels changed
        said = (
            "95% interval (left), and training time to the target (right; lower is better)"
            if len(panels) > 1
            else "95% interval"
            + (f"; no backend reached test accuracy {target:.2f}" if target is not None else "")
        )
        caption = (
            f"{head}The verdict: the fastest path of each backend, median samples/s with its {said}"
        )
        out.append(Figure(caption + one_batch_size(d), to_data_uri(fig)))
    return out


# --- the optimizer verdict's figures ---------------------------------------------------

SOLVER_COLORS = plt.get_cmap("tab10").colors


def performance_profile(
    ratios: pd.DataFrame, labels: dict[tuple[str, str], str], tau_max: float = 10.0
) -> list[Figure]:
    """Dolan-More performance profiles: rho(tau), the fraction of workloads where an
    optimizer's time to the target is within tau of the fastest's, a step line per optimizer
    on a log tau axis from 1 to ``tau_max``. ``ratios``: per workload x (optimizer, schedule),
    ``ratio`` (inf: never reached); ``labels``: the legend's name of each."""
    if ratios.empty:
        return []
    fig = plt.figure(figsize=(WIDTH_IN, 3.8))
    ax = fig.add_axes((0.07, 0.14, 0.55, 0.82))  # the right 40% for the legend
    groups = list(ratios.groupby(["optimizer", "schedule"], sort=True))
    for i, (key, g) in enumerate(groups):
        r = np.sort(np.maximum(g["ratio"].to_numpy(float), 1.0))
        inside = r[r <= tau_max]
        xs = np.concatenate([[1.0], inside, [tau_max]])
        ys = [float((r <= x * (1 + 1e-12)).mean()) for x in xs]
        ax.step(
            xs,
            ys,
            where="post",
            color=SOLVER_COLORS[i % len(SOLVER_COLORS)],
            ls=LINESTYLES[(i // len(SOLVER_COLORS)) % len(LINESTYLES)],
            lw=1.6 + 1.6 * (len(groups) - 1 - i) / max(len(groups) - 1, 1),  # ties stay visible
            label=labels.get(key, key[0]),
            alpha=0.9,
        )
    ax.set_xscale("log")
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(-0.03, 1.03)
    ticks = [t for t in (1, 1.5, 2, 3, 4, 6, 10, 20, 50, 100) if t <= tau_max]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("tau: time to target within tau x the fastest (log scale)")
    ax.set_ylabel("fraction of workloads")
    ax.grid(True, alpha=0.3)
    # beside the axes, not over the steps (saved with bbox_inches="tight", so it stays whole)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=9)
    n = ratios[["dataset", "batch_size"]].drop_duplicates().shape[0]
    return [
        Figure(
            f"Performance profiles over {n} workload(s) (data set x batch size): time to the "
            "validation target at each optimizer's best learning rate",
            to_data_uri(fig),
        )
    ]


def stock_drift(drawn: pd.DataFrame, series_label: str, style: dict[Key, Style]) -> list[Figure]:
    """Per optimizer: its spec curve (the verdict series' spec runs) and each framework's
    stock curve at the best spec learning rate, a panel per workload. ``drawn``: the curves
    of :func:`benchmarks.report.optimizers.stock_drift`; ``style``: of the stock series."""
    if drawn.empty:
        return []
    spec_key: Key = ("spec", "", "", "")
    style = {**style, spec_key: Style(f"spec ({series_label})", "#222222", "--", "o")}
    names = {
        "val_acc": "validation accuracy",
        "train_loss": "training loss (log scale)",
    }
    figures = []
    for (opt, sched), df in drawn.groupby(["optimizer", "schedule"], sort=True):
        panels = []
        metrics = set(df["metric"])
        several = df["dataset"].nunique() > 1
        for (ds, bs), g in df.groupby(["dataset", "batch_size"], sort=True):
            lines = {}
            for key, line in g.groupby(["line", *GROUP], sort=True):
                k = spec_key if key[0] == "spec" else tuple(key[1:])
                lines[k] = pd.DataFrame({"x": line["step"], "y": line["y"]})
            lr = g["lr"].iloc[0] if "lr" in g else None
            title = (f"{ds}: " if several else "") + f"batch {bs}"
            panels.append(Panel(title + (f", lr {lr:g}" if lr else ""), lines))
        metric = "val_acc" if metrics == {"val_acc"} else "train_loss"
        fig = line_grid(
            panels,
            min(len(panels), 3),
            "step",
            names[metric] if len(metrics) == 1 else "validation accuracy or training loss",
            style,
            logy=metric == "train_loss" and len(metrics) == 1,
            nest=True,
        )
        name = opt if sched == "constant" else f"{opt} ({sched})"
        figures.append(
            Figure(
                f"{name}: the spec curve and each framework's stock optimizer (its own defaults) "
                "at the best spec learning rate, mean over seeds",
                to_data_uri(fig, SPLIT_DPI),  # one per optimizer, as a split grid's
            )
        )
    return figures

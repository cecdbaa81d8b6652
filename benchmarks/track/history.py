"""``optbench history [SWEEP]``: one sweep's results over time, per machine.

Every results folder of the sweep under ``results/`` (archived copies ``NAME.<date>`` and
``results/baselines/*`` included; a link to a folder already found, ``results/latest``,
counts once) is a point. Points form one series per machine (CPU model, core count and GPU
model from environment.json), in date order. Each point's figures are its report's
(:func:`benchmarks.report.analysis.analyse`: median samples/s with its 95% interval and the
best final test accuracy per batch size x backend x mode x compiler x device); each point
is judged against the latest earlier point of its series that shares a run with it (runs
match by their configuration, as compare matches them: a folder that ran other backends
only is passed over) by :func:`benchmarks.track.compare.compare`, as ``optbench compare PREVIOUS
CURRENT`` would judge it. Nothing here recomputes a statistic, and nothing is written into
a results folder.

:func:`write_history` writes ``history.html`` (self-contained: figures as PNG data URIs)
and ``history.csv`` (:func:`history_table`: one row per point x verdict row) into
``results/history-<sweep>/``::

    hist, paths = write_history(["default"])  # paths["html"]: results/history-default/history.html
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.record.store import MARKER
from benchmarks.report.document import Code, Figure, Heading, Section, figures, para, table
from benchmarks.report.page import html_page
from benchmarks.report.trend import GREEN, GREY, RED, trend_figures  # noqa: F401 - the colours
from benchmarks.track.change import FASTER, SLOWER
from benchmarks.track.timeline import (  # noqa: F401 - the history's names, imported from here
    DEFAULT_SWEEP,
    DEPTH,
    FIGURES_OF,
    MATCH,
    SERIES,
    History,
    HistoryError,
    Point,
    Step,
    _partner,
    backend_packages,
    build,
    candidates,
    changes,
    date_of,
    folders_of,
    gather,
    history_table,
    is_folder_target,
    machine_of,
    read_point,
    same_software,
    steps_of,
    sweep_of,
    version_change,
)

QUESTION = "Where did speed or accuracy change, and what changed with it?"


# --- figures ---------------------------------------------------------------------------


def machine_figures(hist: History, machine: str) -> list[Figure]:
    """Per batch size: a row per backend, throughput (median, 95% interval) on the left and
    best test accuracy on the right, over the machine's points; flagged steps ringed,
    version and thread changes labelled at the step where they happen
    (:func:`benchmarks.report.trend.trend_figures` draws them)."""
    points = [p for p in hist.points if p.machine == machine]
    x_of = {str(p.path): i for i, p in enumerate(points)}
    rows = hist.table[hist.table["machine"] == machine].copy()
    rows["x"] = rows["folder"].map(x_of)
    ticks = [f"{p.label}\n{p.date:%m-%d %H:%M}" for p in points]
    said = {
        be: [
            (x_of[str(cur.path)] - 0.5, labels)
            for prev, cur in zip(points, points[1:])
            if (labels := changes(prev, cur, backend_packages(be)))
        ]
        for be in rows["backend"].unique()
    }
    return trend_figures(rows, SERIES, ticks, said, machine)


# --- the page --------------------------------------------------------------------------


def _fmt_ratio(r: Any) -> str:
    return f"{r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"


def step_rows(step: Step) -> list[dict[str, str]]:
    """What compare flagged in one step, a row per finding."""
    base = {
        "date": f"{step.current.date:%Y-%m-%d %H:%M}",
        "commit": step.current.label,
        "vs.": step.previous.label + _partner(step),
    }
    if step.comparison is None:
        return [{**base, "finding": "not compared", "what": step.error, "figures": ""}]
    cmp, out = step.comparison, []
    for r in cmp.groups.itertuples(index=False):
        if r.verdict in (SLOWER, FASTER):
            what = f"{r.backend} {r.mode} {r.device} {r.optimizer}, batch {r.batch_size}"
            out.append({**base, "finding": r.verdict, "what": what, "figures": _fmt_ratio(r)})
    for r in cmp.status_changes.itertuples(index=False):
        what = f"{r.backend} {r.mode} {r.device} {r.optimizer} lr {r.lr:g}, batch {r.batch_size}, seed {r.seed}"
        err = f": {r.current_error}" if r.current_error else ""
        out.append(
            {
                **base,
                "finding": "status",
                "what": what,
                "figures": f"{r.baseline_status} -> {r.current_status}{err}",
            }
        )
    for r in cmp.accuracy_drops.itertuples(index=False):
        what = f"{r.backend} {r.mode} {r.device} {r.optimizer} lr {r.lr:g}, batch {r.batch_size}, seed {r.seed}"
        out.append(
            {
                **base,
                "finding": "accuracy",
                "what": what,
                "figures": f"{r.baseline_acc:.3f} -> {r.current_acc:.3f}",
            }
        )
    return out


def _verdict(step: Step) -> str:
    if step.comparison is None:
        return "not compared"
    c = step.comparison
    g = c.groups["verdict"] if len(c.groups) else pd.Series(dtype=str)
    said = [
        f"{n} {what}"
        for n, what in (
            (int((g == SLOWER).sum()), "slower"),
            (int((g == FASTER).sum()), "faster"),
            (len(c.status_changes), "status changes"),
            (len(c.accuracy_drops), "accuracy drops"),
        )
        if n
    ]
    if step.noise:
        said.append(
            f"{step.noise} speed change(s) not flagged: the same commit, versions and threads "
            "on both sides, so the machine's noise"
        )
    return ", ".join(said) or "no change flagged"


def _points_table(hist: History, machine: str) -> pd.DataFrame:
    points = [p for p in hist.points if p.machine == machine]
    step_of = {id(s.current): s for s in hist.steps}
    index = {id(p): i for i, p in enumerate(points)}
    rows = []
    for i, p in enumerate(points):
        step = step_of.get(id(p))
        verdict = _verdict(step) if step else "first point"
        if step and step.passed_over:
            verdict = f"vs. #{index[id(step.previous)]}{_partner(step)}: {verdict}"
        rows.append(
            {
                "#": i,
                "date": f"{p.date:%Y-%m-%d %H:%M}",
                "commit": p.label,
                "folder": str(p.path),
                "threads": p.threads,
                "changed since the point before": "; ".join(changes(points[i - 1], p)) if i else "",
                "compare vs. the point before": verdict,
            }
        )
    return pd.DataFrame(rows)


HOW_TO_READ = (
    "Each point is one results folder of the sweep, on one machine (CPU model, core count, "
    "GPU model), oldest first. Throughput is the report's: the median samples/s over every "
    "timed block of the configuration's runs, with its 95% bootstrap interval; accuracy is "
    "the best final test accuracy over the optimizers and learning rates.",
    "A ring marks a step that `optbench compare PREVIOUS CURRENT` flags, with its default "
    "threshold, PREVIOUS being the latest earlier folder of the machine with a run in common "
    "(runs match by their configuration; a folder that ran other backends only is passed "
    "over, and the tables name the folder compared with): red where a group got slower (the "
    "whole ratio interval below 1 and the change beyond the threshold) or a run finished "
    "before and does not now (right: an accuracy drop beyond the tolerance), green where a "
    "group got faster. Compare judges each optimizer apart; the plotted point pools them, so "
    "a ring can sit on a point that barely moved: the table above lists which group and by "
    "how much.",
    "A dotted line between two points labels a change of the backend's framework version "
    "(or the thread count) there; the commit under each point says what else changed.",
    "Steps are judged on the stored runs; `optbench compare` also re-measures what it "
    "flags, which a history of old commits does not. Between two points where nothing "
    "changed (one commit, no uncommitted changes, the same versions and threads), a speed "
    "change is the machine's noise: the table counts it, and it is not ringed.",
)


def render_html(hist: History) -> str:
    """The history page: self-contained HTML (the report's style sheet, figures inline)."""
    title = f"optbench history: {hist.sweep}"
    machines = list(dict.fromkeys(p.machine for p in hist.points))
    dates = [p.date for p in hist.points]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sub = para(
        f"{len(hist.points)} results folder(s) of sweep {hist.sweep!r} on {len(machines)} "
        f"machine(s), {min(dates):%Y-%m-%d} to {max(dates):%Y-%m-%d}; written {stamp} by ",
        Code("optbench history"),
        ".",
        cls="note",
    )
    notes = [n for p in hist.points for n in p.notes] + hist.skipped
    sections = []
    flagged = Section("flagged", "Flagged steps")
    for m in machines:
        mine = [s for s in hist.steps if s.current.machine == m]
        if len(machines) > 1:
            flagged.blocks.append(Heading(m))
        if not mine:
            flagged.blocks.append(
                para("One point only on this machine: nothing to compare yet.", cls="muted")
            )
            continue
        last = mine[-1]
        flagged.blocks.append(
            para(
                "Latest step: ",
                Code(last.current.label),
                " vs. ",
                Code(last.previous.label),
                _partner(last),
                ": ",
                _verdict(last),
                ".",
                cls="headline",
            )
        )
        rows = [r for s in mine for r in step_rows(s)]
        flagged.blocks.append(
            table(pd.DataFrame(rows), small=("figures",))
            if rows
            else para("No step flagged on this machine.", cls="muted")
        )
    sections.append(flagged)
    for i, m in enumerate(machines):
        sec = Section(f"machine-{i}", f"Machine: {m}")
        sec.blocks.append(table(_points_table(hist, m), numeric=("#", "threads")))
        sec.blocks.append(figures(machine_figures(hist, m), missing="No figure: no verdict row."))
        sections.append(sec)
    sections.append(Section("read", "How to read it", [para(t) for t in HOW_TO_READ]))
    return html_page(title, QUESTION, sub, sections, notes)


def _check_out(out: Path) -> None:
    """HistoryError where ``out`` is not a folder, or lies in a results folder (written by
    ``optbench run`` only)."""
    for folder in (out.resolve(), *out.resolve().parents):
        if (folder / MARKER).exists():
            raise HistoryError(
                f"--out {str(out)!r} is inside results folder {str(folder)!r}; results "
                "folders are written only by `optbench run`: give another --out"
            )
    if out.exists() and not out.is_dir():
        raise HistoryError(f"--out {str(out)!r} exists and is not a folder; give another --out")


def write_history(
    targets: Sequence[str], results: Path = Path("results"), out: Path | None = None
) -> tuple[History, dict[str, Path]]:
    """Build the history of ``targets`` (see :func:`gather`) and write history.html and
    history.csv into ``out`` (default ``<results>/history-<sweep>``). HistoryError, with
    nothing written, on bad input or an ``out`` inside a results folder."""
    if out is not None:
        _check_out(Path(out))  # before the work: bad input says so at once
    hist = build(targets, Path(results))
    out = Path(out) if out is not None else Path(results) / f"history-{hist.sweep}"
    _check_out(out)
    page = render_html(hist)
    paths = {"html": out / "history.html", "csv": out / "history.csv"}
    try:
        out.mkdir(parents=True, exist_ok=True)
        csv = hist.table.assign(date=hist.table["date"].map(lambda t: t.isoformat()))
        csv.to_csv(paths["csv"], index=False, float_format="%.6g")
        paths["html"].write_text(page, encoding="utf-8")
    except OSError as exc:
        raise HistoryError(
            f"cannot write into {str(out)!r} ({exc.strerror or exc}); give another --out"
        ) from None
    return hist, paths


def summary(hist: History) -> str:
    """One line per machine: points, and the latest step's verdict."""
    lines = []
    for m in dict.fromkeys(p.machine for p in hist.points):
        n = sum(p.machine == m for p in hist.points)
        mine = [s for s in hist.steps if s.current.machine == m]
        flagged = sum(bool(s.comparison and s.comparison.regressions) for s in mine)
        last = ""
        if mine:
            step = mine[-1]
            last = (
                f"; latest {step.current.label} vs. {step.previous.label}{_partner(step)}: "
                f"{_verdict(step)}"
            )
        lines.append(f"{m}: {n} point(s), {flagged} step(s) with a regression{last}")
    return "\n".join(lines)

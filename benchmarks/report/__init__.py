"""The report of one results folder: report.html, report.md and summary.csv, written into it.

``write_report(path)`` reads the store (``benchmarks.record.store``) and answers two questions:
which framework trains this MLP fastest on this machine, and which optimizer trains it best
(the optimizer verdict, :mod:`.optimizers`)? The HTML page is self-contained (inline CSS, figures as PNG data URIs, no script, no
external reference); the Markdown file holds the same tables; summary.csv the verdict table.
``console_summary(path)`` is the same verdict table as text, for the end of a sweep.

Inside: :mod:`.load` reads the folder, :mod:`.analysis` computes every statistic once,
:mod:`.sections` turn them into :mod:`.document` parts (with :mod:`.figures`), and
:mod:`.page` orders the sections and renders the page and the Markdown.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.record.store import StoreError
from benchmarks.report import format as fmt
from benchmarks.report.analysis import analyse
from benchmarks.report.load import load
from benchmarks.report.sections import verdict

__all__ = ["ReportError", "console_summary", "write_report"]

#: the verdict columns the console summary shows, where the table has them
CONSOLE_COLUMNS = (
    "dataset",
    "batch",
    "backend",
    "mode",
    "compiler",
    "device",
    "median samples/s",
    "95% interval",
    "× fastest",
    "best acc",
    "ok / div / fail",
)


class ReportError(StoreError):
    """The report cannot be written (e.g. the folder is read-only); a message, not a traceback."""


def write_report(results_dir: Path | str, target: float | None = None) -> dict[str, Path]:
    """Write report.html, report.md and summary.csv into ``results_dir``; returns their paths
    by kind (``html``, ``md``, ``csv``). ``target``: the test accuracy whose time to reach
    the verdict shows (None: 0.90, or lower where no run reaches it).

    Raises StoreError when the folder is not a results folder, ReportError when it cannot be
    written; anything missing inside it is said on the page.

    >>> write_report("results/latest")["html"]  # doctest: +SKIP
    PosixPath('results/latest/report.html')
    """
    # here, not at the top: the figures load matplotlib, which compare and the console summary do not need
    from benchmarks.report.page import build_sections, render_html, render_markdown

    res = load(results_dir)
    an = analyse(res.runs, res.curves, res.timings, target, res.gpu_names, res.targets)
    sections = build_sections(res, an)
    out = {
        "html": res.path / "report.html",
        "md": res.path / "report.md",
        "csv": res.path / "summary.csv",
    }
    try:
        out["html"].write_text(render_html(res, sections), encoding="utf-8")
        out["md"].write_text(render_markdown(res, sections), encoding="utf-8")
        an.verdict.to_csv(out["csv"], index=False, float_format="%.6g")
    except OSError as exc:
        raise ReportError(
            f"cannot write the report into {str(res.path)!r} ({exc.strerror or exc}); "
            "copy the folder somewhere writable and report that"
        ) from None
    return out


def console_summary(results_dir: Path | str) -> str:
    """The report's verdict table as plain text: a row per batch size x backend x mode x
    compiler x device (throughput is never pooled across batch sizes). StoreError as for the report."""
    res = load(results_dir)
    if res.runs.empty:
        return "(no runs)"
    an = analyse(res.runs, res.curves, res.timings, gpus=res.gpu_names)
    shown = fmt.drop_constant(
        verdict.display(an.verdict, an.target, res.curves is not None), ("dataset",)
    )
    return shown[[c for c in CONSOLE_COLUMNS if c in shown]].to_string(index=False)

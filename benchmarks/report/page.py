"""The page: its sections in order, the style sheet, and the HTML and Markdown assembly.

A new section is a module in :mod:`benchmarks.report.sections` with ``build(res, an) ->
Section``, and one line in :data:`SECTIONS`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

from benchmarks.report.analysis import Analysis
from benchmarks.report.document import Code, Paragraph, Section, para, to_html, to_markdown
from benchmarks.report.load import Results
from benchmarks.report.sections import (
    convergence,
    environment,
    lr_sensitivity,
    optimizers,
    parity,
    problems,
    stock_drift,
    throughput,
    verdict,
)

QUESTION = (
    "Which framework trains this MLP fastest on this machine, which optimizer trains it best, "
    "and do the optimizers behave the same in every framework?"
)

# The verdicts first: what a reader came for, on the first screen; the environment after them.
SECTIONS = (
    verdict.build,
    optimizers.build,
    stock_drift.build,
    environment.build,
    convergence.build,
    lr_sensitivity.build,
    throughput.build,
    parity.build,
    problems.build,
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 color:#1d2430;background:#f6f7f9;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:1.7em;margin:.2em 0}h2{border-bottom:2px solid #e3e6ea;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em;margin:1.3em 0 .4em}
.question{font-size:1.15em;color:#34495e;margin:.3em 0 1em}
nav{font-size:.92em;margin:.6em 0 1em;position:sticky;top:0;z-index:2;background:#fff;
 padding:6px 0;border-bottom:1px solid #e3e6ea}nav a{margin-right:14px;color:#2563a6;text-decoration:none}
section{scroll-margin-top:3.2em}
details{margin:.6em 0}details>summary{cursor:pointer;color:#2563a6;font-size:.92em}
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
table.problems td:last-child{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em;white-space:pre-wrap}
figure{margin:1em 0 1.6em}figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:#4a5563;font-size:.9em;margin-top:4px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:24px}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
table.kv thead{display:none}table.kv{font-size:.84em}
table.verdict th{white-space:normal;vertical-align:bottom}table.verdict th,table.verdict td{padding:4px 6px}
table.tp td{white-space:nowrap;font-variant-numeric:tabular-nums}td.small{font-size:.88em;color:#4a5563}table.verdict td:nth-child(2){font-weight:600}
code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
table.opts th{white-space:normal;vertical-align:bottom}table.opts th,table.opts td{padding:4px 6px}
"""


def build_sections(res: Results, an: Analysis) -> list[Section]:
    """Every section of the page, in order."""
    return [build(res, an) for build in SECTIONS]


def _intro(res: Results) -> tuple[str, str]:
    """The page's title, and the line under it as HTML and as Markdown."""
    name = (res.env.get("sweep") or {}).get("name") or res.path.name
    counts = (
        ", ".join(f"{n} {s}" for s, n in res.runs["status"].value_counts().sort_index().items())
        if len(res.runs)
        else "no runs"
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sub = para(
        f"{len(res.runs)} runs ({counts}); results folder ",
        Code(str(res.path)),
        f"; written {stamp}.",
        cls="note",
    )
    return f"optbench report: {name}", sub


def render_html(res: Results, sections: list[Section]) -> str:
    title, sub = _intro(res)
    return html_page(title, QUESTION, sub, sections, res.notes)


def html_page(
    title: str, question: str, sub: Paragraph, sections: Sequence[Section], notes: Sequence[str]
) -> str:
    """The page shell the report and ``optbench history`` share: self-contained HTML (the
    style sheet inline), the title, the question it answers, the line under it, a link per
    section, the notes as warnings, then the sections."""
    esc = html.escape
    nav = "".join(f"<a href='#{s.id}'>{esc(s.title.split(':')[0])}</a>" for s in sections)
    warn = "".join(to_html(para(n, cls="warn")) for n in notes)
    body = "\n".join(map(to_html, sections))
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>"
        f"<h1>{esc(title)}</h1><p class='question'>{esc(question)}</p>"
        f"{to_html(sub)}<nav>{nav}</nav>{warn}\n{body}\n</main></body></html>\n"
    )


def render_markdown(res: Results, sections: list[Section]) -> str:
    title, sub = _intro(res)
    notes = "".join(f"> {to_markdown(para(n))}\n\n" for n in res.notes)
    body = "\n\n".join(map(to_markdown, sections))
    return f"# {title}\n\n{QUESTION}\n\n{to_markdown(sub)}\n\n{notes}{body}\n"

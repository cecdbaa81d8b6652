"""A small document model and its two renderers: the report's sections are built once from
these parts and rendered to HTML (:func:`to_html`) and to Markdown (:func:`to_markdown`).

Text is plain text everywhere: the HTML renderer escapes it, the Markdown renderer writes it
as it is (escaping pipes inside tables). Emphasis and code are spans, not markup::

    Paragraph(("Record it with ", Code("optbench parity"), "."), "muted")
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

NOTHING = "(nothing to show)"


@dataclass(frozen=True)
class Bold:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


Span = str | Bold | Code


@dataclass(frozen=True)
class Paragraph:
    """Text with inline spans; ``cls`` is its style on the page (note, warn, muted, headline)."""

    spans: tuple[Span, ...]
    cls: str = ""


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 3


@dataclass(frozen=True)
class Table:
    """A DataFrame as a table. ``numeric`` columns are right-aligned in both outputs;
    ``small`` columns are set smaller on the page."""

    df: pd.DataFrame | None
    cls: str = ""
    numeric: frozenset[str] = frozenset()
    small: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Figure:
    caption: str
    uri: str  # a PNG data URI


@dataclass(frozen=True)
class Figures:
    """Figures shown one below the other; where there are none, ``missing`` says why."""

    items: tuple[Figure, ...]
    missing: str = ""


@dataclass(frozen=True)
class Columns:
    """Blocks side by side on the page (one after the other in Markdown)."""

    columns: tuple[tuple[Block, ...], ...]


@dataclass(frozen=True)
class Details:
    """Blocks folded away under a one-line summary on the page (``<details>``); in Markdown,
    the summary in bold and the blocks after it."""

    summary: str
    blocks: tuple[Block, ...]


Block = Paragraph | Heading | Table | Figures | Columns | Details


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def para(*spans: Span, cls: str = "") -> Paragraph:
    """``para("a ", Bold("b"), cls="note")``: a paragraph from its spans."""
    return Paragraph(tuple(s for s in spans if s), cls)


def table(
    df: pd.DataFrame | None,
    cls: str = "",
    numeric: Sequence[str] = (),
    small: Sequence[str] = (),
) -> Table:
    return Table(df, cls, frozenset(numeric), frozenset(small))


def figures(items: Sequence[tuple[str, str]] | Sequence[Figure], missing: str = "") -> Figures:
    """Figures from (caption, data URI) pairs."""
    return Figures(tuple(f if isinstance(f, Figure) else Figure(*f) for f in items), missing)


# --- HTML ------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _span_html(span: Span) -> str:
    if isinstance(span, Bold):
        return f"<b>{_esc(span.text)}</b>"
    if isinstance(span, Code):
        return f"<code>{_esc(span.text)}</code>"
    return _esc(span)


def to_html(part: Block | Section) -> str:
    """The HTML of a block or a section."""
    if isinstance(part, Section):
        body = "\n".join(h for h in map(to_html, part.blocks) if h)
        return f"<section id='{_attr(part.id)}'><h2>{_esc(part.title)}</h2>\n{body}\n</section>"
    if isinstance(part, Paragraph):
        inner = "".join(map(_span_html, part.spans))
        return f"<p class='{_attr(part.cls)}'>{inner}</p>" if part.cls else f"<p>{inner}</p>"
    if isinstance(part, Heading):
        return f"<h{part.level}>{_esc(part.text)}</h{part.level}>"
    if isinstance(part, Table):
        return _table_html(part)
    if isinstance(part, Figures):
        if not part.items:
            return to_html(para(part.missing, cls="muted")) if part.missing else ""
        return "".join(
            f"<figure><img src='{_attr(f.uri)}' alt='{_attr(f.caption)}'>"
            f"<figcaption>{_esc(f.caption)}</figcaption></figure>"
            for f in part.items
        )
    if isinstance(part, Columns):
        cols = "".join(
            "<div>" + "".join(map(to_html, blocks)) + "</div>" for blocks in part.columns
        )
        return f"<div class='cols'>{cols}</div>"
    if isinstance(part, Details):
        inner = "\n".join(h for h in map(to_html, part.blocks) if h)
        return f"<details><summary>{_esc(part.summary)}</summary>\n{inner}\n</details>"
    raise TypeError(f"not a document part: {type(part).__name__}")


def _classes(t: Table, col: str) -> str:
    classes = [c for c, on in (("num", col in t.numeric), ("small", col in t.small)) if on]
    return f" class='{' '.join(classes)}'" if classes else ""


def _table_html(t: Table) -> str:
    if t.df is None or t.df.empty:
        return to_html(para(NOTHING, cls="muted"))
    cols = [str(c) for c in t.df.columns]
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td{_classes(t, c)}>{_esc(cell(v))}</td>" for c, v in zip(cols, row))
        + "</tr>"
        for row in t.df.itertuples(index=False)
    )
    return (
        f"<div class='scroll'><table class='{_attr(t.cls)}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


# --- Markdown --------------------------------------------------------------------------


def _span_md(span: Span) -> str:
    if isinstance(span, Bold):
        return f"**{span.text}**"
    if isinstance(span, Code):
        return f"`{span.text}`"
    return span


def to_markdown(part: Block | Section) -> str:
    """The Markdown of a block or a section ("" for a block with nothing to say)."""
    if isinstance(part, Section):
        body = "\n\n".join(m for m in map(to_markdown, part.blocks) if m)
        return f"## {part.title}\n\n{body}"
    if isinstance(part, Paragraph):
        return "".join(map(_span_md, part.spans))
    if isinstance(part, Heading):
        return f"{'#' * part.level} {part.text}"
    if isinstance(part, Table):
        return _table_md(part)
    if isinstance(part, Figures):
        if not part.items:
            return part.missing
        return "(" + "; ".join(f.caption for f in part.items) + ": figures in report.html)"
    if isinstance(part, Columns):
        return "\n\n".join(m for blocks in part.columns for m in map(to_markdown, blocks) if m)
    if isinstance(part, Details):
        inner = [m for m in map(to_markdown, part.blocks) if m]
        return "\n\n".join([f"**{part.summary}**", *inner])
    raise TypeError(f"not a document part: {type(part).__name__}")


def _table_md(t: Table) -> str:
    if t.df is None or t.df.empty:
        return NOTHING
    return markdown_table(t.df.columns, t.df.itertuples(index=False), t.numeric)


def markdown_table(
    columns: Iterable[Any],
    rows: Iterable[Iterable[Any]],
    numeric: Collection[str] = (),
    text: Callable[[Any], str] | None = None,
) -> str:
    """A Markdown table, the one renderer of them (the report's and compare's): every cell
    as ``text`` writes it (default :func:`cell`), ``|`` escaped and newlines made spaces so
    that an error message cannot break the table; ``numeric`` columns right-aligned.

    >>> print(markdown_table(["a", "n"], [["x|y", 1.5]], numeric={"n"}))
    | a | n |
    |---|---:|
    | x\\|y | 1.5 |
    """
    write = text or cell

    def esc(v: Any) -> str:
        return write(v).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in columns]
    lines = [
        "| " + " | ".join(map(esc, cols)) + " |",
        "|" + "|".join("---:" if c in numeric else "---" for c in cols) + "|",
    ]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return "\n".join(lines)


def cell(v: Any) -> str:
    """A table cell's text: "-" for a missing value, floats in their shortest form."""
    if v is None or (isinstance(v, float) and not v == v):
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)

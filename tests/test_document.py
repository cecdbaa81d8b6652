"""The document model renders the same parts to HTML and to Markdown."""

from __future__ import annotations

import html
import math
import re

import pandas as pd
import pytest

from benchmarks.report.document import (
    Bold,
    Code,
    Columns,
    Heading,
    Section,
    figures,
    markdown_table,
    para,
    table,
    to_html,
    to_markdown,
)

URI = "data:image/png;base64,iVBORw0KGgo="


def text_of_html(h: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", h))


def text_of_markdown(m: str) -> str:
    return m.replace("**", "").replace("`", "")


@pytest.mark.parametrize(
    "p",
    [
        para("plain"),
        para("a <b> & 'c' \"d\"", cls="note"),
        para("Fastest at ", Bold("x<y"), "; ", Code("optbench run --sweep a&b"), "."),
        para(Bold("First"), ": then ", Bold("second"), cls="headline"),
    ],
)
def test_a_paragraph_says_the_same_in_both(p):
    assert text_of_html(to_html(p)) == text_of_markdown(to_markdown(p))


def test_paragraph_spans_and_escaping():
    p = para("1 < 2 & ", Bold("<b>"), " ", Code("a|b"), cls="warn")
    assert to_html(p) == "<p class='warn'>1 &lt; 2 &amp; <b>&lt;b&gt;</b> <code>a|b</code></p>"
    assert to_markdown(p) == "1 < 2 & **<b>** `a|b`"
    assert to_html(para("x")) == "<p>x</p>"


def test_markdown_table_escapes_pipes_and_newlines_with_any_cell_writer():
    assert markdown_table(["a|b", "n"], [["x|y\nz", 1.5]], numeric={"n"}).splitlines() == [
        "| a\\|b | n |",
        "|---|---:|",
        "| x\\|y z | 1.5 |",
    ]
    assert markdown_table(["v"], [[math.nan]], text=str).splitlines()[2] == "| nan |"


def test_table_cells_alignment_and_escaping():
    t = table(
        pd.DataFrame(
            {
                "name": ["a|b", "<i>"],
                "lr": [0.001, math.nan],
                "count": [3, 4],
                "note": [None, "x\ny"],
            }
        ),
        "verdict",
        numeric=("lr", "count"),
        small=("note",),
    )
    md = to_markdown(t).splitlines()
    assert md[0] == "| name | lr | count | note |"
    assert md[1] == "|---|---:|---:|---|"  # lr and count right-aligned, as td.num below
    assert md[2] == "| a\\|b | 0.001 | 3 | - |"
    assert md[3] == "| <i> | - | 4 | x y |"
    h = to_html(t)
    assert h.startswith("<div class='scroll'><table class='verdict'><thead><tr><th>name</th>")
    assert (
        "<td>a|b</td><td class='num'>0.001</td><td class='num'>3</td><td class='small'>-</td>" in h
    )
    assert "<td>&lt;i&gt;</td><td class='num'>-</td>" in h


def test_an_empty_table():
    for t in (table(pd.DataFrame()), table(None)):
        assert to_markdown(t) == "(nothing to show)"
        assert to_html(t) == "<p class='muted'>(nothing to show)</p>"


def test_figures():
    f = figures([("Loss vs step", URI), ("Accuracy 'per' lr", URI)])
    h = to_html(f)
    assert h.count("<figure>") == 2 and h.count(f"src='{URI}'") == 2
    assert "alt='Accuracy &#x27;per&#x27; lr'" in h
    assert "<figcaption>Accuracy 'per' lr</figcaption>" in h
    assert to_markdown(f) == "(Loss vs step; Accuracy 'per' lr: figures in report.html)"
    none = figures([], "No run finished: nothing to plot.")
    assert to_html(none) == "<p class='muted'>No run finished: nothing to plot.</p>"
    assert to_markdown(none) == "No run finished: nothing to plot."
    assert to_html(figures([])) == "" and to_markdown(figures([])) == ""


def test_section_and_columns():
    s = Section(
        "lr-sensitivity",
        "Learning rates & more",
        [
            Columns(((Heading("Left"), para("l")), (Heading("Right"), para("r")))),
            figures([]),
            Heading("Largest <stable> lr"),
        ],
    )
    assert to_html(s) == (
        "<section id='lr-sensitivity'><h2>Learning rates &amp; more</h2>\n"
        "<div class='cols'><div><h3>Left</h3><p>l</p></div><div><h3>Right</h3><p>r</p></div></div>\n"
        "<h3>Largest &lt;stable&gt; lr</h3>\n</section>"
    )
    assert to_markdown(s) == (
        "## Learning rates & more\n\n### Left\n\nl\n\n### Right\n\nr\n\n### Largest <stable> lr"
    )


def test_not_a_part():
    with pytest.raises(TypeError, match="not a document part"):
        to_html("<p>raw html</p>")  # type: ignore[arg-type]

"""Problems: every run that did not finish ok, and what happened to it."""

from __future__ import annotations

from benchmarks.report.analysis import Analysis
from benchmarks.report.document import Section, para, table
from benchmarks.report.load import Results


def build(res: Results, an: Analysis) -> Section:
    bad = an.problems
    if bad.empty:
        msg = "No runs were recorded." if res.runs.empty else "None: every run finished ok."
        return Section("problems", "Problems", [para(msg)])
    counts = ", ".join(f"{n} {s}" for s, n in bad["status"].value_counts().sort_index().items())
    return Section(
        "problems",
        "Problems",
        [
            para(f"{len(bad)} run(s) did not finish ok: {counts}."),
            table(bad, "problems", numeric=("lr", "batch_size", "seed")),
        ],
    )

"""Problems: every run that did not finish ok, and what happened to it."""

from __future__ import annotations

from benchmarks.report import format as fmt
from benchmarks.report.analysis import Analysis, problem_groups
from benchmarks.report.document import Section, para, table
from benchmarks.report.load import Results


def build(res: Results, an: Analysis) -> Section:
    bad = an.problems
    if bad.empty:
        msg = "No runs were recorded." if res.runs.empty else "None: every run finished ok."
        return Section("problems", "Problems", [para(msg)])
    counts = ", ".join(f"{n} {s}" for s, n in bad["status"].value_counts().sort_index().items())
    groups = problem_groups(bad)
    blocks = [para(f"{len(bad)} run(s) did not finish ok: {counts}.")]
    if len(groups) < len(bad) or groups["last_frames"].astype(bool).any():
        blocks += [
            para(
                "The same problem once, with how many runs had it and, where the worker raised, "
                "the last lines of its traceback (the whole one is in runs.parquet, column traceback).",
                cls="note",
            ),
            table(
                groups.rename(columns={"last_frames": "traceback (last lines)"}),
                "problems",
                numeric=("runs",),
            ),
            para("Every run:", cls="note"),
        ]
    per_run = fmt.drop_constant(bad.drop(columns="last_frames"), ("dataset", "variant"))
    blocks.append(table(per_run, "problems", numeric=("lr", "batch_size", "seed")))
    return Section("problems", "Problems", blocks)

"""Convergence: loss and accuracy curves of every backend at one learning rate per panel;
a large grid as a figure per optimizer, each folded under its name (:mod:`..grids`)."""

from __future__ import annotations

from benchmarks.report import figures, grids
from benchmarks.report.analysis import Analysis, series
from benchmarks.report.document import Details, Section, para
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results

NOTE = (
    "Each panel uses one learning rate for all backends: the lr with the best median final test "
    "accuracy across backends among those where no backend diverged (named in the panel title). "
    "Lines are the mean over seeds; the shaded band is the min-max over seeds where there are "
    "several. Training loss is the mean minibatch loss of the block ending at that step. Where backends "
    "agree, their curves coincide; they are drawn as nested strokes of decreasing width so that each stays "
    "visible."
)


def build(res: Results, an: Analysis) -> Section:
    style = figures.styles(series(an.spec))
    groups = grids.optimizer_groups(res.runs)
    drawn = [
        (opt, grids.convergence(an.spec, res.curves, an.convergence_lrs, style, opt))
        for opt in (groups if not res.runs.empty else [])
    ]
    if not any(figs for _, figs in drawn):
        why = (
            "curves.parquet is missing, so there are no curves."
            if res.curves is None
            else grids.why_nothing(res.runs, "curves")
        )
        return Section("convergence", "Convergence", [figure_block([], why)])
    blocks = [para(NOTE, cls="note")]
    if groups == [None]:
        blocks.append(figure_block(drawn[0][1]))
        return Section("convergence", "Convergence", blocks)
    blocks.append(para(grids.PER_OPTIMIZER, cls="note"))
    for opt, figs in drawn:
        block = figure_block(figs, f"{opt}: no run finished, so there are no curves.")
        blocks.append(Details(f"{opt}: training loss and test accuracy curves", (block,)))
    return Section("convergence", "Convergence", blocks)

"""Convergence: loss and accuracy curves of every backend at one learning rate per panel."""

from __future__ import annotations

from benchmarks.report import figures
from benchmarks.report.analysis import Analysis, series
from benchmarks.report.document import Section, para
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results


def build(res: Results, an: Analysis) -> Section:
    figs = (
        figures.convergence(
            an.spec, res.curves, an.convergence_lrs, figures.styles(series(an.spec))
        )
        if not res.runs.empty
        else []
    )
    why = (
        "curves.parquet is missing, so there are no curves."
        if res.curves is None
        else "No run finished, so there are no curves."
    )
    blocks = []
    if figs:
        blocks.append(
            para(
                "Each panel uses one learning rate for all backends: the lr with the best median final test "
                "accuracy across backends among those where no backend diverged (named in the panel title). "
                "Lines are the mean over seeds; the shaded band is the min-max over seeds where there are "
                "several. Training loss is the mean minibatch loss of the block ending at that step. Where backends "
                "agree, their curves coincide; they are drawn as nested strokes of decreasing width so that each stays "
                "visible.",
                cls="note",
            )
        )
    blocks.append(figure_block(figs, why))
    return Section("convergence", "Convergence", blocks)

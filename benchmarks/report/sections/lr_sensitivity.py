"""Learning-rate sensitivity: final accuracy and loss against the learning rate, heatmaps per
learning rate x batch size, and the largest stable learning rate of each backend."""

from __future__ import annotations

from benchmarks.report import figures
from benchmarks.report import format as fmt
from benchmarks.report.analysis import Analysis, series, stable_lr_splits
from benchmarks.report.document import Heading, Section, para, table
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results


def build(res: Results, an: Analysis) -> Section:
    ran = not res.runs.empty
    style = figures.styles(series(res.runs))
    blocks = [
        para(
            "Final test accuracy and loss against the learning rate, one line per backend (mean over seeds); "
            "an x at the top marks a learning rate where a run diverged. Identical lines mean the backends "
            'agree; the heatmaps show the same accuracies per learning rate x batch size ("div" = diverged).',
            cls="note",
        ),
        figure_block(
            figures.learning_rate(res.runs, an.means, style) if ran else [],
            "No run finished: nothing to plot.",
        ),
        figure_block(figures.heatmaps(an.means) if ran else []),
        Heading("Largest stable learning rate per batch size"),
        para(
            "Largest lr at which every run of the cell finished without diverging; "
            '"≥" means the largest lr tried was stable (the edge lies beyond the sweep), '
            '"none" that every lr tried diverged.',
            cls="note",
        ),
        table(fmt.drop_constant(an.stable_lrs)),
    ]
    splits = stable_lr_splits(an.stable_lrs)
    if splits == []:
        blocks.append(para("All backends agree on the largest stable learning rate."))
    elif splits:
        blocks.append(
            para(
                "Backends disagree on the largest stable learning rate for: "
                + "; ".join(f"{opt} at {col}" for opt, col in splits)
                + "."
            )
        )
    return Section("lr-sensitivity", "Learning-rate sensitivity", blocks)

"""Learning-rate sensitivity: final accuracy and loss against the learning rate, heatmaps per
learning rate x batch size, and the largest stable learning rate of each backend."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmarks.report import figures, grids
from benchmarks.report import format as fmt
from benchmarks.report.analysis import DISAGREE_ACC, Analysis, series, stable_lr_splits
from benchmarks.report.document import Details, Heading, Section, para, table
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results

NOTHING_OK = "No run finished: nothing to plot."


def build(res: Results, an: Analysis) -> Section:
    style = figures.styles(series(res.runs))
    blocks = [
        para(
            "Final test accuracy and loss against the learning rate, one line per backend (mean over seeds); "
            "an x at the top marks a learning rate where a run diverged. Lines that lie on each other mean "
            'the backends agree; the heatmaps show the same accuracies per learning rate x batch size ("div" = '
            "diverged); the configurations where they do not are listed below, with the reason.",
            cls="note",
        ),
        *_figures(res, an, style),
        Heading("Largest stable learning rate per batch size"),
        para(
            "Largest lr at which every run of the cell finished without diverging; "
            '"≥" means the largest lr tried was stable (the edge lies beyond the sweep), '
            '"none" that every lr tried diverged.',
            cls="note",
        ),
        table(fmt.drop_constant(an.stable_lrs)),
    ]
    blocks += disagreement_blocks(an.disagreements)
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


def _figures(res: Results, an: Analysis, style: dict) -> list:
    """Accuracy and loss against the lr, then the heatmaps: in one grid, or a fold per
    optimizer where the grid is large (:func:`benchmarks.report.grids.optimizer_groups`)."""
    if res.runs.empty:
        return [figure_block([], NOTHING_OK)]
    groups = grids.optimizer_groups(res.runs)
    ok = not an.means.empty and an.means["ok"].sum() > 0
    why = (
        grids.ONE_LR
        if ok and grids.one_lr_only(an.means)
        else grids.why_nothing(res.runs, "final accuracies")
    )
    if groups == [None]:
        return [
            figure_block(grids.learning_rate(an.spec, an.means, style), why),
            figure_block(grids.heatmaps(an.means)),
        ]
    out = [para(grids.PER_OPTIMIZER, cls="note")]
    for opt in groups:
        figs = grids.learning_rate(an.spec, an.means, style, opt) + grids.heatmaps(an.means, opt)
        summary = f"{opt}: final accuracy and loss against the learning rate, and its heatmaps"
        own = an.means[an.means["optimizer"] == opt]
        said = grids.ONE_LR if ok and grids.one_lr_only(own) else why
        out.append(Details(summary, (figure_block(figs, f"{opt}: {said}"),)))
    return out


def disagreement_blocks(d: pd.DataFrame) -> list:
    """The configurations whose final accuracy differs between backends, and why."""
    head = Heading(
        f"Where backends disagree (final accuracy more than {100 * DISAGREE_ACC:g} points apart)"
    )
    if d.empty:
        return [head, para("Nowhere: every configuration ends within that of the others.")]
    return [
        head,
        para(
            "Parity shows the same step in every backend; here the trajectories still part: compare "
            "these configurations' accuracies with care, and `optbench compare` allows them to move "
            "by as much as their spread.",
            cls="note",
        ),
        disagreement_table(d),
    ]


def disagreement_table(d: pd.DataFrame) -> Any:
    """``analysis.disagreements`` rows as a table (also the optimizer verdict's, at its
    best learning rates)."""
    shown = pd.DataFrame(
        {
            "dataset": d["dataset"],
            "device": d["device"],
            "optimizer": d["optimizer"],
            "lr": d["lr"].map(lambda v: f"{v:g}"),
            "batch": d["batch_size"].astype(int),
            "between backends": (100 * d["backend_spread"]).map(lambda v: f"{v:.1f} points"),
            "between seeds": (100 * d["seed_spread"]).map(lambda v: f"{v:.1f} points"),
            "reason": d["reason"],
        }
    )
    return table(fmt.drop_constant(shown, ("dataset", "device")))

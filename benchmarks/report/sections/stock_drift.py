"""What the stock defaults change: each framework's own optimizer, at its default arguments,
against the spec (one formula everywhere) at the optimizer's best spec learning rate."""

from __future__ import annotations

import pandas as pd

from benchmarks.report import figures
from benchmarks.report import format as fmt
from benchmarks.report.analysis import GROUP, Analysis
from benchmarks.report.document import Section, para, table
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results

TITLE = "What the stock defaults change"
METRIC = {"val_acc": "validation accuracy", "train_loss": "training loss", "": "-"}


def build(res: Results, an: Analysis) -> Section:
    oa = an.optimizers
    if oa is None or not oa.stock_runs:
        return Section(
            "stock-drift",
            TITLE,
            [
                para(
                    "This sweep ran no stock-variant runs (each framework's own optimizer at its "
                    "default arguments), so there is nothing to compare.",
                    cls="muted",
                )
            ],
        )
    d = oa.drift
    if d.empty:
        return Section(
            "stock-drift",
            TITLE,
            [
                para(
                    f"{oa.stock_runs} stock-variant runs, none at an optimizer's best spec learning "
                    "rate (or no best spec learning rate was chosen), so there is nothing to compare.",
                    cls="muted",
                )
            ],
        )
    label = fmt.labeller(d)
    shown = pd.DataFrame(
        {
            "dataset": d["dataset"],
            "batch": d["batch_size"].astype(int),
            "optimizer": [
                o if s == "constant" else f"{o} ({s})"
                for o, s in zip(d["optimizer"], d["schedule"])
            ],
            "lr": d["lr"].map(lambda v: f"{v:g}"),
            "stock run by": [label(r) for r in d.to_dict("records")],
            "stock ok / div": [f"{a} / {b}" for a, b in zip(d["stock_ok"], d["stock_diverged"])],
            "test acc stock − spec": d["acc_diff"].map(lambda v: fmt.num(v, "+.3f")),
            "largest curve gap": [
                f"{fmt.num(g, '.3f')} ({METRIC.get(m, m)}, step {fmt.num(s, '.0f')})"
                if g == g
                else "-"
                for g, m, s in zip(d["gap"], d["gap_metric"], d["gap_step"])
            ],
            "stock spread across frameworks": d["stock_spread"].map(lambda v: fmt.num(v, ".3f")),
        }
    )
    style = figures.styles([tuple(k) for k in d[GROUP].drop_duplicates().itertuples(index=False)])
    series = fmt.path_label(oa.series) if oa.series else "spec"
    return Section(
        "stock-drift",
        TITLE,
        [
            para(
                "Each framework's stock optimizer (its own implementation at its default arguments: "
                "the learning rate, momentum and the switches that choose the algorithm come from the "
                "sweep, everything else, e.g. epsilon, is the framework's) at the optimizer's best "
                f"spec learning rate, against the spec runs of {series} at the same seeds (same "
                "initial weights and batches). Test acc: mean over seeds, stock minus spec; the "
                "largest gap between the mean curves (validation accuracy, else training loss) and "
                "where it is; the spread: max - min of the frameworks' stock test accuracies.",
                cls="note",
            ),
            table(fmt.drop_constant(shown, ("dataset",)), numeric=("batch", "lr")),
            figure_block(figures.stock_drift(oa.drift_curves, series, style)),
        ],
    )

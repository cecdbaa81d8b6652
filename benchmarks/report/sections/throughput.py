"""Throughput scaling: samples/s against the batch size, pooled and per optimizer."""

from __future__ import annotations

import pandas as pd

from benchmarks.report import figures, grids
from benchmarks.report import format as fmt
from benchmarks.report.analysis import GROUP, Analysis, series
from benchmarks.report.document import Heading, Section, para, table
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results


def build(res: Results, an: Analysis) -> Section:
    figs = (
        figures.throughput(an.rates, an.by_batch, an.by_optimizer, figures.styles(series(res.runs)))
        if not res.runs.empty
        else []
    )
    why = (
        "timings.parquet is missing, so there is no per-block throughput."
        if res.timings is None
        else grids.why_nothing(
            res.runs, "timed blocks", "No ok run has timed blocks: nothing to plot."
        )
    )
    blocks = [figure_block(figs, why)]
    shown = by_optimizer(an.by_optimizer)
    if not shown.empty:
        blocks += [
            Heading("Median samples/s per optimizer (95% interval)"),
            para(
                "The verdict pools both optimizers; their steps cost differently in some backends, "
                "which widens the pooled interval. Same method as the verdict, per optimizer.",
                cls="note",
            ),
            table(shown, "tp"),
        ]
    return Section("throughput", "Throughput scaling", blocks)


def by_optimizer(tp: pd.DataFrame) -> pd.DataFrame:
    """Median samples/s (95% interval) per series x optimizer, a column per batch size."""
    if tp.empty:
        return pd.DataFrame()
    tp = tp.assign(
        cell=[
            f"{fmt.num(r.samples_per_s)} ({fmt.interval(r.ci_low, r.ci_high)})"
            for r in tp.itertuples()
        ]
    )
    index = [*GROUP, "dataset", "optimizer"]
    wide = tp.pivot(index=index, columns="batch_size", values="cell").fillna("-")
    wide.columns = [f"batch {int(c)}" for c in wide.columns]
    return fmt.drop_constant(wide.reset_index())

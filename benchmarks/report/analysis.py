"""Every statistic the report, ``optbench compare`` and the console summary show, computed
once (:func:`analyse`): the run tables as read (:mod:`.runs`), the framework comparison
(:mod:`.frameworks`) and the optimizer verdict (:mod:`.optimizers`). Their names are
re-exported here, the one module the sections read.

Statuses are :mod:`benchmarks.record.schema`'s: "failed" counts :data:`~benchmarks.record.schema.FAILED`
runs (error, timeout, crashed); skipped runs are counted apart.

Every figure here compares frameworks on the *spec* variant (each framework corrected to one
formula); *stock* runs (a framework's own optimizer at its defaults) enter only the
optimizer analysis' drift (:mod:`benchmarks.report.optimizers`), and the problems. The
verdict and the throughput compare every series on the seeds all of them ran
(:func:`shared_seeds`): a backend given extra seeds for the optimizer verdict (a sweep's
``[optimizer_seeds]``) is not pooled over more seeds than the others. Every grouping holds
the data set (a sweep may train on several). Tables written before a column existed are
read with :func:`with_defaults`.

:func:`analyse` computes everything a report shows, once::

    an = analyse(runs, curves, timings)
    an.verdict  # one row per batch size x backend x mode x compiler x device
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from benchmarks.core.flops import *  # noqa: F403 - re-exported: the sections read them here
from benchmarks.core.flops import peak_of
from benchmarks.report.frameworks import *  # noqa: F403
from benchmarks.report.frameworks import (
    block_rates,
    choose_target,
    config_means,
    convergence_lrs,
    disagreements,
    stable_lrs,
    throughput,
    time_to_target,
    verdict,
)
from benchmarks.report.optimizers import OptimizerAnalysis, analyse_optimizers
from benchmarks.report.runs import *  # noqa: F403
from benchmarks.report.runs import (
    GROUP,
    STOCK,
    THROUGHPUT_COLUMNS,
    curves_with_defaults,
    on_shared_seeds,
    problems,
    seeds_left_out,
    shared_seeds,
    spec_runs,
    with_defaults,
)


@dataclass
class Analysis:
    target: float
    target_why: str
    # rates, by_batch, by_optimizer, time_to_target and verdict: on the shared seeds
    rates: pd.DataFrame | None  # block_rates; None where no timings were recorded
    by_batch: pd.DataFrame | None  # throughput per data set x batch size x series
    by_optimizer: pd.DataFrame  # throughput per series x data set x optimizer x batch size
    means: pd.DataFrame  # config_means of every spec run, all seeds (lr sensitivity)
    time_to_target: pd.DataFrame
    verdict: pd.DataFrame
    stable_lrs: pd.DataFrame
    convergence_lrs: dict[tuple[str, str, int], float]
    problems: pd.DataFrame
    disagreements: pd.DataFrame  # cells where backends' accuracies part (with the reason)
    peak: tuple[str, float] | None = None  # the GPU and its float32 peak TFLOP/s, if known
    spec: pd.DataFrame | None = None  # the spec runs every framework comparison uses
    optimizers: OptimizerAnalysis | None = None  # the optimizer verdict
    stock_runs: int = 0  # runs of the stock variant (left out of the framework comparison)
    seeds: list[float] = field(default_factory=list)  # the seeds the verdict compares on
    seeds_left_out: pd.DataFrame | None = None  # seeds_left_out of the spec runs


def analyse(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    timings: pd.DataFrame | None,
    target: float | None = None,
    gpus: list[str] | None = None,
    targets: dict[str, float] | None = None,
) -> Analysis:
    """Every statistic of a results folder's tables, computed once (``target``: the test
    accuracy to reach, None to choose it with :func:`choose_target`; ``gpus``: the GPU names
    of environment.json, for the fraction of peak; ``targets``: the validation accuracy to
    reach per data set for the optimizer verdict, from the sweep's settings, see
    :func:`benchmarks.report.optimizers.analyse_optimizers`).

    The framework comparison (throughput, verdict, accuracies, disagreements) uses the spec
    runs, the verdict and the throughput those on the seeds every series ran
    (:func:`shared_seeds`); the problems every run."""
    runs, curves = with_defaults(runs), curves_with_defaults(curves)
    spec = spec_runs(runs)
    compared = on_shared_seeds(spec)
    tgt, why = choose_target(compared, curves, target)
    rates = block_rates(compared, timings) if timings is not None else None
    by_batch = throughput(rates, ["dataset", "batch_size", *GROUP]) if rates is not None else None
    opt_by = [*GROUP, "dataset", "optimizer", "batch_size"]
    by_opt = (
        throughput(rates, opt_by)
        if rates is not None and len(rates)
        else pd.DataFrame(columns=[*opt_by, *THROUGHPUT_COLUMNS])
    )
    means = config_means(spec)
    ttt = time_to_target(compared, curves, tgt)
    on_gpu = "device" in runs and (runs["device"] == "gpu").any()
    peak = peak_of(gpus or []) if on_gpu else None
    return Analysis(
        tgt,
        why,
        rates,
        by_batch,
        by_opt,
        means,
        ttt,
        verdict(compared, by_batch, config_means(compared), ttt, peak[1] if peak else None),
        stable_lrs(means),
        convergence_lrs(means),
        problems(runs),
        disagreements(spec),
        peak,
        spec,
        analyse_optimizers(runs, curves, targets),
        int((runs["variant"] == STOCK).sum()),
        shared_seeds(spec),
        seeds_left_out(spec),
    )

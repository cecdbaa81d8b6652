"""Throughput statistics shared by the report and the regression comparison.

Every timed block of a run gives one throughput (steps x batch_size / seconds). Groups of
runs are summarised by the median of their pooled blocks, with a two-stage bootstrap
(runs resampled, then blocks within each run) so that run-to-run spread counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

N_BOOT = 1000

#: the statuses whose runs trained, and the one whose last block is dropped: the record's
#: names (``benchmarks.record.schema.FINISHED``, ``Status.DIVERGED``), spelled here because
#: core sits below record; ``tests/test_runner.py`` holds them equal
FINISHED = ("diverged", "ok")
DIVERGED = "diverged"
#: the phase of the blocks that count (``benchmarks.record.schema.PHASES``' last)
TIMED = "timed"


def block_rates(runs: pd.DataFrame, timings: pd.DataFrame | None, keep: list[str]) -> pd.DataFrame:
    """One row per timed block of an ok or diverged run: ``run_id``, the ``keep`` columns
    of its run, and ``rate`` (samples/s).

    Blocks of at least half the full size (``full_block_steps``: ``block_steps``, or a whole
    epoch where an epoch is shorter); all timed blocks where a run has none. The runner computes its
    ``samples_per_s`` with this function too. Diverged runs count up to the block that diverged, which is dropped (NaN/inf
    arithmetic can run at another speed); leaving them out entirely would unbalance the
    pools: a backend's fast SGD runs diverge at high learning rates while its slower Adam
    runs stay, skewing its median.
    """
    cols = ["run_id", *keep, "rate"]
    if timings is None or timings.empty or runs is None or runs.empty:
        return pd.DataFrame(columns=cols)
    live = runs[runs["status"].isin(FINISHED)]
    # a full block: block_steps, or a whole epoch where an epoch is shorter (runner.py)
    size = "full_block_steps" if "full_block_steps" in live else "block_steps"
    extra = [c for c in ("batch_size", size, "status") if c not in keep]
    t = timings[timings["phase"] == TIMED].merge(live[["run_id", *keep, *extra]], on="run_id")
    last = t.groupby("run_id")["block"].transform("max")
    t = t[~((t["status"] == DIVERGED) & (t["block"] == last))]
    t = t[t["seconds"] > 0]
    full_size = t[size].fillna(t.groupby("run_id")["steps"].transform("max"))
    # at least half a full block: blocks cut short by an epoch end or an evaluation point
    # still count, a stub of a step or two (where one sync weighs more) does not
    t = t.assign(full=t["steps"] * 2 >= full_size)
    has_full = t.groupby("run_id")["full"].transform("any")
    t = t[t["full"] | ~has_full]
    return t.assign(rate=t["steps"] * t["batch_size"] / t["seconds"])[cols].reset_index(drop=True)


def per_run(rates: pd.DataFrame) -> list[np.ndarray]:
    """The block throughputs of each run in ``rates`` (rows of :func:`block_rates`)."""
    return [g["rate"].to_numpy(dtype=float) for _, g in rates.groupby("run_id", sort=True)]


def bootstrap_medians(runs: list[np.ndarray], n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``n_boot`` replicates of the pooled median, resampling runs and then blocks within runs.

    A run drawn k times counts with weight k (a weighted median), which keeps this vectorised.
    """
    runs = [np.asarray(r, float) for r in runs if len(r)]
    if not runs:
        return np.full(n_boot, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(runs), size=(n_boot, len(runs)))
    counts = np.stack([(picks == i).sum(axis=1) for i in range(len(runs))], axis=1)
    values = np.concatenate(
        [r[rng.integers(0, len(r), size=(n_boot, len(r)))] for r in runs], axis=1
    )
    weights = np.concatenate(
        [np.repeat(counts[:, [i]], len(r), axis=1) for i, r in enumerate(runs)], axis=1
    )
    order = np.argsort(values, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    idx = (cum < cum[:, -1:] / 2).sum(axis=1)
    return values[np.arange(n_boot), idx]


def median_ci(
    runs: list[np.ndarray], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Median of the pooled blocks and its 95% two-stage bootstrap interval."""
    runs = [np.asarray(r, float) for r in runs if len(r)]
    if not runs:
        return (math.nan, math.nan, math.nan)
    lo, hi = np.percentile(bootstrap_medians(runs, n_boot, seed), [2.5, 97.5])
    return (float(np.median(np.concatenate(runs))), float(lo), float(hi))


def paired_ratio(
    base: list[np.ndarray],
    cur: list[np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
    robust: bool = False,
) -> tuple[float, float, float]:
    """The change between two sides whose runs are matched pairs (the same configuration,
    ``base[i]`` and ``cur[i]``): current / baseline, with one-sided ``level`` bounds (95%:
    a 90% interval; "slower" and "faster" are one-sided questions).

    Each run is summarised by the geometric mean of its block throughputs, each pair by
    the log ratio of those, and the group by the mean of the pairs' log ratios weighted by
    their block counts; the bounds come from a bootstrap (blocks resampled within each run,
    then pairs resampled). Pairing cancels what differs between the runs of a group
    (learning rate, when it ran) instead of letting it widen the interval. On the committed
    baseline's real block timings, both sides resampled: a 10% drop is caught in 97% of
    trials and noise alone flagged in 0.5% (tests/test_baselines.py), against 18% and 0% for
    the pooled medians this replaced.

    ``robust``: the group's change is the median of the pairs' log ratios (unweighted),
    bootstrapped the same way: one pair of runs hit by a hiccup (a run 5x slower than its
    neighbour, seen on a shared VM) moves a mean of 12 pairs by 12%, a median hardly."""
    pairs = [
        (np.log(np.asarray(b, float)), np.log(np.asarray(c, float))) for b, c in zip(base, cur)
    ]
    pairs = [(b, c) for b, c in pairs if len(b) and len(c)]
    if not pairs:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)

    def boot(r: np.ndarray) -> np.ndarray:
        return r[rng.integers(0, len(r), size=(n_boot, len(r)))].mean(axis=1)

    w = np.array([min(len(b), len(c)) for b, c in pairs], float)
    each = np.array([c.mean() - b.mean() for b, c in pairs])
    point = float(np.median(each) if robust else np.average(each, weights=w))
    logs = np.stack([boot(c) - boot(b) for b, c in pairs], axis=1)  # (n_boot, pairs)
    picks = rng.integers(0, len(pairs), size=(n_boot, len(pairs)))
    drawn = np.take_along_axis(logs, picks, axis=1)
    if robust:
        reps = np.median(drawn, axis=1)
    else:
        reps = (drawn * w[picks]).sum(axis=1) / w[picks].sum(axis=1)
    lo, hi = np.percentile(reps, [100 * (1 - level), 100 * level])
    return (math.exp(point), math.exp(lo), math.exp(hi))


def round_ratio(
    a: list[np.ndarray],
    b: list[np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.975,
) -> tuple[float, float, float]:
    """``a / b`` for two variants timed side by side in rounds
    (:func:`benchmarks.run.paths.interleaved`): ``a[i][r]`` is instance ``i`` of ``a`` (built
    apart, with its own allocations) in round ``r``, and ``b[i][r]`` beside it.

    Each instance pair's change is the median of its rounds' log ratios: a round's two blocks
    share the machine's speed of that moment, so its drift cancels, and a hiccup round weighs
    nothing. The change is the mean over the pairs: identical code differs from instance to
    instance (where its arrays happen to lie) by several percent for as long as it lives, and
    only more instances average that out. ``level`` bounds (0.975: a 95% interval) from a
    two-stage bootstrap: pairs resampled, then rounds within each."""
    logs = [np.log(np.asarray(x, float)) - np.log(np.asarray(y, float)) for x, y in zip(a, b)]
    logs = [d for d in logs if len(d)]
    if not logs:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    point = float(np.mean([np.median(d) for d in logs]))
    medians = np.stack(
        [np.median(d[rng.integers(0, len(d), size=(n_boot, len(d)))], axis=1) for d in logs],
        axis=1,
    )  # (n_boot, pairs)
    picks = rng.integers(0, len(logs), size=(n_boot, len(logs)))
    reps = np.take_along_axis(medians, picks, axis=1).mean(axis=1)
    lo, hi = np.percentile(reps, [100 * (1 - level), 100 * level])
    return (math.exp(point), math.exp(lo), math.exp(hi))

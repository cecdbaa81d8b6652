"""Re-measure what ``compare`` flagged: both sides' code, run now, in turn.

On a shared machine the level of a whole sweep moves (two sweeps of one commit a minute
apart: groups 27-36% apart), and nothing inside one stored sweep can tell that from a slower
framework. The way out that benchmark tools use (asv's ``continuous``) is to measure both
sides again, interleaved, so that whatever the machine does falls on both. ``optbench
compare`` does that for the groups it flagged ``slower`` or ``faster``: their runs go again
with the baseline's code (a git worktree at its commit) and with the current's, the two
sides' runs of a configuration back to back, the order alternating (A B, then B A), each
side with its own thread count and CPUs.

What the re-measurement may do to a call, with ``t`` the larger of the threshold and the
group's noise floor (as ``compare`` judges the stored runs):

- **confirmed**: it calls the same (its ratio beyond ``1 - t`` or ``1 + t``, its bound past 1);
- **taken back**: its whole interval lies inside ``[1 - t, 1 + t]``: it shows that the change
  is within the threshold, so the stored call was the machine's drift;
- **inconclusive**: neither. Absence of evidence is not evidence of absence: the group is
  measured again, round after round (each run long enough to time :func:`_blocks_needed`
  blocks), while ``budget_s`` allows; still inconclusive then, the stored call stands,
  shown as "not confirmed" (a regression so kept still fails ``compare``);
- **contradicted**: it calls the opposite direction; the stored call stands, said so.

Before this rule (any re-measured verdict other than the stored one took a call back), a
34% slowdown measured tightly by the stored runs (0.658 [0.596, 0.706]) was taken back on a
re-measurement of 0.932 [0.784, 1.200] from two blocks a run.

Each side runs in a process per backend, in its own tree, through its own runner
(:data:`benchmarks.track.sides.SIDE_LOOP`: the interfaces ``optbench rerun`` uses), so the baseline's own code is
what is timed. The process starts with the side's thread variables in its environment and
pinned to the CPUs its runs had, before NumPy is imported: OpenBLAS sizes its pool once, at
import, and a side process that set ``OPENBLAS_NUM_THREADS=1`` after importing NumPy ran
two BLAS threads on one pinned CPU (a one-thread side then re-measured 22% *faster* than
the two-thread side its stored runs were 34% slower than).

What it cannot re-measure, it leaves alone and says why: a side whose commit is not in this
repository, or whose uncommitted changes this working tree no longer holds; sides that
differ in their framework versions, Python or recorded environment variables (both would
run on today's, which hides the change); runs on a GPU that this machine does not have; a
backend whose re-measured run crashed (its groups keep the stored call).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.core import stats
from benchmarks.core.environment import cpu_model, gpu_present
from benchmarks.record.schema import Status
from benchmarks.record.store import Store
from benchmarks.track.change import FASTER, SAME, SLOWER, throughput_change
from benchmarks.track.sides import (
    CannotRecheck,
    Side,
    SideProcess,
    check_comparable,
    recorded_cpus,
    source_tree,
)

#: rounds the re-measurement always runs: each flagged run this many times on each side
ROUNDS = 3
#: seconds the re-measurement may take in all (``--recheck-budget``), start-ups included;
#: an inconclusive group gets more rounds while the next one fits
BUDGET_S = 180.0
#: at most this many rounds, however much budget is left
MAX_ROUNDS = 24
#: the one-sided confidence of the re-measured change's bounds that confirm a call.
#: Stricter than the stored runs' 95%: on the 2-core VM, 9 of 36 re-measurements of
#: identical code (means of pairs, 95%) called a change beyond 5%; a false alarm needs both
#: measurements to err one way
LEVEL = 0.99
#: the one-sided confidence of the bounds that take a call back: an equivalence test (two
#: one-sided tests at 5%, TOST: the 90% interval inside [1 - t, 1 + t]). At 99% it could not
#: be done within the budget for identical code: 21 rounds re-measured 0.981 [0.948, 1.003]
#: (NumPy, batch 512, runs of 8-160 blocks); wrongly taking back costs a change near ``t``
#: only, since a real 20% change lies far outside [0.95, 1.05] at any level
SAME_LEVEL = 0.95
#: a re-measured run times at least this many blocks, and at most MAX_BLOCKS (runs are
#: lengthened by whole multiples of their epochs to get there; see _blocks_needed)
MIN_BLOCKS = 8
MAX_BLOCKS = 160

# what the re-measurement did to a flagged group's call (column ``recheck``)
CONFIRMED, TAKEN_BACK, INCONCLUSIVE, CONTRADICTED = (
    "confirmed", "taken back", "inconclusive", "contradicted",
)  # fmt: skip
NOT_REMEASURED = "not re-measured"


def recheck(
    groups: pd.DataFrame,
    group_by: list[str],
    baseline: Store,
    current: Store,
    threshold: float,
    rounds: int = ROUNDS,
    log: Callable[[str], None] = lambda s: None,
    budget_s: float = BUDGET_S,
) -> tuple[pd.DataFrame, str]:
    """``groups`` (``compare``'s table) with the flagged ones re-measured, and a note saying
    what was done (or why nothing was). Columns added: ``first_verdict`` (the stored runs'
    call), ``recheck_ratio``/``recheck_low``/``recheck_high`` (one-sided bounds at
    ``recheck_level``: :data:`SAME_LEVEL` where taken back, else :data:`LEVEL`), ``recheck`` (what the re-measurement did: :data:`CONFIRMED`,
    :data:`TAKEN_BACK`, :data:`INCONCLUSIVE`, :data:`CONTRADICTED` or
    :data:`NOT_REMEASURED`), ``recheck_rounds`` and ``recheck_blocks`` (timed blocks a
    re-measured run had, median); ``verdict`` becomes ``same`` only where taken back."""
    flagged = groups["verdict"].isin([SLOWER, FASTER]) if len(groups) else pd.Series([], dtype=bool)
    if rounds <= 0 or not flagged.any():
        return groups, ""
    out = groups.assign(
        first_verdict=groups["verdict"], recheck_ratio=math.nan, recheck_low=math.nan,
        recheck_high=math.nan, recheck_level=math.nan, recheck="", recheck_rounds=0,
        recheck_blocks=math.nan,
    )  # fmt: skip
    sides = [
        Side(n, store.path, store.environment())
        for n, store in (("baseline", baseline), ("current", current))
    ]
    t0 = time.perf_counter()
    try:
        if not gpu_present():
            flagged &= out["device"] == "cpu"
            if not flagged.any():
                raise CannotRecheck("the flagged groups ran on a GPU, and this machine has none")
        check_comparable(sides)
        with contextlib.ExitStack() as stack:
            work = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="optbench-recheck-"))
            )
            for side in sides:
                side.tree = source_tree(side, work, stack)
            keys = out.loc[flagged, [*group_by, "floor"]]
            rows = _runs_to_repeat(baseline, current, keys[group_by], group_by)
            for side in sides:
                side.cpus = recorded_cpus(rows[side.name])
            limits = {
                tuple(r[:-1]): max(threshold, float(r[-1] or 0.0))
                for r in keys.itertuples(index=False)
            }
            plan = _plan(baseline, current, rows, group_by, limits, rounds, budget_s)
            calls = {
                tuple(r[:-1]): r[-1]
                for r in out.loc[flagged, [*group_by, "first_verdict"]].itertuples(index=False)
            }
            result = _measure(
                sides, rows, plan, group_by, calls, limits, rounds, budget_s, work, log
            )
    except CannotRecheck as exc:
        return (
            out,
            f"flagged groups not re-measured: {exc}; their verdicts rest on the stored runs alone",
        )
    idx = out.index[flagged]
    for i in idx:
        key = tuple(out.loc[i, group_by])
        if key in result.failed:
            out.loc[i, "recheck"] = NOT_REMEASURED
            continue
        if key not in result.change.index:
            continue
        r = result.change.loc[key]
        outcome = _outcome(out.loc[i, "first_verdict"], r, limits[key])
        # the bounds that decided: the equivalence test's where taken back
        lo, hi, level = (
            (r["same_low"], r["same_high"], SAME_LEVEL)
            if outcome == TAKEN_BACK
            else (r["ci_low"], r["ci_high"], LEVEL)
        )
        out.loc[i, ["recheck_ratio", "recheck_low", "recheck_high", "recheck_level"]] = (
            r["ratio"], lo, hi, level,
        )  # fmt: skip
        out.loc[i, "recheck"] = outcome
        out.loc[i, "recheck_rounds"] = result.rounds.get(key, 0)
        out.loc[i, "recheck_blocks"] = result.blocks.get(key, math.nan)
        if outcome == TAKEN_BACK:
            out.loc[i, "verdict"] = SAME
    return out, _note(out.loc[idx], sides, result, rounds, budget_s, time.perf_counter() - t0)


def _outcome(first: str, r: pd.Series, t: float) -> str:
    """What a re-measurement (``r``: a row of :func:`_change`) does to the call ``first``,
    ``t`` the group's threshold (see the module's docstring)."""
    if 1 - t <= r["same_low"] and r["same_high"] <= 1 + t:
        return TAKEN_BACK
    if r["verdict"] == first:
        return CONFIRMED
    if r["verdict"] in (SLOWER, FASTER):
        return CONTRADICTED
    return INCONCLUSIVE


def _note(
    done: pd.DataFrame, sides: list[Side], result: _Result, rounds: int, budget_s: float,
    took: float,
) -> str:  # fmt: skip
    """What the re-measurement did, in one paragraph."""
    b, c = sides
    here, there = cpu_model(), c.env.get("cpu_model")
    where = (
        f" on this machine ({here}; the runs were on {there})" if there and there != here else ""
    )
    n = done["recheck"].value_counts()
    ran = done["recheck_rounds"][done["recheck_rounds"] > 0]
    blocks = done["recheck_blocks"].dropna()
    text = (
        f"{len(done)} flagged group(s) re-measured now{where} with the baseline's code (commit "
        f"{b.commit[:10]}, {b.threads} thread(s), CPUs {_cpu_text(b.cpus)}) and the current's "
        f"(commit {c.commit[:10]}, {c.threads} thread(s), CPUs {_cpu_text(c.cpus)}), the two "
        f"sides' runs back to back, "
        + (
            f"{int(ran.min())}-{int(ran.max())} round(s) a side"
            if len(ran) and ran.min() != ran.max()
            else f"{int(ran.max()) if len(ran) else rounds} round(s) a side"
        )
        + (f", {blocks.median():.0f} timed blocks a run" if len(blocks) else "")
        + f", {took:.0f} s of a {budget_s:.0f} s budget: "
        f"{n.get(CONFIRMED, 0)} confirmed, {n.get(TAKEN_BACK, 0)} taken back (the re-measured "
        "interval within the threshold), "
        f"{n.get(INCONCLUSIVE, 0) + n.get(CONTRADICTED, 0)} not confirmed (the re-measurement "
        "inconclusive or contrary: the stored call stands)"
    )
    for backend, why in result.failed_backends.items():
        text += f"; {backend} not re-measured ({why}): its stored calls stand"
    return text


def _cpu_text(cpus: list[int]) -> str:
    return ",".join(map(str, cpus)) or "any"


def _runs_to_repeat(
    baseline: Store, current: Store, keys: pd.DataFrame, group_by: list[str]
) -> dict[str, pd.DataFrame]:
    """Per side, the stored rows of the runs to repeat, in one order: the flagged groups'
    runs that finished on both sides, of each group's first seed (its learning rates)."""
    b_runs, c_runs = (s.runs().set_index("run_id", drop=False) for s in (baseline, current))
    done = Status.OK.value
    ok = set(b_runs.index[b_runs["status"] == done]) & set(c_runs.index[c_runs["status"] == done])
    chosen = (
        c_runs[c_runs["run_id"].isin(ok)]
        .reset_index(drop=True)
        .merge(keys.drop_duplicates(), on=group_by)
    )
    chosen = chosen[chosen["seed"] == chosen.groupby(group_by)["seed"].transform("min")]
    if chosen.empty:
        raise CannotRecheck("no flagged group has a run that finished on both sides")
    ids = chosen.sort_values([*group_by, "lr"])["run_id"].tolist()
    return {
        "baseline": b_runs.loc[ids].reset_index(drop=True),
        "current": c_runs.loc[ids].reset_index(drop=True),
    }


def _blocks_needed(spread: float, t: float, pairs: int, rounds: int) -> int:
    """Timed blocks a re-measured run should have so that ``rounds`` rounds of ``pairs``
    matched runs can tell a change of ``t`` from none: the paired log ratio of ``n`` blocks
    a side has a standard error of about ``spread * sqrt(2 / n)`` (``spread``: the standard
    deviation of a stored run's log block rates), and the :data:`LEVEL` bound must come
    within ``t`` of the ratio. Between :data:`MIN_BLOCKS` and :data:`MAX_BLOCKS`.

    The default sweep's NumPy runs at batch 512 time 2 blocks (their spread 0.05-0.15): at
    ``t`` = 5%, one flagged configuration and 3 rounds, a run is made to time 8-40 blocks."""
    z = 2.326  # the normal quantile of LEVEL (0.99)
    total = 2 * (z * spread / max(t, 1e-3)) ** 2
    return int(min(MAX_BLOCKS, max(MIN_BLOCKS, math.ceil(total / max(1, pairs * rounds)))))


def _plan(
    baseline: Store,
    current: Store,
    rows: dict[str, pd.DataFrame],
    group_by: list[str],
    limits: dict[tuple, float],
    rounds: int,
    budget_s: float,
) -> dict[str, int]:
    """Per run id of ``rows``, how many times its stored epochs (and step cap) a re-measured
    run takes (1: as stored): the runs whose stored ones timed too few blocks to mean
    something are lengthened (:func:`_blocks_needed`, from the stored runs' own block
    spread), so far as the first ``rounds`` rounds stay within half the budget."""
    first = rows["current"]
    ids = list(first["run_id"])
    stored = {}
    for name, store in (("baseline", baseline), ("current", current)):
        t = store.table("timings")
        if t is None or t.empty:
            t = pd.DataFrame(columns=["run_id", "phase", "steps", "seconds"])
        stored[name] = t[(t["phase"] == "timed") & t["run_id"].isin(ids) & (t["seconds"] > 0)]
    timed = pd.concat([stored["baseline"].assign(side=0), stored["current"].assign(side=1)])
    logs = np.log(timed["steps"].astype(float) / timed["seconds"].astype(float))
    # each stored run's spread about its own mean: what differs between runs is paired away
    dev = logs - logs.groupby([timed["run_id"], timed["side"]]).transform("mean")
    have = stored["current"].groupby("run_id").size()
    stored_s = {
        rid: float(s) if s == s and s > 0 else 30.0
        for rid, s in zip(
            first["run_id"], first["run_s"] if "run_s" in first else [math.nan] * len(first)
        )
    }
    factor = {}
    for key, grp in first.groupby(group_by, sort=False):
        rids = list(grp["run_id"])
        sel = timed["run_id"].isin(rids)
        n_dev = int(sel.sum()) - 2 * len(rids)  # degrees of freedom: a mean per run and side
        spread = float(np.sqrt((dev[sel] ** 2).sum() / n_dev)) if n_dev > 0 else 0.15
        need = _blocks_needed(spread, limits[tuple(key)], len(rids), rounds)
        for rid in rids:
            factor[rid] = max(1, math.ceil(need / max(1, int(have.get(rid, 0)))))
    # the first rounds within half the budget: shrink the longest runs' factors first
    while True:
        seconds = {rid: stored_s[rid] * factor[rid] for rid in ids}
        if 2 * rounds * sum(seconds.values()) <= budget_s / 2 or max(factor.values()) == 1:
            break
        worst = max(ids, key=lambda r: seconds[r])
        factor[worst] = max(1, factor[worst] // 2)
    return factor


def _lengthened(row: dict[str, Any], factor: int) -> dict[str, Any]:
    """``row`` with ``factor`` times its epochs (and step cap): the same configuration,
    blocks and data order, more of them (the learning rate's schedule stretches with it,
    which changes nothing of a step's cost)."""
    if factor == 1:
        return row
    out = dict(row)
    if int(out.get("epochs") or 0):
        out["epochs"] = int(out["epochs"]) * factor
    if int(out.get("max_steps") or 0):
        out["max_steps"] = int(out["max_steps"]) * factor
    return out


@dataclass
class _Result:
    change: pd.DataFrame  # _change's table, indexed by group_by
    rounds: dict[tuple, int]  # rounds run per group
    blocks: dict[tuple, float]  # a re-measured run's timed blocks (median), per group
    failed: dict[tuple, str] = field(default_factory=dict)  # groups whose runs crashed
    failed_backends: dict[str, str] = field(default_factory=dict)


def _measure(
    sides: list[Side],
    rows: dict[str, pd.DataFrame],
    plan: dict[str, int],
    group_by: list[str],
    calls: dict[tuple, str],
    limits: dict[tuple, float],
    rounds: int,
    budget_s: float,
    work: Path,
    log: Callable[[str], None],
) -> _Result:
    """Every run of ``rows`` (one frame per side, the same configurations in the same
    order; ``calls`` the stored call of each group), the two sides' runs of a configuration
    back to back, the order alternating (A B, then B A), so that what the machine does in
    those seconds falls on both.

    In batches of ``rounds`` rounds, each batch in two fresh processes (identical code runs
    a few percent apart from one process to the next for as long as it lives: new processes
    average that out where one pair could not): the first batch as ``plan`` says (:func:`_plan`); then,
    while a group is inconclusive, another batch of its runs, twice as long (up to
    :data:`MAX_BLOCKS` timed blocks), or as long where that does not fit, while it fits in
    the backend's share of what is left of ``budget_s`` (at most :data:`MAX_ROUNDS`
    rounds). One backend at a time, so no idle framework spins beside a timed run. Run ids
    get ``#round``."""
    first = rows[sides[0].name]
    keys = [tuple(k) for k in first[group_by].itertuples(index=False)]
    result = _Result(pd.DataFrame(), {}, {})
    t0 = time.perf_counter()
    backends = list(dict.fromkeys(first["backend"]))
    changes, n_runs, blocks = [], 0, {}
    for b_i, backend in enumerate(backends):
        start = time.perf_counter()
        share = (budget_s - (start - t0)) / (len(backends) - b_i)
        at = [k for k, b in enumerate(first["backend"]) if b == backend]
        factor = {k: plan.get(first["run_id"].iloc[k], 1) for k in at}
        log(f"recheck {backend}: {len(at)} run(s), {rounds} round(s) a side at least, in turn ...")
        mine: dict[str, tuple[list, list]] = {s.name: ([], []) for s in sides}
        pending, done, change = at, 0, pd.DataFrame()
        try:
            while pending and done < MAX_ROUNDS:
                t_batch = time.perf_counter()
                n = min(rounds, MAX_ROUNDS - done)
                _batch(sides, rows, pending, factor, range(done, done + n), work, backend, mine)
                took = time.perf_counter() - t_batch
                for k in pending:
                    result.rounds[keys[k]] = done + n
                done += n
                change = _change(_frames(mine), group_by, limits)
                still = {
                    key
                    for key, r in change.iterrows()
                    if _outcome(calls[key], r, limits[key]) == INCONCLUSIVE
                }
                last = sum(factor[k] for k in pending)
                pending = [k for k in at if keys[k] in still]
                left = share - (time.perf_counter() - start)
                # the next batch's cost, from this one's: seconds per round and unit of length
                per_unit = took / (n * max(1, last)) * min(rounds, MAX_ROUNDS - done)
                grown = {k: _grow(factor[k], rows["current"].iloc[k]) for k in pending}
                if pending and per_unit * sum(grown.values()) <= left:
                    factor.update(grown)
                elif not pending or per_unit * sum(factor[k] for k in pending) > left:
                    break
                if pending:
                    log(
                        f"recheck {backend}: {len(still)} group(s) inconclusive after {done} "
                        f"round(s); {min(rounds, MAX_ROUNDS - done)} more, runs x"
                        f"{max(factor[k] for k in pending)} as long ..."
                    )
        except CannotRecheck as exc:  # a crashed run: this backend's calls stand, said why
            result.failed_backends[str(backend)] = str(exc)
            result.failed.update({keys[k]: str(exc) for k in at})
            continue
        changes.append(change)
        n_runs += sum(len(r) for r, _ in mine.values())
        for r in mine["current"][0]:
            blocks.setdefault(tuple(r[c] for c in group_by), []).append(r.get("timed_blocks"))
    result.blocks = {k: float(np.nanmedian(np.asarray(v, float))) for k, v in blocks.items()}
    log(f"recheck: {n_runs} runs in {time.perf_counter() - t0:.0f} s")
    result.change = pd.concat(changes) if changes else pd.DataFrame()
    return result


def _grow(factor: int, row: pd.Series) -> int:
    """Twice ``factor``, so far as the run then times at most :data:`MAX_BLOCKS` blocks
    (``row``: its stored row, with its ``timed_blocks``)."""
    have = max(1, int(row.get("timed_blocks") or 1))
    return max(factor, min(2 * factor, MAX_BLOCKS // have))


def _batch(
    sides: list[Side],
    rows: dict[str, pd.DataFrame],
    at: list[int],
    factor: dict[int, int],
    rounds: range,
    work: Path,
    backend: str,
    got: dict[str, tuple[list, list]],
) -> None:
    """Rounds ``rounds`` of the runs ``at`` of ``rows``, in two new processes (one a side),
    the two sides' runs of a configuration back to back, the order alternating; their runs
    and timings appended to ``got``."""
    procs = {s.name: SideProcess(s, work, str(backend)) for s in sides}
    try:
        for i in rounds:
            for j, k in enumerate(at):
                for side in sides if (i + j) % 2 == 0 else sides[::-1]:
                    row = _lengthened(rows[side.name].iloc[k].to_dict(), factor[k])
                    timeout = 10 * float(row.get("run_s") or 60) * factor[k] + 120
                    out = procs[side.name].run(row, timeout)
                    rid = f"{row['run_id']}#{i}"
                    got[side.name][0].append({**out["run"], "run_id": rid})
                    timed = out.get("timings") or []
                    got[side.name][1].extend({**t, "run_id": rid} for t in timed)
    except BaseException:  # Ctrl-C, say: stop the run that is going now, not after it
        for proc in procs.values():
            proc.kill()
        raise
    finally:
        for proc in procs.values():
            proc.close()


def _frames(got: dict[str, tuple[list, list]]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {name: (pd.DataFrame(r), pd.DataFrame(t)) for name, (r, t) in got.items()}


def _change(
    measured: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    group_by: list[str],
    limits: dict[tuple, float],
) -> pd.DataFrame:
    """The change between the re-measured sides, one row per group (indexed by
    ``group_by``), a run of one round matched with the same run of the same round, with
    one-sided :data:`LEVEL` bounds (and :data:`SAME_LEVEL` bounds, ``same_low`` and
    ``same_high``), the median pair's (a hiccup in one run, 5x slower than
    its neighbour on the 2-core VM, must not move the verdict); each group's verdict at
    its ``limits`` threshold. Plain throughput only: two runs back to back already share the
    machine's speed, and scaling them by the reference kernel added its noise (it took back
    2 of 5 groups of a real 20% regression there)."""
    (b_runs, b_t), (c_runs, c_t) = measured["baseline"], measured["current"]
    ids = sorted(set(b_runs["run_id"]) & set(c_runs["run_id"]))
    b = b_runs.set_index("run_id").loc[ids].reset_index()
    c = c_runs.set_index("run_id").loc[ids].reset_index()
    rates = stats.block_rates(b, b_t, group_by), stats.block_rates(c, c_t, group_by)
    t = min(limits.values())
    change = throughput_change(b, *rates, group_by, t, limits, level=LEVEL, robust=True)
    same = throughput_change(b, *rates, group_by, t, limits, level=SAME_LEVEL, robust=True)
    change = change.assign(same_low=same["ci_low"], same_high=same["ci_high"])
    return change.set_index(group_by)


def taken_back(groups: pd.DataFrame) -> pd.Series:
    """Which groups' calls the re-measurement took back (``groups`` with its columns)."""
    return groups["verdict"].ne(groups["first_verdict"]) & groups["first_verdict"].notna()


def describe(groups: pd.DataFrame) -> pd.Series:
    """The re-measured ratio of each group as a table cell: its bounds (their level where it
    is not :data:`LEVEL`) and its rounds ("-" where not re-measured); ``groups`` with the re-measurement's columns."""
    return pd.Series(
        [
            f"{r:.3f} [{lo:.3f}, {hi:.3f}]{'' if lv == LEVEL else f' ({lv:.0%})'} x{int(n)}"
            if r == r
            else (what or "-")
            for r, lo, hi, lv, n, what in zip(
                groups["recheck_ratio"],
                groups["recheck_low"],
                groups["recheck_high"],
                groups.get("recheck_level", pd.Series(LEVEL, index=groups.index)),
                groups.get("recheck_rounds", pd.Series(0, index=groups.index)),
                groups.get("recheck", pd.Series("", index=groups.index)),
            )
        ],
        index=groups.index,
    )


def verdict_text(groups: pd.DataFrame) -> pd.Series:
    """Each group's verdict as a table shows it: what the re-measurement did beside it
    ("same (was slower)" where taken back; "slower (not confirmed: re-measurement
    inconclusive [0.652, 3.147])" where the stored call stands without its support)."""
    out = []
    for v, first, what, lo, hi in zip(
        groups["verdict"],
        groups.get("first_verdict", groups["verdict"]),
        groups.get("recheck", pd.Series("", index=groups.index)),
        groups.get("recheck_low", pd.Series(math.nan, index=groups.index)),
        groups.get("recheck_high", pd.Series(math.nan, index=groups.index)),
    ):
        interval = f" [{lo:.3f}, {hi:.3f}]" if lo == lo else ""
        if what == TAKEN_BACK:
            out.append(f"{v} (was {first})")
        elif what == CONFIRMED:
            out.append(f"{v} (confirmed)")
        elif what == INCONCLUSIVE:
            out.append(f"{v} (not confirmed: re-measurement inconclusive{interval})")
        elif what == CONTRADICTED:
            out.append(f"{v} (not confirmed: re-measured the other way{interval})")
        elif what == NOT_REMEASURED:
            out.append(f"{v} (not re-measured: a run crashed)")
        else:
            out.append(str(v))
    return pd.Series(out, index=groups.index)

"""Re-measure what ``compare`` flagged: both sides' code, run now, in turn.

On a shared machine the level of a whole sweep moves (two sweeps of one commit a minute
apart: groups 27-36% apart), and nothing inside one stored sweep can tell that from a slower
framework. The way out that benchmark tools use (asv's ``continuous``) is to measure both
sides again, interleaved, so that whatever the machine does falls on both. ``optbench
compare`` does that for the groups it flagged ``slower`` or ``faster``: their runs go again
with the baseline's code (a git worktree at its commit) and with the current's, the two
sides' runs of a configuration back to back, the order alternating (A B, then B A), each
side with its own thread count; a call stands only where the re-measurement agrees. Like
the machine-speed view (:mod:`benchmarks.reference`) it can only take a call back.

Each side runs in a process per backend, in its own tree, through its own runner
(:data:`SIDE_LOOP`: the interfaces ``optbench rerun`` uses), so the baseline's own code is
what is timed.

What it cannot re-measure, it leaves alone and says why: a side whose commit is not in this
repository, or whose uncommitted changes this working tree no longer holds; sides that
differ in their framework versions, Python or recorded environment variables (both would
run on today's, which hides the change); runs on a GPU that this machine does not have.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import stats
from benchmarks.environment import (
    REPO,
    cpu_model,
    git_state,
    gpu_present,
    package_changes,
    package_versions,
)
from benchmarks.report.analysis import FASTER, SAME, SLOWER, throughput_change
from benchmarks.store import Store

#: rounds of the default recheck: each flagged run three times on each side
ROUNDS = 3
#: the one-sided confidence of the re-measured change's bounds. Stricter than the stored
#: runs' 95%: on the 2-core VM, 9 of 36 re-measurements of identical code (means of pairs,
#: 95%) called a change beyond 5%; a false alarm needs both measurements to err one way
LEVEL = 0.99


class CannotRecheck(Exception):
    """Why the flagged groups cannot be re-measured here (a sentence)."""


@dataclass
class Side:
    name: str  # "baseline" or "current"
    results: Path
    env: dict[str, Any]
    tree: Path | None = None  # the source tree its code runs from

    @property
    def commit(self) -> str:
        return str((self.env.get("git") or {}).get("commit") or "")

    @property
    def threads(self) -> int | None:
        t = self.env.get("threads_per_worker")
        return int(t) if t else None


def recheck(
    groups: pd.DataFrame,
    group_by: list[str],
    baseline: Store,
    current: Store,
    threshold: float,
    rounds: int = ROUNDS,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[pd.DataFrame, str]:
    """``groups`` (``compare``'s table) with the flagged ones re-measured: columns
    ``first_verdict`` (the stored runs' call), ``recheck_ratio``/``recheck_low``/
    ``recheck_high`` and ``verdict`` kept only where the re-measurement calls the same;
    and a note saying what was done (or why nothing was)."""
    flagged = groups["verdict"].isin([SLOWER, FASTER]) if len(groups) else pd.Series([], dtype=bool)
    if rounds <= 0 or not flagged.any():
        return groups, ""
    out = groups.assign(
        first_verdict=groups["verdict"], recheck_ratio=math.nan, recheck_low=math.nan,
        recheck_high=math.nan,
    )  # fmt: skip
    sides = [
        Side(n, store.path, store.environment())
        for n, store in (("baseline", baseline), ("current", current))
    ]
    try:
        if not gpu_present():
            flagged &= out["device"] == "cpu"
            if not flagged.any():
                raise CannotRecheck("the flagged groups ran on a GPU, and this machine has none")
        _check_comparable(sides)
        with contextlib.ExitStack() as stack:
            work = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="optbench-recheck-"))
            )
            for side in sides:
                side.tree = _source_tree(side, work, stack)
            rows = _runs_to_repeat(baseline, current, out.loc[flagged, group_by], group_by)
            measured = _interleave(sides, rows, rounds, work, log)
    except CannotRecheck as exc:
        return (
            out,
            f"flagged groups not re-measured: {exc}; their verdicts rest on the stored runs alone",
        )
    again = _change(measured, group_by, threshold)
    idx = out.index[flagged]
    for i in idx:
        key = tuple(out.loc[i, group_by])
        if key not in again.index:
            continue
        r = again.loc[key]
        out.loc[i, ["recheck_ratio", "recheck_low", "recheck_high"]] = (
            r["ratio"], r["ci_low"], r["ci_high"],
        )  # fmt: skip
        if r["verdict"] != out.loc[i, "first_verdict"]:
            out.loc[i, "verdict"] = SAME
    kept = int((out.loc[idx, "verdict"] == out.loc[idx, "first_verdict"]).sum())
    b, c = sides
    here, there = cpu_model(), c.env.get("cpu_model")
    where = (
        f" on this machine ({here}; the runs were on {there})" if there and there != here else ""
    )
    note = (
        f"{len(idx)} flagged group(s) re-measured now{where} with the baseline's code (commit "
        f"{b.commit[:10]}, {b.threads} thread(s)) and the current's (commit {c.commit[:10]}, "
        f"{c.threads} thread(s)), each run {rounds} time(s) a side, the two sides' runs back to "
        f"back: {kept} confirmed, {len(idx) - kept} taken back (re-measured, the change was within "
        "the threshold or the noise)"
    )
    return out, note


def _check_comparable(sides: list[Side]) -> None:
    """CannotRecheck where re-running both sides here would not reproduce their difference."""
    b, c = sides
    for side in sides:
        if not side.commit:
            raise CannotRecheck(f"{side.results} records no git commit, so its code is unknown")
    changed = package_changes(b.env, c.env)
    if changed:
        raise CannotRecheck(
            f"the sides differ in their packages ({', '.join(changed[:3])}), and a recheck "
            "would run both on this environment's"
        )
    for key, what in (("python", "Python"), ("env", "recorded environment variables")):
        if b.env.get(key) != c.env.get(key):
            raise CannotRecheck(
                f"the sides differ in their {what}, which a recheck cannot reproduce"
            )
    recorded = c.env.get("packages") or {}
    drift = [
        f"{k} {recorded[k]} recorded, {v} here"
        for k, v in package_versions().items()
        if k in recorded and k != "optbench" and recorded[k] != v
    ]
    if drift:
        raise CannotRecheck(
            f"this environment is not the one the runs had ({', '.join(drift[:3])})"
        )


def _git(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _source_tree(side: Side, work: Path, stack: contextlib.ExitStack) -> Path:
    """Where ``side``'s code is. A side measured at a clean commit: this working tree where
    it is that commit and clean, else a temporary git worktree at the commit. A side measured
    with uncommitted changes: this working tree, only where it is that commit with the same
    changes (their hash, ``diff_sha256``); without a recorded hash (results from before it),
    only for the current side, the newest code there is. CannotRecheck otherwise: re-running
    other code than a side had would measure something else (two sides with one commit and
    different edits would both run the same edits, and a real change would vanish)."""
    here = git_state()
    git = side.env.get("git") or {}
    if git.get("dirty"):
        recorded = git.get("diff_sha256")
        same = here["commit"] == side.commit and (
            here["diff_sha256"] == recorded if recorded else side.name == "current"
        )
        if not same:
            raise CannotRecheck(
                f"the {side.name} was measured with uncommitted changes to "
                f"{side.commit[:12]}, which this checkout does not hold as they were; commit "
                "each version before its sweep to compare edits"
            )
        return REPO
    if side.commit == here["commit"] and not here["dirty"]:
        return REPO
    path = work / side.commit[:12]
    if path.exists():
        return path
    if _git("cat-file", "-e", f"{side.commit}^{{commit}}").returncode != 0:
        raise CannotRecheck(
            f"the {side.name}'s commit {side.commit[:12]} is not in this repository ({REPO}); "
            "fetch it, or pass --recheck 0"
        )
    made = _git("worktree", "add", "--detach", str(path), side.commit)
    if made.returncode != 0:
        raise CannotRecheck(
            f"git worktree add failed for {side.commit[:12]}: {made.stderr.strip()}"
        )
    stack.callback(_git, "worktree", "remove", "--force", str(path))
    return path


#: what each side's process runs (``python -c``, in the side's tree): runs as their rows
#: say, one at a time, through the side's own runner; the interfaces it uses
#: (``RunSpec.from_row``, ``execute_run``, ``thread_env``, ``pin_cores``) are the ones
#: ``optbench rerun`` uses. Results go back pickled on the original stdout; whatever the
#: frameworks print goes to stderr (a file).
SIDE_LOOP = """
import os, pickle, sys, traceback
results = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
threads = int(sys.argv[1])
from benchmarks.worker import pin_cores, thread_env
if threads:
    os.environ.update(thread_env(threads))
    pin_cores(threads)
from benchmarks.runner import execute_run
from benchmarks.schema import RunSpec
while True:
    try:
        row = pickle.load(sys.stdin.buffer)
    except EOFError:
        break
    try:
        out = execute_run(RunSpec.from_row(row))
    except Exception:
        out = {"error": traceback.format_exc()}
    pickle.dump(out, results)
    results.flush()
"""


class _SideProcess:
    """One side's code in one process for one backend (frameworks keep a process each, as
    in a sweep's workers), running the runs it is sent."""

    def __init__(self, side: Side, work: Path, backend: str):
        self.side = side
        self.stderr = open(work / f"{side.name}-{backend}.stderr", "w+b")  # noqa: SIM115
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(side.tree), os.environ.get("PYTHONPATH")])
            ),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SIDE_LOOP, str(side.threads or 0)],
            cwd=side.tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )  # fmt: skip

    def run(self, row: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The result of the run ``row`` describes; CannotRecheck where the process dies,
        hangs past ``timeout`` or the run raises."""
        try:
            pickle.dump(row, self.proc.stdin)
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            out = pickle.load(self.proc.stdout) if ready else None
        except (OSError, EOFError, pickle.UnpicklingError):
            out = None
        if out is None or "error" in out:
            self.close()
            self.stderr.seek(0)
            tail = "\n".join(self.stderr.read().decode(errors="replace").strip().splitlines()[-5:])
            raise CannotRecheck(
                f"a run with the {self.side.name}'s code ({self.side.commit[:10]}) "
                + ("timed out" if out is None and self.proc.poll() is None else "failed")
                + f": {(out or {}).get('error', '').strip().splitlines()[-1:] or tail}"
            )
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _runs_to_repeat(
    baseline: Store, current: Store, keys: pd.DataFrame, group_by: list[str]
) -> dict[str, pd.DataFrame]:
    """Per side, the stored rows of the runs to repeat, in one order: the flagged groups'
    runs that finished on both sides, of each group's first seed (its learning rates)."""
    b_runs, c_runs = (s.runs().set_index("run_id", drop=False) for s in (baseline, current))
    ok = set(b_runs.index[b_runs["status"] == "ok"]) & set(c_runs.index[c_runs["status"] == "ok"])
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


def _interleave(
    sides: list[Side],
    rows: dict[str, pd.DataFrame],
    rounds: int,
    work: Path,
    log: Callable[[str], None],
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Each side's re-measured (runs, timings): every run of ``rows`` (one frame per side,
    the same configurations in the same order) ``rounds`` times, the two sides' runs of a
    configuration back to back, the order alternating (A B, then B A), so that what the
    machine does in those seconds falls on both. One backend at a time: its two processes
    (one a side) end before the next backend's start, so no idle framework spins beside a
    timed run. Run ids get ``#round``."""
    got: dict[str, tuple[list, list]] = {s.name: ([], []) for s in sides}
    first = rows[sides[0].name]
    t0 = time.perf_counter()
    for backend in dict.fromkeys(first["backend"]):
        at = [k for k, b in enumerate(first["backend"]) if b == backend]
        log(f"recheck {backend}: {len(at)} run(s) x {rounds} round(s) a side, in turn ...")
        procs = {s.name: _SideProcess(s, work, str(backend)) for s in sides}
        try:
            for i in range(rounds):
                for j, k in enumerate(at):
                    for side in sides if (i + j) % 2 == 0 else sides[::-1]:
                        row = rows[side.name].iloc[k].to_dict()
                        timeout = 10 * float(row.get("run_s") or 60) + 120
                        out = procs[side.name].run(row, timeout)
                        rid = f"{row['run_id']}#{i}"
                        got[side.name][0].append({**out["run"], "run_id": rid})
                        timed = out.get("timings") or []
                        got[side.name][1].extend({**t, "run_id": rid} for t in timed)
        except BaseException:  # Ctrl-C, say: stop the run that is going now, not after it
            for proc in procs.values():
                proc.proc.kill()
            raise
        finally:
            for proc in procs.values():
                proc.close()
    log(f"recheck: {2 * len(first) * rounds} runs in {time.perf_counter() - t0:.0f} s")
    return {name: (pd.DataFrame(r), pd.DataFrame(t)) for name, (r, t) in got.items()}


def _change(
    measured: dict[str, tuple[pd.DataFrame, pd.DataFrame]], group_by: list[str], threshold: float
) -> pd.DataFrame:
    """The change between the re-measured sides, one row per group (indexed by
    ``group_by``), a run of one round matched with the same run of the same round, with
    one-sided :data:`LEVEL` bounds, the median pair's (a hiccup in one run, 5x slower than
    its neighbour on the 2-core VM, must not move the verdict). Plain throughput only: two
    runs back to back already share the machine's speed, and scaling them by the reference
    kernel added its noise (it took back 2 of 5 groups of a real 20% regression there)."""
    (b_runs, b_t), (c_runs, c_t) = measured["baseline"], measured["current"]
    ids = sorted(set(b_runs["run_id"]) & set(c_runs["run_id"]))
    b = b_runs.set_index("run_id").loc[ids].reset_index()
    c = c_runs.set_index("run_id").loc[ids].reset_index()
    change = throughput_change(
        b,
        stats.block_rates(b, b_t, group_by),
        stats.block_rates(c, c_t, group_by),
        group_by,
        threshold,
        level=LEVEL,
        robust=True,
    )
    return change.set_index(group_by)


def taken_back(groups: pd.DataFrame) -> pd.Series:
    """Which groups' calls the re-measurement took back (``groups`` with its columns)."""
    return groups["verdict"].ne(groups["first_verdict"]) & groups["first_verdict"].notna()


def describe(groups: pd.DataFrame) -> pd.Series:
    """The re-measured ratio of each group as a table cell ("-" where not re-measured);
    ``groups`` with the re-measurement's columns."""
    return pd.Series(
        [
            f"{r:.3f} [{lo:.3f}, {hi:.3f}]" if r == r else "-"
            for r, lo, hi in zip(
                groups["recheck_ratio"], groups["recheck_low"], groups["recheck_high"]
            )
        ],
        index=groups.index,
    )

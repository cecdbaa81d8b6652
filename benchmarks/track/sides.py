"""The two sides a recheck re-measures, and where their code runs: each side's recorded
environment, commit, thread count and CPUs (:class:`Side`); whether re-running both here
would reproduce their difference (:func:`check_comparable`); its source tree, this checkout
or a temporary git worktree at its commit (:func:`source_tree`); and its process per
backend, started with the side's thread variables and pinned to its CPUs before NumPy is
imported, running the runs it is sent through the side's own runner (:class:`SideProcess`,
:data:`SIDE_LOOP`). :mod:`benchmarks.track.recheck` plans the runs and judges them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.core.environment import REPO, git_state, package_changes, package_versions


class CannotRecheck(Exception):
    """Why the flagged groups cannot be re-measured here (a sentence)."""


@dataclass
class Side:
    name: str  # "baseline" or "current"
    results: Path
    env: dict[str, Any]
    tree: Path | None = None  # the source tree its code runs from
    cpus: list[int] = field(default_factory=list)  # the CPUs its runs were pinned to

    @property
    def commit(self) -> str:
        return str((self.env.get("git") or {}).get("commit") or "")

    @property
    def threads(self) -> int | None:
        t = self.env.get("threads_per_worker")
        return int(t) if t else None


def check_comparable(sides: list[Side]) -> None:
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


def source_tree(side: Side, work: Path, stack: contextlib.ExitStack) -> Path:
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
#: ``optbench rerun`` uses. The thread variables and the CPU affinity are set by the
#: parent, before this process starts (see the module's docstring); the side's own
#: ``thread_env`` adds what its registry asks for. Results go back pickled on the original
#: stdout; whatever the frameworks print goes to stderr (a file).
SIDE_LOOP = """
import os, pickle, sys, traceback
results = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
threads = int(sys.argv[1])
from benchmarks.run.worker import pin_cores, thread_env
if threads:
    os.environ.update(thread_env(threads))
    pin_cores(threads)
from benchmarks.run.runner import execute_run
from benchmarks.record.schema import RunSpec
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


class SideProcess:
    """One side's code in one process for one backend (frameworks keep a process each, as
    in a sweep's workers), running the runs it is sent, with the side's thread count and
    CPUs from its first instruction on."""

    def __init__(self, side: Side, work: Path, backend: str):
        from benchmarks.run.worker import thread_env

        self.side = side
        self.stderr = open(work / f"{side.name}-{backend}.stderr", "w+b")  # noqa: SIM115
        threads = side.threads or 0
        env = {
            **os.environ,
            **(thread_env(threads) if threads else {}),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(side.tree), os.environ.get("PYTHONPATH")])
            ),
        }
        cpus = pinned(threads, side.cpus)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SIDE_LOOP, str(threads)],
            cwd=side.tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr,
            # the whole process, its BLAS threads too (an affinity set later holds only the
            # thread that sets it)
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
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

    def kill(self) -> None:
        self.proc.kill()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def pinned(threads: int, cpus: list[int]) -> list[int]:
    """The CPUs a side process is confined to: ``threads`` of the side's recorded ``cpus``
    where this machine has them, else the first ``threads`` it may use; none (no pinning)
    where it has no affinity call or no thread count is known."""
    if not threads or not hasattr(os, "sched_setaffinity"):
        return []
    allowed = sorted(os.sched_getaffinity(0))
    mine = [c for c in cpus if c in allowed] or allowed
    return mine[:threads]


def recorded_cpus(rows: pd.DataFrame) -> list[int]:
    """The CPUs a side's runs were pinned to (the first run's ``cpu_affinity``), where this
    machine has them all; else none (the side process takes the first it may use)."""
    text = str(rows["cpu_affinity"].iloc[0]) if "cpu_affinity" in rows and len(rows) else ""
    try:
        cpus = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        return []
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return cpus if cpus and set(cpus) <= allowed else []

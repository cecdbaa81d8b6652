"""The driver: runs a sweep's grid on an executor (``benchmarks.execute``) into the store.

The driver is the only writer of the results folder: it lands each run's result as it
arrives, whatever executed it. A run that raises, hangs past its timeout or kills its
worker comes back with that status and the sweep goes on. Ctrl-C stops at once and keeps
every finished run; ``--resume`` picks up from there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from benchmarks import environment, paths
from benchmarks.execute import Executor, LocalExecutor, work_units
from benchmarks.schema import RunSpec, Status
from benchmarks.store import Store, point_latest, write_json, writing
from benchmarks.sweep import Sweep
from benchmarks.worker import default_threads, thread_env


@dataclass
class SweepResult:
    path: Path
    total: int
    ran: int
    skipped_existing: int
    counts: dict[str, int]


class Progress:
    """runs done/total, the current run and an ETA; one line per run when not a terminal."""

    def __init__(self, total: int, quiet: bool, stream: TextIO = sys.stderr):
        self.total, self.quiet, self.stream = total, quiet, stream
        self.done = 0
        self.t0 = time.monotonic()
        self.tty = stream.isatty()

    def _eta(self) -> str:
        if not self.done:
            return "ETA --"
        left = (time.monotonic() - self.t0) / self.done * (self.total - self.done)
        return f"ETA {int(left // 60)}m{int(left % 60):02d}s"

    def start(self, spec: RunSpec) -> None:
        if self.quiet or not self.tty:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} {self._eta()}  {spec.label()[:70]:<70}"
        )
        self.stream.flush()

    def finish(self, spec: RunSpec, row: dict[str, Any]) -> None:
        self.done += 1
        if self.quiet:
            return
        status = row.get("status", "?")
        sps = row.get("samples_per_s")
        acc = row.get("final_test_acc")
        detail = (
            f"{sps:,.0f} samples/s, test acc {acc:.3f}"
            if status == Status.OK and sps == sps
            else row.get("error", "")[:80]
        )
        if status == Status.DIVERGED:
            detail = f"diverged at step {row.get('diverged_step')}"
        line = f"[{self.done}/{self.total}] {spec.label()}: {status} {detail}"
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(line + (f"  ({self._eta()})" if self.done < self.total else "") + "\n")
        self.stream.flush()


def run_sweep(
    sweep: Sweep,
    out: Path,
    resume: bool = False,
    quiet: bool = False,
    command: list[str] | None = None,
    executor: Executor | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every spec of ``sweep`` not already finished in ``out`` (on ``executor``, by
    default local workers), holding the folder's writer lock; returns counts by status.
    StoreError, with nothing touched, where another run holds the folder."""
    with writing(out):
        return _run_sweep(sweep, out, resume, quiet, command, executor, on_result)


def _run_sweep(sweep, out, resume, quiet, command, executor, on_result) -> SweepResult:
    threads = sweep.threads or default_threads()
    env = environment.capture(
        threads=threads,
        command=command,
        worker_env=thread_env(threads),
        sweep={
            "name": sweep.name,
            "source": sweep.source,
            "settings": sweep.settings,
            "runs": len(sweep.runs),
        },
    )
    store = Store.create(
        out, sweep.name, resume, fingerprint=environment.fingerprint(env, sweep.runs)
    )
    if store.archived and not quiet:
        print(
            f"earlier results of {out} moved to {store.archived} (use --resume to continue them instead)",
            file=sys.stderr,
        )
    if store.new:  # a resumed sweep keeps the environment it started in (store.json: "resumed")
        write_json(store.path / "environment.json", env)
    done = store.finished_ids() if resume else set()
    todo = [s for s in sweep.runs if s.run_id not in done]
    # Measured here, before the runs, on this machine (an executor that runs elsewhere
    # runs the choice made here).
    todo, choices = paths.resolve(
        todo,
        store.path_choices(),
        measure=paths.isolated(threads, sweep.runs[0].timeout_s),
        log=(lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr)),
    )
    if choices:
        store.write_path_choices(choices)
    progress = Progress(len(todo), quiet)
    executor = executor or LocalExecutor(threads)
    interrupted = False
    try:
        with closing(executor.run(work_units(todo), on_start=progress.start)) as results:
            for spec, result in results:
                store.write_run(result)
                progress.finish(spec, result["run"])
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        store.consolidate()
        counts = _status_counts(store)
        point_latest(store.path)
    if interrupted:
        print(
            f"\ninterrupted: finished runs are kept in {store.path}; "
            "run the same command with --resume to continue",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    return SweepResult(store.path, len(sweep.runs), len(todo), len(done), counts)


def _status_counts(store: Store) -> dict[str, int]:
    runs = store.table("runs")
    if runs is None or runs.empty:
        return {}
    return {str(k): int(v) for k, v in runs["status"].value_counts().items()}

"""The driver: runs a sweep's grid on an executor (``benchmarks.run.execute``) into the store.

The driver is the only writer of the results folder: it lands each run's result as it
arrives, whatever executed it. A run that raises, hangs past its timeout or kills its
worker comes back with that status and the sweep goes on. Ctrl-C stops at once and keeps
every finished run; ``--resume`` picks up from there.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from benchmarks.core import environment
from benchmarks.record.schema import RunSpec, Status
from benchmarks.record.store import Store, StoreError, point_latest, write_json, writing
from benchmarks.record.sweep import Sweep
from benchmarks.run import paths
from benchmarks.run.execute import Executor, LocalExecutor, work_units
from benchmarks.run.worker import default_threads, thread_env

#: the ETA shows its interval (:meth:`Progress.interval`) until this share of the runs, or
#: this many runs of every backend, have finished
SETTLED_SHARE, SETTLED_RUNS = 0.2, 5
#: the interval's relative half-width once many runs have finished: the committed baseline's
#: ETA after a fifth of its runs was within 30% of what was left
SPREAD_FLOOR = 0.3


@dataclass
class SweepResult:
    path: Path
    total: int
    ran: int
    skipped_existing: int
    counts: dict[str, int]


def estimate_seconds(
    done: list[dict[str, Any]], todo: list[RunSpec], started: set[tuple[str, str]] | None = None
) -> float | None:
    """Seconds the runs ``todo`` should take, from the rows of the finished runs ``done``
    (None where nothing finished has a time to go by).

    Each run is estimated by the median ``run_s`` of the finished runs most like it: the same
    backend, device and batch size, else the same backend and device; a backend with no
    finished run yet goes by the slowest backend's (at the batch size where one ran it),
    not by all runs' median (NumPy's, the cheapest: "ETA 22s" at run 65 of 168 of a sweep
    that took 90 s more), and its worker's start-up is priced like the dearest one seen. A
    worker's first run pays the framework's import and first compile (torch's ``inductor``: seconds),
    which later runs of that worker do not: first runs count only where no later run is
    there yet, and then only their training after the first step and their evaluation.
    What a first run cost beyond the others
    is added once per (backend, device) of ``todo`` that has not ``started`` (by default:
    has a row in ``done``) and whose first run ``done`` holds: a dry run from earlier
    results adds it (``started=set()``), a running sweep's ETA never does.
    """
    groups: dict[tuple, tuple[list[float], list[float]]] = {}
    firsts: list[dict[str, Any]] = []
    for row in done:
        run_s, index = finite_or_none(row.get("run_s")), finite_or_none(row.get("worker_run_index"))
        if run_s is None or index is None:
            continue  # a run that did not finish has no time
        first = index <= 1
        took = _steady_part(row, run_s) if first else run_s
        for key in _keys(row["backend"], row["device"], row["batch_size"]):
            groups.setdefault(key, ([], []))[first].append(max(took, 0.0))
        if first:
            firsts.append(row)
    if not groups:
        return None

    def median(key: tuple) -> float:
        later, first = groups[key]
        return statistics.median(later or first)

    seen = {k[:2] for k in groups if len(k) >= 2}

    def per_run(backend: str, device: str, batch_size: int) -> float:
        for key in _keys(backend, device, batch_size)[:2]:
            if key in groups:
                return median(key)
        # a backend not seen yet: the slowest seen, at this batch size where one ran it
        like = [k for k in ((*u, int(batch_size)) for u in seen) if k in groups]
        like = like or [u for u in seen if u in groups]
        return max(median(k) for k in like) if like else median(())

    extra: dict[tuple[str, str], list[float]] = {}
    for row in firsts:
        unit = (row["backend"], row["device"])
        extra.setdefault(unit, []).append(max(row["run_s"] - per_run(*unit, row["batch_size"]), 0))
    if started is None:
        started = {(r["backend"], r["device"]) for r in done}
    total = sum(per_run(s.backend, s.device, s.batch_size) for s in todo)
    for unit in dict.fromkeys((s.backend, s.device) for s in todo):
        if unit in started:
            continue
        if unit in extra:
            total += statistics.median(extra[unit])
        elif unit not in seen and extra:  # its start-up, as the dearest one seen
            total += max(statistics.median(v) for v in extra.values())
    return total


def _earlier_rows(store: Store, resume: bool) -> list[dict[str, Any]]:
    """The runs of the sweep that wrote this folder before: the finished runs of a resumed
    one, else those of the folder this sweep archived (none where there is neither)."""
    try:
        if resume:
            return store.runs().to_dict("records")
        if store.archived is not None:
            return Store.open(store.archived).runs().to_dict("records")
    except (StoreError, OSError, ValueError):
        pass  # an earlier folder that cannot be read: no prior, the ETA says it is a floor
    return []


def _steady_part(row: dict[str, Any], run_s: float) -> float:
    """What of a worker's first run a later run would take too: training after the first
    step, and evaluation (not the import, the data loading or the compile)."""
    train, evals = finite_or_none(row.get("train_wall_s")), finite_or_none(row.get("eval_s"))
    compile_s = finite_or_none(row.get("compile_s")) or 0.0
    if train is None or evals is None:
        return run_s - compile_s
    return train - compile_s + evals


def _keys(backend: str, device: str, batch_size: int) -> list[tuple]:
    """From the most alike finished runs to any: see :func:`estimate_seconds`."""
    return [(backend, device, int(batch_size)), (backend, device), ()]


def finite_or_none(value: Any) -> float | None:
    """A finite number, or None (NaN, inf, None, text): a row's value that may be empty."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s`` or ``<1s``."""
    if seconds < 0.5:
        return "<1s"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """runs done/total, the current run (and the worker running it, where the executor
    names it) and an ETA (:func:`estimate_seconds`); one line per run when not a terminal."""

    def __init__(
        self,
        todo: list[RunSpec],
        quiet: bool,
        stream: TextIO | None = None,
        prior: list[dict[str, Any]] | None = None,
    ):
        # sys.stderr as it is now, not as it was at import (a default argument would keep
        # a stream that has since been replaced, and closed)
        self.todo, self.quiet, self.stream = list(todo), quiet, stream or sys.stderr
        #: rows of an earlier sweep into the same folder (its archive, or the finished runs
        #: of a resumed one): what a backend not yet started here costs, start-up included
        self.prior = list(prior or [])
        self.total = len(self.todo)
        self.rows: list[dict[str, Any]] = []
        self.finished: set[str] = set()
        self.where: dict[str, str] = {}  # run_id -> the worker running it (a cluster's)
        self.tty = self.stream.isatty()

    @property
    def done(self) -> int:
        return len(self.rows)

    def seconds_left(self) -> tuple[float | None, list[str]]:
        """The estimate of what is left (:func:`estimate_seconds`; None with nothing to go
        by), and the backends it could price only by others' runs (none here or before)."""
        todo = [s for s in self.todo if s.run_id not in self.finished]
        seen = {r.get("backend") for r in self.rows}
        # a backend not started here goes by its runs in the earlier sweep, first run and all
        earlier = [r for r in self.prior if r.get("backend") not in seen]
        started = {(r["backend"], r["device"]) for r in self.rows}
        left = estimate_seconds(self.rows + earlier, todo, started=started)
        known = seen | {r.get("backend") for r in earlier}
        return left, list(dict.fromkeys(s.backend for s in todo if s.backend not in known))

    def settled(self) -> bool:
        """Whether enough runs have finished for the ETA to go without its interval: a
        fifth of them, or :data:`SETTLED_RUNS` of every backend of the sweep."""
        if self.done >= SETTLED_SHARE * self.total:
            return True
        per = Counter(r.get("backend") for r in self.rows)
        return all(per[b] >= SETTLED_RUNS for b in {s.backend for s in self.todo})

    def interval(self, left: float) -> tuple[float, float]:
        """Where the remainder ``left`` should lie: a factor ``1 + w`` either side, ``w``
        :data:`SPREAD_FLOOR` plus ``1 / sqrt(finished runs)`` (priced from two runs, the
        remainder may be twice or half the estimate; from 25, within a half either side)."""
        w = SPREAD_FLOOR + 1 / math.sqrt(max(self.done, 1))
        return left / (1 + w), left * (1 + w)

    def _eta(self) -> str:
        left, unseen = self.seconds_left()
        if left is None:
            return "ETA --"
        if unseen:  # priced by others' runs: a floor
            return f"ETA >= {format_duration(left)}: {', '.join(unseen)} not started yet"
        if self.settled():
            return f"ETA {format_duration(left)}"
        lo, hi = self.interval(left)
        return f"ETA {format_duration(left)} ({format_duration(lo)}-{format_duration(hi)})"

    def _label(self, spec: RunSpec, width: int | None = None) -> str:
        """The run's label, and the worker running it where the executor named one; within
        ``width`` characters, the label shortened first."""
        where = f" on {self.where[spec.run_id]}" if spec.run_id in self.where else ""
        if width is None:
            return spec.label() + where
        return (spec.label()[: max(width - len(where), 20)] + where)[:width]

    def start(self, spec: RunSpec, where: str = "") -> None:
        if where:
            self.where[spec.run_id] = where
        if self.quiet or not self.tty:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} {self._eta()}  {self._label(spec, 70):<70}"
        )
        self.stream.flush()

    def finish(self, spec: RunSpec, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.finished.add(spec.run_id)
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
        line = f"[{self.done}/{self.total}] {self._label(spec)}: {status} {detail}"
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


def sweep_environment(sweep: Sweep, command: list[str] | None = None) -> dict[str, Any]:
    """environment.json of a sweep about to run here (its fingerprint decides whether a
    folder may be resumed: :func:`benchmarks.core.environment.fingerprint`)."""
    threads = sweep.threads or default_threads()
    return environment.capture(
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


def _run_sweep(sweep, out, resume, quiet, command, executor, on_result) -> SweepResult:
    env = sweep_environment(sweep, command)
    threads = env["threads_per_worker"]
    store = Store.create(
        out, sweep.name, resume, fingerprint=environment.fingerprint(env, sweep.runs)
    )
    if store.archived and not quiet:
        print(
            f"earlier results of {out} moved to {store.archived} (use --resume to continue them instead)",
            file=sys.stderr,
        )
    if executor is not None:  # where the runs execute (after the fingerprint: not in it)
        env["executor"] = executor.describe()
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
    progress = Progress(todo, quiet, prior=_earlier_rows(store, resume))
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

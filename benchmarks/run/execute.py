"""Where runs execute: the executor interface and its first implementation, local workers.

An executor takes work units (the runs of one (backend, device), in order: they share one
framework process) and yields each run's result as it finishes. Every run comes back as a
result, never as an exception: a run that raises, hangs or kills its worker comes back as
the failed record of :mod:`benchmarks.record.schema`, with the worker's traceback. The driver
alone writes the store, whatever executes the runs. Adding an executor (a cluster, say) is
one module implementing :class:`Executor`.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.record.schema import RunSpec, failed_record
from benchmarks.run.worker import Worker, WorkerFailure

RUN_TASK = "benchmarks.run.runner:execute_run"
Result = dict[str, Any]  # {"run": row, "curves": [...], "timings": [...]}


@dataclass
class WorkUnit:
    """Runs that share one worker process: one backend on one device, in sweep order."""

    backend: str
    device: str
    specs: list[RunSpec]

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.device}"


def work_units(specs: list[RunSpec]) -> list[WorkUnit]:
    """Group specs by (backend, device), in the sweep's order between groups; within one,
    the runs that ``compare`` pools (one mode, optimizer and batch size: they differ in
    learning rate and seed) are dealt out in turn, so that a few seconds in which a shared
    machine runs slow fall on one run of several such groups, not on a whole group."""
    units: dict[tuple[str, str], WorkUnit] = {}
    for spec in specs:
        key = (spec.backend, spec.device)
        units.setdefault(key, WorkUnit(*key, [])).specs.append(spec)
    for unit in units.values():
        unit.specs = _dealt(unit.specs)
    return list(units.values())


def _dealt(specs: list[RunSpec]) -> list[RunSpec]:
    """``specs`` round robin over their compare groups (each group's own order kept)."""
    groups: dict[tuple, list[RunSpec]] = {}
    for s in specs:
        key = (s.dataset, s.mode, s.chosen, s.variant, s.optimizer, s.batch_size)
        groups.setdefault(key, []).append(s)
    return [
        g[i]
        for i in range(max(map(len, groups.values()), default=0))
        for g in groups.values()
        if i < len(g)
    ]


def result_of_failure(spec: RunSpec, exc: WorkerFailure) -> Result:
    """The record of a run whose worker task did not return (status from the failure), on
    the machine that ran the worker."""
    return stamp_host(failed_record(spec, exc.status, str(exc), exc.remote_traceback))


def stamp_host(result: Result, host: str | None = None) -> Result:
    """``result`` with its run's ``host`` (default: this machine) where the run left it
    empty: a run that did not finish never reached the line of the runner that sets it."""
    if not result["run"].get("host"):
        result["run"]["host"] = host or socket.gethostname()
    return result


class Executor(abc.ABC):
    """Runs work units somewhere; see the module docstring."""

    @abc.abstractmethod
    def run(
        self, units: list[WorkUnit], on_start: Callable[[RunSpec], None] | None = None
    ) -> Iterator[tuple[RunSpec, Result]]:
        """Yield ``(spec, result)`` for every spec of ``units`` as each finishes.

        ``on_start(spec)`` is called as a run starts, where the executor knows; an executor
        that runs on other machines names the one: ``on_start(spec, where)``. Closing the
        iterator, or a KeyboardInterrupt while it runs, stops every run still going.
        """

    def describe(self) -> dict[str, Any]:
        """What environment.json records of where the runs executed."""
        return {"kind": type(self).__name__}


class LocalExecutor(Executor):
    """One worker process at a time on this machine, pinned to ``threads`` CPUs: a unit's
    runs go to one worker in sequence; a run that kills or hangs its worker gets a fresh
    worker for the next run."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, units, on_start=None):
        for unit in units:
            worker = Worker(threads=self.threads, label=unit.label)
            try:
                for spec in unit.specs:
                    if on_start is not None:
                        on_start(spec)
                    try:
                        result = worker.call(RUN_TASK, {"spec": spec}, timeout=spec.timeout_s)
                    except WorkerFailure as exc:
                        result = result_of_failure(spec, exc)
                    yield spec, stamp_host(result)
            except KeyboardInterrupt:
                worker.kill()  # mid-run: stop now, do not wait for the run to finish
                raise
            finally:
                worker.close()

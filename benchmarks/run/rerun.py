"""``optbench rerun RUN_ID``: one stored run again, in the foreground, to debug it.

The run's configuration comes back from its row of runs.parquet (:meth:`RunSpec.from_row`),
on the compiled path it took, with the thread count and CPU pinning it had. It runs in this
process (no worker, no timeout: Ctrl-C stops it), so the framework's output, warnings and a
traceback reach the terminal whole; a segfault prints the Python stack (faulthandler).
Nothing is written into the results folder.
"""

from __future__ import annotations

import faulthandler
import os
import traceback
from pathlib import Path
from typing import Any, TextIO

from benchmarks.core import exitcodes
from benchmarks.record.schema import FAILED, RunSpec, Status
from benchmarks.record.store import Store, StoreError
from benchmarks.run.driver import finite_or_none


def find(results: Path, run_id: str) -> tuple[RunSpec, dict[str, Any], int | None]:
    """The spec and the stored row of run ``run_id`` in ``results``, and the threads its
    worker had; StoreError (naming how to list the ids) where there is none."""
    store = Store.open(results)
    runs = store.runs()
    match = runs[runs["run_id"] == run_id]
    if match.empty:
        raise StoreError(
            f"no run {run_id!r} in {str(results)!r} ({len(runs)} runs); list them with "
            f"`optbench rerun --list --results {results}` (the run_id column of runs.parquet)"
        )
    row = match.iloc[0].to_dict()
    # the CPUs its worker was pinned to; a run that never ran has none: the sweep's setting
    threads = finite_or_none(row.get("threads")) or finite_or_none(
        store.environment().get("threads_per_worker")
    )
    return RunSpec.from_row(row), row, int(threads) if threads else None


def listing(results: Path, failed_only: bool = False) -> str:
    """One line per run of ``results``: id, status and what it is."""
    runs = Store.open(results).runs()
    if failed_only:
        everything, runs = runs, runs[runs["status"].isin(FAILED)]
        if runs.empty:  # skipped runs did not fail: nothing here ran and broke
            skipped = int((everything["status"] == Status.SKIPPED.value).sum())
            return f"no failed run in {results}" + (
                f" ({skipped} skipped, listed by --list)" if skipped else ""
            )
    lines = [f"{'run_id':<12}  {'status':<8}  run"]
    for row in runs.to_dict("records"):
        spec = RunSpec.from_row(row)
        lines.append(f"{row['run_id']:<12}  {row['status']:<8}  {spec.label()}")
    return "\n".join(lines)


def rerun(results: Path, run_id: str, threads: int | None, stdout: TextIO, stderr: TextIO) -> int:
    """Run ``run_id`` of ``results`` here, pinned like its worker was (or to ``threads``
    CPUs); print what it gives beside what was stored. Returns the exit code: 0 it finished
    (ok or diverged), 1 it failed, 2 it cannot run here; StoreError for an unknown id."""
    from benchmarks.run.runner import execute_run
    from benchmarks.run.worker import default_threads, pin_cores, thread_env

    spec, stored, had = find(results, run_id)
    n = threads or had or default_threads()
    os.environ.update(thread_env(n))  # before any framework is imported, as in a worker
    cpus = pin_cores(n)
    faulthandler.enable()
    rid = stored["run_id"]
    if spec.run_id != rid:  # from_row could not rebuild what the id hashes: say so, run it
        print(f"note: the stored configuration hashes to {spec.run_id}, not {rid}", file=stderr)
    print(
        f"rerun {rid}: {spec.label()}\n"
        f"  stored: {_summary(stored)}\n"
        f"  running here in the foreground on {len(cpus)} CPU(s) ({','.join(map(str, cpus))}), "
        "no timeout (Ctrl-C stops it); nothing is written to the results folder",
        file=stderr,
        flush=True,
    )
    try:
        result = execute_run(spec)
    except Exception:  # noqa: BLE001 - the point of a rerun: the whole traceback
        traceback.print_exc(file=stderr)
        print(f"rerun {rid}: error (the traceback above)", file=stderr)
        return exitcodes.MEASURED_FAILURE
    row = result["run"]
    print(f"rerun {rid}: {_summary(row)}", file=stdout)
    if row["status"] == Status.SKIPPED:
        return exitcodes.BAD_INPUT
    return exitcodes.MEASURED_FAILURE if row["status"] in FAILED else exitcodes.OK


def _summary(row: dict[str, Any]) -> str:
    """A run's outcome in one line."""
    status = row.get("status", "?")
    if status not in (Status.OK, Status.DIVERGED):
        return f"{status}: {row.get('error') or 'no message'}"
    parts = [str(status)]
    if status == Status.DIVERGED:
        parts.append(f"at step {row.get('diverged_step')}")
    for key, fmt in (
        ("steps", "{:.0f} steps"),
        ("samples_per_s", "{:,.0f} samples/s"),
        ("compile_s", "first step {:.3g} s"),
        ("final_test_acc", "test acc {:.4f}"),
        ("final_train_loss", "train loss {:.4g}"),
        ("run_s", "{:.1f} s in all"),
    ):
        v = finite_or_none(row.get(key))
        if v is not None:
            parts.append(fmt.format(v))
    return ", ".join(parts)

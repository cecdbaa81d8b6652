"""The driver: runs a sweep's grid, one worker process per (backend, device), into the store.

The driver is the only writer of the results folder. Runs of one (backend, device) go to
one worker in sequence; a run that raises, hangs past its timeout or kills its worker is
recorded with that status and the sweep goes on (a fresh worker takes the next run).
Ctrl-C stops at once and keeps every finished run; ``--resume`` picks up from there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from backends import registry
from benchmarks import environment
from benchmarks.runner import failed_run
from benchmarks.store import FAILED, Store, point_latest, write_json
from benchmarks.sweep import RunSpec, Sweep
from benchmarks.worker import (
    Worker,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    default_threads,
    thread_env,
)


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
            if status == "ok" and sps == sps
            else row.get("error", "")[:80]
        )
        if status == "diverged":
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
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every spec of ``sweep`` not already finished in ``out``; returns counts by status."""
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
    progress = Progress(len(todo), quiet)
    interrupted = False
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for spec in todo:
        groups.setdefault((spec.backend, spec.device), []).append(spec)
    try:
        for (backend, device), specs in groups.items():
            missing = registry.entry(backend).missing()
            if missing:
                why = f"not installed (missing {', '.join(missing)}); fix: {registry.entry(backend).install_hint()}"
                for spec in specs:
                    _land(store, failed_run(spec, "skipped", why), progress, spec, on_result)
                continue
            worker = Worker(threads=threads, label=f"{backend}/{device}")
            try:
                for spec in specs:
                    progress.start(spec)
                    _land(store, _execute(worker, spec), progress, spec, on_result)
            except KeyboardInterrupt:
                worker.kill()  # mid-run: stop now, do not wait for the run to finish
                raise
            finally:
                worker.close()
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


def _execute(worker: Worker, spec: RunSpec) -> dict[str, Any]:
    try:
        return worker.call("benchmarks.runner:execute_run", {"spec": spec}, timeout=spec.timeout_s)
    except WorkerTimeout:
        return failed_run(
            spec, "timeout", f"no result after {spec.timeout_s:g} s; the worker was killed"
        )
    except WorkerDied as exc:
        return failed_run(spec, "crashed", str(exc))
    except WorkerError as exc:
        return failed_run(spec, "error", str(exc))


def _land(
    store: Store, result: dict[str, Any], progress: Progress, spec: RunSpec, on_result
) -> None:
    store.write_run(result)
    progress.finish(spec, result["run"])
    if on_result is not None:
        on_result(result)


def _status_counts(store: Store) -> dict[str, int]:
    runs = store.table("runs")
    if runs is None or runs.empty:
        return {}
    return {str(k): int(v) for k, v in runs["status"].value_counts().items()}


def summary_table(runs: pd.DataFrame) -> str:
    """Per backend x mode x device: runs by status, median samples/s, best test accuracy."""
    if runs is None or runs.empty:
        return "(no runs)"
    g = runs.groupby(["backend", "mode", "device"], sort=True)
    rows = []
    for (b, m, d), df in g:
        ok = df[df["status"] == "ok"]
        sps = ok["samples_per_s"].median() if "samples_per_s" in ok and len(ok) else float("nan")
        acc = ok["final_test_acc"].max() if "final_test_acc" in ok and len(ok) else float("nan")
        comp = ok["compile_s"].median() if "compile_s" in ok and len(ok) else float("nan")
        rows.append(
            {
                "backend": b,
                "mode": m,
                "device": d,
                "runs": len(df),
                "ok": len(ok),
                "diverged": int((df["status"] == "diverged").sum()),
                "failed": int(df["status"].isin(FAILED).sum()),
                "skipped": int((df["status"] == "skipped").sum()),
                "median samples/s": f"{sps:,.0f}" if sps == sps else "-",
                "compile s": f"{comp:.2f}" if comp == comp else "-",
                "best test acc": f"{acc:.3f}" if acc == acc else "-",
            }
        )
    return pd.DataFrame(rows).to_string(index=False)

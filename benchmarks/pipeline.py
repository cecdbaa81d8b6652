"""The bench pipeline behind ``optbench run`` (and ``make bench``): run the sweep, record
parity, print the summary, write the report, and say how it went as an exit code."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from backends import registry
from benchmarks import exitcodes
from benchmarks.driver import run_sweep
from benchmarks.execute import Executor
from benchmarks.schema import FAILED
from benchmarks.store import Store, writing
from benchmarks.sweep import Sweep


def bench(
    sweep: Sweep,
    out: Path,
    *,
    resume: bool = False,
    parity: bool = False,
    report: bool = False,
    quiet: bool = False,
    command: list[str] | None = None,
    executor: Executor | None = None,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    """Run ``sweep`` into ``out``; returns the exit code (see :mod:`benchmarks.exitcodes`).
    StoreError (an unusable folder, or one another run is writing) and KeyboardInterrupt
    propagate to the caller. The folder stays locked to this run until its report is written."""
    with writing(out):
        return _bench(sweep, out, resume, parity, report, quiet, command, executor, stdout, stderr)


def _bench(sweep, out, resume, parity, report, quiet, command, executor, stdout, stderr) -> int:
    if not quiet:
        print(
            f"sweep {sweep.name!r} ({sweep.source}): {len(sweep.runs)} runs -> {out}", file=stderr
        )
    result = run_sweep(sweep, out, resume=resume, quiet=quiet, command=command, executor=executor)
    store = Store.open(result.path)

    parity_ok = True
    if parity:
        from benchmarks.parity import ParityConfig, format_table, passed, run_parity

        swept = {s.backend for s in sweep.runs}
        cfg = ParityConfig()
        rows = run_parity(
            [b for b in registry.installed() if b in swept], cfg=cfg, threads=sweep.threads
        )
        store.write_parity({"config": asdict(cfg), "rows": rows})
        parity_ok = passed(rows)
        if not quiet:
            print("\n" + format_table(rows, cfg), file=stderr)

    from benchmarks.report import console_summary, write_report

    if not quiet:
        print("\n" + console_summary(result.path), file=stdout)
    kept = f", {result.skipped_existing} kept from before" if result.skipped_existing else ""
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()))
    print(f"\n{result.ran} run(s) this time{kept}; {counts}\nresults: {result.path}", file=stdout)
    if report:
        paths = write_report(result.path)
        print(
            f"report: {paths['html']}\n        {paths['md']}\n        {paths['csv']}", file=stdout
        )
    failed = sum(v for k, v in result.counts.items() if k in FAILED)
    if failed:
        print(
            f"FAIL: {failed} run(s) failed (see the error column, or the report's Problems)",
            file=stderr,
        )
    if not parity_ok:
        print("FAIL: a backend is outside the parity tolerance (parity.json)", file=stderr)
    return exitcodes.MEASURED_FAILURE if failed or not parity_ok else exitcodes.OK

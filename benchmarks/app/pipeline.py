"""The bench pipeline behind ``optbench run`` (and ``make bench``): run the sweep, record
parity, print the summary, write the report, and say how it went as an exit code."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from backends import registry
from benchmarks.core import exitcodes
from benchmarks.core.environment import fingerprint
from benchmarks.record.schema import DEFAULT_COMPILER, FAILED
from benchmarks.record.store import Store, StoreError, writing
from benchmarks.record.sweep import Sweep
from benchmarks.run.driver import estimate_seconds, format_duration, run_sweep, sweep_environment
from benchmarks.run.execute import Executor


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
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``sweep`` into ``out``; returns the exit code (see :mod:`benchmarks.core.exitcodes`).
    StoreError (an unusable folder, or one another run is writing) and KeyboardInterrupt
    propagate to the caller. The folder stays locked to this run until its report is written."""
    # the streams as they are now (defaults bound at import would keep replaced ones)
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
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
        from benchmarks.checks.parity import (
            ParityConfig,
            format_table,
            passed,
            presets_for,
            run_parity,
        )

        swept = {s.backend for s in sweep.runs}
        cfg = ParityConfig()
        if not quiet:
            print("\nparity with the float64 NumPy reference:", file=stderr)
        rows = run_parity(
            [b for b in registry.installed() if b in swept],
            optimizers=presets_for([s.opt for s in sweep.runs]),
            cfg=cfg,
            threads=sweep.threads,
            log=None if quiet else (lambda line: print(line, file=stderr, flush=True)),
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
        if not quiet:
            print("writing report...", file=stderr, flush=True)
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


def dry_run(sweep: Sweep, out: Path, *, resume: bool = False, stdout: TextIO | None = None) -> int:
    """``optbench run --dry-run``: the grid, axis by axis, and how long it should take (from
    the run times of earlier results in ``out``); runs nothing, writes nothing, locks nothing.
    With ``resume``: what is left, or the refusal the run would give (exit 2)."""
    stdout = stdout or sys.stdout
    print(describe_grid(sweep, out), file=stdout)
    print(describe_code(sweep), file=stdout)
    try:
        store: Store | None = Store.open(out)
        runs = store.table("runs")
    except StoreError:  # no folder, or not a usable one: nothing to go by
        store, runs = None, None
    rows = [] if runs is None else runs.to_dict("records")
    todo, note = sweep.runs, f"no estimate: no earlier results in {out}"
    if resume and store is not None:
        try:  # what the run would refuse, the dry run refuses
            store.check_fingerprint(fingerprint(sweep_environment(sweep), sweep.runs))
        except StoreError as exc:
            print(f"--resume would be refused: {exc}", file=stdout)
            return exitcodes.BAD_INPUT
        done = store.finished_ids()
        todo = [s for s in sweep.runs if s.run_id not in done]
        print(
            f"--resume: {len(sweep.runs) - len(todo)} finished in {out}, {len(todo)} to run",
            file=stdout,
        )
    left = estimate_seconds(rows, todo, started=set())  # every worker starts afresh
    if not todo:
        note = "nothing to run: every run is finished"
    elif left is not None:
        had = {r["backend"] for r in rows}
        new = sorted({s.backend for s in todo} - had)
        note = (
            f"estimated time: {format_duration(left)} for {len(todo)} runs, from the run times "
            f"of the {len(rows)} runs in {out} (each backend's first run as long as it was "
            "there; process start-up and the measurement of 'default' paths not counted)"
        )
        if new:
            note += f"; {', '.join(new)} ran none there: estimated like the others"
    print(note, file=stdout)
    return exitcodes.OK


def describe_code(sweep: Sweep) -> str:
    """Every module the sweep would import to run (its backends' adapters and its optimizer
    plugins), each with what names it: a sweep file is code, to be trusted as a test file is."""
    import os

    from backends import optimizers, registry

    extra = {e.name for e in registry.parse_extra(os.environ.get("OPTBENCH_BACKENDS", ""))}
    named: dict[str, str] = {}
    for b in dict.fromkeys(s.backend for s in sweep.runs):
        why = "OPTBENCH_BACKENDS" if b in extra else "backends/registry.py"
        named.setdefault(registry.entry(b).target.split(":")[0], f"backend {b} ({why})")
    for s in sweep.runs:
        if s.optimizer_source:
            kind = s.opt.plugin
            why = "shipped catalogue" if s.optimizer_source in optimizers.CATALOGUE else "plugin"
            named.setdefault(
                s.optimizer_source.split(":")[0],
                f"optimizer {kind.name if kind else s.opt.kind} ({why})",
            )
    lines = ["  imports (a sweep runs this code; read what you did not write):"]
    lines += [f"    {module:<40} {why}" for module, why in named.items()]
    return "\n".join(lines)


def describe_grid(sweep: Sweep, out: Path) -> str:
    """The grid, axis by axis: how many values each has, which, and the total."""
    runs = sweep.runs
    cells = list(dict.fromkeys((s.backend, s.device, s.mode, s.compiler) for s in runs))
    opts = list(dict.fromkeys((s.optimizer, s.lr) for s in runs))
    devices = list(dict.fromkeys(s.device for s in runs))
    paths: dict[str, list[str]] = {}  # per backend (and device, where there are several)
    for b, d, m, c in cells:
        paths.setdefault(b if len(devices) == 1 else f"{b}/{d}", []).append(f"{m}/{c}")
    lrs: dict[str, list[str]] = {}
    for o, lr in opts:
        lrs.setdefault(o, []).append(f"{lr:g}")
    axes = [
        ("backends", list(dict.fromkeys(s.backend for s in runs))),
        ("devices", devices),
        ("modes/compilers", [f"{k} {', '.join(v)}" for k, v in paths.items()], len(cells)),
        ("optimizers x lr", [f"{k} {', '.join(v)}" for k, v in lrs.items()], len(opts)),
        ("batch sizes", list(dict.fromkeys(s.batch_size for s in runs))),
        ("seeds", list(dict.fromkeys(s.seed for s in runs))),
        ("datasets", list(dict.fromkeys(s.dataset for s in runs))),
        ("variants", list(dict.fromkeys(s.variant for s in runs))),
    ]
    lines = [f"sweep {sweep.name!r} ({sweep.source}) -> {out}: dry run, nothing runs"]
    for name, vals, *n in axes:
        sep = "; " if n else ", "  # a list of lists: the count is of what they hold
        lines.append(f"  {name:<16}{n[0] if n else len(vals):>4}  {sep.join(map(str, vals))}")
    sizes = [len(cells), len(opts), *(len(a[1]) for a in axes[4:])]
    product = " x ".join(map(str, sizes))
    full = math.prod(sizes)
    lines.append(
        f"  {'total':<16}{len(runs):>4}  runs"
        + (
            f" = {product} (backend/device/path cells x optimizer settings x batch sizes x "
            "seeds x data sets x variants)"
            if full == len(runs)
            else f" of the {full} in {product}: a backend without a variant runs none of it, "
            "and the extra seeds run on one backend ([optimizer_seeds])"
        )
    )
    if any(s.compiler == DEFAULT_COMPILER for s in runs):
        lines.append(
            "  'default': each backend's fastest compiled path, measured at the start of the sweep"
        )
    return "\n".join(lines)

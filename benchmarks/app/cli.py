"""``optbench``: the command line.

    optbench backends                      what is installed, versions, devices
    optbench parity [--format json]        every backend against the float64 NumPy reference
    optbench run --sweep default           run a sweep into results/<name>/ (--dry-run: the plan)
    optbench rerun RUN_ID                  one stored run again, in the foreground, to debug it
    optbench report [RESULTS_DIR]          tables, plots and one HTML page for a sweep
    optbench compare BASELINE [CURRENT]    regressions against a baseline (exit 1 if any)
    optbench baseline save RESULTS_DIR     keep a results folder as a named baseline (list)
    optbench history [SWEEP|FOLDER ...]    one sweep's folders over time: history.html/.csv
    optbench archives [--prune --keep N]   earlier results moved aside: list, prune

Bad input is reported as one line naming the bad value and the fix. Exit codes (the same
for every command, see ``benchmarks/core/exitcodes.py``): 0 ok; 1 a measured failure (failed
runs, parity outside the tolerance, a regression); 2 bad input or an environment that
cannot serve the request; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from typing import Any

from backends import registry
from backends.base import KINDS, SpecError
from benchmarks.core import exitcodes
from benchmarks.record.data import DataError


class UsageError(ValueError):
    """Bad command-line input; reported without a traceback."""


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _floats(value: str) -> list[float]:
    try:
        return [float(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected comma-separated numbers, e.g. 1e-3,1e-2"
        ) from None


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected comma-separated integers, e.g. 32,128"
        ) from None


def _rounds(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is invalid: give a whole number of rounds, e.g. 3 (0: no re-measurement)"
        ) from None


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is invalid: give a number of seconds, e.g. 180"
        ) from None


# --- optbench backends -----------------------------------------------------------------


def probe_backend(name: str) -> dict[str, Any]:
    """Worker task: import one backend and say what it has."""
    cls = registry.load(name)
    be = cls(mode=cls.modes[0])
    info = be.describe()
    devices = cls.devices()
    return {
        "version": info.version,
        "devices": devices,
        "modes": list(cls.modes),
        # the paths this machine can run: a GPU-only path shows where a GPU is visible
        "compilers": [p.name for p in cls.compile_paths() if set(p.devices) & set(devices)],
        "extra": info.extra,
    }


def cmd_backends(args: argparse.Namespace) -> int:
    from benchmarks.run.worker import WorkerFailure, call_isolated

    rows = []
    for name in registry.NAMES:
        e = registry.entry(name)
        missing = e.missing()
        row: dict[str, Any] = {"backend": name, "installed": not missing}
        if missing:
            row["why"] = f"missing {', '.join(missing)}; fix: {e.install_hint()}"
        else:
            try:
                row.update(
                    call_isolated(
                        "benchmarks.app.cli:probe_backend",
                        {"name": name},
                        label=f"probe-{name}",
                        threads=args.threads,
                        timeout=300,
                    )
                )
            except WorkerFailure as exc:
                row["installed"] = False
                row["why"] = f"installed but fails to load: {exc}"
        rows.append(row)
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            if r["installed"]:
                print(
                    f"{r['backend']:<11} {r['version']:<14} devices: {', '.join(r['devices']):<9} "
                    f"modes: {', '.join(r['modes']):<16} compilers: {', '.join(r['compilers'])}"
                )
            else:
                print(f"{r['backend']:<11} {'not available':<14} {r['why']}")
    return exitcodes.OK


# --- optbench parity -------------------------------------------------------------------


def cmd_parity(args: argparse.Namespace) -> int:
    from benchmarks.checks.parity import ParityConfig, format_table, passed, run_parity, skipped
    from benchmarks.record.store import json_safe

    cfg = ParityConfig(
        steps=args.steps,
        dataset=args.dataset,
        batch_size=args.batch_size,
        hidden=tuple(args.hidden),
        seed=args.seed,
        tolerance=args.tolerance,
        device=args.device,
    )
    rows = run_parity(
        args.backend,
        args.mode,
        args.optimizer,
        cfg,
        threads=args.threads,
        log=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)),
    )
    if args.format == "json":
        print(json.dumps(json_safe(rows), indent=2, allow_nan=False))
    else:
        print(format_table(rows, cfg))
    ok = passed(rows)
    if not ok and args.format != "json":
        print(
            "\nFAIL: at least one backend is outside the tolerance (see the FAIL rows).",
            file=sys.stderr,
        )
    if ok and skipped(rows):  # asked for a device a backend does not see: not served
        names = ", ".join(r["backend"] for r in skipped(rows))
        print(
            f"optbench parity: error: {names} cannot run on the {cfg.device} here (skipped); "
            f"run parity on a machine where they see one, or without --device {cfg.device}",
            file=sys.stderr,
        )
        return exitcodes.BAD_INPUT
    return exitcodes.OK if ok else exitcodes.MEASURED_FAILURE


# --- optbench run ----------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.app.pipeline import bench
    from benchmarks.record.store import StoreError
    from benchmarks.record.sweep import load_sweep

    overrides = {
        "backends": args.backend,
        "modes": args.mode,
        "compilers": args.compiler,
        "devices": args.device,
        "optimizers": args.optimizer,
        "learning_rates": args.lr,
        "batch_sizes": args.batch_size,
        "seeds": args.seed if args.seed is not None else args.seeds,  # the seeds, or how many
        "dataset": args.dataset,
        "variants": args.variant,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "eval_every": args.eval_every,
        "timeout_s": args.timeout,
        "threads": args.threads,
        "name": args.name,
    }
    sweep = load_sweep(args.sweep, overrides)
    for warning in sweep.warnings:
        print(f"optbench run: warning: {warning}", file=sys.stderr)
    out = Path(args.out) if args.out else Path("results") / sweep.name
    if args.dry_run:
        from benchmarks.app.pipeline import dry_run

        return dry_run(sweep, out, resume=args.resume)
    executor = _executor(args, sweep.threads)  # before the folder is touched
    try:
        if executor is not None:  # a data file it cannot send: refused before anything runs
            executor.data_files(sweep.runs)
        return bench(
            sweep,
            out,
            resume=args.resume,
            parity=args.parity,
            report=args.report,
            quiet=args.quiet,
            command=sys.argv,
            executor=executor,
        )
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if executor is not None:
            executor.close()


def _executor(args: argparse.Namespace, threads: int | None):
    """The executor ``--executor``/``--scheduler`` ask for: None for local workers (the
    driver's default), or a connected DaskExecutor; UsageError where it cannot connect."""
    kind = args.executor or ("dask" if args.scheduler else "local")
    if kind == "local":
        if args.scheduler:
            raise UsageError("--scheduler is for --executor dask; drop it to run here")
        return None
    if not args.scheduler:
        raise UsageError(
            "--executor dask needs --scheduler ADDRESS, e.g. tcp://HOST:8786 "
            "(the address `dask scheduler` prints)"
        )
    from benchmarks.run.dask_executor import DaskExecutor, SchedulerUnreachable

    try:
        return DaskExecutor.connect(args.scheduler, threads=threads)
    except SchedulerUnreachable as exc:
        raise UsageError(str(exc)) from None


# --- optbench report -------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from benchmarks.record.store import Store, StoreError
    from benchmarks.report import write_report

    try:
        Store.open(args.results)  # not a results folder: said before anything else
        print(f"writing the report of {args.results}...", file=sys.stderr, flush=True)
        paths = write_report(args.results)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    print(f"report: {paths['html']}\n        {paths['md']}\n        {paths['csv']}")
    return exitcodes.OK


# --- optbench rerun --------------------------------------------------------------------


def cmd_rerun(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.record.store import StoreError
    from benchmarks.run.rerun import listing, rerun

    try:
        if args.list:
            print(listing(Path(args.results), failed_only=args.failed))
            return exitcodes.OK
        if not args.run_id:
            raise UsageError(
                f"give a RUN_ID; list them with `optbench rerun --list --results {args.results}`"
            )
        return rerun(Path(args.results), args.run_id, args.threads, sys.stdout, sys.stderr)
    except StoreError as exc:
        raise UsageError(str(exc)) from None


# --- optbench archives -----------------------------------------------------------------


def cmd_archives(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.record.store import StoreError, archives, locked_by, prune_archives, to_prune

    if args.prune and args.keep is None:
        raise UsageError("--prune needs --keep N: how many archives of each name to keep")
    if args.keep is not None and args.keep < 0:
        raise UsageError(f"--keep {args.keep} is invalid; expected a count >= 0")
    try:
        found = archives(Path(args.results))
        going = {a.path for a in to_prune(found, args.keep)} if args.keep is not None else set()
        if args.prune:
            deleted, left = prune_archives(Path(args.results), args.keep)
            for a in deleted:
                print(f"deleted {a.path} ({a.runs} runs, {_size(a.size)})")
            for a, why in left:
                print(f"kept {a.path}: {why}", file=sys.stderr)
            freed = sum(a.size for a in deleted)
            print(f"{len(deleted)} archive(s) deleted, {_size(freed)} freed")
            return exitcodes.OK
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if not found:
        print(f"no archived results in {args.results}")
        return exitcodes.OK
    rows = [("name", "started (UTC)", "runs", "size", "folder", "")]
    for a in found:
        when = a.started.strftime("%Y-%m-%d %H:%M:%S") if a.started else "undated"
        held = locked_by(a.path)
        note = f"locked: {held}" if held else ("would be pruned" if a.path in going else "")
        rows.append((a.name, when, str(a.runs), _size(a.size), str(a.path), note))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    total = sum(a.size for a in found)
    print(
        f"{len(found)} archive(s), {_size(total)}; `--prune --keep N` keeps the newest N of each name"
    )
    return exitcodes.OK


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


# --- optbench compare ------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.record.store import StoreError
    from benchmarks.track import baselines, recheck
    from benchmarks.track.compare import FAIL_ON, compare, format_comparison, format_markdown

    if args.recheck is not None and args.recheck < 0:
        raise UsageError(
            f"--recheck {args.recheck} is invalid: give a number of rounds, 0 for none"
        )
    budget = recheck.BUDGET_S if args.recheck_budget is None else args.recheck_budget
    if not 0 < budget < float("inf"):  # NaN fails this too
        raise UsageError(
            f"--recheck-budget {args.recheck_budget} is invalid: give the seconds the "
            f"re-measurement may take, above 0 (default {recheck.BUDGET_S:.0f}); "
            "--recheck 0 for none"
        )
    fail_on = tuple(args.fail_on or FAIL_ON)
    bad = [k for k in fail_on if k not in FAIL_ON]
    if bad:
        raise UsageError(f"--fail-on {bad[0]!r} is invalid; choose from {', '.join(FAIL_ON)}")
    try:
        base = baselines.resolve(args.baseline, Path(args.current))
        cmp = compare(
            base,
            Path(args.current),
            args.threshold,
            args.acc_tolerance,
            recheck.ROUNDS if args.recheck is None else args.recheck,
            lambda line: print(line, file=sys.stderr, flush=True),
            budget,
        )
    except (StoreError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print(
            json.dumps(
                {
                    "regressions": cmp.regressions,
                    "by_kind": cmp.by_kind,
                    "improvements": cmp.improvements,
                    "fail_on": list(fail_on),
                    "matched": cmp.matched,
                    "warnings": cmp.warnings,
                    "groups": cmp.groups.to_dict(orient="records"),
                    "status_changes": cmp.status_changes.to_dict(orient="records"),
                    "accuracy_drops": cmp.accuracy_drops.to_dict(orient="records"),
                    "notes": cmp.notes,
                },
                indent=2,
                default=str,
            )
        )
    elif args.format == "md":
        print(format_markdown(cmp, base, args.current, args.threshold))
    else:
        print(format_comparison(cmp, base, args.current, args.threshold))
    return exitcodes.MEASURED_FAILURE if cmp.failed(fail_on) else exitcodes.OK


def cmd_baseline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.record.store import StoreError
    from benchmarks.track import baselines

    try:
        if args.action == "save":
            if not args.name:
                raise UsageError("baseline save needs --name NAME, e.g. --name laptop-cpu")
            row = baselines.save(Path(args.results), args.name, [Path(r) for r in args.repeat])
            print(
                f"saved {args.results} as baseline {row['name']} ({row['path']}, "
                f"{row['size_kb']} kB, {row['sweeps']} sweep(s)); compare with: "
                f"optbench compare {row['name']}"
            )
            return exitcodes.OK
        rows = baselines.listing()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if not rows:
        print("no baseline saved yet: optbench baseline save results/latest --name NAME")
    for r in rows:
        m = r["machine"]
        versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        where = f"{m['cpu_model']} x{m['cpu_cores']}" + (f", {m['gpu']}" if m["gpu"] else "")
        print(
            f"{r['name']:<24} {r['date']:<10} {r['runs']:>4} runs {r['sweeps']} sweep(s) "
            f"{r['size_kb']:>5} kB  {where}; {versions}"
        )
    return exitcodes.OK


# --- optbench history ------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.record.store import StoreError
    from benchmarks.track.history import summary, write_history

    try:
        hist, paths = write_history(
            args.targets, Path(args.results), Path(args.out) if args.out else None
        )
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    print(f"{summary(hist)}\nhistory: {paths['html']}\n         {paths['csv']}")
    return exitcodes.OK


# --- the parser ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option said in one line (as every other bad input is), not
    after the whole usage block; ``--help`` still shows it all."""

    def error(self, message: str):
        self.exit(exitcodes.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    try:
        version = metadata.version("optbench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    p = _Parser(
        prog="optbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"optbench {version}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "backends", help="list backends: installed or not (and why), version, devices"
    )
    b.add_argument("--format", choices=("table", "json"), default="table")
    b.add_argument(
        "--threads", type=int, default=None, help="threads per worker (default: physical cores)"
    )
    b.set_defaults(func=cmd_backends)

    q = sub.add_parser(
        "parity", help="compare every backend with the float64 NumPy reference, step by step"
    )
    q.add_argument(
        "--backend",
        type=_csv,
        default=None,
        help="comma-separated (default: every installed backend)",
    )
    q.add_argument("--mode", type=_csv, default=None, help="eager,compiled (default: both)")
    q.add_argument(
        "--optimizer",
        type=_csv,
        default=None,
        help="comma-separated: presets (e.g. sgd_momentum, adamw), kinds (every preset of "
        f"{', '.join(KINDS)}), or optimizer plugins as module:Object (every preset it "
        "declares); default: every built-in preset",
    )
    q.add_argument("--steps", type=int, default=20)
    q.add_argument(
        "--tolerance",
        type=float,
        default=2e-6,  # parity.TOLERANCE (importing it here is slow): its derivation there
        help="largest loss and weight difference from the float64 reference (2e-6)",
    )
    q.add_argument("--dataset", default="digits")
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument(
        "--hidden", type=_ints, default=[64], help="hidden layer sizes, e.g. 64 or 128,64"
    )
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    q.add_argument("--threads", type=int, default=None)
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    q.set_defaults(func=cmd_parity)

    r = sub.add_parser(
        "run", help="run a sweep (benchmarks/sweeps/NAME.toml or a path) into results/NAME"
    )
    r.add_argument(
        "--sweep", default="default", help="sweep name or path to a .toml file (default: default)"
    )
    r.add_argument("--backend", type=_csv, default=None, help="override: comma-separated backends")
    r.add_argument("--mode", type=_csv, default=None, help="override: eager,compiled")
    r.add_argument(
        "--compiler",
        type=_csv,
        default=None,
        help="paths to run: default (each backend's fastest compiled path, measured), all, "
        "a path name (e.g. xla), or backend=path (e.g. torch=eager); see `optbench backends`",
    )
    r.add_argument("--device", type=_csv, default=None, help="override: cpu,gpu,auto")
    r.add_argument(
        "--optimizer", type=_csv, default=None, help="only these of the sweep's named optimizers"
    )
    r.add_argument(
        "--lr",
        type=_floats,
        default=None,
        help="override every optimizer's learning rates, e.g. 1e-3,1e-2",
    )
    r.add_argument("--batch-size", type=_ints, default=None, help="override: e.g. 32,128")
    seeds = r.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=int, default=None, help="how many seeds: N runs seeds 0..N-1"
    )
    seeds.add_argument(
        "--seed", type=_ints, default=None, help="the seed to run, or several: 7 or 0,3,7"
    )
    r.add_argument(
        "--dataset",
        default=None,
        help="override: one data set (digits, mnist5k, synthetic[:n=..,d=..], npz:PATH)",
    )
    r.add_argument(
        "--variant",
        type=_csv,
        default=None,
        help="override: spec (corrected to one formula), stock (each framework's defaults), or spec,stock",
    )
    r.add_argument("--epochs", type=int, default=None)
    r.add_argument("--max-steps", type=int, default=None, help="cap on steps per run (0: none)")
    r.add_argument(
        "--eval-every", type=int, default=None, help="steps between evaluations (0: epoch ends)"
    )
    r.add_argument("--timeout", type=float, default=None, help="seconds before a run is killed")
    r.add_argument(
        "--threads", type=int, default=None, help="threads per worker (default: physical cores)"
    )
    r.add_argument("--name", default=None, help="sweep name (default: the file's)")
    r.add_argument("--out", default=None, help="results folder (default: results/NAME)")
    r.add_argument(
        "--resume", action="store_true", help="keep finished runs in --out and run the rest"
    )
    r.add_argument("--quiet", action="store_true", help="no progress output (for CI)")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid and an estimated time, then exit; runs and writes nothing",
    )
    r.add_argument(
        "--parity",
        action="store_true",
        help="also record `optbench parity` for the sweep's backends",
    )
    r.add_argument(
        "--report",
        action="store_true",
        help="write the report (report.html/.md, summary.csv) at the end",
    )
    r.add_argument(
        "--executor",
        choices=("local", "dask"),
        default=None,
        help="where the runs execute: local (default: worker processes here) or dask "
        "(the workers of the Dask scheduler at --scheduler; needs the dask extra)",
    )
    r.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="the Dask scheduler, e.g. tcp://HOST:8786 (implies --executor dask)",
    )
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser(
        "report", help="write report.html, report.md and summary.csv into a results folder"
    )
    rep.add_argument(
        "results",
        nargs="?",
        default="results/latest",
        help="results folder (default: results/latest)",
    )
    rep.set_defaults(func=cmd_report)

    rr = sub.add_parser(
        "rerun",
        help="run one stored run again in the foreground, with its full output (to debug it)",
    )
    rr.add_argument("run_id", nargs="?", help="the run's id (see --list)")
    rr.add_argument(
        "--results", default="results/latest", help="results folder (default: results/latest)"
    )
    rr.add_argument("--list", action="store_true", help="list the folder's run ids and exit")
    rr.add_argument("--failed", action="store_true", help="with --list: only the failed runs")
    rr.add_argument(
        "--threads", type=int, default=None, help="CPUs to pin to (default: what the run had)"
    )
    rr.set_defaults(func=cmd_rerun)

    a = sub.add_parser(
        "archives", help="list earlier results moved aside (results/NAME.<date>), or prune them"
    )
    a.add_argument("--results", default="results", help="the results folder (default: results)")
    a.add_argument(
        "--keep", type=int, default=None, help="archives of each name to keep (newest first)"
    )
    a.add_argument(
        "--prune", action="store_true", help="delete all but the newest --keep of each name"
    )
    a.set_defaults(func=cmd_archives)

    c = sub.add_parser("compare", help="compare results against a baseline; exit 1 on a regression")
    c.add_argument(
        "baseline",
        help="a results folder, a saved baseline's name (see `optbench baseline list`), or "
        "auto: the baseline saved for this machine",
    )
    c.add_argument("current", nargs="?", default="results/latest", help="default: results/latest")
    c.add_argument(
        "--threshold", type=float, default=0.05, help="slowdown that counts, as a fraction (0.05)"
    )
    c.add_argument(
        "--acc-tolerance", type=float, default=0.01, help="final test accuracy drop that counts"
    )
    c.add_argument(
        "--format", choices=("table", "json", "md"), default="table", help="md: a PR comment"
    )
    c.add_argument(
        "--recheck",
        type=_rounds,
        default=None,  # recheck.ROUNDS, resolved in cmd_compare (importing it here is slow)
        metavar="ROUNDS",
        help="re-measure the groups called slower or faster with both sides' code, in turn "
        "run by run, at least ROUNDS rounds (default 3; 0: judge the stored runs alone); a "
        "call is taken back only where the re-measured interval lies within the threshold, "
        "and stands (not confirmed) where it stays inconclusive",
    )
    c.add_argument(
        "--recheck-budget",
        type=_seconds,
        default=None,  # recheck.BUDGET_S
        metavar="SECONDS",
        help="seconds the re-measurement may take in all: an inconclusive group gets more "
        "rounds while they fit (default 180)",
    )
    c.add_argument(
        "--fail-on",
        type=_csv,
        default=None,
        help="which regressions exit 1: throughput,accuracy,status (default: all three)",
    )
    c.set_defaults(func=cmd_compare)
    bl = sub.add_parser("baseline", help="save a results folder as a named baseline; list them")
    bl.add_argument("action", choices=("save", "list"))
    bl.add_argument("results", nargs="?", default="results/latest", help="save: the folder")
    bl.add_argument("--name", default=None, help="save: the baseline's name")
    bl.add_argument(
        "--repeat",
        action="append",
        default=[],
        help="save: another sweep of the same commit and machine (repeatable); their spread "
        "sets the noise floor compare uses",
    )
    bl.set_defaults(func=cmd_baseline)
    h = sub.add_parser(
        "history", help="one sweep's results folders over time, per machine: history.html/.csv"
    )
    h.add_argument(
        "targets",
        nargs="*",
        metavar="SWEEP|FOLDER",
        help="a sweep name (default: default), or results folders of one sweep",
    )
    h.add_argument("--results", default="results", help="where to look for the sweep's folders")
    h.add_argument("--out", default=None, help="output folder (default: RESULTS/history-SWEEP)")
    h.set_defaults(func=cmd_history)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (SpecError, DataError, UsageError, registry.BackendNotInstalled) as exc:
        print(f"optbench {args.command}: error: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:
        print(f"optbench {args.command}: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

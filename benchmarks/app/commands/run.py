"""``optbench run``: a sweep into results/NAME; its override options are the sweep settings'
(:data:`benchmarks.record.settings.SETTINGS`), one per setting with a flag."""

from __future__ import annotations

import argparse
import sys

from benchmarks.app.args import UsageError, csv, floats, ints


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run a sweep (benchmarks/sweeps/NAME.toml or a path) into results/NAME",
        options=_options,
    )
    p.set_defaults(func=cmd_run)


def _value_type(setting):
    """The option's type: a setting's value, or comma-separated for a list or table."""
    if setting.shape == "scalar":
        return {str: None, int: int}.get(setting.type, float)
    return {str: csv, int: ints}.get(setting.type, floats)


def _metavar(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_").upper()


def _options(p: argparse.ArgumentParser) -> None:
    from benchmarks.record.settings import SETTINGS

    p.add_argument(
        "--sweep", default="default", help="sweep name or path to a .toml file (default: default)"
    )
    for s in SETTINGS:
        if not s.flag:
            continue
        at = p
        if s.count_flag:  # the list itself, or how many: 0..N-1
            at = p.add_mutually_exclusive_group()
            at.add_argument(
                s.count_flag,
                type=int,
                default=None,
                dest=f"{s.name}_count",
                metavar=_metavar(s.count_flag),
                help=s.count_help,
            )
        at.add_argument(
            s.flag,
            type=_value_type(s),
            default=None,
            dest=s.name,
            metavar=_metavar(s.flag),
            help=s.help,
        )
    p.add_argument("--out", default=None, help="results folder (default: results/NAME)")
    p.add_argument(
        "--resume", action="store_true", help="keep finished runs in --out and run the rest"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output (for CI)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid and an estimated time, then exit; runs and writes nothing",
    )
    p.add_argument(
        "--parity",
        action="store_true",
        help="also record `optbench parity` for the sweep's backends",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="write the report (report.html/.md, summary.csv) at the end",
    )
    p.add_argument(
        "--executor",
        choices=("local", "dask"),
        default=None,
        help="where the runs execute: local (default: worker processes here) or dask "
        "(the workers of the Dask scheduler at --scheduler; needs the dask extra)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="the Dask scheduler, e.g. tls://HOST:8786 or tcp://HOST:8786 (implies --executor dask)",
    )
    for flag, what in (
        ("--tls-ca-file", "the CA certificate that signed the scheduler's and workers'"),
        ("--tls-cert", "this client's certificate"),
        ("--tls-key", "this client's private key"),
    ):  # Dask's own flag names (dask scheduler/worker take the same)
        p.add_argument(
            flag, default=None, metavar="FILE", help=f"{what} (PEM), for a tls:// scheduler"
        )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plain tcp:// to a scheduler off this machine without the warning (a network "
        "you trust: anyone who can reach the port can run code on the workers)",
    )


def overrides(args: argparse.Namespace) -> dict:
    """The settings the options set, by setting name (None: the file's); a count flag's
    value where its list is not given."""
    from benchmarks.record.settings import SETTINGS

    out = {}
    for s in SETTINGS:
        if s.flag:
            out[s.name] = getattr(args, s.name)
            if s.count_flag and out[s.name] is None:
                out[s.name] = getattr(args, f"{s.name}_count")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.app.pipeline import bench
    from benchmarks.record.store import StoreError
    from benchmarks.record.sweep import load_sweep

    sweep = load_sweep(args.sweep, overrides(args))
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
        tls = {"ca_file": args.tls_ca_file, "cert": args.tls_cert, "key": args.tls_key}
        return DaskExecutor.connect(
            args.scheduler, threads=threads, tls=tls, insecure=args.insecure
        )
    except SchedulerUnreachable as exc:
        raise UsageError(str(exc)) from None

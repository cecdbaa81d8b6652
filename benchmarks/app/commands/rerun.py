"""``optbench rerun``: one stored run again, in the foreground, to debug it."""

from __future__ import annotations

import argparse
import sys

from benchmarks.app.args import UsageError
from benchmarks.core import exitcodes


def register(sub) -> None:
    p = sub.add_parser(
        "rerun",
        help="run one stored run again in the foreground, with its full output (to debug it)",
        options=_options,
    )
    p.set_defaults(func=cmd_rerun)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", help="the run's id (see --list)")
    p.add_argument(
        "--results", default="results/latest", help="results folder (default: results/latest)"
    )
    p.add_argument("--list", action="store_true", help="list the folder's run ids and exit")
    p.add_argument("--failed", action="store_true", help="with --list: only the failed runs")
    p.add_argument(
        "--threads", type=int, default=None, help="CPUs to pin to (default: what the run had)"
    )


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

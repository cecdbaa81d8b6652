"""``optbench report``: tables, plots and one HTML page for a results folder."""

from __future__ import annotations

import argparse
import sys

from benchmarks.app.args import UsageError
from benchmarks.core import exitcodes


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write report.html, report.md and summary.csv into a results folder",
        options=_options,
    )
    p.set_defaults(func=cmd_report)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "results",
        nargs="?",
        default="results/latest",
        help="results folder (default: results/latest)",
    )


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

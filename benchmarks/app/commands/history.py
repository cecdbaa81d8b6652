"""``optbench history``: one sweep's results folders over time, per machine."""

from __future__ import annotations

import argparse

from benchmarks.app.args import UsageError
from benchmarks.core import exitcodes


def register(sub) -> None:
    p = sub.add_parser(
        "history",
        help="one sweep's results folders over time, per machine: history.html/.csv",
        options=_options,
    )
    p.set_defaults(func=cmd_history)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "targets",
        nargs="*",
        metavar="SWEEP|FOLDER",
        help="a sweep name (default: default), or results folders of one sweep",
    )
    p.add_argument("--results", default="results", help="where to look for the sweep's folders")
    p.add_argument("--out", default=None, help="output folder (default: RESULTS/history-SWEEP)")


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

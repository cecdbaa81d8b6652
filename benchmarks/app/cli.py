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
    optbench overhead [--device gpu]       the suite's step vs each framework's bare loop
    optbench gpu-check [--budget S]        every GPU target in one command (a GPU machine)

Bad input is reported as one line naming the bad value and the fix. Exit codes (the same
for every command, see ``benchmarks/core/exitcodes.py``): 0 ok; 1 a measured failure (failed
runs, parity outside the tolerance, a regression); 2 bad input or an environment that
cannot serve the request; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from backends import registry
from backends.base import SpecError
from benchmarks.app.args import Parser, UsageError  # noqa: F401 - UsageError: for scripts
from benchmarks.app.commands import (
    archives,
    backends,
    checks,
    compare,
    history,
    parity,
    report,
    rerun,
    run,
)
from benchmarks.app.commands.archives import cmd_archives  # noqa: F401 - the handlers, by name
from benchmarks.app.commands.backends import cmd_backends, probe_backend  # noqa: F401
from benchmarks.app.commands.compare import cmd_baseline, cmd_compare  # noqa: F401
from benchmarks.app.commands.history import cmd_history  # noqa: F401
from benchmarks.app.commands.parity import cmd_parity  # noqa: F401
from benchmarks.app.commands.report import cmd_report  # noqa: F401
from benchmarks.app.commands.rerun import cmd_rerun  # noqa: F401
from benchmarks.app.commands.run import cmd_run  # noqa: F401
from benchmarks.core import exitcodes
from benchmarks.record.data import DataError

#: the commands, in the order ``optbench --help`` lists them; each module's ``register(sub)``
#: adds its parser (its options built when it is parsed) and handler
COMMANDS = (backends, parity, run, report, rerun, archives, compare, history, checks)


def build_parser() -> argparse.ArgumentParser:
    try:
        version = metadata.version("optbench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    p = Parser(
        prog="optbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"optbench {version}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "rest", False):  # only overhead and gpu-check take more
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.argv = rest
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

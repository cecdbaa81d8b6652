"""``optbench overhead`` and ``optbench gpu-check``: the checks' own commands
(:mod:`benchmarks.checks.overhead`, :mod:`benchmarks.checks.gpu_check`, also
``python -m benchmarks.overhead`` and ``make bench-micro``, ``make gpu-check``), handed the
rest of the command line: their options are theirs (``optbench overhead --help``)."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    o = sub.add_parser(
        "overhead",
        help="the suite's fastest path vs each framework's fastest bare loop (make bench-micro)",
        add_help=False,
    )
    o.set_defaults(func=cmd_overhead, rest=True)
    g = sub.add_parser(
        "gpu-check",
        help="on a GPU machine: parity, sweeps, overhead, pytest -m gpu (make gpu-check)",
        add_help=False,
    )
    g.set_defaults(func=cmd_gpu_check, rest=True)


def _as(command: str, main, argv: list[str]) -> int:
    """``main(argv)``, its argparse naming it ``optbench COMMAND`` (its prog is sys.argv[0])."""
    prog, sys.argv[0] = sys.argv[0], f"optbench {command}"
    try:
        return main(argv)
    finally:
        sys.argv[0] = prog


def cmd_overhead(args: argparse.Namespace) -> int:
    from benchmarks.checks.overhead import main

    return _as("overhead", main, args.argv)


def cmd_gpu_check(args: argparse.Namespace) -> int:
    from benchmarks.checks.gpu_check import main

    return _as("gpu-check", main, args.argv)

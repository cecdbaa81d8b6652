"""``optbench parity``: every backend against the float64 NumPy reference, step by step."""

from __future__ import annotations

import argparse
import json
import sys

from backends.base import KINDS
from benchmarks.app.args import csv, ints, number
from benchmarks.core import exitcodes


def register(sub) -> None:
    p = sub.add_parser(
        "parity",
        help="compare every backend with the float64 NumPy reference, step by step",
        options=_options,
    )
    p.set_defaults(func=cmd_parity)


def _options(p: argparse.ArgumentParser) -> None:
    from benchmarks.checks.parity import ParityConfig

    cfg = ParityConfig()  # the defaults
    p.add_argument(
        "--backend",
        type=csv,
        default=None,
        help="comma-separated (default: every installed backend)",
    )
    p.add_argument("--mode", type=csv, default=None, help="eager,compiled (default: both)")
    p.add_argument(
        "--optimizer",
        type=csv,
        default=None,
        help="comma-separated: presets (e.g. sgd_momentum, adamw), kinds (every preset of "
        f"{', '.join(KINDS)}), or optimizer plugins as module:Object (every preset it "
        "declares); default: every built-in preset",
    )
    p.add_argument("--steps", type=int, default=cfg.steps)
    p.add_argument(
        "--tolerance",
        type=float,
        default=cfg.tolerance,
        help="largest loss and weight difference from the float64 reference "
        f"({number(cfg.tolerance)})",
    )
    p.add_argument("--dataset", default=cfg.dataset)
    p.add_argument("--batch-size", type=int, default=cfg.batch_size)
    p.add_argument(
        "--hidden",
        type=ints,
        default=list(cfg.hidden),
        help="hidden layer sizes, e.g. 64 or 128,64",
    )
    p.add_argument("--seed", type=int, default=cfg.seed)
    p.add_argument("--device", choices=("cpu", "gpu"), default=cfg.device)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


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

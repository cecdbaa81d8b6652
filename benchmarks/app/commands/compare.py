"""``optbench compare``: regressions against a baseline (exit 1 if any), and ``optbench
baseline``: keep a results folder as a named baseline, list them."""

from __future__ import annotations

import argparse
import inspect
import json
import sys

from benchmarks.app.args import UsageError, csv, number
from benchmarks.core import exitcodes


def register(sub) -> None:
    c = sub.add_parser(
        "compare",
        help="compare results against a baseline; exit 1 on a regression",
        options=_compare_options,
    )
    c.set_defaults(func=cmd_compare)
    b = sub.add_parser(
        "baseline",
        help="save a results folder as a named baseline; list them",
        options=_baseline_options,
    )
    b.set_defaults(func=cmd_baseline)


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


def _compare_options(c: argparse.ArgumentParser) -> None:
    from benchmarks.track import recheck
    from benchmarks.track.compare import FAIL_ON, compare

    defaults = {k: v.default for k, v in inspect.signature(compare).parameters.items()}
    c.add_argument(
        "baseline",
        help="a results folder, a saved baseline's name (see `optbench baseline list`), or "
        "auto: the baseline saved for this machine",
    )
    c.add_argument("current", nargs="?", default="results/latest", help="default: results/latest")
    c.add_argument(
        "--threshold",
        type=float,
        default=defaults["threshold"],
        help=f"slowdown that counts, as a fraction ({number(defaults['threshold'])})",
    )
    c.add_argument(
        "--acc-tolerance",
        type=float,
        default=defaults["acc_tolerance"],
        help="final test accuracy drop that counts",
    )
    c.add_argument(
        "--format", choices=("table", "json", "md"), default="table", help="md: a PR comment"
    )
    c.add_argument(
        "--recheck",
        type=_rounds,
        default=recheck.ROUNDS,
        metavar="ROUNDS",
        help="re-measure the groups called slower or faster with both sides' code, in turn "
        f"run by run, at least ROUNDS rounds (default {recheck.ROUNDS}; 0: judge the stored "
        "runs alone); a call is taken back only where the re-measured interval lies within "
        "the threshold, and stands (not confirmed) where it stays inconclusive",
    )
    c.add_argument(
        "--recheck-budget",
        type=_seconds,
        default=recheck.BUDGET_S,
        metavar="SECONDS",
        help="seconds the re-measurement may take in all: an inconclusive group gets more "
        f"rounds while they fit (default {recheck.BUDGET_S:.0f})",
    )
    c.add_argument(
        "--fail-on",
        type=csv,
        default=None,
        help=f"which regressions exit 1: {','.join(FAIL_ON)} (default: all three)",
    )


def _baseline_options(b: argparse.ArgumentParser) -> None:
    b.add_argument("action", choices=("save", "list"))
    b.add_argument("results", nargs="?", default="results/latest", help="save: the folder")
    b.add_argument("--name", default=None, help="save: the baseline's name")
    b.add_argument(
        "--repeat",
        action="append",
        default=[],
        help="save: another sweep of the same commit and machine (repeatable); their spread "
        "sets the noise floor compare uses",
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.record.store import StoreError
    from benchmarks.track import baselines, recheck
    from benchmarks.track.compare import FAIL_ON, compare, format_comparison, format_markdown

    if args.recheck < 0:
        raise UsageError(
            f"--recheck {args.recheck} is invalid: give a number of rounds, 0 for none"
        )
    budget = args.recheck_budget
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
            args.recheck,
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

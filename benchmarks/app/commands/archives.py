"""``optbench archives``: earlier results moved aside (results/NAME.<date>): list, prune."""

from __future__ import annotations

import argparse
import sys

from benchmarks.app.args import UsageError
from benchmarks.core import exitcodes


def register(sub) -> None:
    p = sub.add_parser(
        "archives",
        help="list earlier results moved aside (results/NAME.<date>), or prune them",
        options=_options,
    )
    p.set_defaults(func=cmd_archives)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument(
        "--keep", type=int, default=None, help="archives of each name to keep (newest first)"
    )
    p.add_argument(
        "--prune", action="store_true", help="delete all but the newest --keep of each name"
    )


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

"""``optbench backends``: what is installed (and why not), versions, devices, paths."""

from __future__ import annotations

import argparse
import json
from typing import Any

from backends import registry
from benchmarks.core import exitcodes


def register(sub) -> None:
    p = sub.add_parser(
        "backends",
        help="list backends: installed or not (and why), version, devices",
        options=_options,
    )
    p.set_defaults(func=cmd_backends)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--threads", type=int, default=None, help="threads per worker (default: physical cores)"
    )


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
                        "benchmarks.app.commands.backends:probe_backend",
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

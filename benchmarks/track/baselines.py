"""Saved baselines: results folders kept by name under ``results/baselines/``, small enough
to commit, with the noise floor their repeats measured.

    optbench baseline save results/latest --name laptop [--repeat results/run2 ...]
    optbench baseline list
    optbench compare laptop            # a name, looked up here when no such path exists
    optbench compare auto              # the baseline saved for this machine

Why repeats: on a shared machine the level of a whole sweep moves (two consecutive sweeps
of one commit measured torch Adam 0.65x apart), and the bootstrap of one sweep's runs and
blocks cannot see that. A baseline saved with repeated sweeps of the same commit stores, per
group, the largest change between them (``noise.json``); ``compare`` calls a group slower
only beyond that floor. Folders compared without one borrow the floor of a baseline saved
for the same machine.
"""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backends import registry
from benchmarks.core import stats
from benchmarks.record.store import Store, StoreError, json_safe, write_json

ROOT = Path("results") / "baselines"
NOISE = "noise.json"
MAX_BYTES = 2 * 2**20  # committed: a baseline stays small
#: compare groups (runs of a group differ only in learning rate and seed)
#: what compare and the baselines match between two results folders, one comparison per
#: value: a "series" of the report (``report.runs.GROUP``: backend, mode, compiler, device)
#: is a different key, for a different question
COMPARED = ["dataset", "backend", "mode", "device", "variant", "optimizer", "batch_size"]
AUTO = "auto"  # the baseline saved for this machine
#: the packages whose versions a listing shows: each backend's first (its framework)
FRAMEWORKS = {e.packages[0] for e in registry.REGISTRY.values() if e.packages}


def machine(env: dict[str, Any]) -> dict[str, Any]:
    """What makes two results folders' speeds comparable: CPU model, cores, GPU model."""
    gpus = [g.get("name") if isinstance(g, dict) else str(g) for g in env.get("gpus") or []]
    return {
        "cpu_model": env.get("cpu_model"),
        "cpu_cores": env.get("cpu_cores_physical"),
        "gpu": ", ".join(filter(None, gpus)) or None,
    }


def resolve(name_or_path: str, current: Path | None = None, root: Path = ROOT) -> Path:
    """A path as given when it exists; else the baseline of that name under ``root``;
    ``auto``: the one saved for ``current``'s machine. StoreError naming the choices."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if name_or_path == AUTO:
        env = Store.open(current).environment() if current else {}
        for row in listing(root):
            if row["machine"] == machine(env):
                return Path(row["path"])
        raise StoreError(
            f"no baseline is saved for this machine ({_describe(machine(env))}); save one with "
            f"`optbench baseline save {current or 'results/latest'} --name NAME` "
            "(several sweeps of one commit: add --repeat FOLDER to learn the noise floor)"
        )
    if (root / name_or_path).is_dir():
        return root / name_or_path
    names = ", ".join(r["name"] for r in listing(root)) or "none saved yet"
    raise StoreError(
        f"{name_or_path!r} is neither a results folder nor a saved baseline (saved: {names}); "
        "see `optbench baseline list`"
    )


def save(results: Path, name: str, repeats: list[Path] = (), root: Path = ROOT) -> dict[str, Any]:
    """Copy ``results`` to ``root/name`` (curves thinned to stay under 2 MB, every evaluation
    row kept), with ``repeats`` (other sweeps of the same commit and machine) reduced to
    their runs and timings, and the noise floor they give. Returns the listing row."""
    if not name or Path(name).name != name or name.startswith("."):
        raise StoreError(f"--name {name!r} is invalid: give a plain folder name, e.g. laptop-cpu")
    src = Store.open(results)
    sweeps = [src] + [Store.open(r) for r in repeats]
    tables = [(s.runs(), s.table("timings")) for s in sweeps]
    for s, (runs, timings) in zip(sweeps, tables):
        if runs.empty or timings is None:
            raise StoreError(f"{s.path}: no runs or no timings.parquet: nothing to save")
    dest = root / name
    if dest.exists():
        raise StoreError(f"baseline {name!r} exists ({dest}); give another --name or remove it")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.saving"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for f in ("store.json", "environment.json", "parity.json", "compiler_choice.json"):
            if (src.path / f).is_file():
                shutil.copy2(src.path / f, tmp / f)
        tables[0][0].to_parquet(tmp / "runs.parquet", index=False)
        tables[0][1].to_parquet(tmp / "timings.parquet", index=False)
        curves = src.table("curves")
        if curves is not None:
            _thin(curves, budget=MAX_BYTES // 2).to_parquet(tmp / "curves.parquet", index=False)
        for i, (runs, timings) in enumerate(tables[1:], 1):
            (tmp / "repeats" / str(i)).mkdir(parents=True)
            runs.to_parquet(tmp / "repeats" / str(i) / "runs.parquet", index=False)
            timings.to_parquet(tmp / "repeats" / str(i) / "timings.parquet", index=False)
        floor = noise_floor(tables)
        write_json(
            tmp / NOISE,
            {
                "sweeps": len(tables),
                "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "from": [str(s.path) for s in sweeps],
                "groups": json_safe(floor.to_dict(orient="records")),
            },
        )
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        if size > MAX_BYTES:
            raise StoreError(
                f"the baseline would take {size / 2**20:.1f} MB (at most {MAX_BYTES / 2**20:g} MB, "
                "to stay committable): save a smaller sweep"
            )
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return next(r for r in listing(root) if r["name"] == name)


def _thin(curves: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Every evaluation row (time to target is read from them) and as many training-only
    rows as fit, evenly spaced per run."""
    evaluated = curves["test_acc"].notna()
    per_row = 64  # bytes of Parquet per row, roughly (measured: 66 kB for 1,000 rows)
    room = max(0, budget // per_row - int(evaluated.sum()))
    rest = curves[~evaluated]
    keep = min(1.0, room / max(len(rest), 1))
    step = max(1, int(round(1 / keep))) if keep > 0 else len(rest) + 1
    kept = rest.groupby("run_id", group_keys=False).apply(lambda g: g.iloc[::step])
    return pd.concat([curves[evaluated], kept]).sort_values(["run_id", "step"])


def noise_floor(tables: list[tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """Per compare group, over the sweeps' medians of pooled block throughputs: ``floor`` =
    1 - smallest / largest (the largest change between sweeps of an unchanged commit; 0
    with one sweep), and ``sweeps``."""
    medians: dict[tuple, list[float]] = {}
    for runs, timings in tables:
        rates = stats.block_rates(runs, timings, COMPARED)
        for key, g in rates.groupby(COMPARED, sort=True):
            medians.setdefault(key, []).append(float(np.median(g["rate"])))
    rows = []
    for key, ms in medians.items():
        worst = max(
            (1 - min(a, b) / max(a, b) for a, b in itertools.combinations(ms, 2)), default=0.0
        )
        rows.append({**dict(zip(COMPARED, key)), "floor": worst, "sweeps": len(ms)})
    return pd.DataFrame(rows, columns=[*COMPARED, "floor", "sweeps"])


def floors(
    baseline: Path, current_env: dict[str, Any], root: Path = ROOT
) -> tuple[pd.DataFrame, str]:
    """The noise floor to compare against ``baseline``: its own (saved with repeats), else
    that of a baseline saved for the same machine; (table, where it came from)."""
    own = _read_floor(baseline)
    if own is not None:
        return own, f"{baseline} ({_sweeps(baseline)} sweeps)"
    for row in listing(root):
        if row["sweeps"] > 1 and row["machine"] == machine(current_env):
            borrowed = _read_floor(Path(row["path"]))
            if borrowed is not None:
                return borrowed, f"baseline {row['name']} of this machine ({row['sweeps']} sweeps)"
    return pd.DataFrame(columns=[*COMPARED, "floor", "sweeps"]), ""


def _read_floor(path: Path) -> pd.DataFrame | None:
    try:
        data = json.loads((Path(path) / NOISE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or int(data.get("sweeps") or 0) < 2:
        return None
    groups = data.get("groups") or []
    if groups and "dataset" not in groups[0]:  # saved before the data-set and variant axes
        datasets = Store.open(path).table("runs")["dataset"].unique()
        if len(datasets) != 1:
            return None
        groups = [{"dataset": datasets[0], "variant": "spec", **g} for g in groups]
    return pd.DataFrame(groups, columns=[*COMPARED, "floor", "sweeps"])


def _sweeps(path: Path) -> int:
    return 1 + len([p for p in (Path(path) / "repeats").glob("*") if p.is_dir()])


def listing(root: Path = ROOT) -> list[dict[str, Any]]:
    """Every saved baseline: name, path, machine, framework versions, date, runs, sweeps, size."""
    out = []
    for p in sorted(root.glob("*")) if root.is_dir() else []:
        if not p.is_dir() or p.name.startswith("."):
            continue
        try:
            s = Store.open(p)
            env = s.environment()
            runs = s.table("runs")
        except (StoreError, OSError, ValueError):
            continue
        packages = env.get("packages") or {}
        out.append(
            {
                "name": p.name,
                "path": str(p),
                "machine": machine(env),
                "versions": {k: v for k, v in packages.items() if v and k in FRAMEWORKS},
                "date": str(env.get("captured_at") or "")[:10],
                "runs": 0 if runs is None else len(runs),
                "sweeps": _sweeps(p),
                "size_kb": round(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1024),
            }
        )
    return out


def _describe(m: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in m.items() if v)

"""The results store: one folder per sweep, written only by the driver.

results/<name>/
    store.json          schema version and sweep name (marks an optbench results folder)
    environment.json    host, versions, threads, precision, git commit, command, sweep
    runs.parquet        one row per run
    curves.parquet      run_id, step, epoch, wall_s, train_loss, train_acc, test_loss, test_acc
    timings.parquet     run_id, block, phase, steps, seconds
    parity.json         the parity table, when the sweep was run with --parity
    parts/<run_id>/     each finished run's rows, written atomically (a run lands whole
                        or not at all); the three tables above are rebuilt from them

The columns and statuses are :mod:`benchmarks.schema`'s. Every file in a results folder is
written and read through :class:`Store`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.schema import FINISHED, RUN_ORDER, SCHEMA_VERSION, upgrade_runs

MARKER = "store.json"
TABLES = ("runs", "curves", "timings")
PARITY = "parity.json"


class StoreError(ValueError):
    """A results folder problem, with what to do about it."""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN and inf as null), written atomically."""
    _atomic_write_bytes(
        path, json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False).encode()
    )


def json_safe(obj: Any) -> Any:
    """NaN and inf as null: strict JSON parsers reject them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.archived: Path | None = None  # where create() moved earlier results, if it did
        self.new = False  # create() started this folder (not a resume)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: Path, name: str, resume: bool, fingerprint: dict[str, Any] | None = None
    ) -> Store:
        """Open a folder for writing a sweep; refuse to mix with unrelated or older results.

        ``fingerprint`` (what the measurements depend on: the grid, threads, CPU, versions) is
        kept in store.json; ``--resume`` with another fingerprint is refused, so one table
        never mixes runs measured under different conditions.
        """
        path = Path(path)
        store = cls(path)
        fingerprint = fingerprint or {}
        if path.exists() and not path.is_dir():
            raise StoreError(
                f"output {str(path)!r} exists and is not a folder; choose another --out"
            )
        if path.is_dir() and any(path.iterdir()):
            if not (path / MARKER).is_file():
                raise StoreError(
                    f"output folder {str(path)!r} is not empty and is not an optbench results folder; "
                    "choose another --out"
                )
            if resume:
                store.check_schema()
                store.check_fingerprint(fingerprint)
                meta = json.loads((path / MARKER).read_text())
                meta["resumed"] = [*meta.get("resumed", []), _now()]
                write_json(path / MARKER, meta)
                return store
            elif store.part_ids() or (path / "runs.parquet").exists():
                # A new run of the same sweep: keep the old results whole, beside it.
                store.archived = archive(path)
        if (path / "parts").is_dir():  # half-written parts of a killed driver: never landed
            for stale in (path / "parts").glob(".*"):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            (path / "parts").mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"cannot write to output folder {str(path)!r} ({exc.strerror}); choose another --out"
            ) from None
        write_json(
            path / MARKER,
            {
                "schema_version": SCHEMA_VERSION,
                "name": name,
                "created": _now(),
                "fingerprint": fingerprint,
            },
        )
        store.new = True
        return store

    def check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        old = json.loads((self.path / MARKER).read_text()).get("fingerprint") or {}
        diff = [k for k in sorted(set(old) | set(fingerprint)) if old.get(k) != fingerprint.get(k)]
        if diff:
            what = "; ".join(f"{k}: {old.get(k)!r} then, {fingerprint.get(k)!r} now" for k in diff)
            raise StoreError(
                f"cannot resume {str(self.path)!r}: its runs were measured under other conditions ({what}); "
                "run without --resume (the earlier results move aside) or give another --out"
            )

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open an existing results folder for reading."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(
                f"{str(path)!r} is not a folder; give a results folder such as results/latest"
            )
        store = cls(path)
        if not (path / MARKER).is_file():
            raise StoreError(
                f"{str(path)!r} is not an optbench results folder (no {MARKER}); give e.g. results/latest"
            )
        store.check_schema()
        return store

    def check_schema(self) -> None:
        try:
            meta = json.loads((self.path / MARKER).read_text())
            version = meta.get("schema_version")
        except (OSError, json.JSONDecodeError, AttributeError):
            raise StoreError(
                f"{self.path / MARKER} is unreadable; this is not a usable results folder"
            ) from None
        # older versions are read with defaults filled in (schema.upgrade_runs); an unknown
        # or newer version is not this optbench's to interpret
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise StoreError(
                f"{str(self.path)!r} was written with results schema version {version}, this optbench "
                f"reads versions 1 to {SCHEMA_VERSION}; run the sweep again into a new --out folder"
            )

    # -- writing (driver only) -----------------------------------------------------------
    def part_ids(self) -> list[str]:
        parts = self.path / "parts"
        return (
            sorted(p.name for p in parts.iterdir() if p.is_dir() and not p.name.startswith("."))
            if parts.is_dir()
            else []
        )

    def finished_ids(self) -> set[str]:
        done = set()
        for rid in self.part_ids():
            try:
                status = pd.read_parquet(
                    self.path / "parts" / rid / "runs.parquet", columns=["status"]
                )["status"]
            except Exception:  # noqa: BLE001 - an unreadable part is treated as not finished
                continue
            if len(status) and status.iloc[0] in FINISHED:
                done.add(rid)
        return done

    def write_run(self, result: dict[str, Any]) -> None:
        """Land one run's rows atomically: a temporary folder renamed into place."""
        rid = result["run"]["run_id"]
        parts = self.path / "parts"
        tmp = Path(tempfile.mkdtemp(dir=parts, prefix=f".{rid}."))
        pd.DataFrame([result["run"]]).to_parquet(tmp / "runs.parquet", index=False)
        for table in ("curves", "timings"):
            if result[table]:
                pd.DataFrame(result[table]).to_parquet(tmp / f"{table}.parquet", index=False)
        final = parts / rid
        if final.exists():  # a failed run tried again: replace its old record
            trash = Path(tempfile.mkdtemp(dir=parts, prefix=f".old.{rid}."))
            os.replace(final, trash / rid)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)

    def consolidate(self) -> dict[str, int]:
        """Rebuild runs/curves/timings.parquet from the parts; returns row counts."""
        frames: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        for rid in self.part_ids():
            for t in TABLES:
                f = self.path / "parts" / rid / f"{t}.parquet"
                if f.is_file():
                    frames[t].append(pd.read_parquet(f))
        counts = {}
        for t in TABLES:
            df = pd.concat(frames[t], ignore_index=True) if frames[t] else pd.DataFrame()
            if t == "runs" and "diverged_step" in df:
                df["diverged_step"] = pd.to_numeric(df["diverged_step"]).astype("Int64")
            if t == "runs" and len(df):
                df = df.sort_values(
                    [c for c in RUN_ORDER if c in df.columns], kind="stable"
                ).reset_index(drop=True)
            elif len(df):
                df = df.sort_values(
                    ["run_id", "step" if t == "curves" else "block"], kind="stable"
                ).reset_index(drop=True)
            _write_parquet(df, self.path / f"{t}.parquet")
            counts[t] = len(df)
        return counts

    # -- reading -------------------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame | None:
        """One of runs/curves/timings, or None where it is missing; runs come with every
        column of this schema version."""
        f = self.path / f"{name}.parquet"
        if not f.is_file():
            return None
        df = pd.read_parquet(f)
        return upgrade_runs(df) if name == "runs" else df

    def write_parity(self, parity: dict[str, Any]) -> None:
        """Keep the parity table beside the runs (``{"config": ..., "rows": [...]}``)."""
        write_json(self.path / PARITY, parity)

    def parity(self) -> dict[str, Any] | None:
        """The parity table, or None where the sweep recorded none; ValueError if unreadable."""
        f = self.path / PARITY
        if not f.is_file():
            return None
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{PARITY} is unreadable ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError(f"{PARITY} is unreadable (no 'rows' list)")
        return data

    def environment(self) -> dict[str, Any]:
        f = self.path / "environment.json"
        return json.loads(f.read_text()) if f.is_file() else {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def archive(path: Path) -> Path:
    """Move a results folder aside to ``<path>.<when it was captured>`` (never overwritten)."""
    when = None
    try:
        when = json.loads((path / "environment.json").read_text()).get("captured_at")
    except (OSError, json.JSONDecodeError, AttributeError):
        pass
    stamp = (when or "undated").replace(":", "").replace("-", "").replace("+0000", "")
    target = path.with_name(f"{path.name}.{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{stamp}-{n}")
    os.replace(path, target)
    return target


def point_latest(path: Path) -> None:
    """Make ``results/latest`` a relative symlink to ``path`` (replaced atomically), where
    ``path`` lies in a folder named ``results``; elsewhere leave the parent folder alone."""
    path = Path(path).resolve()
    if path.parent.name != "results":
        return
    link = path.parent / "latest"
    if link.exists() and not link.is_symlink():
        return  # a real folder named latest: never clobber it
    tmp = path.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(path.name, tmp)
    os.replace(tmp, link)

"""The results store: one folder per sweep, written only by the driver.

results/<name>/
    store.json          schema version and sweep name (marks an optbench results folder)
    environment.json    host, versions, threads, precision, git commit, command, sweep
    runs.parquet        one row per run
    curves.parquet      run_id, step, epoch, wall_s, train_loss, train_acc, test_loss, test_acc
    timings.parquet     run_id, block, phase, steps, seconds
    parity.json         the parity table, when the sweep was run with --parity
    compiler_choice.json  what picked each backend's default compiled path (benchmarks.run.paths)
    parts/<run_id>/     each finished run's rows, written atomically (a run lands whole
                        or not at all); the three tables above are rebuilt from them
results/.<name>.lock    the writer's lock (one optbench run per folder), with
results/.<name>.lock.json  who holds it
results/<name>.<date>/  earlier results a new run moved aside (archive; listed by archives,
                        deleted by prune_archives)

The columns and statuses are :mod:`benchmarks.record.schema`'s. Every file in a results folder is
written and read through :class:`Store`, atomically and under the writer's lock
(:mod:`benchmarks.record.files`). Readers never write: where a table is missing or damaged they
rebuild it from parts/ in memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.record.files import (
    StoreError,
    json_safe,
    locked_by,
    now,
    readable,
    write_json,
    write_parquet,
    writing,
)
from benchmarks.record.schema import FINISHED, RUN_ORDER, SCHEMA_VERSION, upgrade_runs

MARKER = "store.json"
TABLES = ("runs", "curves", "timings")
PARITY = "parity.json"
PATHS = "compiler_choice.json"


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.archived: Path | None = None  # where create() moved earlier results, if it did
        self.new = False  # create() started this folder (not a resume)
        self.notes: list[str] = []  # what reading found missing, unreadable or rebuilt
        self._tables: dict[str, pd.DataFrame | None] | None = None
        self._why: dict[str, str] = {}  # table -> "missing" or "unreadable (...)"

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: Path, name: str, resume: bool, fingerprint: dict[str, Any] | None = None
    ) -> Store:
        """Open a folder for writing a sweep; refuse to mix with unrelated or older results.

        ``fingerprint`` (what the measurements depend on: the grid, threads, CPU, versions) is
        kept in store.json; ``--resume`` with another fingerprint is refused, so one table
        never mixes runs measured under different conditions. The caller holds
        :func:`writing` (it may archive the folder).
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
                meta["resumed"] = [*meta.get("resumed", []), now()]
                write_json(path / MARKER, meta)
                return store
            elif store.part_ids() or (path / "runs.parquet").exists():
                # A new run of the same sweep: keep the old results whole, beside it.
                try:
                    store.archived = archive(path)
                except OSError as exc:
                    raise StoreError(
                        f"cannot move the earlier results of {str(path)!r} aside ({exc.strerror or exc}): "
                        f"{str(path.parent)!r} must be writable; use --resume to continue them, or give another --out"
                    ) from None
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
                "created": now(),
                "fingerprint": fingerprint,
            },
        )
        store.new = True
        return store

    def check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        old = self.meta().get("fingerprint") or {}
        new = json.loads(json.dumps(json_safe(fingerprint), default=str))  # as stored
        # where the run ids differ, the axes say how (a folder from before they were kept
        # has only the ids' hash); where they do not, no axis changed that matters
        axes = old.pop("axes", None), new.pop("axes", None)
        grid_changed = old.get("grid") != new.get("grid")
        axes = _changes(*axes, every_key=True) if grid_changed and None not in axes else []
        diff = axes + _changes(old, new)
        if axes:  # they say how the grid changed, its hash does not
            diff = [d for d in diff if not d.startswith("grid:")]
        if diff:
            what = "; ".join(diff)
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
        try:
            marked = (path / MARKER).is_file()
        except OSError as exc:  # a folder this user may not enter
            raise StoreError(f"{str(path)!r} cannot be read ({exc.strerror})") from None
        if not marked:
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
        readable(tmp, folder=True)
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
        frames = self._from_parts()
        for t in TABLES:
            write_parquet(frames[t], self.path / f"{t}.parquet")
        self._tables = None
        return {t: len(frames[t]) for t in TABLES}

    def _from_parts(self) -> dict[str, pd.DataFrame]:
        """The three tables as consolidate() writes them, built from parts/ in memory; a
        part that cannot be read is left out, with a note (``--resume`` runs it again)."""
        frames: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        for rid in self.part_ids():
            try:
                part = {
                    t: pd.read_parquet(f)
                    for t in TABLES
                    if (f := self.path / "parts" / rid / f"{t}.parquet").is_file()
                }
            except Exception as exc:  # noqa: BLE001 - any damage: the run is not there
                self.notes.append(f"parts/{rid} is unreadable ({_why(exc)}); left out.")
                continue
            for t, df in part.items():
                frames[t].append(df)
        out = {}
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
            out[t] = df
        return out

    # -- reading -------------------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame | None:
        """One of runs/curves/timings; runs come with every column of this schema version.

        Read from ``<name>.parquet``, or, where any table is missing, unreadable (truncated,
        corrupt, no permission) or behind parts/ (a driver killed before it consolidated),
        all three rebuilt from parts/ in memory: readers never write. None where neither
        has it. :attr:`notes` says what was missing, unreadable or rebuilt.
        """
        if self._tables is None:
            self._tables = self._read_tables()
        df = self._tables[name]
        return upgrade_runs(df) if name == "runs" and df is not None else df

    def runs(self) -> pd.DataFrame:
        """The runs table (see :meth:`table`); StoreError naming the fix where neither
        runs.parquet nor parts/ can supply it."""
        runs = self.table("runs")
        if runs is None:
            try:  # the sweep file it ran, to name the fix
                sweep = self.environment()["sweep"]["source"]
            except (StoreError, KeyError, TypeError):
                sweep = self.meta().get("name") or "NAME"
            raise StoreError(
                f"{str(self.path)!r}: runs.parquet is {self._why['runs']} and parts/ holds no "
                f"run to rebuild it from; run the sweep again into it: optbench run --sweep "
                f"{sweep} --out {self.path} --resume"
            )
        return runs

    def _read_tables(self) -> dict[str, pd.DataFrame | None]:
        tables: dict[str, pd.DataFrame | None] = {}
        for t in TABLES:
            try:
                tables[t] = pd.read_parquet(self.path / f"{t}.parquet")
            except FileNotFoundError:
                tables[t], self._why[t] = None, "missing"
            except Exception as exc:  # noqa: BLE001 - truncated, corrupt, unreadable: not data
                tables[t], self._why[t] = None, f"unreadable ({_why(exc)})"
        ids = set(self.part_ids())
        runs = tables["runs"]
        behind = runs is not None and not ids <= set(runs.get("run_id", ()))
        damage = [f"{t}.parquet is {why}" for t, why in self._why.items()]
        if ids and (damage or behind):
            tables = dict(self._from_parts())
            what = "; ".join(damage) or "runs.parquet lacks runs that parts/ holds"
            self.notes.append(
                f"{what}: the tables were rebuilt from parts/ ({len(tables['runs'])} runs); "
                "`optbench run ... --resume` into this folder writes them again."
            )
        else:
            self.notes += [f"{d}." for d in damage]
        return tables

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

    def write_path_choices(self, choices: list[dict[str, Any]]) -> None:
        """Keep the compiled-path measurements (benchmarks.run.paths), so a resumed sweep runs
        the paths its first part chose and the report can show what was measured."""
        write_json(self.path / PATHS, choices)

    def path_choices(self) -> list[dict[str, Any]]:
        """The recorded choices ([] where none or unreadable: they are then measured again)."""
        try:
            data = json.loads((self.path / PATHS).read_text())
        except (OSError, ValueError):
            return []
        return data if isinstance(data, list) else []

    def environment(self) -> dict[str, Any]:
        """environment.json ({} where missing); StoreError where it cannot be read."""
        f = self.path / "environment.json"
        try:
            return json.loads(f.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"{f} is unreadable ({_why(exc)})") from None

    def meta(self) -> dict[str, Any]:
        """store.json ({} where unreadable: check_schema reports that)."""
        try:
            meta = json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}


def _changes(
    old: dict[str, Any], new: dict[str, Any], prefix: str = "", every_key: bool = False
) -> list[str]:
    """What differs between two fingerprints, key by key (one level into tables such as the
    package versions). A key only one side has is a change with ``every_key`` (the grid's
    axes), otherwise not (a later optbench added it)."""
    out = []
    for k in sorted(set(old) | set(new) if every_key else set(old) & set(new)):
        a, b = old.get(k, []), new.get(k, [])
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and not prefix:
            out += _changes(a, b, f"{k}.")
        elif isinstance(a, list) and isinstance(b, list):
            added = [v for v in b if v not in a]
            dropped = [v for v in a if v not in b]
            said = [f"{', '.join(map(str, added))} added"] if added else []
            said += [f"{', '.join(map(str, dropped))} dropped"] if dropped else []
            if said:  # the same values in another order are the same axis
                out.append(f"{prefix}{k}: {'; '.join(said)}")
        elif k == "grid" and not prefix:  # a hash of the run ids: only says the runs differ
            out.append(f"grid: another set of runs (run ids hash {a!r} then, {b!r} now)")
        else:
            out.append(f"{prefix}{k}: {a!r} then, {b!r} now")
    return out


def _why(exc: BaseException) -> str:
    """An exception as one line (pyarrow's messages span several)."""
    return " ".join(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}".split())


def archive(path: Path) -> Path:
    """Move a results folder aside to ``<path>.<when it was captured>`` (never overwritten;
    :func:`archives` lists them, :func:`prune_archives` deletes old ones)."""
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


#: an archive's folder name: ``<folder>.<stamp>[-n]``, the stamp as :func:`archive` writes it
_ARCHIVED = re.compile(r"^(?P<name>.+)\.(?P<stamp>\d{8}T\d{6}|undated)(?:-(?P<n>\d+))?$")


@dataclass(frozen=True)
class Archive:
    """A results folder that :func:`archive` moved aside."""

    path: Path
    name: str  # the folder it was moved from: results/<name>
    started: datetime | None  # when its sweep started (its stamp)
    runs: int  # runs that landed in it (parts/)
    size: int  # bytes

    @property
    def order(self) -> tuple:
        """Oldest first: by start, then by the ``-n`` of a same-second archive."""
        m = _ARCHIVED.match(self.path.name)
        n = int(m["n"]) if m and m["n"] else 1
        return (self.started or datetime.min.replace(tzinfo=timezone.utc), n)


def archives(results: Path) -> list[Archive]:
    """The archived results folders in ``results`` (``<name>.<stamp>`` holding an optbench
    results folder), by name, newest first."""
    results = Path(results)
    if not results.is_dir():
        raise StoreError(f"{str(results)!r} is not a folder; give the results folder, e.g. results")
    found = []
    for p in results.iterdir():
        m = _ARCHIVED.match(p.name)
        if not m or p.is_symlink() or not (p / MARKER).is_file():
            continue
        started = None
        if m["stamp"] != "undated":
            started = datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
        size = sum((Path(d) / f).lstat().st_size for d, _, files in os.walk(p) for f in files)
        found.append(Archive(p, m["name"], started, len(Store(p).part_ids()), size))
    return sorted(sorted(found, key=lambda a: a.order, reverse=True), key=lambda a: a.name)


def to_prune(found: list[Archive], keep: int) -> list[Archive]:
    """All but the newest ``keep`` archives of each name (what :func:`prune_archives`
    deletes)."""
    seen: dict[str, int] = {}
    out = []
    for a in sorted(found, key=lambda a: a.order, reverse=True):
        seen[a.name] = seen.get(a.name, 0) + 1
        if seen[a.name] > keep:
            out.append(a)
    return out


def prune_archives(results: Path, keep: int) -> tuple[list[Archive], list[tuple[Archive, str]]]:
    """Delete all but the newest ``keep`` archives of each name in ``results``. Each goes
    under its writer lock; one that another optbench run holds (``--out`` into an archive)
    is left alone. Returns (deleted, left alone with the reason); StoreError where a
    folder cannot be deleted."""
    if keep < 0:
        raise StoreError(f"--keep {keep} is invalid; expected a count >= 0")
    deleted, left = [], []
    latest = (Path(results) / "latest").resolve()
    for a in to_prune(archives(results), keep):
        if a.path.resolve() == latest:
            left.append((a, "results/latest points at it"))
            continue
        held = locked_by(a.path)
        if held:
            left.append((a, f"another optbench run is writing it ({held})"))
            continue
        try:
            with writing(a.path):  # and nobody starts to while it goes
                shutil.rmtree(a.path)
        except StoreError as exc:  # taken since, or no lock can be made here
            left.append((a, str(exc)))
            continue
        except OSError as exc:
            raise StoreError(
                f"cannot delete {str(a.path)!r} ({exc.strerror or exc}); it may be partly "
                "deleted: remove it by hand"
            ) from None
        with suppress(OSError):  # its lock file, now that nothing is left to lock
            (a.path.parent / f".{a.path.name}.lock").unlink()
        deleted.append(a)
    return deleted, left

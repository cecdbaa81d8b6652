"""A sweep's results folders as points, one series per machine, and each step between two
points judged by :func:`benchmarks.track.compare.compare`: the model under ``optbench
history`` (:mod:`benchmarks.track.history` draws and writes it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from backends import registry
from benchmarks.record.store import MARKER, Store, StoreError
from benchmarks.report.analysis import analyse
from benchmarks.report.load import load
from benchmarks.track import baselines
from benchmarks.track.change import FASTER, SAME, SLOWER
from benchmarks.track.compare import Comparison, compare

DEFAULT_SWEEP = "default"
#: the verdict columns a point keeps (its key and what the history shows)
SERIES = ["backend", "mode", "compiler", "device"]
FIGURES_OF = [
    "samples_per_s",
    "ci_low",
    "ci_high",
    "best_test_acc",
    "runs",
    "ok",
    "diverged",
    "failed",
]
#: compare's groups are per backend x mode x device x optimizer x batch size: a verdict row
#: (per compiler, optimizers pooled) carries the flags of the groups it pools
MATCH = ["dataset", "backend", "mode", "device", "batch_size"]
DEPTH = 3  # how deep under results/ results folders are looked for (results/baselines/NAME)


class HistoryError(StoreError):
    """Bad input for a history (no folder of the sweep, folders of several sweeps, a folder
    that cannot be read): a message naming the folder and what is wrong."""


@dataclass
class Point:
    """One results folder of the sweep, as the history sees it."""

    path: Path
    sweep: str
    machine: str
    date: pd.Timestamp
    date_source: str  # which record the date comes from
    commit: str  # "" where environment.json has none
    dirty: bool | None
    threads: Any
    versions: dict[str, str | None]
    verdict: pd.DataFrame  # analyse(...).verdict
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The short commit ("d43a8ae", "d43a8ae*" where the tree was dirty)."""
        return (self.commit[:7] or "no commit") + ("*" if self.dirty else "")


@dataclass
class Step:
    """From an earlier point of a machine's series to a later one: what compare says.
    ``previous`` is the latest earlier point compare could judge ``current`` against (one
    with a run in common), the point just before unless ``passed_over`` holds points."""

    previous: Point
    current: Point
    comparison: Comparison | None
    error: str = ""  # why compare could not judge it (e.g. no run in common)
    noise: int = 0  # speed changes compare called where nothing changed: not flagged
    #: the later points before ``current`` that compare could not judge it against, latest
    #: first (no run in common: e.g. they ran other backends only)
    passed_over: list[Point] = field(default_factory=list)


@dataclass
class History:
    sweep: str
    points: list[Point]  # by machine, then date
    steps: list[Step]
    table: pd.DataFrame  # history_table(...)
    skipped: list[str] = field(default_factory=list)  # folders under results/ left out, and why


# --- gathering -------------------------------------------------------------------------


def is_folder_target(target: str) -> bool:
    """A command-line target is a results folder when it names a path (holds a separator)
    or is a folder with a store.json here; otherwise it names a sweep."""
    return os.sep in target or "/" in target or (Path(target) / MARKER).is_file()


def sweep_of(store: Store) -> str:
    """The sweep a results folder holds: environment.json's sweep name, else store.json's."""
    sweep = store.environment().get("sweep")
    name = sweep.get("name") if isinstance(sweep, dict) else None
    return str(name or store.meta().get("name") or "")


def candidates(results: Path) -> list[Path]:
    """Every folder under ``results`` holding a store.json (not looking inside one), each
    once: a link to a folder found already (``results/latest``) is skipped; hidden folders
    are not results."""
    results = Path(results)
    if not results.is_dir():
        raise HistoryError(
            f"{str(results)!r} is not a folder; give the results folder with --results"
        )
    found: dict[Path, Path] = {}

    def walk(folder: Path, depth: int) -> None:
        for p in sorted(folder.iterdir(), key=lambda p: (p.is_symlink(), p.name)):
            if p.name.startswith(".") or not p.is_dir():
                continue
            if (p / MARKER).exists():
                found.setdefault(p.resolve(), p)
            elif depth < DEPTH:
                walk(p, depth + 1)

    walk(results, 1)
    return sorted(found.values())


def folders_of(sweep: str, results: Path) -> tuple[list[Path], list[str]]:
    """The results folders of ``sweep`` under ``results``, and those left out (another
    sweep's are not said; one whose sweep cannot be told is, unless its name says it is
    this sweep's: then it is an error)."""
    mine, skipped, others = [], [], set()
    for path in candidates(results):
        try:
            name = sweep_of(Store(path))
        except StoreError as exc:  # environment.json unreadable: store.json may still say
            name = str(Store(path).meta().get("name") or "")
            if not name:
                raise HistoryError(f"{path}: {exc}; cannot tell which sweep it holds") from None
        if not name:
            if path.name == sweep or path.name.startswith(f"{sweep}."):  # it or its archive
                raise HistoryError(
                    f"{str(path)!r} looks like a results folder of sweep {sweep!r}, but its "
                    f"{MARKER} is unreadable; repair it or move the folder out of {results}"
                )
            skipped.append(f"{path}: {MARKER} unreadable, its sweep unknown; left out.")
        elif name == sweep:
            mine.append(path)
        else:
            others.add(name)
    if not mine:
        there = f" (it holds sweeps {', '.join(sorted(others))})" if others else ""
        raise HistoryError(
            f"no results folder of sweep {sweep!r} under {str(results)!r}{there}; run "
            f"`optbench run --sweep {sweep}` first, or name another sweep"
        )
    return mine, skipped


def machine_of(env: dict[str, Any]) -> str:
    """A machine as baselines match it (:func:`benchmarks.track.baselines.machine`: CPU model,
    core count, GPU model), written out: "Intel Xeon, 2 cores, no GPU"."""
    m = baselines.machine(env)
    cpu, cores = m["cpu_model"] or "unknown CPU", m["cpu_cores"] or "?"
    return f"{cpu}, {cores} cores, {m['gpu'] or 'no GPU'}"


def _utc(value: Any) -> pd.Timestamp | None:
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if t is pd.NaT:
        return None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def date_of(store: Store, env: dict[str, Any]) -> tuple[pd.Timestamp, str]:
    """When the sweep started: environment.json's captured_at, else store.json's created
    (an archive's name holds captured_at too), else store.json's modification time."""
    for value, source in (
        (env.get("captured_at"), "environment.json captured_at"),
        (store.meta().get("created"), "store.json created"),
    ):
        if value and (t := _utc(value)) is not None:
            return t, source
    mtime = datetime.fromtimestamp((store.path / MARKER).stat().st_mtime, timezone.utc)
    return pd.Timestamp(mtime), "store.json modified"


def read_point(path: Path) -> Point:
    """A results folder as a point; HistoryError naming the folder where it cannot be read."""
    try:
        store = Store.open(path)
        env = store.environment()
        if not env:
            raise HistoryError(
                f"{str(path)!r} has no environment.json: the machine, commit and versions of "
                "its runs are unknown; it cannot be placed in a history"
            )
        if not isinstance(env, dict):
            raise HistoryError(f"{path / 'environment.json'} is unreadable (not an object)")
        res = load(path)  # through Store: damaged tables rebuilt from parts/, as notes
    except HistoryError:
        raise
    except StoreError as exc:
        raise HistoryError(str(exc)) from None
    if res.runs.empty:
        raise HistoryError(f"{str(path)!r}: runs.parquet holds no runs; nothing to show")
    git = env.get("git") if isinstance(env.get("git"), dict) else {}
    date, source = date_of(store, env)
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    return Point(
        path=path,
        sweep=sweep_of(store),
        machine=machine_of(env),
        date=date,
        date_source=source,
        commit=str(git.get("commit") or ""),
        dirty=git.get("dirty"),
        threads=env.get("threads_per_worker"),
        versions={k: v for k, v in packages.items() if k != "optbench"},
        verdict=analyse(res.runs, res.curves, res.timings, gpus=res.gpu_names).verdict,
        notes=[f"{path}: {n}" for n in res.notes],
    )


def gather(targets: Sequence[str], results: Path) -> tuple[str, list[Point], list[str]]:
    """The sweep and its points (by machine, then date) from the command line's targets:
    nothing (the default sweep), one sweep name, or results folders of one sweep."""
    targets = list(targets) or [DEFAULT_SWEEP]
    as_folders = [is_folder_target(t) for t in targets]
    if any(as_folders) and not all(as_folders):
        names = [t for t, f in zip(targets, as_folders) if not f]
        raise HistoryError(
            f"{', '.join(map(repr, names))} is not a results folder; give one sweep name, or "
            "results folders only"
        )
    skipped: list[str] = []
    if all(as_folders):
        paths = [Path(t) for t in targets]
    elif len(targets) > 1:
        raise HistoryError(
            f"one sweep at a time (got {', '.join(map(repr, targets))}); run a history per sweep"
        )
    else:
        paths, skipped = folders_of(targets[0], results)
    paths = list({p.resolve(): p for p in reversed(paths)}.values())[::-1]  # each once
    points = [read_point(p) for p in paths]
    sweeps = {p.sweep for p in points}
    if len(sweeps) > 1:
        which = "; ".join(f"{p.path}: sweep {p.sweep!r}" for p in points)
        raise HistoryError(
            f"these folders hold different sweeps ({which}); a history is over one sweep: "
            "give folders of one sweep, or a sweep name"
        )
    points.sort(key=lambda p: (p.machine, p.date, str(p.path)))
    return points[0].sweep, points, skipped


# --- the table -------------------------------------------------------------------------


def steps_of(points: list[Point]) -> list[Step]:
    """Each point against the latest earlier point of its machine's series that compare can
    judge it against, judged by compare on the stored runs (a history does not re-measure
    old commits). Compare matches runs by their configuration and refuses two folders with
    no run in common, so a point whose predecessor ran other backends only is compared with
    the last point before that which shares its runs (``Step.passed_over`` holds those in
    between); where no earlier point does, the step is not compared, with compare's word on
    the point just before. Where nothing changed between the two (:func:`same_software`), a
    speed change is the machine's own noise: it is counted (``Step.noise``), not flagged."""
    out = []
    for i, cur in enumerate(points):
        earlier = [p for p in points[:i] if p.machine == cur.machine][::-1]  # latest first
        if not earlier:
            continue
        refused: list[str] = []
        for prev in earlier:
            try:
                cmp = compare(prev.path, cur.path)
            except ValueError as exc:  # no run in common, say: not comparable, not bad input
                refused.append(str(exc))
                continue
            noise = 0
            if same_software(prev, cur) and len(cmp.groups):
                moved = cmp.groups["verdict"].isin([SLOWER, FASTER])
                noise = int(moved.sum())
                cmp.groups.loc[moved, "verdict"] = SAME
            out.append(Step(prev, cur, cmp, noise=noise, passed_over=earlier[: len(refused)]))
            break
        else:
            more = len(earlier) - 1
            error = refused[0] + (
                f"; nor could any of the {more} earlier folder(s) of this machine be compared "
                "with it"
                if more
                else ""
            )
            out.append(Step(earlier[0], cur, None, error))
    return out


def _partner(step: Step) -> str:
    """Where a step's earlier side is not the point just before: " (FOLDER: why)", to follow
    its commit in the tables and the summary line; "" otherwise."""
    if not step.passed_over:
        return ""
    return (
        f" ({step.previous.path}: the latest earlier folder with a run in common; "
        f"{len(step.passed_over)} later folder(s) share none)"
    )


def same_software(prev: Point, cur: Point) -> bool:
    """Whether two points of one machine ran the same code the same way: one commit, with
    no uncommitted changes on either side, the same package versions and thread count."""
    return bool(
        prev.commit
        and prev.commit == cur.commit
        and prev.dirty is False
        and cur.dirty is False
        and prev.versions == cur.versions
        and prev.threads == cur.threads
    )


def _flags(step: Step | None) -> pd.DataFrame:
    """Per MATCH key: compare's slower and faster groups, status changes, accuracy drops."""
    cols = [*MATCH, "slower", "faster", "status_changes", "accuracy_drops", "flag_detail"]
    if step is None or step.comparison is None:
        return pd.DataFrame(columns=cols)
    cmp, rows = step.comparison, {}

    def at(r: Any) -> dict[str, Any]:
        key = tuple(getattr(r, k) for k in MATCH)
        return rows.setdefault(
            key,
            {
                **dict(zip(MATCH, key)),
                "slower": 0,
                "faster": 0,
                "status_changes": 0,
                "accuracy_drops": 0,
                "flag_detail": [],
            },
        )

    for r in cmp.groups.itertuples(index=False):
        if r.verdict in (SLOWER, FASTER):
            row = at(r)
            row[r.verdict] += 1
            row["flag_detail"].append(
                f"{r.optimizer} {r.verdict} {r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
            )
    for r in cmp.status_changes.itertuples(index=False):
        row = at(r)
        row["status_changes"] += 1
        row["flag_detail"].append(
            f"{r.optimizer} lr {r.lr:g} seed {r.seed}: {r.baseline_status} -> {r.current_status}"
        )
    for r in cmp.accuracy_drops.itertuples(index=False):
        row = at(r)
        row["accuracy_drops"] += 1
        row["flag_detail"].append(
            f"{r.optimizer} lr {r.lr:g} seed {r.seed}: acc {r.baseline_acc:.3f} -> {r.current_acc:.3f}"
        )
    for row in rows.values():
        row["flag_detail"] = "; ".join(row["flag_detail"])
    return pd.DataFrame(list(rows.values()), columns=cols)


def history_table(points: list[Point], steps: list[Step]) -> pd.DataFrame:
    """One row per point x verdict row: machine, date, commit, versions, the point's
    throughput and accuracy, and compare's flags against the step's earlier point
    (``previous_commit``, ``previous_folder``: the latest earlier point of the machine with
    a run in common, see :func:`steps_of`; ``compared`` False for a series' first point or
    where compare could not judge)."""
    by_current = {id(s.current): s for s in steps}
    packages = sorted({k for p in points for k, v in p.versions.items() if v is not None})
    frames = []
    counts = ["slower", "faster", "status_changes", "accuracy_drops"]
    for p in points:
        step = by_current.get(id(p))
        head = {
            "machine": p.machine,
            "date": p.date,
            "date_source": p.date_source,
            "commit": p.commit,
            "dirty": p.dirty,
            "folder": str(p.path),
            "sweep": p.sweep,
            "threads": p.threads,
            **{f"{k}_version": p.versions.get(k) for k in packages},
            "previous_commit": step.previous.commit if step else "",
            "previous_folder": str(step.previous.path) if step else "",
            "compared": bool(step and step.comparison is not None),
        }
        v = p.verdict[["dataset", "batch_size", *SERIES, *FIGURES_OF]].assign(**head)
        v = v[[*head, "dataset", "batch_size", *SERIES, *FIGURES_OF]]
        flags = _flags(step)
        if len(flags):
            v = v.merge(flags, on=MATCH, how="left")
        else:
            v = v.assign(**{c: 0 for c in counts}, flag_detail="")
        v[counts] = v[counts].fillna(0).astype(int)
        v["flag_detail"] = v["flag_detail"].fillna("")
        v["flagged"] = (v["slower"] + v["status_changes"] + v["accuracy_drops"]) > 0
        frames.append(v)
    return pd.concat(frames, ignore_index=True)


def build(targets: Sequence[str], results: Path = Path("results")) -> History:
    """Everything the page and the CSV show; HistoryError on bad input."""
    sweep, points, skipped = gather(targets, results)
    steps = steps_of(points)
    return History(sweep, points, steps, history_table(points, steps), skipped)


# --- changes between points ------------------------------------------------------------


def version_change(pkg: str, old: str | None, new: str | None) -> str:
    """A version change as the plot labels it, e.g. "torch 2.12 -> 2.13": major.minor where
    that changed, the release otherwise, the whole version (with its local tag, +cpu) where
    only that changed."""

    def release(v: str | None) -> str | None:
        return v.split("+")[0] if v else None

    def minor(v: str | None) -> str | None:
        return ".".join(v.split(".")[:2]) if v else None

    a, b = release(old), release(new)
    if minor(a) != minor(b):
        a, b = minor(a), minor(b)
    elif a == b:
        a, b = old, new
    return f"{pkg} {a or 'none'} -> {b or 'none'}"


def changes(prev: Point, cur: Point, packages: Sequence[str] | None = None) -> list[str]:
    """What changed from ``prev`` to ``cur`` besides the commit: package versions (only
    ``packages`` where given) and the thread count."""
    names = packages if packages is not None else sorted(set(prev.versions) | set(cur.versions))
    out = [
        version_change(k, prev.versions.get(k), cur.versions.get(k))
        for k in names
        if prev.versions.get(k) != cur.versions.get(k)
    ]
    if prev.threads != cur.threads:
        out.append(f"threads {prev.threads} -> {cur.threads}")
    return out


def backend_packages(backend: str) -> tuple[str, ...]:
    """The packages whose version changes a backend's panels label."""
    entry = registry.REGISTRY.get(backend)
    return entry.packages if entry is not None and entry.packages else (backend,)

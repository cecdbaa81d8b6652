"""How a results folder's files are written, and who may write them: each file atomically (a
temporary file renamed into place) and readable by other users as the umask allows, JSON
strict (NaN and inf as null); the writer's lock (one optbench run per folder) and who holds
it. :class:`benchmarks.record.store.Store` writes every file through these.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout


class StoreError(ValueError):
    """A results folder problem, with what to do about it."""


UMASK = os.umask(0o022)
os.umask(UMASK)


def readable(path: str | Path, folder: bool = False) -> None:
    """mkstemp and mkdtemp create 0600 files and 0700 folders: open them up to what the umask
    allows, as any other file, so that other users of a shared machine can read results."""
    os.chmod(path, (0o777 if folder else 0o666) & ~UMASK)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    readable(tmp)
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


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    df.to_parquet(tmp, index=False)
    readable(tmp)
    os.replace(tmp, path)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Hold the writer's lock of results folder ``path``: one optbench run per folder.

    The lock is ``.<name>.lock`` beside the folder, not in it, so that archiving the folder
    (which happens under the lock) does not move it. It is an flock(2) lock (filelock): the
    kernel drops it when its holder dies, kill -9 included, so a dead run never leaves a
    stale lock; its holder record (``.<name>.lock.json``) is then simply overwritten. Nested
    in one process (the pipeline around the driver) it is taken once. Raises StoreError,
    having touched nothing, when another process holds it or the parent is not writable.
    """
    path = Path(path).resolve()  # results/latest and results/NAME: one folder, one lock
    holder = path.parent / f".{path.name}.lock.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path.parent / f".{path.name}.lock", is_singleton=True)
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(
            f"{str(path)!r} is being written by another optbench run ({_holder(holder)}); "
            "wait for it to finish, or give another --out"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot write beside {str(path)!r}: {str(path.parent)!r} is not writable "
            f"({exc.strerror or exc}); choose another --out"
        ) from None
    first = lock.lock_counter == 1
    try:
        if first:
            who = {"host": socket.gethostname(), "pid": os.getpid(), "since": now()}
            with suppress(OSError):  # a parent made read-only since: the lock still holds
                write_json(holder, {**who, "command": sys.argv})
        yield
    finally:
        if first:
            with suppress(OSError):
                holder.unlink()
        lock.release()


def locked_by(path: Path) -> str | None:
    """Who holds results folder ``path``'s writer lock (host, PID, since, command), or None
    where no other process does. flock(2) cannot be queried: the lock is taken for an
    instant and given back. A lock that cannot be checked counts as held."""
    path = Path(path).resolve()
    lockfile = path.parent / f".{path.name}.lock"
    if not lockfile.exists():
        return None  # never written by an optbench run that locks
    lock = FileLock(lockfile, is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return _holder(path.parent / f".{path.name}.lock.json")
    except OSError as exc:
        return f"its lock cannot be checked ({exc.strerror or exc})"
    lock.release()
    return None


def _holder(record: Path) -> str:
    try:
        h = json.loads(record.read_text())
        return f"host {h['host']}, PID {h['pid']}, since {h['since']}: {' '.join(h['command'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its holder did not say who it is"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

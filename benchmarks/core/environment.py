"""The environment beside every result: host, hardware, versions, threads, precision, git.

Gathered without importing any framework (package versions come from installed
metadata); what only a framework knows (its thread pool, matmul precision, compiler) is
recorded per run by the worker.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from backends import registry

#: the harness's own packages; each backend's come from its registry entry
CORE_PACKAGES = ("numpy", "pandas", "pyarrow", "matplotlib", "scikit-learn", "mlxtend")


def packages() -> tuple[str, ...]:
    """Every distribution whose version environment.json records."""
    names = [*CORE_PACKAGES, *(p for e in registry.REGISTRY.values() for p in e.packages)]
    return (*dict.fromkeys(names), "optbench")


ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "XLA_FLAGS",
    "JAX_PLATFORMS",
    "JAX_DEFAULT_MATMUL_PRECISION",
    "CUDA_VISIBLE_DEVICES",
    "KERAS_BACKEND",
)
REPO = Path(__file__).resolve().parents[2]


def cpu_affinity() -> list[int]:
    """The CPUs this process may run on, sorted; empty where the platform cannot say
    (macOS has no ``sched_getaffinity``)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def cpu_model() -> str:
    """This machine's CPU model, as /proc/cpuinfo names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[dict[str, str]]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    cuda = ""
    try:
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
        if "CUDA Version:" in head:
            cuda = head.split("CUDA Version:")[1].split()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    gpus = []
    for line in out.stdout.strip().splitlines():
        name, driver, mem = [s.strip() for s in line.split(",")]
        gpus.append({"name": name, "driver": driver, "memory": mem, "cuda": cuda})
    return gpus


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, without importing any framework."""
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def git_state() -> dict[str, Any]:
    """This checkout's ``commit``, whether tracked files have uncommitted changes
    (``dirty``) and a hash of those changes (``diff_sha256``, "" when clean): with it,
    ``compare``'s re-measurement can tell whether a working tree still holds the code a
    dirty run had. None values where git cannot say."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
        diff = git("diff", "HEAD", "--no-ext-diff", "--binary") if dirty else ""
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None, "diff_sha256": None}
    if not commit:
        return {"commit": None, "dirty": None, "diff_sha256": None}
    return {
        "commit": commit,
        "dirty": dirty,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if dirty else "",
    }


def package_versions() -> dict[str, str | None]:
    """The installed version of each package :func:`packages` names (None: not installed)."""
    versions: dict[str, str | None] = {}
    for pkg in packages():
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def package_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The package versions that differ between two environments ("torch 2.12.0 ->
    2.13.0"), optbench itself left out (its version says nothing of the frameworks)."""
    a, b = old.get("packages") or {}, new.get("packages") or {}
    return [
        f"{k} {a.get(k)} -> {b.get(k)}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and k != "optbench"
    ]


def capture(
    threads: int | None = None,
    command: list[str] | None = None,
    sweep: Any = None,
    worker_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of this machine and software."""
    import psutil

    return {
        "captured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "threads_per_worker": threads,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpus(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
        "worker_env": worker_env or {},  # what each worker starts with (threads pinned there too)
        "dtype_note": "float32 throughout; GPU matmuls pinned to full float32 (no TF32) by each backend",
        "git": git_state(),
        "command": command if command is not None else sys.argv,
        "sweep": sweep,
    }


def fingerprint(env: dict[str, Any], runs: list[Any]) -> dict[str, Any]:
    """What a sweep's measurements depend on, to refuse resuming under other conditions:
    the grid (its run ids, and each axis's values so that a refusal can say what changed),
    threads, CPU, GPUs, Python and package versions."""
    import hashlib

    grid = hashlib.sha1(",".join(sorted(r.run_id for r in runs)).encode()).hexdigest()[:12]
    axes: dict[str, list[Any]] = {}
    for r in runs:
        for k, v in r.row().items():
            if k != "run_id" and v not in axes.setdefault(k, []):
                axes[k].append(v)
    return {
        "grid": grid,
        "axes": {k: sorted(v, key=repr) for k, v in axes.items()},
        "threads_per_worker": env.get("threads_per_worker"),
        "cpu_model": env.get("cpu_model"),
        "gpus": [g.get("name") for g in env.get("gpus", [])],
        "python": env.get("python"),
        "packages": {k: v for k, v in (env.get("packages") or {}).items() if k != "optbench"},
    }

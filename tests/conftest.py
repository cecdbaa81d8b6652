"""Tests are generated for every backend in the registry: a backend that is not installed
is skipped with the reason and the fix; one that is installed and fails is a failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from backends import registry
from backends.base import MODES

REPO = Path(__file__).resolve().parent.parent
FAKES = (
    "ghost=no_such_framework_xyz.backend:GhostBackend,"
    "crashing=tests.fakes:CrashingBackend,hanging=tests.fakes:HangingBackend,"
    "raising=tests.fakes:RaisingBackend,recording=tests.fakes:RecordingBackend"
)


def backend_params(names=registry.NAMES):
    """One pytest param per backend, skipped with the install hint where it is missing."""
    out = []
    for name in names:
        missing = registry.entry(name).missing()
        marks = [
            pytest.mark.skipif(
                bool(missing), reason=f"{name} not installed: {registry.entry(name).install_hint()}"
            )
        ]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def backend_mode_params():
    return [
        pytest.param((p.values[0], mode), marks=p.marks, id=f"{p.values[0]}-{mode}")
        for p in backend_params()
        for mode in MODES
    ]


def gpu_available() -> bool:
    from benchmarks.sweep import gpu_present

    return gpu_present()


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a GPU; none is visible here (nvidia-smi)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cli_env(monkeypatch):
    """Environment for running `optbench` in a subprocess from the repo, with the fakes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OPTBENCH_BACKENDS"] = FAKES
    return env


def optbench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.cli", *args]

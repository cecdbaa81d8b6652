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
    "raising=tests.fakes:RaisingBackend,recording=tests.fakes:RecordingBackend,"
    "mirror=tests.fakes:MirrorBackend,gated=tests.fakes:GatedBackend"
)


REFERENCE = "numpy"  # the reference backend: the fast suite (`make test`) checks it


def backend_params(names=registry.NAMES):
    """One pytest param per backend, skipped with the install hint where it is missing.
    Framework backends (every one but the NumPy reference) are marked ``slow``: importing
    and compiling them takes minutes on 2 cores, so `make test-all` (and CI) runs them."""
    out = []
    for name in names:
        missing = registry.entry(name).missing()
        marks = [
            pytest.mark.skipif(
                bool(missing), reason=f"{name} not installed: {registry.entry(name).install_hint()}"
            )
        ]
        if name != REFERENCE:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def require_backend(name: str) -> None:
    """Skip the calling test module where ``name``'s framework is missing, with the reason
    and the fix; call it before importing the adapter, then import it normally. Unlike
    ``pytest.importorskip("backends.torch.backend")``, a ``ModuleNotFoundError`` raised
    inside our own adapter (a mistyped import) is then a failure, not a skip."""
    missing = registry.entry(name).missing()
    if missing:
        pytest.skip(
            f"{name} not installed (missing {', '.join(missing)}): "
            f"{registry.entry(name).install_hint()}",
            allow_module_level=True,
        )


def backend_path_params():
    """(backend, mode, path) for every path each backend has on the CPU."""
    from backends.base import candidate_paths

    return [
        pytest.param((name, mode, path.name), marks=p.marks, id=f"{name}-{mode}-{path.name}")
        for p in backend_params()
        for name in [p.values[0]]
        for mode in MODES
        for path in candidate_paths(registry.entry(name).paths, mode, "cpu")
    ]


def gpu_available() -> bool:
    from benchmarks.core.environment import gpu_present

    return gpu_present()


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a GPU; none is visible here (nvidia-smi)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fakes(monkeypatch):
    """The fake backends registered in this process and in every worker it starts."""
    monkeypatch.setenv("OPTBENCH_BACKENDS", FAKES)
    monkeypatch.syspath_prepend(str(REPO))
    for entry in registry.parse_extra(FAKES):
        monkeypatch.setitem(registry.REGISTRY, entry.name, entry)


@pytest.fixture
def cli_env(monkeypatch):
    """Environment for running `optbench` in a subprocess from the repo, with the fakes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OPTBENCH_BACKENDS"] = FAKES
    return env


def optbench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.app.cli", *args]


# A sweep of two seconds: the NumPy reference, a dozen steps, blocks of three.
TINY = """
name = "tiny"
dataset = "digits"
hidden = [16]
epochs = 1
max_steps = 12
eval_every = 6
backends = ["numpy"]
modes = ["eager"]
devices = ["cpu"]
batch_sizes = [32]
seeds = [0]
[timing]
block_steps = 3
warmup_steps = 2
timeout_s = 120
[optimizers.sgd]
kind = "sgd"
momentum = 0.9
learning_rates = [0.05]
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return str(p)

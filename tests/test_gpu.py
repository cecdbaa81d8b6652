"""On a GPU machine: every backend that sees the GPU keeps parity there and runs a sweep.

Skipped with the reason where no GPU is visible (conftest.py); never needed by CI. On a GPU
host a framework backend that sees no GPU fails (a CPU-only or broken CUDA build would
otherwise skip into green) unless ``OPTBENCH_CPU_ONLY`` names it, comma-separated: e.g.
``OPTBENCH_CPU_ONLY=tensorflow`` where TensorFlow's CPU build is installed on purpose."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from backends import registry
from backends.base import MODES, candidate_paths
from benchmarks.checks.parity import ParityConfig, passed, run_parity
from tests.conftest import REFERENCE, TINY, backend_params, gpu_available
from tests.test_cli import optbench
from tests.test_contract import assert_blocks_are_their_steps, assert_losses_survive_later_steps

pytestmark = pytest.mark.gpu


def _cpu_only() -> set[str]:
    """The backends expected to see no GPU here (``OPTBENCH_CPU_ONLY``)."""
    return {n.strip() for n in os.environ.get("OPTBENCH_CPU_ONLY", "").split(",") if n.strip()}


def _gpu_backends() -> list[str]:
    return [n for n in registry.installed() if n != REFERENCE and n not in _cpu_only()]


def _require_gpu(name: str) -> None:
    """Skip a backend named CPU-only; fail one that should see the GPU and does not."""
    if name in _cpu_only():
        pytest.skip(f"{name} is named in OPTBENCH_CPU_ONLY")
    if "gpu" not in registry.load(name).devices():
        pytest.fail(
            f"{name} sees no GPU on this GPU host (a CPU-only or broken CUDA build?); if that "
            f"is intended, set OPTBENCH_CPU_ONLY={name}"
        )


@pytest.mark.parametrize("name", backend_params([n for n in registry.NAMES if n != REFERENCE]))
def test_parity_on_the_gpu(name):
    _require_gpu(name)
    rows = run_parity([name], cfg=ParityConfig(device="gpu"))
    assert passed(rows), [r for r in rows if r["ok"] is False]


def _gpu_paths() -> list:
    """(backend, mode, path) for every path of every backend that sees the GPU."""
    out = []
    for name in _gpu_backends():  # one that sees no GPU fails in test_parity_on_the_gpu
        if "gpu" in registry.load(name).devices():
            for mode in MODES:
                out += [
                    (name, mode, p.name)
                    for p in candidate_paths(registry.entry(name).paths, mode, "gpu")
                ]
    return out


@pytest.mark.parametrize("name, mode, path", _gpu_paths() if gpu_available() else [])
def test_every_gpu_path_keeps_each_steps_loss(name, mode, path):
    backend = registry.create(name, mode, "gpu", compiler=path)
    assert_losses_survive_later_steps(backend)
    assert_blocks_are_their_steps(backend)


def test_sweep_on_the_gpu(cli_env, tmp_path):
    sweep = tmp_path / "tiny.toml"
    sweep.write_text(TINY)
    out_dir = tmp_path / "r"
    optbench(
        cli_env,
        "run",
        "--sweep",
        str(sweep),
        "--backend",
        ",".join(_gpu_backends()),
        "--device",
        "gpu",
        "--mode",
        "compiled",
        "--out",
        str(out_dir),
        "--quiet",
        check=False,
    )
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert set(runs["backend"]) == set(_gpu_backends())
    bad = runs[runs["status"] != "ok"]
    assert bad.empty, bad[["backend", "status", "error"]].to_string()  # every run, not any
    ok = runs
    assert ok["peak_memory_kind"].str.startswith("device").all()

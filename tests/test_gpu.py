"""On a GPU machine: every backend that sees the GPU keeps parity there and runs a sweep.

Skipped with the reason where no GPU is visible (conftest.py); never needed by CI."""

from __future__ import annotations

import pandas as pd
import pytest

from backends import registry
from backends.base import MODES, candidate_paths
from benchmarks.parity import ParityConfig, passed, run_parity
from tests.conftest import REFERENCE, TINY, backend_params, gpu_available
from tests.test_cli import optbench
from tests.test_contract import assert_blocks_are_their_steps, assert_losses_survive_later_steps

pytestmark = pytest.mark.gpu


def _gpu_backends() -> list[str]:
    return [n for n in registry.installed() if n != REFERENCE]


@pytest.mark.parametrize("name", backend_params([n for n in registry.NAMES if n != REFERENCE]))
def test_parity_on_the_gpu(name):
    if "gpu" not in registry.load(name).devices():
        pytest.skip(f"{name} sees no GPU here (a CPU-only build?)")
    rows = run_parity([name], cfg=ParityConfig(device="gpu"))
    assert passed(rows), [r for r in rows if r["ok"] is False]


def _gpu_paths() -> list:
    """(backend, mode, path) for every path of every backend that sees the GPU."""
    out = []
    for name in _gpu_backends():
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
    assert set(runs["status"]) <= {"ok", "skipped"} and (runs["status"] == "ok").any()
    ok = runs[runs["status"] == "ok"]
    assert ok["peak_memory_kind"].str.startswith("device").all()

"""The commands people and scripts call: names and JSON keys are interfaces."""

from __future__ import annotations

import json
import subprocess

from backends import registry
from tests.conftest import optbench_cmd

PARITY_KEYS = {"backend", "optimizer", "mode", "max_abs_loss_diff", "max_abs_weight_diff", "ok"}


def test_parity_json_rows(cli_env):
    out = subprocess.run(
        optbench_cmd("parity", "--backend", "numpy", "--steps", "5", "--format", "json"),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 10  # 5 optimizers x 2 modes
    for r in rows:
        assert PARITY_KEYS <= set(r)
        assert r["ok"] is True and r["max_abs_weight_diff"] < 1e-5


def test_parity_fails_loudly_over_tolerance(cli_env):
    out = subprocess.run(
        optbench_cmd(
            "parity",
            "--backend",
            "numpy",
            "--optimizer",
            "sgd",
            "--mode",
            "eager",
            "--tolerance",
            "1e-12",
        ),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "outside the tolerance" in out.stderr


def test_backends_lists_every_backend(cli_env):
    out = subprocess.run(
        optbench_cmd("backends", "--format", "json"),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rows = {r["backend"]: r for r in json.loads(out.stdout)}
    for name in ("numpy", "torch", "tensorflow", "jax"):
        assert rows[name]["installed"] == registry.is_installed(name)
        if rows[name]["installed"]:
            assert "cpu" in rows[name]["devices"] and rows[name]["version"][0].isdigit()
        else:
            assert "pip install" in rows[name]["why"]

"""End to end, as people and scripts call `optbench`: the make-bench path, kill -9 and
resume, Ctrl-C, parity's JSON and exit codes. Everything else is tested in process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from backends import registry
from benchmarks.checks.parity import PRESETS
from tests.conftest import optbench_cmd

PARITY_KEYS = {"backend", "optimizer", "mode", "max_abs_loss_diff", "max_abs_weight_diff", "ok"}
# 6 runs: the gated fake holds the run after the ones a test lets through, so a kill or
# Ctrl-C lands at a known point whatever the runs' speed
N_LRS = 6
LRS = ",".join(f"{0.002 * (i + 1):g}" for i in range(N_LRS))


def optbench(env, *args, check=True, timeout=300):
    out = subprocess.run(
        optbench_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in out.stderr, out.stderr
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.mark.slow  # end to end through several commands (CI runs the slow set)
def test_run_with_parity_and_report_as_make_bench_does(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "results" / "tiny"
    r = optbench(
        cli_env,
        "run",
        "--sweep",
        tiny,
        "--backend",
        "numpy,raising",
        "--seeds",
        "2",
        "--parity",
        "--report",
        "--out",
        str(out_dir),
        check=False,
    )
    assert r.returncode == 1 and "FAIL: 2 run(s) failed" in r.stderr  # loud, after the sweep
    assert f"report: {out_dir / 'report.html'}" in r.stdout
    assert "2 ok" in r.stdout and "2 error" in r.stdout
    for name in ("report.html", "report.md", "summary.csv", "parity.json", "runs.parquet"):
        assert (out_dir / name).is_file(), name
    assert os.readlink(tmp_path / "results" / "latest") == "tiny"
    parity = json.loads((out_dir / "parity.json").read_text())
    assert {row["ok"] for row in parity["rows"] if row["backend"] == "numpy"} == {True}
    assert {row["ok"] for row in parity["rows"] if row["backend"] == "raising"} == {False}
    assert "FAIL: a backend is outside the parity tolerance" in r.stderr
    # progress while parity measures and before the report, on stderr
    assert "parity 1/2: numpy: 6 of 6 within 2e-06" in r.stderr
    assert "parity 2/2: raising: 0 of 6 within 2e-06, 6 FAIL" in r.stderr
    assert "writing report..." in r.stderr
    summary = pd.read_csv(out_dir / "summary.csv").set_index("backend")
    assert summary.loc["numpy", "runs"] == 2 and summary.loc["raising", "failed"] == 2
    runs = pd.read_parquet(out_dir / "runs.parquet").set_index("backend")
    assert "injected failure at step 3" in runs.loc["raising", "traceback"].iloc[0]


def _wait_for_parts(path: Path, n: int, proc, limit=120):
    t0 = time.time()
    while time.time() - t0 < limit:
        parts = path / "parts"
        if parts.is_dir() and len([p for p in parts.iterdir() if not p.name.startswith(".")]) >= n:
            return
        assert proc.poll() is None, "sweep ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no runs landed in time")


def _gated(cli_env, tmp_path, after: int) -> tuple[dict, Path]:
    """``cli_env`` for sweeps of the ``gated`` fake: runs after the first ``after`` wait for
    the gate file (returned; create it to let them go)."""
    gate = tmp_path / "gate"
    return {
        **cli_env,
        "OPTBENCH_TEST_GATE": str(gate),
        "OPTBENCH_TEST_GATE_AFTER": str(after),
    }, gate


@pytest.mark.slow  # end to end through several commands (CI runs the slow set)
def test_kill_midway_then_resume_gives_the_same_rows(cli_env, tiny, tmp_path):
    """Killed with 3 runs landed and the 4th waiting at the gate (not racing 24 runs of
    50 ms: the kill comes at a known point), resumed: the same rows as a sweep never cut."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    env, gate = _gated(cli_env, tmp_path, after=3)
    sweep = ("run", "--sweep", tiny, "--backend", "gated", "--lr", LRS, "--quiet")
    optbench(cli_env, *sweep, "--out", str(full))
    proc = subprocess.Popen(
        optbench_cmd(*sweep, "--out", str(cut)),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for_parts(cut, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # driver and worker, mid-sweep, no chance to clean up
    proc.wait()
    landed = len([p for p in (cut / "parts").iterdir() if not p.name.startswith(".")])
    assert landed == 3  # the 4th was waiting at the gate
    gate.touch()
    resumed = optbench(env, *sweep, "--out", str(cut), "--resume")
    assert f"{N_LRS - landed} run(s) this time, {landed} kept from before" in resumed.stdout
    a = pd.read_parquet(full / "runs.parquet")
    b = pd.read_parquet(cut / "runs.parquet")
    assert sorted(a.run_id) == sorted(b.run_id) and b.run_id.is_unique
    cols = ["run_id", "status", "steps", "final_test_loss", "final_test_acc"]
    pd.testing.assert_frame_equal(
        a[cols].sort_values("run_id").reset_index(drop=True),
        b[cols].sort_values("run_id").reset_index(drop=True),
    )
    ca, cb = pd.read_parquet(full / "curves.parquet"), pd.read_parquet(cut / "curves.parquet")
    assert len(ca) == len(cb) and not cb.duplicated(["run_id", "step"]).any()


def test_ctrl_c_keeps_finished_runs(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "r"
    env, _ = _gated(cli_env, tmp_path, after=2)  # Ctrl-C while the 3rd run waits
    proc = subprocess.Popen(
        optbench_cmd(
            "run",
            "--sweep",
            tiny,
            "--backend",
            "gated",
            "--lr",
            LRS,
            "--out",
            str(out_dir),
            "--quiet",
        ),  # fmt: skip
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell without job control starts background jobs (a CI
        # script's `... &`) with SIGINT ignored, and Python then installs no Ctrl-C handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for_parts(out_dir, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert len(runs) == 2 and (runs["status"] == "ok").all()


def test_parity_json_rows_and_exit_codes(cli_env):
    r = optbench(cli_env, "parity", "--backend", "numpy", "--steps", "5", "--format", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == 2 * len(PRESETS)  # every optimizer preset x 2 modes
    for row in rows:
        assert PARITY_KEYS <= set(row)
        assert row["ok"] is True and row["max_abs_weight_diff"] < 1e-5
    args = ("parity", "--backend", "numpy", "--optimizer", "sgd", "--mode", "eager")
    r = optbench(cli_env, *args, "--tolerance", "1e-12", check=False)
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "outside the tolerance" in r.stderr


@pytest.mark.slow
def test_backends_lists_every_backend(cli_env):
    r = optbench(cli_env, "backends", "--format", "json", timeout=600)
    rows = {row["backend"]: row for row in json.loads(r.stdout)}
    for name in registry.NAMES:
        assert rows[name]["installed"] == registry.is_installed(name)
        if rows[name]["installed"]:
            assert "cpu" in rows[name]["devices"] and rows[name]["version"][0].isdigit()
        else:
            assert "pip install" in rows[name]["why"]
    assert rows["ghost"]["installed"] is False and "pip install" not in rows["ghost"]["why"]


def test_help_imports_no_command_and_options_read_their_defaults():
    """`optbench --help` builds no command's options (they import what they configure);
    a command's options, built when it is parsed, take its defaults from there."""
    code = (
        "import sys; from benchmarks.app.cli import build_parser; "
        "build_parser().format_help(); "
        "print(sorted(m for m in ('pandas', 'benchmarks.checks.parity', "
        "'benchmarks.track.compare', 'benchmarks.record.settings') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

    import inspect

    from benchmarks.app.cli import build_parser
    from benchmarks.checks.parity import ParityConfig
    from benchmarks.track import recheck
    from benchmarks.track.compare import compare

    parity = build_parser().parse_args(["parity"])
    assert (parity.steps, parity.tolerance, tuple(parity.hidden)) == (
        ParityConfig.steps,
        ParityConfig.tolerance,
        ParityConfig.hidden,
    )
    cmp = build_parser().parse_args(["compare", "x"])
    signature = inspect.signature(compare).parameters
    assert cmp.threshold == signature["threshold"].default
    assert (cmp.recheck, cmp.recheck_budget) == (recheck.ROUNDS, recheck.BUDGET_S)


def test_overhead_and_gpu_check_take_their_own_options(capsys):
    from benchmarks.app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["overhead", "--help"])
    assert exit_.value.code == 0
    assert "usage: optbench overhead" in capsys.readouterr().out and sys.argv[0] != "optbench"
    assert main(["overhead", "--rounds", "0"]) == 2  # its own check, its own exit code
    assert "--rounds 0: must be 1 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["gpu-check", "--no-such-option"])
    assert exit_.value.code == 2


def test_an_unknown_argument_is_one_line_exit_2(capsys):
    from benchmarks.app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["report", "results/latest", "extra"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "optbench: error: unrecognized arguments: extra (see optbench --help)\n"
    )

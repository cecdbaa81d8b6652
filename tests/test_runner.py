"""The sweep runner: tables, statuses for every kind of failure, resume and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import optbench_cmd

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

RUN_COLUMNS = [
    "run_id",
    "backend",
    "mode",
    "optimizer",
    "lr",
    "batch_size",
    "device",
    "seed",
    "dataset",
    "status",
    "error",
    "diverged_step",
    "compile_s",
    "steps",
    "samples_per_s",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "peak_memory_mb",
    "momentum",
    "nesterov",
    "weight_decay",
]


def optbench(env, *args, check=True, timeout=300):
    out = subprocess.run(
        optbench_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in out.stderr, out.stderr
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return str(p)


def test_tables_and_environment(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "res" / "tiny"
    r = optbench(
        cli_env, "run", "--sweep", tiny, "--lr", "0.05,0.1", "--out", str(out_dir), "--quiet"
    )
    assert "results:" in r.stdout
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert set(RUN_COLUMNS) <= set(runs.columns)
    assert len(runs) == 2 and (runs["status"] == "ok").all()
    assert (runs["steps"] == 12).all() and (runs["samples_per_s"] > 0).all()
    curves = pd.read_parquet(out_dir / "curves.parquet")
    assert set(["run_id", "step", "epoch", "wall_s", "train_loss", "test_loss", "test_acc"]) <= set(
        curves.columns
    )
    one = curves[curves.run_id == runs.run_id[0]]
    assert one["step"].tolist() == [0, 1, 3, 6, 9, 12]  # compile step, warm-up, blocks of 3
    assert one["test_acc"].notna().tolist() == [True, False, False, True, False, True]
    assert one["wall_s"].is_monotonic_increasing
    timings = pd.read_parquet(out_dir / "timings.parquet")
    assert set(["run_id", "block", "steps", "seconds"]) <= set(timings.columns)
    assert timings.groupby("run_id")["steps"].sum().tolist() == [12, 12]
    env = json.loads((out_dir / "environment.json").read_text())
    for key in (
        "host",
        "cpu_model",
        "cpu_cores_physical",
        "threads_per_worker",
        "memory_gb",
        "python",
        "packages",
        "git",
        "command",
        "sweep",
        "gpus",
    ):
        assert key in env
    assert env["packages"]["numpy"] and env["sweep"]["settings"]["dataset"] == "digits"
    assert not (tmp_path / "res" / "latest").exists()  # only a results/ folder gets a latest link
    optbench(cli_env, "run", "--sweep", tiny, "--out", str(tmp_path / "results" / "t2"), "--quiet")
    assert os.readlink(tmp_path / "results" / "latest") == "t2"


def test_diverging_run_is_data(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "r"
    optbench(cli_env, "run", "--sweep", tiny, "--lr", "50", "--out", str(out_dir), "--quiet")
    run = pd.read_parquet(out_dir / "runs.parquet").iloc[0]
    assert run["status"] == "diverged" and run["error"] == ""
    assert 1 <= run["diverged_step"] <= run["steps"] <= 12
    curves = pd.read_parquet(out_dir / "curves.parquet")
    assert curves["step"].max() == run["steps"]  # stopped early, curve ends where it diverged


@pytest.mark.parametrize(
    "backend, status, needle",
    [
        ("raising", "error", "RuntimeError: injected failure at step 3"),
        ("crashing", "crashed", "SIGKILL"),
        ("hanging", "timeout", "no result after 10 s"),
    ],
)
def test_failing_run_is_recorded_and_sweep_goes_on(
    cli_env, tiny, tmp_path, backend, status, needle
):
    out_dir = tmp_path / "r"
    r = optbench(
        cli_env,
        "run",
        "--sweep",
        tiny,
        "--backend",
        f"{backend},numpy",
        "--timeout",
        "10",
        "--out",
        str(out_dir),
        "--quiet",
        check=False,
    )
    assert r.returncode == 1 and "FAIL: 1 run(s) failed" in r.stderr  # loud, after the sweep
    runs = pd.read_parquet(out_dir / "runs.parquet").set_index("backend")
    assert runs.loc[backend, "status"] == status
    assert needle in runs.loc[backend, "error"]
    assert runs.loc["numpy", "status"] == "ok"


def test_gpu_where_none_is_skipped_with_reason(cli_env, tiny, tmp_path):
    from benchmarks.sweep import gpu_present

    if gpu_present():
        pytest.skip("a GPU is present here")
    out_dir = tmp_path / "r"
    optbench(
        cli_env, "run", "--sweep", tiny, "--device", "cpu,gpu", "--out", str(out_dir), "--quiet"
    )
    runs = pd.read_parquet(out_dir / "runs.parquet").set_index("device")
    assert (
        runs.loc["gpu", "status"] == "skipped"
        and "no gpu visible to numpy" in runs.loc["gpu", "error"]
    )
    assert runs.loc["cpu", "status"] == "ok"


def test_missing_backend_is_skipped_with_fix(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "r"
    optbench(
        cli_env,
        "run",
        "--sweep",
        tiny,
        "--backend",
        "ghost,numpy",
        "--out",
        str(out_dir),
        "--quiet",
    )
    runs = pd.read_parquet(out_dir / "runs.parquet").set_index("backend")
    assert runs.loc["ghost", "status"] == "skipped"
    assert "not installed (missing no_such_framework_xyz)" in runs.loc["ghost", "error"]
    assert runs.loc["numpy", "status"] == "ok"


def _wait_for_parts(path: Path, n: int, proc, limit=120):
    t0 = time.time()
    while time.time() - t0 < limit:
        parts = path / "parts"
        if parts.is_dir() and len([p for p in parts.iterdir() if not p.name.startswith(".")]) >= n:
            return
        assert proc.poll() is None, "sweep ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no runs landed in time")


LRS = "0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08"


def test_kill_midway_then_resume_gives_the_same_rows(cli_env, tiny, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    optbench(cli_env, "run", "--sweep", tiny, "--lr", LRS, "--out", str(full), "--quiet")
    proc = subprocess.Popen(
        optbench_cmd("run", "--sweep", tiny, "--lr", LRS, "--out", str(cut), "--quiet"),
        env=cli_env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for_parts(cut, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # driver and worker, mid-sweep, no chance to clean up
    proc.wait()
    landed = len([p for p in (cut / "parts").iterdir() if not p.name.startswith(".")])
    assert 3 <= landed < 8
    resumed = optbench(
        cli_env, "run", "--sweep", tiny, "--lr", LRS, "--out", str(cut), "--resume", "--quiet"
    )
    assert f"{8 - landed} run(s) this time, {landed} kept from before" in resumed.stdout
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


def test_running_again_keeps_the_earlier_results(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "tiny"
    optbench(cli_env, "run", "--sweep", tiny, "--out", str(out_dir), "--quiet")
    first = pd.read_parquet(out_dir / "runs.parquet")
    r = optbench(cli_env, "run", "--sweep", tiny, "--lr", "0.02", "--out", str(out_dir))
    archived = [p for p in tmp_path.iterdir() if p.name.startswith("tiny.") and p.is_dir()]
    assert len(archived) == 1 and f"moved to {archived[0]}" in r.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(archived[0] / "runs.parquet"), first)
    assert pd.read_parquet(out_dir / "runs.parquet")["lr"].tolist() == [0.02]


def test_ctrl_c_keeps_finished_runs(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "r"
    proc = subprocess.Popen(
        optbench_cmd("run", "--sweep", tiny, "--lr", LRS, "--out", str(out_dir), "--quiet"),
        env=cli_env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_parts(out_dir, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert len(runs) >= 2 and (runs["status"] == "ok").all()


def test_store_errors_are_clear(cli_env, tiny, tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    r = optbench(cli_env, "run", "--sweep", tiny, "--out", str(stranger), check=False)
    assert r.returncode == 2 and "not an optbench results folder" in r.stderr

    other = tmp_path / "other"
    optbench(cli_env, "run", "--sweep", tiny, "--out", str(other), "--quiet")
    r = optbench(
        cli_env,
        "run",
        "--sweep",
        tiny,
        "--lr",
        "0.01",
        "--out",
        str(other),
        "--resume",
        check=False,
    )
    assert r.returncode == 2 and "measured under other conditions (grid:" in r.stderr

    old = tmp_path / "old"
    optbench(cli_env, "run", "--sweep", tiny, "--out", str(old), "--quiet")
    (old / "store.json").write_text(json.dumps({"schema_version": 0}))
    r = optbench(cli_env, "run", "--sweep", tiny, "--out", str(old), "--resume", check=False)
    assert r.returncode == 2 and "schema version 0" in r.stderr

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits
            target = "/proc/optbench-results"
        else:
            target = str(locked / "r")
        r = optbench(cli_env, "run", "--sweep", tiny, "--out", target, check=False)
        assert r.returncode == 2 and "choose another --out" in r.stderr
    finally:
        locked.chmod(0o700)


def test_every_backend_follows_the_same_curve_in_a_sweep(cli_env, tiny, tmp_path):
    """Parity through the runner itself (staging, batching, epochs), not only `optbench parity`."""
    from backends import registry

    names = [n for n in ("numpy", "torch", "tensorflow", "jax") if registry.is_installed(n)]
    out_dir = tmp_path / "r"
    optbench(
        cli_env,
        "run",
        "--sweep",
        tiny,
        "--backend",
        ",".join(names),
        "--mode",
        "compiled",
        "--epochs",
        "2",
        "--max-steps",
        "60",
        "--optimizer",
        "sgd",
        "--out",
        str(out_dir),
        "--quiet",
    )
    runs = pd.read_parquet(out_dir / "runs.parquet").set_index("backend")
    curves = pd.read_parquet(out_dir / "curves.parquet")
    assert (runs["status"] == "ok").all() and (
        runs["steps"] == 60
    ).all()  # 44 steps an epoch: two epochs
    ref = curves[curves.run_id == runs.loc["numpy", "run_id"]].set_index("step")
    for name in names:
        got = curves[curves.run_id == runs.loc[name, "run_id"]].set_index("step")
        assert list(got.index) == list(ref.index)
        for col in ("train_loss", "test_loss", "test_acc"):
            assert (got[col] - ref[col]).abs().max() < 1e-4, (name, col)


def test_timing_protocol_no_host_sync_inside_a_block(cli_env, tiny, tmp_path):
    events_file = tmp_path / "events.txt"
    env = dict(cli_env, OPTBENCH_TEST_EVENTS=str(events_file))
    out_dir = tmp_path / "r"
    optbench(
        env, "run", "--sweep", tiny, "--backend", "recording", "--out", str(out_dir), "--quiet"
    )
    events = events_file.read_text().split()
    timings = pd.read_parquet(out_dir / "timings.parquet")
    # Each block: its steps back to back, then one sync, then the host reads the losses.
    blocks, i = [], 0
    while i < len(events):
        if events[i] != "step":
            i += 1
            continue
        j = i
        while j < len(events) and events[j] == "step":
            j += 1
        assert events[j] == "sync", (
            f"block of {j - i} steps not closed by a sync: {events[i : j + 2]}"
        )
        assert events[j + 1 : j + 1 + (j - i)] == ["read"] * (j - i)  # reads only after the sync
        blocks.append(j - i)
        i = j + 1
    assert blocks == timings["steps"].tolist()
    first_step = events.index("step")
    assert "sync" in events[:first_step]  # staged data waited for before the first timer


def test_run_with_parity_and_report_as_make_bench_does(cli_env, tiny, tmp_path):
    out_dir = tmp_path / "results" / "tiny"
    r = optbench(
        cli_env,
        "run",
        "--sweep",
        tiny,
        "--backend",
        "numpy",
        "--seeds",
        "2",
        "--parity",
        "--report",
        "--out",
        str(out_dir),
        "--quiet",
    )
    assert f"report: {out_dir / 'report.html'}" in r.stdout
    for name in ("report.html", "report.md", "summary.csv", "parity.json"):
        assert (out_dir / name).is_file(), name
    parity = json.loads((out_dir / "parity.json").read_text())
    assert parity["rows"] and all(row["ok"] for row in parity["rows"])
    summary = pd.read_csv(out_dir / "summary.csv")
    assert summary["backend"].tolist() == ["numpy"] and summary["runs"].tolist() == [2]
    assert "Parity with the float64 NumPy reference" in (out_dir / "report.md").read_text()

"""make gpu-check's bookkeeping, on any machine (the GPU work itself is tests/test_gpu.py's)."""

from __future__ import annotations

import json


def test_gpu_check_fails_on_any_missed_target(monkeypatch, tmp_path, capsys):
    """The check's bookkeeping, on any machine: canned outputs for each step it runs."""
    from benchmarks import environment, gpu_check

    row = {
        "backend": "torch",
        "optimizer": "adam",
        "hidden": "64",
        "batch_size": 128,
        "suite_path": "cudagraph",
        "suite_ms": 0.15,
        "bare_loop": "cuda_graph",
        "bare_ms": 0.145,
        "ratio": 0.15 / 0.145,
    }
    outputs = {
        "benchmarks.cli": (0, "torch  adam  compiled  cudagraph  1e-07  1e-07  ok\n"),
        "benchmarks.overhead": (0, json.dumps([row])),
        "pytest": (0, "3 passed"),
    }
    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "_run", lambda args, timeout, log: outputs[args[0]])
    argv = ["--out", str(tmp_path), "--skip", "sweeps", "--backend", "torch"]
    assert gpu_check.main(argv) == 0
    assert "3/3 targets met" in capsys.readouterr().out
    slow = {**row, "suite_ms": 0.3, "ratio": 2.07, "ratio_low": 1.98, "ratio_high": 2.2}
    outputs["benchmarks.overhead"] = (1, json.dumps([slow]))
    assert gpu_check.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "cudagraph 0.300 ms vs cuda_graph 0.145 ms = 2.07 [1.98, 2.20]" in out


def test_a_step_stopped_part_way_keeps_what_it_printed(tmp_path):
    """A step past its time keeps its output in the log (it is written as it runs), and the
    overhead rows finished before the stop still count."""
    from benchmarks import gpu_check

    log = tmp_path / "step.log"
    setup = "import time; print('started', flush=True)"
    code, text = gpu_check._run(["timeit", "-n1", "-r1", "-s", setup, "time.sleep(60)"], 3, log)
    assert code == 124 and text == log.read_text() and "started" in text
    assert "timed out after 3 s" in log.with_suffix(".stderr").read_text()
    (tmp_path / "rows.jsonl").write_text('{"backend": "torch"}\n{"backend": "jax"}\n')
    assert [r["backend"] for r in gpu_check._progress_rows(tmp_path / "rows.jsonl")] == [
        "torch",
        "jax",
    ]
    assert gpu_check._progress_rows(tmp_path / "missing.jsonl") == []


def test_the_whole_check_has_its_own_time_target(monkeypatch, tmp_path, capsys):
    """Five minutes for every step (issue 8): over it, the check fails although each step
    passed; a partial check (a step skipped) has no such target."""
    import types

    from benchmarks import environment, gpu_check

    outputs = {
        "benchmarks.cli": (0, "torch  adam  compiled  cudagraph  1e-07  1e-07  ok\n"),
        "benchmarks.overhead": (0, "[]"),
        "pytest": (0, "3 passed"),
    }
    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "_run", lambda args, timeout, log: outputs[args[0]])
    clock = iter([0.0, gpu_check.TOTAL_S + 60.0] * 2)
    monkeypatch.setattr(gpu_check, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    argv = ["--out", str(tmp_path), "--backend", "torch", "--sweeps", ""]
    assert gpu_check.main(argv) == 1
    out = capsys.readouterr().out
    assert f"the whole check within {gpu_check.TOTAL_S} s" in out and "FAIL" in out
    assert "360 s" in out
    assert gpu_check.main([*argv, "--skip", "sweeps"]) == 1  # the overhead step has no rows
    assert "the whole check within" not in capsys.readouterr().out


def test_a_budget_cuts_each_steps_time_limit(monkeypatch, tmp_path):
    """--budget: each step gets at most what is left, so a lent machine's minutes are not
    overrun; a step started with nothing left stops at once (and its target fails)."""
    import types

    from benchmarks import environment, gpu_check

    limits = []

    def run(args, timeout, log):
        limits.append(timeout)
        return 0, "3 passed" if args[0] == "pytest" else "[]"

    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "_run", run)
    now = iter(range(0, 10_000, 100))  # each look at the clock: 100 s later
    monkeypatch.setattr(gpu_check, "time", types.SimpleNamespace(monotonic=lambda: next(now)))
    argv = ["--out", str(tmp_path), "--backend", "torch", "--sweeps", "", "--budget", "250"]
    assert gpu_check.main(argv) == 1
    # parity starts at 100 s (150 left), overhead at 200 s, pytest at 300 s (none left)
    assert limits == [150, 50, 1.0]

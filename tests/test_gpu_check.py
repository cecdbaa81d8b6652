"""make gpu-check's bookkeeping, on any machine (the GPU work itself is tests/test_gpu.py's)."""

from __future__ import annotations

import json
import time


def test_gpu_check_fails_on_any_missed_target(monkeypatch, tmp_path, capsys):
    """The check's bookkeeping, on any machine: canned outputs for each step it runs."""
    from benchmarks.checks import gpu_check
    from benchmarks.core import environment

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
        "benchmarks.app.cli": (0, "torch  adam  compiled  cudagraph  1e-07  1e-07  ok\n"),
        "benchmarks.checks.overhead": (0, json.dumps([row])),
        "pytest": (0, "3 passed"),
    }
    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "gpu_backends", lambda names: (names, {}))
    monkeypatch.setattr(gpu_check, "_run", lambda args, timeout, log: outputs[args[0]])
    argv = ["--out", str(tmp_path), "--skip", "sweeps", "--backend", "torch"]
    assert gpu_check.main(argv) == 0
    assert "3/3 targets met" in capsys.readouterr().out
    slow = {**row, "suite_ms": 0.3, "ratio": 2.07, "ratio_low": 1.98, "ratio_high": 2.2}
    outputs["benchmarks.checks.overhead"] = (1, json.dumps([slow]))
    assert gpu_check.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "cudagraph 0.300 ms vs cuda_graph 0.145 ms = 2.07 [1.98, 2.20]" in out


def test_a_step_stopped_part_way_keeps_what_it_printed(tmp_path):
    """A step past its time keeps its output in the log (it is written as it runs), and the
    overhead rows finished before the stop still count."""
    from benchmarks.checks import gpu_check

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

    from benchmarks.checks import gpu_check
    from benchmarks.core import environment

    outputs = {
        "benchmarks.app.cli": (0, "torch  adam  compiled  cudagraph  1e-07  1e-07  ok\n"),
        "benchmarks.checks.overhead": (0, "[]"),
        "pytest": (0, "3 passed"),
    }
    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "gpu_backends", lambda names: (names, {}))
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

    from benchmarks.checks import gpu_check
    from benchmarks.core import environment

    limits = []

    def run(args, timeout, log):
        limits.append(timeout)
        return 0, "3 passed" if args[0] == "pytest" else "[]"

    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "gpu_backends", lambda names: (names, {}))
    monkeypatch.setattr(gpu_check, "_run", run)
    now = iter(range(0, 10_000, 100))  # each look at the clock: 100 s later
    monkeypatch.setattr(gpu_check, "time", types.SimpleNamespace(monotonic=lambda: next(now)))
    argv = ["--out", str(tmp_path), "--backend", "torch", "--sweeps", "", "--budget", "250"]
    assert gpu_check.main(argv) == 1
    # parity starts at 100 s (150 left), overhead at 200 s, pytest at 300 s (none left)
    assert limits == [150, 50, 1.0]


def test_a_step_that_times_out_leaves_no_child_running(tmp_path):
    """A step's own children (a sweep's workers, pytest's drivers) die with it: the step
    has a process group, and the timeout kills the group."""
    import psutil

    from benchmarks.checks import gpu_check

    log = tmp_path / "step.log"
    setup = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "print(p.pid, flush=True)"
    )
    code, text = gpu_check._run(["timeit", "-n1", "-r1", "-s", setup, "time.sleep(120)"], 3, log)
    assert code == 124
    pid = int(text.split()[0])
    deadline = time.monotonic() + 30  # the kill is sent; wait for it to land, not longer
    while psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break  # dead, waiting for a parent to reap it
        except psutil.NoSuchProcess:
            break
        if time.monotonic() > deadline:
            psutil.Process(pid).kill()
            raise AssertionError("the step's child outlived its timeout")
        time.sleep(0.02)


def test_backends_that_do_not_see_the_gpu_are_named_not_failed(monkeypatch, capsys):
    """The check keeps the backends whose worker sees the GPU; the others are said, with
    why, and never counted; with none left it is exit 2 (nothing to check)."""
    from benchmarks.checks import gpu_check
    from benchmarks.core import environment
    from benchmarks.run import worker

    seen = {"torch": ["cpu", "gpu"], "tensorflow": ["cpu"]}
    monkeypatch.setattr(worker, "call_isolated", lambda target, kwargs, **kw: seen[kwargs["name"]])
    on, off = gpu_check.gpu_backends(["torch", "tensorflow", "ghost_backend_xyz"])
    assert on == ["torch"]
    assert off == {"tensorflow": "it sees cpu", "ghost_backend_xyz": "not installed"}
    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    assert gpu_check.main(["--backend", "tensorflow", "--skip", "parity"]) == 2
    err = capsys.readouterr()
    assert "tensorflow: not on the GPU here (it sees cpu)" in err.out
    assert "no installed backend sees the GPU" in err.err


def test_the_throughput_target_is_a_fraction_of_the_named_peak():
    """0.67 x the GPU's float32 peak (an H100 PCIe's 51: 34 TFLOP/s, where an absolute 45
    could not be met), and a backend with no finished run misses it, said so (an idxmax
    over NaN raised after every step had run)."""
    import pandas as pd

    from benchmarks.checks import gpu_check
    from benchmarks.report.analysis import tflops

    params = 784 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10
    need = 0.67 * 51 * 1e12 / (6 * params)  # samples/s for 34 TFLOP/s
    runs = pd.DataFrame(
        [
            {"backend": "torch", "batch_size": 4096, "status": "ok", "samples_per_s": need * 1.01,
             "num_params": params, "compiler": "cudagraph"},
            {"backend": "jax", "batch_size": 4096, "status": "error", "samples_per_s": float("nan"),
             "num_params": params, "compiler": "jit"},
        ]
    )  # fmt: skip
    got = {t[0].split(":")[0]: t for t in gpu_check.throughput_targets(runs, ["NVIDIA H100 PCIe"])}
    assert got["torch"][1] is True and "(0.67 x NVIDIA H100 PCIe's 51)" in got["torch"][0]
    assert f"{tflops(need * 1.01, params):.1f} TFLOP/s via cudagraph" == got["torch"][2]
    assert got["jax"][1] is False and got["jax"][2] == "no finished run (1 runs)"


def test_every_step_shares_the_gpu_memory(tmp_path):
    """JAX's 75% preallocation and TensorFlow's take-everything are off in every step, so
    pytest's process and the sweep workers it starts fit on one device together."""
    from benchmarks.checks import gpu_check

    probe = "import os; print(os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'], os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])"
    code, text = gpu_check._run(
        ["timeit", "-n1", "-r1", "-s", probe, "pass"], 60, tmp_path / "s.log"
    )
    assert code == 0 and text.split()[:2] == ["false", "true"], text

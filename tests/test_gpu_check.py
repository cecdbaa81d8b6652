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


class _Clock:
    """A monotonic clock that moves only when a step runs (``cost`` seconds each)."""

    def __init__(self, outputs, cost: float):
        self.now, self.cost, self.outputs, self.limits = 0.0, cost, outputs, []

    def monotonic(self) -> float:
        return self.now

    def run(self, args, timeout, log):
        self.limits.append(timeout)
        self.now += self.cost
        return self.outputs[args[0]]


OUTPUTS = {
    "benchmarks.app.cli": (0, "torch  adam  compiled  cudagraph  1e-07  1e-07  ok\n"),
    "benchmarks.checks.overhead": (0, "[]"),
    "pytest": (0, "3 passed"),
}


def _patched(monkeypatch, cost: float) -> _Clock:
    from benchmarks.checks import gpu_check
    from benchmarks.core import environment

    clock = _Clock(OUTPUTS, cost)
    monkeypatch.setattr(environment, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu_check, "gpu_backends", lambda names: (names, {}))
    monkeypatch.setattr(gpu_check, "_run", clock.run)
    monkeypatch.setattr(gpu_check, "time", clock)
    return clock


def test_the_whole_check_has_its_budget_as_its_time_target(monkeypatch, tmp_path, capsys):
    """Over its budget the full check fails although each step passed; a partial check (a
    step skipped, or the quick profile) has no such target."""
    from benchmarks.checks import gpu_check

    _patched(monkeypatch, cost=150.0)  # three steps of 150 s: 450 s, over a 400 s budget
    argv = ["--out", str(tmp_path), "--backend", "torch", "--sweeps", "", "--budget", "400"]
    gpu_check.main(argv)
    out = capsys.readouterr().out
    assert "the whole check within its budget (400 s)" in out and "450 s" in out
    _patched(monkeypatch, cost=150.0)
    gpu_check.main([*argv, "--skip", "sweeps"])
    assert "the whole check within" not in capsys.readouterr().out


def test_the_budget_keeps_back_the_least_the_later_steps_need(monkeypatch, tmp_path, capsys):
    """Each step gets what is left of --budget after the least (MIN_STEP_S) of the steps
    still to come; a step that cannot get its own least is CUT, said so, not started: the
    step limits no longer add up past the budget by construction."""
    from benchmarks.checks import gpu_check

    argv = ["--out", str(tmp_path), "--backend", "torch", "--sweeps", ""]
    clock = _patched(monkeypatch, cost=100.0)
    gpu_check.main([*argv, "--budget", "250"])
    # parity keeps back overhead's and pytest's 45 + 45; overhead keeps back pytest's 45
    assert clock.limits == [160, 105, 50]
    clock = _patched(monkeypatch, cost=100.0)
    assert gpu_check.main([*argv, "--budget", "200"]) == 1
    assert clock.limits == [110, 55]  # pytest would have 0 s: cut
    assert "FAIL  pytest: CUT, not run  0 s of the budget left" in capsys.readouterr().out
    assert sum(gpu_check.MIN_STEP_S[k] for k in ("parity", "overhead", "pytest")) < 540


def test_the_quick_profile_runs_parity_and_the_smoke_sweep(monkeypatch, tmp_path):
    from benchmarks.checks import gpu_check

    seen = []
    monkeypatch.setattr(gpu_check, "_parity_targets", lambda *a: seen.append("parity") or [])
    monkeypatch.setattr(gpu_check, "_overhead_targets", lambda *a: seen.append("overhead") or [])
    monkeypatch.setattr(gpu_check, "_pytest_targets", lambda *a: seen.append("pytest") or [])
    monkeypatch.setattr(gpu_check, "_sweep_targets", lambda o, b, s, lim: seen.append(s) or [])
    _patched(monkeypatch, cost=1.0)
    gpu_check.main(["--out", str(tmp_path), "--backend", "torch", "--profile", "quick"])
    assert seen == ["parity", "smoke"]


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

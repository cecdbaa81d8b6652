"""The step micro-benchmarks (bench/, not collected by `make test`) still collect and run:
the NumPy ones for two rounds each, in a pytest process of their own as `make bench-steps`
runs them, so that the benchmarks cannot rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def _pytest_bench(env, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider", *args]
    # an xdist worker's variables would tell pytest-benchmark it runs distributed, and it
    # would disable itself: the inner pytest is a plain one, as `make bench-steps` runs it
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_numpy_steps_run_record_and_gate(cli_env, tmp_path):
    """Two rounds each, saved as `make bench-steps` saves them; then the gate of `make
    bench-steps-compare` against a doctored saved run, twice as fast: exit 1, no traceback."""
    out, store = tmp_path / "steps.json", tmp_path / "store"
    # ghost: a registered backend whose framework is missing, skipped with the fix
    args = ["-k", "numpy or ghost", "--step-rounds", "2", "--step-iterations", "1"]
    args += [f"--benchmark-storage={store}"]
    proc = _pytest_bench(cli_env, *args, f"--benchmark-json={out}", "--benchmark-autosave")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED" in proc.stdout and "'ghost' is not installed" in proc.stdout
    benches = json.loads(out.read_text())["benchmarks"]
    assert sorted(b["param"] for b in benches) == [
        f"numpy-numpy-{opt}-b{batch}" for opt in ("adam", "sgd_momentum") for batch in (128, 32)
    ]
    for b in benches:
        info = b["extra_info"]
        assert b["stats"]["rounds"] == 2 and b["stats"]["median"] > 0
        assert info["backend"] == "numpy" and info["path"] == "numpy" and info["device"] == "cpu"
        assert info["framework"] == "numpy" and info["framework_version"]
        assert info["threads"] >= 1 and info["first_step_s"] > 0
        assert info["model"] == "784-64-10"

    (saved,) = store.rglob("0001_*.json")
    doctored = json.loads(saved.read_text())
    for b in doctored["benchmarks"]:
        for stat in ("min", "max", "mean", "median", "q1", "q3"):
            b["stats"][stat] /= 2
    saved.write_text(json.dumps(doctored))
    gate = ["--benchmark-compare", "--benchmark-compare-fail=median:10%"]
    proc = _pytest_bench(cli_env, *args, *gate)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Performance has regressed" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout


def test_two_backends_in_one_process_are_refused(cli_env):
    """mirror (a NumPy backend registered through OPTBENCH_BACKENDS) stands in for a
    framework: two installed backends may not share a benchmark process."""
    proc = _pytest_bench(cli_env, "-k", "numpy or mirror", "--collect-only", "-q")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error
    assert "one backend per process" in proc.stderr
    assert "pick one with --step-backend mirror" in proc.stderr

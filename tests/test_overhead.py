"""The overhead benchmark's harness: rows per optimizer, clear errors, no tracebacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backends import registry
from benchmarks.checks import overhead
from benchmarks.run.worker import call_isolated
from tests.conftest import backend_params


def test_rows_for_every_case(capsys):
    argv = ["--backend", "numpy", "--rounds", "3", "--instances", "2", "--steps", "5", "--json"]
    code = overhead.main(argv)
    rows = json.loads(capsys.readouterr().out)
    assert [r["optimizer"] for r in rows] == [c.optimizer for c in overhead.CASES["cpu"]]
    assert all(r["suite_ms"] > 0 and r["bare_ms"] > 0 and r["suite_tflops"] > 0 for r in rows)
    # the fastest of each side is the one named, and the ratio is theirs, round by round
    for r in rows:
        assert r["suite_ms"] == min(v for k, v in r["all_ms"].items() if k.startswith("suite:"))
        assert r["bare_ms"] == min(v for k, v in r["all_ms"].items() if k.startswith("bare:"))
        s, b = np.array(r["suite_rounds_ms"]), np.array(r["bare_rounds_ms"])
        assert s.shape == b.shape == (2, 3)  # instances x rounds
        assert r["suite_ms"] == pytest.approx(np.median(s))
        assert r["ratio"] == pytest.approx(np.exp(np.median(np.log(s / b), axis=1).mean()))
        assert r["ratio_low"] <= r["ratio"] <= r["ratio_high"]
    assert code == (0 if max(r["ratio"] for r in rows) <= 1.05 else 1)


def test_rounds_instances_and_steps_must_be_positive(capsys):
    for opt in ("--rounds", "--instances", "--steps"):
        assert overhead.main(["--backend", "numpy", opt, "0"]) == 2
        assert f"{opt} 0: must be 1 or more" in capsys.readouterr().err


def test_a_device_nothing_sees_is_said_and_fails(capsys):
    assert overhead.main(["--backend", "numpy", "--device", "gpu"]) == 1
    assert "numpy sees no gpu here; skipped" in capsys.readouterr().err


def test_missing_and_failing_backends_are_reported(fakes, capsys):
    assert overhead.main(["--backend", "ghost"]) == 2
    assert "not installed (missing no_such_framework_xyz)" in capsys.readouterr().err
    code = overhead.main(["--backend", "raising", "--rounds", "1", "--steps", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "FAIL: raising: RuntimeError: injected failure at step 3" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", backend_params())
def test_every_path_and_bare_loop_runs(name):
    """Every suite path on the CPU and every bare loop of the framework is timed."""
    rows = call_isolated(
        "benchmarks.checks.overhead:measure",
        {"backend": name, "device": "cpu", "rounds": 1, "steps": 3, "instances": 2},
        label=f"overhead-{name}",
        timeout=600,
    )
    assert [r["optimizer"] for r in rows] == [c.optimizer for c in overhead.CASES["cpu"]]
    paths = {p.name for p in registry.entry(name).paths if "cpu" in p.devices}
    for r in rows:  # every path timed, or dropped after warm-up as more than 2x slower
        timed = {
            k.split(":")[1] for k in [*r["all_ms"], *r["dropped_ms"]] if k.startswith("suite:")
        }
        assert timed == paths
        assert all(v > 0 for v in r["all_ms"].values())


def test_blocks_last_about_block_s_within_the_step_limits():
    assert overhead.block_steps(0.002, 200) == round(overhead.BLOCK_S / 0.002)  # a GPU step
    assert overhead.block_steps(1e-5, 200) == 200  # never more than asked
    assert overhead.block_steps(1.0, 200) == overhead.MIN_STEPS  # never fewer than the floor
    assert overhead.block_steps(1.0, 5) == 5  # ...unless fewer are asked for


def test_each_finished_case_is_kept_in_the_progress_file(tmp_path, capsys):
    progress = tmp_path / "rows.jsonl"
    args = ["--backend", "numpy", "--rounds", "1", "--steps", "5", "--json"]
    overhead.main([*args, "--progress", str(progress)])
    printed = json.loads(capsys.readouterr().out)
    kept = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [r["optimizer"] for r in kept] == [r["optimizer"] for r in printed]
    assert all(r["block_steps"] == 5 for r in kept)


def test_compiler_narrows_the_suite_paths_and_a_bad_one_is_said(capsys):
    # torch's paths, from the registry alone (no framework imported): all on the GPU...
    assert overhead.suite_paths("torch", "gpu") == ["eager", "cudagraph", "inductor"]
    # ...or the ones named for it; another backend's names do not narrow torch
    assert overhead.suite_paths("torch", "gpu", ["torch=cudagraph", "jax=jit"]) == ["cudagraph"]
    assert overhead.suite_paths("torch", "gpu", ["all"]) == ["eager", "cudagraph", "inductor"]
    code = overhead.main(["--backend", "numpy", "--compiler", "numpy=xla"])
    err = capsys.readouterr().err
    assert code == 2 and "numpy has no path 'xla' on the cpu; it has numpy" in err
    assert (
        overhead.main(["--backend", "numpy", "--compiler", "torch=cudagraph"]) != 2
    )  # not numpy's

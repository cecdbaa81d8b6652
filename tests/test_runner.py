"""One run in process (``benchmarks.runner.execute_run``, as a worker calls it): the rows,
the timing protocol, divergence as data, and runs that cannot start here."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.runner import execute_run
from benchmarks.schema import CURVE_COLUMNS, TIMING_COLUMNS, RunSpec
from benchmarks.sweep import load_sweep
from tests.conftest import gpu_available


def spec_of(tiny: str, **changes) -> RunSpec:
    return dataclasses.replace(load_sweep(tiny).runs[0], **changes)


def test_rows_of_a_run(tiny):
    result = execute_run(spec_of(tiny))
    run, curves, timings = result["run"], result["curves"], result["timings"]
    assert run["status"] == "ok" and run["steps"] == 12 and run["samples_per_s"] > 0
    assert 0 < run["final_test_acc"] <= 1 and run["error"] == "" and run["traceback"] == ""
    assert [c["step"] for c in curves] == [0, 1, 3, 6, 9, 12]  # compile, warm-up, blocks of 3
    evaluated = [c["test_acc"] == c["test_acc"] for c in curves]
    assert evaluated == [True, False, False, True, False, True]
    walls = [c["wall_s"] for c in curves]
    assert walls == sorted(walls)
    assert all(set(c) == set(CURVE_COLUMNS) for c in curves)
    assert all(set(t) == set(TIMING_COLUMNS) for t in timings)
    assert [t["phase"] for t in timings] == ["compile", "warmup", "timed", "timed", "timed"]
    assert sum(t["steps"] for t in timings) == 12


def test_diverging_run_is_data(tiny):
    result = execute_run(spec_of(tiny, opt=dataclasses.replace(spec_of(tiny).opt, lr=50.0)))
    run = result["run"]
    assert run["status"] == "diverged" and run["error"] == ""
    assert 1 <= run["diverged_step"] <= run["steps"] <= 12
    assert result["curves"][-1]["step"] == run["steps"]  # the curve ends where it diverged


def test_missing_backend_is_skipped_with_the_fix(tiny, fakes):
    run = execute_run(spec_of(tiny, backend="ghost"))["run"]
    assert run["status"] == "skipped"
    assert "not installed (missing no_such_framework_xyz)" in run["error"]


def test_device_not_visible_is_skipped_with_the_reason(tiny):
    if gpu_available():
        pytest.skip("a GPU is present here")
    run = execute_run(spec_of(tiny, device="gpu"))["run"]
    assert run["status"] == "skipped" and run["error"] == "no gpu visible to numpy here"


def test_timing_protocol_no_host_sync_inside_a_block(tiny, fakes, tmp_path, monkeypatch):
    """Each block: its steps back to back, one sync, then the host reads the losses."""
    events_file = tmp_path / "events.txt"
    monkeypatch.setenv("OPTBENCH_TEST_EVENTS", str(events_file))
    result = execute_run(spec_of(tiny, backend="recording"))
    events = events_file.read_text().split()
    blocks, i = [], 0
    while i < len(events):
        if events[i] != "step":
            i += 1
            continue
        j = i
        while j < len(events) and events[j] == "step":
            j += 1
        assert events[j] == "sync", f"block of {j - i} steps not closed by a sync"
        assert events[j + 1 : j + 1 + (j - i)] == ["read"] * (j - i)  # reads after the sync
        blocks.append(j - i)
        i = j + 1
    assert blocks == [t["steps"] for t in result["timings"]]
    assert "sync" in events[: events.index("step")]  # staged data waited for before timing

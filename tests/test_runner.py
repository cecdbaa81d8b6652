"""One run in process (``benchmarks.runner.execute_run``, as a worker calls it): the rows,
the timing protocol, divergence as data, and runs that cannot start here."""

from __future__ import annotations

import dataclasses

import pytest

from backends.numpy.backend import _blas as numpy_blas
from benchmarks.runner import execute_run
from benchmarks.schema import CURVE_COLUMNS, TIMING_COLUMNS, RunSpec
from benchmarks.sweep import load_sweep


def spec_of(tiny: str, **changes) -> RunSpec:
    return dataclasses.replace(load_sweep(tiny).runs[0], **changes)


def test_rows_of_a_run(tiny):
    result = execute_run(spec_of(tiny))
    run, curves, timings = result["run"], result["curves"], result["timings"]
    assert run["status"] == "ok" and run["steps"] == 12 and run["samples_per_s"] > 0
    assert 0 < run["final_test_acc"] <= 1 and run["error"] == "" and run["traceback"] == ""
    assert run["blas"] == numpy_blas() != ""  # e.g. "scipy-openblas 0.3.31"
    assert 0 < run["reference_ms"] < 1000  # the machine's speed around the run
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


def test_device_not_visible_is_skipped_with_the_reason(tiny, fakes):
    run = execute_run(spec_of(tiny, device="gpu"))["run"]
    assert run["status"] == "skipped" and run["error"] == "numpy runs on the cpu only"
    # a backend with GPU paths whose framework sees no GPU (the fakes see the CPU alone)
    run = execute_run(spec_of(tiny, backend="mirror", device="gpu"))["run"]
    assert run["status"] == "skipped" and run["error"] == "no gpu visible to mirror here"


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


def test_validation_split_and_schedule_reach_the_run(tiny):
    """Validation accuracy is measured on samples held out of training (never the test
    set), a schedule spans the run's steps, and the variant asked for is the one run."""
    from backends.base import Schedule
    from benchmarks.data import cached_dataset, validation_split

    base = spec_of(tiny)
    sched = Schedule("cosine", lr_warmup_steps=2)
    spec = dataclasses.replace(
        base, validation_fraction=0.25, opt=dataclasses.replace(base.opt, schedule=sched)
    )
    result = execute_run(spec)
    run, curves = result["run"], result["curves"]
    assert run["status"] == "ok" and run["schedule"] == "cosine:lr_warmup_steps=2,final_fraction=0"
    assert 0 < run["final_val_acc"] <= 1 and run["final_val_acc"] != run["final_test_acc"]
    evaluated = [c for c in curves if c["test_acc"] == c["test_acc"]]
    assert all(c["val_acc"] == c["val_acc"] for c in evaluated)
    # the held-out samples are disjoint from the ones trained on, and the same every time
    data = cached_dataset(spec.dataset)
    kept, (x_val, _) = validation_split(data, 0.25)
    assert len(kept.y_train) + len(x_val) == len(data.y_train)
    trained = {row.tobytes() for row in kept.x_train}
    assert not any(row.tobytes() in trained for row in x_val)
    again, (x_val2, _) = validation_split(data, 0.25)
    assert (x_val == x_val2).all()
    # without a split, no validation numbers (and the run's id is the old one)
    plain = execute_run(dataclasses.replace(base, validation_fraction=0.0))["run"]
    assert plain["final_val_acc"] != plain["final_val_acc"]


def test_a_variant_the_backend_lacks_is_a_clear_error(tiny):
    """The NumPy reference is the spec: it has no stock optimizers to run."""
    from backends.base import SpecError

    with pytest.raises(SpecError, match="numpy runs spec .it has no stock optimizers"):
        execute_run(spec_of(tiny, variant="stock"))

"""One run in process (``benchmarks.run.runner.execute_run``, as a worker calls it): the rows,
the timing protocol, divergence as data, and runs that cannot start here."""

from __future__ import annotations

import dataclasses

import pytest

from backends import registry
from backends.numpy.backend import _blas as numpy_blas
from benchmarks.record.schema import CURVE_COLUMNS, TIMING_COLUMNS, RunSpec
from benchmarks.record.sweep import load_sweep
from benchmarks.run.runner import execute_run


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
    # values, not shapes: the summary columns are the curves' and the blocks' own figures
    assert run["final_test_acc"] == curves[-1]["test_acc"]
    assert run["final_test_loss"] == curves[-1]["test_loss"]
    assert run["final_train_loss"] == curves[-1]["train_loss"]
    timed = [t for t in timings if t["phase"] == "timed"]
    rates = sorted(t["steps"] * 32 / t["seconds"] for t in timed)  # batch 32
    assert run["samples_per_s"] == pytest.approx(rates[1], rel=1e-12)  # the median of 3
    assert run["timed_blocks"] == 3
    assert run["compile_s"] == timings[0]["seconds"]
    assert curves[-1]["wall_s"] == pytest.approx(sum(t["seconds"] for t in timings), rel=1e-12)
    assert run["train_wall_s"] == pytest.approx(curves[-1]["wall_s"], rel=1e-12)


def test_blocks_under_half_the_full_size_are_left_out_of_the_rate():
    """stats.block_rates' rule: a block cut short by an epoch end or an evaluation point
    counts while it has at least half a full block's steps; a stub of fewer does not (one
    sync weighs more there); a run with no full block keeps what it has."""
    import pandas as pd

    from benchmarks.core import stats

    runs = pd.DataFrame(
        [
            {"run_id": "a", "status": "ok", "batch_size": 10, "full_block_steps": 10},
            {"run_id": "b", "status": "ok", "batch_size": 10, "full_block_steps": 10},
        ]
    )
    timings = pd.DataFrame(
        [
            {"run_id": "a", "block": 0, "phase": "timed", "steps": 10, "seconds": 1.0},
            {"run_id": "a", "block": 1, "phase": "timed", "steps": 5, "seconds": 0.25},  # half
            {"run_id": "a", "block": 2, "phase": "timed", "steps": 4, "seconds": 0.01},  # stub
            {"run_id": "a", "block": 3, "phase": "warmup", "steps": 10, "seconds": 9.0},
            {"run_id": "b", "block": 0, "phase": "timed", "steps": 2, "seconds": 0.5},
        ]
    )
    got = stats.block_rates(runs, timings, [])
    assert got[got["run_id"] == "a"]["rate"].tolist() == [100.0, 200.0]
    assert got[got["run_id"] == "b"]["rate"].tolist() == [40.0]  # no full block: kept


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


def _recorded_events(monkeypatch, tmp_path, spec) -> tuple[list[str], dict]:
    """The run's backend events (tests.fakes' recording backends) with every read of the
    runner's clock among them ("clock")."""
    import time as real_time
    import types

    from benchmarks.run import runner

    events_file = tmp_path / "events.txt"
    monkeypatch.setenv("OPTBENCH_TEST_EVENTS", str(events_file))

    def perf_counter() -> float:
        with open(events_file, "a") as f:
            f.write("clock\n")
        return real_time.perf_counter()

    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=perf_counter))
    result = execute_run(spec)
    return events_file.read_text().split(), result


def _timed_blocks(events: list[str], work: str) -> list[int]:
    """The calls of ``work`` ("step" or "block") in each stretch between two clock reads,
    checking the protocol: clock, the block's work, one sync, clock, then the host reads."""
    blocks, i = [], 0
    while i < len(events):
        if events[i] != work:
            i += 1
            continue
        assert events[i - 1] == "clock", f"work at event {i} started before the clock was read"
        j = i
        while j < len(events) and events[j] == work:
            j += 1
        assert events[j] == "sync", f"block of {j - i} {work}(s) not closed by a sync"
        assert events[j + 1] == "clock", "the clock was read before the block's sync"
        reads = 1 if work == "block" else j - i
        assert events[j + 2 : j + 2 + reads] == ["read"] * reads  # host reads after the clock
        blocks.append(j - i)
        i = j + 1
    return blocks


def test_timing_protocol_no_host_sync_inside_a_block(tiny, fakes, tmp_path, monkeypatch):
    """Each block: the clock, its steps back to back, one sync, the clock, then the host
    reads the losses. (Moving the clock read above the sync would time JAX and TensorFlow at
    dispatch, not at completion.)"""
    events, result = _recorded_events(monkeypatch, tmp_path, spec_of(tiny, backend="recording"))
    assert _timed_blocks(events, "step") == [t["steps"] for t in result["timings"]]
    assert "sync" in events[: events.index("step")]  # staged data waited for before timing


def test_timing_protocol_on_a_block_path(tiny, fakes, tmp_path, monkeypatch):
    """A block path (one call runs the block, as xla_loop and jit_loop do): the clock, one
    call, one sync, the clock, one read of the block's losses."""
    from backends.registry import parse_extra
    from tests.fakes import RecordingBlockBackend

    entry = parse_extra("recording_block=tests.fakes:RecordingBlockBackend")[0]
    monkeypatch.setitem(
        registry.REGISTRY, entry.name, dataclasses.replace(entry, paths=RecordingBlockBackend.PATHS)
    )
    spec = spec_of(tiny, backend="recording_block", mode="compiled")
    events, result = _recorded_events(monkeypatch, tmp_path, spec)
    assert result["run"]["status"] == "ok" and result["run"]["compiler"] == "loop"
    assert _timed_blocks(events, "block") == [1] * len(result["timings"])
    assert "step" not in events  # no step ran outside a block call


def test_validation_split_and_schedule_reach_the_run(tiny):
    """Validation accuracy is measured on samples held out of training (never the test
    set), a schedule spans the run's steps, and the variant asked for is the one run."""
    from backends.base import Schedule
    from benchmarks.record.data import cached_dataset, validation_split

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


def test_the_statistics_name_the_record_s_statuses_and_phases():
    """``benchmarks.core.stats`` sits below the record, so it spells the statuses and the
    timed phase it filters on; they are the record's (``benchmarks.record.schema``)."""
    from benchmarks.core import stats
    from benchmarks.record import schema

    assert set(stats.FINISHED) == schema.FINISHED
    assert stats.DIVERGED == schema.Status.DIVERGED
    assert stats.TIMED == schema.PHASES[-1]

"""Framework processes: pinned threads from the registry, failures that say what happened."""

from __future__ import annotations

import pytest

from backends import registry
from benchmarks.record.schema import Status
from benchmarks.run.worker import (
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    call_isolated,
    thread_env,
)


def test_thread_env_pins_blas_and_asks_every_backend():
    env = thread_env(3)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    for entry in registry.REGISTRY.values():  # each backend's own variables, threads filled in
        for key, value in entry.worker_env:
            assert env[key] == value.format(threads="3")
    assert env["TF_NUM_INTRAOP_THREADS"] == "3"


def test_call_isolated_returns_the_value_pinned(fakes):
    cpus = call_isolated("tests.fakes:affinity", {}, label="t", threads=1, timeout=60)
    assert len(cpus) == 1


def test_a_raising_task_brings_its_traceback():
    with pytest.raises(WorkerError) as e:
        call_isolated("json:loads", {"s": "{"}, label="t", threads=1, timeout=60)
    assert e.value.status == Status.ERROR
    assert str(e.value).startswith("JSONDecodeError:")
    assert "Traceback" in e.value.remote_traceback and "json" in e.value.remote_traceback


def test_timeout_and_death_map_to_their_statuses(fakes):
    with pytest.raises(WorkerTimeout) as t:
        call_isolated("tests.fakes:sleep", {"seconds": 30}, label="t", threads=1, timeout=1)
    assert t.value.status == Status.TIMEOUT and "no result after 1 s" in str(t.value)
    with pytest.raises(WorkerDied) as d:
        call_isolated("tests.fakes:exit_with", {"code": 3}, label="t", threads=1, timeout=60)
    assert d.value.status == Status.CRASHED and "exited with code 3" in str(d.value)


def test_a_crash_keeps_its_signal_and_the_tail_of_the_workers_stderr(fakes):
    with pytest.raises(WorkerDied) as d:
        call_isolated("tests.fakes:segfault", {}, label="t", threads=1, timeout=60)
    assert "segmentation fault" in str(d.value)
    tail = d.value.remote_traceback
    assert "last lines of the worker's stderr" in tail and "native code: about to fail" in tail
    assert "Fatal Python error: Segmentation fault" in tail  # faulthandler's stack
    assert "segfault" in tail  # the Python frame that called into native code

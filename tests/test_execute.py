"""The local executor: every run comes back as a result, failures with their status and the
worker's traceback, and a fresh worker takes the run after a crash."""

from __future__ import annotations

import dataclasses
import multiprocessing

import pytest

from benchmarks.run.execute import LocalExecutor, work_units
from tests.test_runner import spec_of


def test_units_group_by_backend_and_device_in_sweep_order(tiny):
    s = spec_of(tiny)
    specs = [
        dataclasses.replace(s, backend="a", seed=0),
        dataclasses.replace(s, backend="b", seed=0),
        dataclasses.replace(s, backend="a", seed=1),
        dataclasses.replace(s, backend="a", device="gpu", seed=0),
    ]
    units = work_units(specs)
    assert [(u.backend, u.device, [x.seed for x in u.specs]) for u in units] == [
        ("a", "cpu", [0, 1]),
        ("b", "cpu", [0]),
        ("a", "gpu", [0]),
    ]


@pytest.mark.parametrize(
    "backend, status, needle, in_traceback",
    [
        ("raising", "error", "RuntimeError: injected failure at step 3", "tests/fakes.py"),
        ("crashing", "crashed", "SIGKILL", ""),
        ("hanging", "timeout", "no result after 3 s", ""),
    ],
)
def test_failures_become_statuses_and_the_next_run_goes_on(
    tiny,
    fakes,
    backend,
    status,
    needle,
    in_traceback,
):
    bad = spec_of(tiny, backend=backend, timeout_s=3.0)
    after = dataclasses.replace(bad, seed=1)  # same worker: it must be replaced after a death
    started = []
    results = list(LocalExecutor(threads=1).run(work_units([bad, after]), started.append))
    assert started == [bad, after]
    first, second = (r["run"] for _, r in results)
    assert first["status"] == status and needle in first["error"]
    assert in_traceback in first["traceback"]
    assert second["status"] == status  # the fault repeats: a fresh worker ran it again
    assert [s for s, _ in results] == [bad, after]


def test_closing_the_results_stops_the_worker(tiny, fakes):
    specs = [spec_of(tiny, seed=i) for i in range(3)]
    ex = LocalExecutor(threads=1)
    it = ex.run(work_units(specs))
    spec, result = next(it)
    assert result["run"]["status"] == "ok"
    it.close()  # the driver stops reading (Ctrl-C): nothing more runs, no worker is left
    with pytest.raises(StopIteration):
        next(it)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("optbench-")]


def test_runs_compare_pools_are_dealt_out_in_turn(tiny):
    """Within a unit, a group's runs (one optimizer and batch size, several learning rates
    and seeds) are spread out in time: a slow spell of the machine hits one run of each."""
    s = spec_of(tiny)
    specs = [
        dataclasses.replace(s, optimizer=o, seed=seed)
        for o in ("sgd", "adam")
        for seed in (0, 1, 2)
    ]
    specs.append(dataclasses.replace(s, optimizer="adam", batch_size=s.batch_size * 2))
    (unit,) = work_units(specs)
    order = [(x.optimizer, x.batch_size == s.batch_size, x.seed) for x in unit.specs]
    assert order == [
        ("sgd", True, 0),
        ("adam", True, 0),
        ("adam", False, 0),
        ("sgd", True, 1),
        ("adam", True, 1),
        ("sgd", True, 2),
        ("adam", True, 2),
    ]

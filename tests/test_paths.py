"""Compiled paths: the sweep's compiler axis, its validation, and the measured default."""

from __future__ import annotations

import pytest

from backends import registry
from backends.base import MODE_PATHS, CompilePath, SpecError, choose_path
from backends.numpy.backend import NumpyBackend
from benchmarks.record.sweep import SweepError, load_sweep
from benchmarks.run import paths
from tests.test_sweep import BASE, write

TWO = (
    CompilePath("eager", ("eager",), "eager"),
    CompilePath("fast", ("compiled",), "one compiler"),
    CompilePath("faster", ("compiled",), "another"),
    CompilePath("graph", ("compiled",), "gpu only", devices=("gpu",)),
)


class Two(NumpyBackend):
    name = "two"


@pytest.fixture
def two(monkeypatch):
    """A backend with two compiled paths on the CPU (and a GPU-only one), NumPy underneath."""
    monkeypatch.setitem(
        registry.REGISTRY,
        "two",
        registry.Entry("two", "tests.test_paths:Two", ("numpy",), "", paths=TWO),
    )


def sweep(tmp_path, **overrides):
    return load_sweep(write(tmp_path, BASE), overrides)


def cells(s):
    return sorted({(r.backend, r.mode, r.compiler) for r in s.runs})


def test_default_is_one_run_per_mode(tmp_path, two):
    s = sweep(tmp_path, backends=["numpy", "two"], modes=["eager", "compiled"])
    assert cells(s) == [
        ("numpy", "compiled", "default"),
        ("numpy", "eager", "default"),
        ("two", "compiled", "default"),
        ("two", "eager", "default"),
    ]


def test_all_runs_every_path_on_the_device_in_its_own_mode(tmp_path, two):
    s = sweep(tmp_path, backends=["two"], compilers=["all"])
    assert cells(s) == [
        ("two", "compiled", "fast"),
        ("two", "compiled", "faster"),
        ("two", "eager", "eager"),
    ]


def test_a_path_for_a_backend_outside_the_sweep_is_ignored(tmp_path, two):
    s = sweep(tmp_path, backends=["numpy"], compilers=["default", "two=faster"])
    assert cells(s) == [("numpy", "compiled", "default")]


def test_named_and_per_backend_paths(tmp_path, two):
    s = sweep(tmp_path, backends=["numpy", "two"], compilers=["two=faster"])
    assert cells(s) == [("numpy", "compiled", "default"), ("two", "compiled", "faster")]
    s = sweep(tmp_path, backends=["numpy", "two"], compilers=["two=eager", "two=fast"])
    assert ("two", "eager", "eager") in cells(s) and ("two", "compiled", "fast") in cells(s)


@pytest.mark.parametrize(
    "compilers, needle",
    [
        (["fast"], r"--compiler.*numpy has no path 'fast'; it has numpy"),
        (["two=jit"], r"two has no path 'jit'; it has eager, fast, faster, graph"),
        (["two=graph"], r"two's graph runs on gpu only, and this sweep runs on cpu"),
        (["ghost=fast"], r"unknown backend 'ghost'; choose from numpy"),
    ],
)
def test_a_path_a_backend_or_device_lacks_is_an_error_before_anything_runs(
    tmp_path, two, compilers, needle
):
    with pytest.raises(SweepError, match=needle):
        sweep(tmp_path, backends=["numpy", "two"], compilers=compilers)


def test_choose_path_names_what_there_is():
    assert choose_path("x", TWO, "compiled", "cpu", None).name == "fast"
    assert choose_path("x", TWO, "compiled", "gpu", None).name == "fast"
    with pytest.raises(SpecError, match="x's graph runs in compiled mode on gpu; .* fast, faster"):
        choose_path("x", TWO, "compiled", "cpu", "graph")
    with pytest.raises(SpecError, match="x has eager, compiled"):
        choose_path("x", MODE_PATHS, "compiled", "cpu", "xla")


def test_the_default_is_measured_once_and_recorded(tmp_path, two):
    s = sweep(tmp_path, backends=["numpy", "two"])
    tasks = []

    def measure(task):
        tasks.append(task)
        return {"fast": 2e-3, "faster": 1e-3}

    runs, choices = paths.resolve(s.runs, [], measure)
    assert len(tasks) == 1 and tasks[0]["candidates"] == ["fast", "faster"]
    assert tasks[0]["batch_size"] == 64 and {o["kind"] for o in tasks[0]["optimizers"]} == {
        "sgd",
        "adam",
    }
    two_runs = [r for r in runs if r.backend == "two"]
    assert {r.path for r in two_runs} == {"faster"}
    assert "faster 1.000, fast 2.000" in two_runs[0].path_choice
    assert {(r.path, r.path_choice) for r in runs if r.backend == "numpy"} == {
        ("numpy", "its only path")
    }
    assert [r.run_id for r in runs] == [r.run_id for r in s.runs]  # identity unchanged
    # a resumed sweep reuses the recorded choice, measuring nothing
    again, _ = paths.resolve(s.runs, choices, lambda task: pytest.fail("measured again"))
    assert {r.path for r in again if r.backend == "two"} == {"faster"}


def test_a_tie_keeps_the_backends_first_candidate(tmp_path, two):
    """Within TIE of the fastest, the first candidate (the static preference) is kept, so a
    sweep's path does not flip with the machine's noise; beyond it, the fastest wins."""
    s = sweep(tmp_path, backends=["two"])
    near = 1e-3 * (1 + paths.TIE / 2)
    runs, _ = paths.resolve(s.runs, [], lambda task: {"fast": near, "faster": 1e-3})
    assert {r.path for r in runs} == {"fast"}
    assert f"fast within {paths.TIE:.0%} of faster: a tie, fast kept" in runs[0].path_choice
    far = 1e-3 * (1 + 2 * paths.TIE)
    runs, _ = paths.resolve(s.runs, [], lambda task: {"fast": far, "faster": 1e-3})
    assert {r.path for r in runs} == {"faster"} and "tie" not in runs[0].path_choice


def test_a_failed_measurement_falls_back_to_the_first_path_and_says_why(tmp_path, two):
    s = sweep(tmp_path, backends=["two"])

    def measure(task):
        raise RuntimeError("no GPU\ndetails")

    runs, _ = paths.resolve(s.runs, [], measure)
    assert {r.path for r in runs} == {"fast"}
    assert runs[0].path_choice == "fast: the default; measuring failed (no GPU)"


def test_a_requested_path_is_taken_as_asked(tmp_path, two):
    s = sweep(tmp_path, backends=["two"], compilers=["fast"])
    runs, choices = paths.resolve(s.runs, [], lambda t: pytest.fail("measured"))
    assert {(r.path, r.path_choice) for r in runs} == {("fast", "requested")} and not choices


def test_measure_times_each_candidate(two):
    """The worker task itself, in process, on the NumPy-backed fake."""
    task = {
        "backend": "two",
        "device": "cpu",
        "dtype": "float32",
        "mode": "compiled",
        "candidates": ["fast", "faster"],
        "dataset": "digits",
        "hidden": [8],
        "batch_size": 32,
        "optimizers": [{"kind": "sgd", "lr": 0.1}],
    }
    got = paths.measure(task)
    assert set(got) == {"fast", "faster"} and all(0 < v < 1 for v in got.values())


def test_measure_runs_in_a_worker_as_the_driver_calls_it():
    task = {
        "backend": "numpy",
        "device": "cpu",
        "dtype": "float32",
        "mode": "compiled",
        "candidates": ["numpy"],
        "dataset": "digits",
        "hidden": [8],
        "batch_size": 32,
        "optimizers": [{"kind": "adam", "lr": 1e-3}],
    }
    got = paths.isolated(threads=1, timeout=120)(task)
    assert list(got) == ["numpy"] and 0 < got["numpy"] < 1


def test_interleaved_runs_every_block_once_a_round_in_alternating_order():
    seen = []

    def block(name):
        def run(steps):
            seen.append((name, steps))
            return 0.01 * steps

        return run

    times = paths.interleaved({k: block(k) for k in "abc"}, rounds=3, steps=4)
    assert [k for k, _ in seen] == list("abccbaabc")
    assert {s for _, s in seen} == {4}
    assert {k: v.tolist() for k, v in times.items()} == {k: [0.01] * 3 for k in "abc"}


def test_a_resumed_sweep_keeps_the_path_it_chose(tmp_path, two, monkeypatch):
    """Through the driver and the store: the first sweep measures and records its choice
    (compiler_choice.json), is interrupted, and the resumed sweep runs the rest on the same
    path without measuring again (a re-measurement that switched paths mid-sweep would mix
    two paths under one configuration)."""
    import pandas as pd

    from benchmarks.run.driver import run_sweep
    from tests.fakes import InlineExecutor

    s = sweep(tmp_path, backends=["two"], modes=["compiled"])
    picks = iter([{"fast": 2e-3, "faster": 1e-3}])  # the first measurement: faster

    def measured(threads, timeout):
        return lambda task: next(picks)  # a second measurement would raise StopIteration

    monkeypatch.setattr(paths, "isolated", measured)

    def stop(result):
        raise KeyboardInterrupt  # after the first run landed

    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(s, out, quiet=True, executor=InlineExecutor(), on_result=stop)
    assert (out / "compiler_choice.json").exists()
    again = run_sweep(s, out, resume=True, quiet=True, executor=InlineExecutor())
    assert again.skipped_existing == 1 and again.ran == len(s.runs) - 1
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == len(s.runs) and set(runs["compiler"]) == {"faster"}

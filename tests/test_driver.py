"""The driver in process: a sweep into the store through an executor, resume, mixed devices,
and (slow) every framework following the same curve through the runner itself."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from backends import registry
from benchmarks.record.sweep import load_sweep
from benchmarks.run.driver import run_sweep
from benchmarks.run.execute import LocalExecutor
from tests.conftest import gpu_available
from tests.fakes import InlineExecutor


def test_tables_and_environment(tiny, tmp_path):
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1]})
    landed = []
    result = run_sweep(
        sweep, tmp_path / "r", quiet=True, executor=InlineExecutor(), on_result=landed.append
    )
    assert result.counts == {"ok": 2} and result.ran == 2 and len(landed) == 2
    runs = pd.read_parquet(tmp_path / "r" / "runs.parquet")
    assert sorted(runs["run_id"]) == sorted(s.run_id for s in sweep.runs)
    assert runs["lr"].tolist() == [0.05, 0.1]
    timings = pd.read_parquet(tmp_path / "r" / "timings.parquet")
    assert timings.groupby("run_id")["steps"].sum().tolist() == [12, 12]
    env = json.loads((tmp_path / "r" / "environment.json").read_text())
    for key in ("host", "cpu_model", "threads_per_worker", "python", "packages", "git", "gpus"):
        assert key in env
    assert env["packages"]["numpy"] and env["sweep"]["settings"]["dataset"] == "digits"
    for entry in registry.REGISTRY.values():  # each backend's packages, from its entry
        assert set(entry.packages) <= set(env["packages"])


def test_resume_runs_only_what_is_missing(tiny, tmp_path):
    part = load_sweep(tiny, {"learning_rates": [0.05], "seeds": [0, 1]})
    other = load_sweep(tiny, {"learning_rates": [0.05, 0.1], "seeds": [0, 1]})
    first = run_sweep(part, tmp_path / "r", quiet=True, executor=InlineExecutor())
    assert first.counts == {"ok": 2}
    with pytest.raises(Exception, match="other conditions"):  # another grid: refused
        run_sweep(other, tmp_path / "r", resume=True, quiet=True, executor=InlineExecutor())
    # the same grid, one run lost: only that one runs again
    store_parts = tmp_path / "r" / "parts"
    lost = sorted(p for p in store_parts.iterdir())[0]
    shutil.rmtree(lost)
    ex = InlineExecutor()
    again = run_sweep(part, tmp_path / "r", resume=True, quiet=True, executor=ex)
    assert ex.started == [lost.name] and again.skipped_existing == 1
    assert len(pd.read_parquet(tmp_path / "r" / "runs.parquet")) == 2


def test_mixed_devices_record_the_missing_one_as_skipped(tiny, tmp_path):
    if gpu_available():
        pytest.skip("a GPU is present here")
    sweep = load_sweep(tiny, {"devices": ["cpu", "gpu"]})
    result = run_sweep(sweep, tmp_path / "r", quiet=True, executor=InlineExecutor())
    assert result.counts == {"ok": 1, "skipped": 1}


@pytest.mark.slow
def test_every_backend_follows_the_same_curve_in_a_sweep(tiny, tmp_path):
    """Parity through the runner itself (staging, batching, epochs), each framework in its
    own worker, not only `optbench parity`."""
    names = registry.installed()
    if len(names) < 2:  # the NumPy reference against itself proves nothing
        pytest.skip(
            f"only {', '.join(names)} installed: no second backend to follow its curve "
            "(pip install -e '.[all]')"
        )
    sweep = load_sweep(
        tiny, {"backends": names, "modes": ["compiled"], "epochs": 2, "max_steps": 60}
    )
    run_sweep(sweep, tmp_path / "r", quiet=True, executor=LocalExecutor())
    runs = pd.read_parquet(tmp_path / "r" / "runs.parquet").set_index("backend")
    curves = pd.read_parquet(tmp_path / "r" / "curves.parquet")
    assert (runs["status"] == "ok").all() and (runs["steps"] == 60).all()  # two epochs of 44
    ref = curves[curves.run_id == runs.loc["numpy", "run_id"]].set_index("step")
    for name in names:
        got = curves[curves.run_id == runs.loc[name, "run_id"]].set_index("step")
        assert list(got.index) == list(ref.index)
        for col in ("train_loss", "test_loss", "test_acc"):
            assert (got[col] - ref[col]).abs().max() < 1e-4, (name, col)

"""The results store: one folder per sweep, runs landing whole, clear refusals."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from benchmarks.record.schema import SCHEMA_VERSION
from benchmarks.record.store import Store, StoreError, point_latest


def _result(rid: str, status: str = "ok", lr: float = 0.1) -> dict:
    run = {"run_id": rid, "backend": "numpy", "lr": lr, "status": status, "diverged_step": None}
    curves = [{"run_id": rid, "step": 0, "test_acc": 0.5}] if status == "ok" else []
    return {"run": run, "curves": curves, "timings": []}


def test_runs_land_whole_and_consolidate_sorted(tmp_path):
    store = Store.create(tmp_path / "r", "s", resume=False)
    store.write_run(_result("b", lr=0.2))
    store.write_run(_result("a", lr=0.1))
    store.write_run(_result("c", status="error"))
    assert store.finished_ids() == {"a", "b"}
    store.write_run(_result("c", status="ok"))  # a failed run tried again replaces its record
    counts = store.consolidate()
    assert counts == {"runs": 3, "curves": 3, "timings": 0}
    runs = store.table("runs")
    assert runs["run_id"].tolist() == ["a", "c", "b"]  # by lr, then the order they landed in
    assert runs.set_index("run_id").loc["c", "status"] == "ok"
    assert str(runs["diverged_step"].dtype) == "Int64"


def test_a_new_run_moves_earlier_results_aside(tmp_path):
    first = Store.create(tmp_path / "r", "s", resume=False)
    first.write_run(_result("a"))
    first.consolidate()
    again = Store.create(tmp_path / "r", "s", resume=False)
    assert again.archived is not None and again.archived.name.startswith("r.")
    assert pd.read_parquet(again.archived / "runs.parquet")["run_id"].tolist() == ["a"]
    assert again.part_ids() == []


def test_resume_refuses_other_conditions_and_says_what_changed(tmp_path):
    Store.create(tmp_path / "r", "s", resume=False, fingerprint={"grid": "x", "threads": 2})
    with pytest.raises(StoreError, match=r"other conditions \(grid: another set of runs"):
        Store.create(tmp_path / "r", "s", resume=True, fingerprint={"grid": "y", "threads": 2})
    kept = Store.create(tmp_path / "r", "s", resume=True, fingerprint={"grid": "x", "threads": 2})
    assert not kept.new and len(json.loads((kept.path / "store.json").read_text())["resumed"]) == 1


def test_schema_versions(tmp_path):
    store = Store.create(tmp_path / "r", "s", resume=False)
    meta = json.loads((store.path / "store.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    (store.path / "store.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, this optbench"):
        Store.open(store.path)
    (store.path / "store.json").write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(StoreError, match="schema version 0"):
        Store.create(store.path, "s", resume=True)


def test_folders_that_are_not_ours_are_refused(tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not an optbench results folder; choose another --out"):
        Store.create(stranger, "s", resume=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="exists and is not a folder"):
        Store.create(tmp_path / "file", "s", resume=False)
    with pytest.raises(StoreError, match="not an optbench results folder"):
        Store.open(stranger)


def test_unwritable_output_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = "/proc/optbench-results" if os.access(locked, os.W_OK) else locked / "r"
        with pytest.raises(StoreError, match="cannot write to output folder"):
            Store.create(target, "s", resume=False)
    finally:
        locked.chmod(0o700)


def test_parity_is_kept_by_the_store(tmp_path):
    store = Store.create(tmp_path / "r", "s", resume=False)
    assert store.parity() is None
    store.write_parity({"config": {"steps": 3}, "rows": [{"ok": True, "diff": float("nan")}]})
    assert store.parity() == {"config": {"steps": 3}, "rows": [{"ok": True, "diff": None}]}
    (store.path / "parity.json").write_text("{broken")
    with pytest.raises(ValueError, match="parity.json is unreadable"):
        store.parity()


def test_latest_points_at_the_newest_results_folder_only(tmp_path):
    point_latest(tmp_path / "elsewhere")
    assert not (tmp_path / "latest").exists()
    (tmp_path / "results" / "a").mkdir(parents=True)
    point_latest(tmp_path / "results" / "a")
    assert os.readlink(tmp_path / "results" / "latest") == "a"

"""The run record: one vocabulary, one column set whatever happened, stable run ids."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import schema
from benchmarks.runner import execute_run
from benchmarks.schema import FAILED, FINISHED, NOT_FINISHED, RunSpec, Status, failed_record
from benchmarks.store import Store
from benchmarks.sweep import load_sweep

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baselines" / "default-2core-cpu"


def tiny_spec(**changes) -> RunSpec:
    spec = load_sweep("smoke", {"backends": ["numpy"], "optimizers": ["sgd_momentum"]}).runs[0]
    return dataclasses.replace(spec, max_steps=6, **changes)


def test_statuses_fall_in_exactly_one_set():
    values = {s.value for s in Status}
    assert FINISHED | NOT_FINISHED == values and not FINISHED & NOT_FINISHED
    assert FAILED < NOT_FINISHED and Status.SKIPPED.value not in FAILED
    # a status is its string wherever it is stored or compared
    frame = pd.DataFrame({"status": ["ok", "skipped"]})
    assert frame["status"].isin([Status.OK]).tolist() == [True, False]
    assert {Status.OK: 1}["ok"] == 1 and f"{Status.DIVERGED}" == "diverged"


def test_run_ids_of_the_committed_baseline_are_unchanged():
    """The default sweep's ids equal the ones recorded in the committed baseline, so it
    still compares (the ids hash the version-1 field names)."""
    runs = Store.open(BASELINE).table("runs")
    sweep = load_sweep("default", {"devices": ["cpu"], "backends": sorted(set(runs["backend"]))})
    assert {s.run_id for s in sweep.runs} == set(runs["run_id"])


def test_a_field_added_later_stays_out_of_the_id_at_its_default(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Later(RunSpec):
        compiler: str = "default"

    base = tiny_spec()
    later = Later(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    monkeypatch.setattr(schema, "ADDED_FIELDS", {"compiler": "default"})
    assert later.run_id == base.run_id
    assert dataclasses.replace(later, compiler="cudagraphs").run_id != base.run_id


def test_a_failed_run_has_the_columns_of_a_finished_one():
    spec = tiny_spec()
    finished = execute_run(spec)["run"]
    failed = failed_record(spec, Status.CRASHED, "worker exited", "Traceback ...")["run"]
    assert set(failed) == set(finished)
    assert failed["status"] == "crashed" and failed["traceback"] == "Traceback ..."
    assert {k: v for k, v in finished.items() if k in schema.CONFIG_COLUMNS} == {
        k: v for k, v in failed.items() if k in schema.CONFIG_COLUMNS
    }
    declared = {*schema.CONFIG_COLUMNS, *schema.MEASURED_COLUMNS, *schema.DESCRIBED_COLUMNS}
    declared |= {*schema.OUTCOME_COLUMNS, *spec.opt.hyperparameters()}
    assert set(finished) == declared


def test_a_failed_record_cannot_claim_to_have_finished():
    with pytest.raises(ValueError, match="cannot have status 'ok'"):
        failed_record(tiny_spec(), Status.OK, "")


def test_older_tables_are_read_with_the_new_columns():
    runs = Store.open(BASELINE).table("runs")  # written before the traceback column
    assert "traceback" in runs and (runs["traceback"] == "").all()

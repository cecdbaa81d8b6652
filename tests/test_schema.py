"""The run record: one vocabulary, one column set whatever happened, stable run ids."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from backends.base import OptimizerSpec
from benchmarks.record import schema
from benchmarks.record.schema import FAILED, FINISHED, NOT_FINISHED, RunSpec, Status, failed_record
from benchmarks.record.store import Store
from benchmarks.record.sweep import load_sweep
from benchmarks.run.runner import execute_run

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baselines" / "default-2core-cpu"
#: the runs table of the baseline committed under schema version 1 (the default sweep then)
V1_RUNS = Path(__file__).resolve().parent / "data" / "runs-v1.parquet"


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
    still compares."""
    runs = Store.open(BASELINE).table("runs")
    sweep = load_sweep("default", {"devices": ["cpu"], "backends": sorted(set(runs["backend"]))})
    assert {s.run_id for s in sweep.runs} == set(runs["run_id"])


def test_a_version_1_run_keeps_its_id():
    """A run configured as version 1 could (no validation split, constant learning rate,
    spec variant) hashes to the id version 1 gave it (recorded in the baseline of that time),
    so older results folders still resume and compare."""
    sweep = load_sweep("default", {"devices": ["cpu"], "backends": ["numpy"]})
    spec = next(
        s
        for s in sweep.runs
        if (s.optimizer, s.lr, s.batch_size, s.seed) == ("adam", 0.0003, 32, 0)
    )
    assert dataclasses.replace(spec, validation_fraction=0.0).run_id == "25ef27b97022"


def test_a_field_added_later_stays_out_of_the_id_at_its_default():
    base = tiny_spec()
    assert schema.ADDED_FIELDS["compiler"] == base.compiler == "default"
    assert schema._identity(base) == schema._identity(base).replace(', "compiler": "default"', "")
    assert dataclasses.replace(base, compiler="numpy").run_id != base.run_id
    # what the driver resolves is not identity: a resumed sweep keeps its ids
    resolved = dataclasses.replace(base, path="numpy", path_choice="its only path")
    assert resolved.run_id == base.run_id and resolved.row()["compiler"] == "numpy"


def test_version_1_compiler_text_becomes_the_path_name():
    v1 = pd.DataFrame(
        {
            "backend": ["tensorflow", "tensorflow", "torch", "jax", "torch", "numpy"],
            "mode": ["compiled", "compiled", "compiled", "compiled", "eager", "compiled"],
            "device": ["cpu", "gpu", "cpu", "cpu", "cpu", "cpu"],
            "compiler": [
                "tf.function(jit_compile=False)",
                "tf.function(jit_compile=True)",
                "torch.compile(inductor, static shapes) of forward+loss, AOTAutograd backward",
                "jax.jit(XLA)",
                "",
                "",
            ],
        }
    )
    up = schema.upgrade_runs(v1)
    assert up["compiler"].tolist() == ["tf_function", "xla", "inductor", "jit", "eager", "numpy"]
    assert up["compiler_detail"].tolist() == v1["compiler"].tolist()
    assert set(up["compiler_requested"]) == {"default"}


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
    runs = schema.upgrade_runs(pd.read_parquet(V1_RUNS))  # before traceback, variant, ...
    assert "traceback" in runs and (runs["traceback"] == "").all()
    assert (runs["variant"] == "spec").all() and (runs["schedule"] == "constant").all()
    assert (runs["validation_fraction"] == 0).all() and runs["final_val_acc"].isna().all()


# --- the row and back (optbench rerun) ---------------------------------------------------


@pytest.mark.parametrize("runs", ["baseline", "version 1"])
def test_every_row_gives_back_its_spec(runs):
    """The committed baseline's rows, and version 1 rows upgraded: the spec hashes to the
    row's id and writes the same row."""
    if runs == "baseline":
        table = Store.open(BASELINE).table("runs")
    else:
        table = schema.upgrade_runs(pd.read_parquet(V1_RUNS))
    for row in table.to_dict("records"):
        spec = RunSpec.from_row(row)
        assert spec.run_id == row["run_id"]
        assert spec.compiler == row["compiler_requested"] and spec.path == row["compiler"]
        back = spec.row()
        assert {k: row[k] for k in back if k != "compiler_choice"} == {
            k: v for k, v in back.items() if k != "compiler_choice"
        }


def test_specs_of_every_kind_and_setting_survive_a_parquet_round_trip(tmp_path):
    base = tiny_spec(hidden=(128, 64), seed=3)
    specs = [
        dataclasses.replace(base, optimizer=name, opt=opt, compiler=compiler)
        for name, opt, compiler in [
            ("nesterov", OptimizerSpec("sgd", 0.1, momentum=0.9, nesterov=True), "default"),
            ("decayed", OptimizerSpec("sgd", 0.1, weight_decay=1e-4), "numpy"),
            ("adam", OptimizerSpec("adam", 1e-3, beta1=0.8, eps=1e-7), "default"),
            ("adamw", OptimizerSpec("adam", 1e-3, weight_decay=0.01), "default"),
            # as a sweep file may say it: an integer, which Parquet keeps as 0.0 beside floats
            ("int", OptimizerSpec("sgd", 0.1, momentum=0.9, weight_decay=0), "default"),
        ]
    ]
    specs = [dataclasses.replace(s, path="numpy", path_choice="its only path") for s in specs]
    pd.DataFrame([s.row() for s in specs]).to_parquet(tmp_path / "runs.parquet")
    rows = pd.read_parquet(tmp_path / "runs.parquet").to_dict("records")
    for spec, row in zip(specs, rows):
        back = RunSpec.from_row(row, timeout_s=spec.timeout_s)
        assert back == spec and back.run_id == spec.run_id == row["run_id"]
        assert (back.path, back.path_choice) == ("numpy", "its only path")
    assert rows[-1]["weight_decay"] == 0.0 and type(specs[-1].opt.weight_decay) is int

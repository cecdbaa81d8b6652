"""Regression tracking: a real slowdown, a status or accuracy regression fail loudly;
noise and small changes do not."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmarks.app.cli import main
from benchmarks.track.compare import compare, format_markdown
from tests.synthetic_results import make_results


@pytest.fixture
def baseline(tmp_path):
    return make_results(tmp_path / "base", backends=("numpy", "jax"), seeds=(0, 1, 2))


def _variant(baseline, tmp_path, slow=None, factor=1.0, status=None, acc_drop=None):
    """A copy of ``baseline`` with one backend slowed by ``factor`` and run changes."""
    cur = tmp_path / "cur"
    shutil.copytree(baseline, cur)
    runs = pd.read_parquet(cur / "runs.parquet")
    timings = pd.read_parquet(cur / "timings.parquet")
    if slow:
        ids = runs.loc[runs["backend"] == slow, "run_id"]
        timings.loc[timings["run_id"].isin(ids), "seconds"] *= factor
    ok = runs.index[runs["status"] == "ok"]
    if status:
        runs.loc[ok[0], ["status", "error"]] = [status, "RuntimeError: new bug"]
    if acc_drop:
        runs.loc[ok[1], "final_test_acc"] -= acc_drop
    runs.to_parquet(cur / "runs.parquet", index=False)
    timings.to_parquet(cur / "timings.parquet", index=False)
    return cur


def test_identical_results_are_the_same(baseline, tmp_path):
    cmp = compare(baseline, _variant(baseline, tmp_path))
    assert cmp.regressions == 0 and set(cmp.groups["verdict"]) == {"same"}
    assert cmp.matched == len(pd.read_parquet(baseline / "runs.parquet"))


def test_a_real_slowdown_is_a_regression(baseline, tmp_path, capsys):
    cur = _variant(baseline, tmp_path, slow="jax", factor=1.5)  # 50% more time per block
    cmp = compare(baseline, cur)
    g = cmp.groups.set_index(["backend", "optimizer", "batch_size"])
    assert set(g.loc["jax", "verdict"]) == {"slower"}
    assert set(g.loc["numpy", "verdict"]) == {"same"}
    assert g.loc["jax", "ratio"].between(1 / 1.5 - 1e-9, 1 / 1.5 + 1e-9).all()
    assert main(["compare", str(baseline), str(cur)]) == 1
    assert "REGRESSION" in capsys.readouterr().out


def test_a_change_below_the_threshold_is_not(baseline, tmp_path):
    cur = _variant(baseline, tmp_path, slow="jax", factor=1.03)
    assert compare(baseline, cur, threshold=0.05).regressions == 0


def test_faster_is_reported_and_passes(baseline, tmp_path):
    cur = _variant(baseline, tmp_path, slow="numpy", factor=0.7)
    cmp = compare(baseline, cur)
    assert "faster" in set(cmp.groups["verdict"]) and cmp.regressions == 0


def test_status_and_accuracy_regressions(baseline, tmp_path, capsys):
    cur = _variant(baseline, tmp_path, status="error", acc_drop=0.05)
    cmp = compare(baseline, cur)
    assert len(cmp.status_changes) == 1 and cmp.status_changes["current_status"].iloc[0] == "error"
    assert len(cmp.accuracy_drops) == 1
    assert main(["compare", str(baseline), str(cur), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["regressions"] == 2


def test_an_error_with_a_pipe_and_a_newline_stays_in_its_markdown_cell(baseline, tmp_path):
    cur = _variant(baseline, tmp_path, status="error")
    runs = pd.read_parquet(cur / "runs.parquet")
    runs.loc[runs["status"] == "error", "error"] = "ValueError: a | b\nsecond line"
    runs.to_parquet(cur / "runs.parquet", index=False)
    md = format_markdown(compare(baseline, cur), baseline, cur, 0.05)
    table = md.split("### Runs that finished in the baseline and do not now")[1].split("\n\n")[1]
    rows = table.splitlines()
    assert len(rows) == 3  # header, rule, the one run: the newline did not end the row
    cells = [c for c in re.split(r"(?<!\\)\|", rows[2])[1:-1]]
    assert len(cells) == len(rows[0].split("|")[1:-1])  # the | did not add a column
    assert cells[-1].strip() == "ValueError: a \\| b second line"


def test_environment_differences_are_warned(baseline, tmp_path):
    cur = _variant(baseline, tmp_path)
    env = json.loads((cur / "environment.json").read_text())
    env["cpu_model"] = "Other CPU"
    (cur / "environment.json").write_text(json.dumps(env))
    assert any("cpu_model differs" in w for w in compare(baseline, cur).warnings)


def test_bad_input(baseline, tmp_path, capsys):
    assert main(["compare", str(baseline), str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    other = make_results(tmp_path / "other", backends=("torch",), batch_sizes=(64,))
    assert main(["compare", str(baseline), str(other)]) == 2
    err = capsys.readouterr().err
    assert "no run of" in err  # and what differs, column by column
    assert (
        "backend ['jax', 'numpy'] vs ['torch']" in err
        and "batch_size ['128', '32'] vs ['64']" in err
    )
    assert main(["compare", str(baseline), str(baseline), "--threshold", "5"]) == 2
    assert "threshold=5.0 is invalid" in capsys.readouterr().err


def test_an_accuracy_change_at_a_chaotic_cell_counts_only_beyond_its_spread(tmp_path):
    """Where the baseline's backends already end 3 points apart, a 2-point drop is the
    cell's chaos, not a regression; a 5-point drop still is."""
    base = make_results(tmp_path / "base", acc_scale={"numpy": 1.0, "jax": 0.97}, diverge=())
    small = _variant(base, tmp_path, acc_drop=0.02)
    cmp = compare(base, small)
    assert cmp.accuracy_drops.empty and cmp.regressions == 0
    assert any("within their configuration's spread" in n for n in cmp.notes)
    shutil.rmtree(small)
    large = _variant(base, tmp_path, acc_drop=0.05)
    drops = compare(base, large).accuracy_drops
    assert len(drops) == 1 and drops["allowed_drop"].iloc[0] == pytest.approx(0.0285, abs=1e-3)


def _with_reference(folder, ms, device=None):
    """Give every run of ``folder`` a reference time (and optionally a device)."""
    runs = pd.read_parquet(folder / "runs.parquet")
    runs["reference_ms"] = ms
    if device:
        runs["device"] = device
    runs.to_parquet(folder / "runs.parquet", index=False)


def test_a_slower_machine_is_not_a_slower_framework(baseline, tmp_path):
    """Every block 40% slower, and the reference kernel around each run 40% slower too: the
    machine was busy, the framework was not slower; the note says by how much."""
    cur = _variant(baseline, tmp_path, slow="jax", factor=1.4)
    _with_reference(baseline, 0.2)
    _with_reference(cur, 0.28)
    cmp = compare(baseline, cur)
    assert set(cmp.groups.loc[cmp.groups["backend"] == "jax", "verdict"]) == {"same"}
    # numpy's blocks did not slow down while the machine did: faster at the machine's speed,
    # the same as measured; the two views disagree, so nothing is called
    numpy = cmp.groups[cmp.groups["backend"] == "numpy"]
    assert set(numpy["verdict"]) == {"same"} and (numpy["machine_ratio"] > 1.3).all()
    assert any("the machine was 40% slower than during the baseline's" in n for n in cmp.notes)


def test_a_slower_framework_on_an_equally_fast_machine_is_flagged(baseline, tmp_path):
    """The reference unchanged (e.g. the run was given half the threads: the kernel runs on
    one thread whatever the run's count): the slowdown is the run's."""
    cur = _variant(baseline, tmp_path, slow="jax", factor=1.4)
    _with_reference(baseline, 0.2)
    _with_reference(cur, 0.2)
    cmp = compare(baseline, cur)
    assert set(cmp.groups.loc[cmp.groups["backend"] == "jax", "verdict"]) == {"slower"}


def test_no_scaling_across_numpy_versions_or_on_a_gpu(baseline, tmp_path):
    cur = _variant(baseline, tmp_path, slow="jax", factor=1.4)
    _with_reference(baseline, 0.2)
    _with_reference(cur, 0.28)
    env = json.loads((cur / "environment.json").read_text())
    env.setdefault("packages", {})["numpy"] = "0.0.1"
    (cur / "environment.json").write_text(json.dumps(env))
    cmp = compare(baseline, cur)
    assert set(cmp.groups.loc[cmp.groups["backend"] == "jax", "verdict"]) == {"slower"}
    assert any("NumPy versions differ" in n for n in cmp.notes)
    shutil.rmtree(cur)
    cur = _variant(baseline, tmp_path, slow="jax", factor=1.4)
    _with_reference(baseline, 0.2, device="gpu")
    _with_reference(cur, 0.28, device="gpu")
    cmp = compare(baseline, cur)
    assert set(cmp.groups.loc[cmp.groups["backend"] == "jax", "verdict"]) == {"slower"}


def test_a_ratio_below_the_threshold_whose_bound_crosses_one_is_the_same(baseline, tmp_path):
    """Both conditions of `slower`: the ratio below 1 - t *and* the upper bound below 1. The
    current side's blocks get their own noise here (elsewhere in these tests they are the
    baseline's times a factor, the same jitter on both sides, so the bounds never matter)."""
    cur = _variant(baseline, tmp_path)
    runs = pd.read_parquet(cur / "runs.parquet")
    t = pd.read_parquet(cur / "timings.parquet")
    jax = t["run_id"].isin(runs.loc[runs["backend"] == "jax", "run_id"])
    noise = np.random.default_rng(3).lognormal(0.0, 0.6, int(jax.sum()))
    t.loc[jax, "seconds"] *= noise / 0.93
    t.to_parquet(cur / "timings.parquet", index=False)
    g = compare(baseline, cur).groups.set_index(["backend", "optimizer", "batch_size"])
    crossing = g[(g["ratio"] < 0.95) & (g["ci_high"] > 1)]
    assert len(crossing) and set(crossing["verdict"]) == {"same"}
    tight = g.loc["numpy"]  # untouched: the same
    assert set(tight["verdict"]) == {"same"}

"""Saved baselines, the noise floor, and a comparison that holds on noise yet catches
real slowdowns (on result tables the tests build; no framework needed)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmarks.app.cli import main
from benchmarks.core import stats
from benchmarks.record.store import Store, StoreError
from benchmarks.track import baselines
from benchmarks.track.change import SLOWER, throughput_change
from benchmarks.track.compare import COMPARED, compare
from tests.synthetic_results import make_results

COMMITTED = baselines.ROOT / "default-2core-cpu"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "baselines"


def slowed(src, dest, factor: float):
    """A copy of ``src`` whose every timed block took ``factor`` times as long."""
    shutil.copytree(src, dest)
    t = pd.read_parquet(dest / "timings.parquet")
    t["seconds"] *= factor
    t.to_parquet(dest / "timings.parquet", index=False)
    return dest


def test_save_list_and_resolve_by_name(tmp_path, root):
    a = make_results(tmp_path / "a")
    row = baselines.save(a, "laptop", root=root)
    assert row["name"] == "laptop" and row["sweeps"] == 1 and row["runs"] > 0
    assert row["machine"] == {"cpu_model": "Test CPU", "cpu_cores": 2, "gpu": None}
    assert baselines.resolve("laptop", root=root) == root / "laptop"
    assert baselines.resolve(str(a), root=root) == a  # a path stays a path
    with pytest.raises(StoreError, match=r"'nope' is neither .* \(saved: laptop\)"):
        baselines.resolve("nope", root=root)
    assert baselines.resolve("auto", a, root=root) == root / "laptop"  # same machine
    env = json.loads((a / "environment.json").read_text())
    (a / "environment.json").write_text(json.dumps({**env, "cpu_model": "Other"}))
    with pytest.raises(StoreError, match="no baseline is saved for this machine"):
        baselines.resolve("auto", a, root=root)
    with pytest.raises(StoreError, match="exists"):
        baselines.save(a, "laptop", root=root)
    with pytest.raises(StoreError, match="plain folder name"):
        baselines.save(a, "../x", root=root)


def test_a_saved_baseline_is_committable_and_keeps_every_evaluation(tmp_path, root):
    a = make_results(tmp_path / "a")
    curves = pd.read_parquet(a / "curves.parquet")
    big = pd.concat([curves.assign(step=curves["step"] + 1000 * i) for i in range(300)])
    big.to_parquet(a / "curves.parquet", index=False)
    baselines.save(a, "big", root=root)
    size = sum(f.stat().st_size for f in (root / "big").rglob("*") if f.is_file())
    kept = pd.read_parquet(root / "big" / "curves.parquet")
    assert size <= baselines.MAX_BYTES and len(kept) < len(big)
    assert kept["test_acc"].notna().sum() == big["test_acc"].notna().sum()


def test_the_noise_floor_of_repeats_keeps_sweep_drift_from_failing_a_build(tmp_path, root):
    a = make_results(tmp_path / "a")
    b = slowed(a, tmp_path / "b", 1.25)  # an unchanged commit on a busier machine
    assert compare(a, b).by_kind["throughput"] > 0  # one sweep: drift looks like a regression
    baselines.save(a, "noisy", [b], root=root)
    floor = json.loads((root / "noisy" / "noise.json").read_text())
    assert floor["sweeps"] == 2 and all(g["floor"] > 0.15 for g in floor["groups"])
    again = slowed(a, tmp_path / "c", 1.2)
    monkey = baselines.ROOT
    try:
        baselines.ROOT = root
        assert compare(root / "noisy", again).regressions == 0
        assert not any("cannot be tracked" in n for n in compare(root / "noisy", again).notes)
        assert compare(root / "noisy", slowed(a, tmp_path / "d", 2.0)).by_kind["throughput"] > 0
    finally:
        baselines.ROOT = monkey


def _resampled(per_run: list[np.ndarray], rng) -> list[np.ndarray]:
    return [rng.choice(r, size=len(r), replace=True) for r in per_run]


def test_noise_alone_is_rarely_flagged_and_a_real_drop_nearly_always():
    """Both sides resampled from the committed baseline's real block timings (its block
    counts), 200 trials each: false alarms at most 1%, a 10% drop caught at least 90%."""
    store = Store.open(COMMITTED)
    runs = store.table("runs")
    rates = stats.block_rates(runs, store.table("timings"), COMPARED)
    groups = [
        [g["rate"].to_numpy() for _, g in grp.groupby("run_id")]
        for _, grp in rates.groupby(COMPARED)
    ]
    rng = np.random.default_rng(0)
    alarms = caught = 0
    trials = 200
    for i in range(trials):
        per_run = groups[i % len(groups)]
        for factor, hit in ((1.0, "alarm"), (0.9, "caught")):
            a, b = _resampled(per_run, rng), _resampled(per_run, rng)
            frame = lambda side, f: pd.DataFrame(  # noqa: E731
                [{"run_id": j, "g": 0, "rate": v * f} for j, r in enumerate(side) for v in r]
            )
            t = throughput_change(
                pd.DataFrame({"run_id": range(len(per_run)), "g": 0}),
                frame(a, 1.0),
                frame(b, factor),
                ["g"],
                0.05,
            )
            flagged = t["verdict"].iloc[0] == SLOWER
            alarms += flagged and hit == "alarm"
            caught += flagged and hit == "caught"
    print(f"false alarms {alarms}/{trials}, 10% drops caught {caught}/{trials}")
    assert alarms <= 0.01 * trials
    assert caught >= 0.9 * trials


def test_fail_on_and_markdown(tmp_path, capsys):
    a = make_results(tmp_path / "a")
    b = slowed(a, tmp_path / "b", 1.3)
    assert main(["compare", str(a), str(b), "--fail-on", "accuracy,status"]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--format", "md"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("**optbench: ") and "### Slower" in md and "| backend |" in md
    assert main(["compare", str(b), str(a), "--format", "md"]) == 0  # faster is no failure
    md = capsys.readouterr().out
    assert "no regression" in md and "### Faster" in md
    assert main(["compare", str(a), str(b), "--fail-on", "speed"]) == 2


def test_no_run_in_common_names_what_differs(tmp_path, capsys):
    a = make_results(tmp_path / "a")
    b = make_results(tmp_path / "b")
    runs = pd.read_parquet(b / "runs.parquet")
    runs["run_id"] += "-x"
    runs["hidden"] = "128"
    runs.to_parquet(b / "runs.parquet", index=False)
    assert main(["compare", str(a), str(b)]) == 2
    assert "they differ in hidden ['64'] vs ['128']" in capsys.readouterr().err


def test_a_folder_without_its_environment_is_bad_input(tmp_path, capsys):
    a = make_results(tmp_path / "a")
    b = make_results(tmp_path / "b")
    (b / "environment.json").unlink()
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "environment.json is missing" in err and str(b) in err and "Traceback" not in err


def test_a_group_too_noisy_to_track_is_said(tmp_path, root):
    a = make_results(tmp_path / "a")
    baselines.save(a, "wild", [slowed(a, tmp_path / "b", 3.0)], root=root)
    notes = compare(root / "wild", a).notes
    assert any("cannot be tracked on this machine" in n and "67%" in n for n in notes)

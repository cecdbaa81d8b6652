"""The re-measurement behind ``compare``: a call stands only where both sides' code, run
again in turn, shows it; what cannot be re-measured is said and left alone."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from benchmarks import recheck
from benchmarks.cli import main
from benchmarks.compare import compare
from benchmarks.environment import REPO
from benchmarks.store import Store
from tests.conftest import TINY
from tests.synthetic_results import make_results


def _slowed(src, dest, backend: str, factor: float):
    """A copy of ``src`` whose ``backend`` runs' timed blocks took ``factor`` times as long."""
    shutil.copytree(src, dest)
    runs = pd.read_parquet(dest / "runs.parquet")
    t = pd.read_parquet(dest / "timings.parquet")
    ids = runs.loc[runs["backend"] == backend, "run_id"]
    t.loc[t["run_id"].isin(ids), "seconds"] *= factor
    t.to_parquet(dest / "timings.parquet", index=False)
    return dest


@pytest.fixture
def pair(tmp_path):
    base = make_results(tmp_path / "base", backends=("numpy", "jax"), seeds=(0, 1))
    return base, _slowed(base, tmp_path / "cur", "jax", 1.5)


def _replay(monkeypatch, base, factor: float):
    """The re-measurement as if both sides ran again: the baseline's stored runs, the
    current side ``factor`` times slower (1.0: the stored slowdown was noise)."""
    monkeypatch.setattr(recheck, "_check_comparable", lambda sides: None)
    monkeypatch.setattr(recheck, "_source_tree", lambda side, work, stack: REPO)
    asked = {}

    def interleave(sides, rows, rounds, work, log):
        asked.update(rows=rows, rounds=rounds)
        store = Store.open(base)
        runs, timings = store.runs(), store.table("timings")
        out = {}
        for side, f in (("baseline", 1.0), ("current", factor)):
            ids = rows[side]["run_id"]
            r = runs[runs["run_id"].isin(ids)].assign(run_id=lambda d: d["run_id"] + "#0")
            t = timings[timings["run_id"].isin(ids)].assign(run_id=lambda d: d["run_id"] + "#0")
            out[side] = (r, t.assign(seconds=t["seconds"] * f))
        return out

    monkeypatch.setattr(recheck, "_interleave", interleave)
    return asked


def test_a_slowdown_the_remeasurement_shows_stands(pair, monkeypatch):
    base, cur = pair
    asked = _replay(monkeypatch, base, 1.5)
    cmp = compare(base, cur, recheck_rounds=3)
    g = cmp.groups.set_index(["backend", "optimizer", "batch_size"])
    assert set(g.loc["jax", "verdict"]) == {"slower"}
    assert g.loc["jax", "recheck_ratio"].between(1 / 1.5 - 1e-9, 1 / 1.5 + 1e-9).all()
    assert g.loc["numpy", "recheck_ratio"].isna().all()  # not flagged: not re-measured
    assert cmp.by_kind["throughput"] == len(g.loc["jax"])
    # only the flagged groups' runs, of their first seed, the same runs on both sides
    rows = asked["rows"]
    assert set(rows["current"]["backend"]) == {"jax"} and set(rows["current"]["seed"]) == {0}
    assert list(rows["baseline"]["run_id"]) == list(rows["current"]["run_id"])
    assert set(rows["current"]["status"]) == {"ok"} and asked["rounds"] == 3
    assert any(f"{len(g.loc['jax'])} confirmed, 0 taken back" in n for n in cmp.notes)


def test_a_slowdown_the_remeasurement_does_not_show_is_taken_back(pair, monkeypatch, capsys):
    base, cur = pair
    _replay(monkeypatch, base, 1.0)
    cmp = compare(base, cur, recheck_rounds=3)
    jax = cmp.groups[cmp.groups["backend"] == "jax"]
    assert set(jax["first_verdict"]) == {"slower"} and set(jax["verdict"]) == {"same"}
    assert cmp.regressions == 0
    assert main(["compare", str(base), str(cur)]) == 0
    out = capsys.readouterr().out
    assert "same (was slower)" in out and "re-measured" in out
    assert main(["compare", str(base), str(cur), "--format", "md"]) == 0
    assert "Flagged, then taken back" in capsys.readouterr().out
    assert main(["compare", str(base), str(cur), "--recheck", "0"]) == 1  # stored runs alone


def test_what_cannot_be_remeasured_is_said_and_left_alone(pair, capsys):
    base, cur = pair  # synthetic: a commit this repository lacks, packages not installed
    cmp = compare(base, cur, recheck_rounds=3)
    assert set(cmp.groups.loc[cmp.groups["backend"] == "jax", "verdict"]) == {"slower"}
    assert any(n.startswith("flagged groups not re-measured: ") for n in cmp.notes)
    assert main(["compare", str(base), str(cur), "--format", "json"]) == 1
    assert "not re-measured" in " ".join(json.loads(capsys.readouterr().out)["notes"])
    assert main(["compare", str(base), str(cur), "--recheck", "-1"]) == 2
    assert "--recheck -1 is invalid" in capsys.readouterr().err


def test_why_a_pair_cannot_be_remeasured(tmp_path):
    env = {"git": {"commit": "0" * 40}, "packages": {"torch": "2.12.0"}, "python": "3.11.0"}
    b = recheck.Side("baseline", tmp_path, env)
    c = recheck.Side("current", tmp_path, {**env, "packages": {"torch": "2.13.0"}})
    with pytest.raises(recheck.CannotRecheck, match=r"packages \(torch 2.12.0 -> 2.13.0\)"):
        recheck._check_comparable([b, c])
    c = recheck.Side("current", tmp_path, {**env, "python": "3.12.0"})
    with pytest.raises(recheck.CannotRecheck, match="differ in their Python"):
        recheck._check_comparable([b, c])
    with pytest.raises(recheck.CannotRecheck, match="records no git commit"):
        recheck._check_comparable([recheck.Side("baseline", tmp_path, {}), c])
    with pytest.raises(
        recheck.CannotRecheck, match=r"commit 000000000000 is not in this repository"
    ):
        recheck._source_tree(b, tmp_path, None)


# conftest's tiny sweep, long enough for blocks of real work (a few ms each), two rates
TINY_RUNS = (
    TINY.replace("hidden = [16]", "hidden = [128]")
    .replace("max_steps = 12", "max_steps = 150")
    .replace("eval_every = 6", "eval_every = 50")
    .replace("block_steps = 3", "block_steps = 10")
    .replace("learning_rates = [0.05]", "learning_rates = [0.01, 0.05]")
)
assert "max_steps = 150" in TINY_RUNS and "block_steps = 10" in TINY_RUNS


@pytest.mark.slow
def test_an_injected_slowdown_is_taken_back_when_both_sides_run_again(tmp_path, capsys):
    """End to end with the NumPy reference: two sweeps of this code, the second's stored
    timings made 8x as long. The stored runs say several times slower; both sides run again,
    in turn, do not. (Runs this short are noisy: sweeps of identical code came out up to 2x
    apart, and re-measured 0.67-1.34, hence the 8x and the 50% threshold.)"""
    sweep = tmp_path / "recheck.toml"
    sweep.write_text(TINY_RUNS)
    for name in ("a", "b"):
        assert main(["run", "--sweep", str(sweep), "--out", str(tmp_path / name), "--quiet"]) == 0
    slow = _slowed(tmp_path / "b", tmp_path / "slow", "numpy", 8.0)
    args = ["compare", str(tmp_path / "a"), str(slow), "--threshold", "0.5", "--format", "json"]
    assert main([*args, "--recheck", "0"]) == 1
    capsys.readouterr()
    assert main([*args, "--recheck", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    (g,) = out["groups"]
    assert g["first_verdict"] == "slower" and g["verdict"] == "same"
    assert g["ratio"] < 0.5 and 0.5 < g["recheck_ratio"] < 2.0, g
    assert any("1 flagged group(s) re-measured now" in n for n in out["notes"])


def test_a_side_with_uncommitted_changes_runs_only_where_they_are_still_here(tmp_path, monkeypatch):
    here = {"commit": "c" * 40, "dirty": True, "diff_sha256": "edits-now"}
    monkeypatch.setattr(recheck, "git_state", lambda: here)

    def side(name, **git):
        return recheck.Side(name, tmp_path, {"git": {"commit": "c" * 40, "dirty": True, **git}})

    assert recheck._source_tree(side("baseline", diff_sha256="edits-now"), tmp_path, None) == REPO
    with pytest.raises(recheck.CannotRecheck, match="uncommitted changes to cccccccccccc"):
        recheck._source_tree(side("baseline", diff_sha256="edits-then"), tmp_path, None)
    # results from before the hash was recorded: the current side is this tree's newest code,
    # a baseline's edits cannot be known
    assert recheck._source_tree(side("current"), tmp_path, None) == REPO
    with pytest.raises(recheck.CannotRecheck, match="does not hold as they were"):
        recheck._source_tree(side("baseline"), tmp_path, None)
    here["commit"] = "d" * 40  # committed since: the edits are not in this tree as they were
    with pytest.raises(recheck.CannotRecheck):
        recheck._source_tree(side("current", diff_sha256="edits-now"), tmp_path, None)

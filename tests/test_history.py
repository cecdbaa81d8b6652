"""``optbench history``: one row per folder x verdict row, the flags of pairwise compare,
version changes labelled on the plot, bad input exit 2 with nothing written. On result
folders built here (no framework)."""

from __future__ import annotations

import json
import shutil

import matplotlib.axes
import numpy as np
import pandas as pd
import pytest

from benchmarks.app.cli import main
from benchmarks.core import exitcodes
from benchmarks.track.compare import compare
from benchmarks.track.history import (
    MATCH,
    _points_table,
    build,
    changes,
    machine_figures,
    summary,
    version_change,
)
from tests.synthetic_results import make_results

KEY = ["folder", "batch_size", "backend", "mode", "compiler", "device"]


def _edit_env(path, sweep="default", commit="c0", date="2026-11-20T08:00:00+00:00", **changes):
    """Give a synthetic folder a sweep name, a commit, a date and other environment fields."""
    f = path / "environment.json"
    env = json.loads(f.read_text())
    env["sweep"]["name"] = sweep
    env["git"] = {"commit": commit, "dirty": False}
    env["captured_at"] = date
    for k, v in changes.items():
        env[k] = {**env[k], **v} if isinstance(v, dict) else v
    f.write_text(json.dumps(env))
    return path


def _slow(path, backend, factor):
    runs = pd.read_parquet(path / "runs.parquet")
    timings = pd.read_parquet(path / "timings.parquet")
    ids = runs.loc[runs["backend"] == backend, "run_id"]
    timings.loc[timings["run_id"].isin(ids), "seconds"] *= factor
    timings.to_parquet(path / "timings.parquet", index=False)


def _only(path, backend):
    """Keep one backend's runs (and their curves and timings) in a synthetic folder."""
    runs = pd.read_parquet(path / "runs.parquet")
    ids = runs.loc[runs["backend"] == backend, "run_id"]
    for name in ("runs", "curves", "timings"):
        table = pd.read_parquet(path / f"{name}.parquet")
        table[table["run_id"].isin(ids)].to_parquet(path / f"{name}.parquet", index=False)
    return path


def _fail_one(path, backend):
    runs = pd.read_parquet(path / "runs.parquet")
    i = runs.index[(runs["backend"] == backend) & (runs["status"] == "ok")][0]
    runs.loc[i, ["status", "error"]] = ["error", "RuntimeError: new bug"]
    runs.to_parquet(path / "runs.parquet", index=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """results/ with three folders of sweep "default" on one machine (the second adds a jax
    release, the third slows jax by 1.5x and fails a numpy run), one on another machine,
    a `latest` link, and a folder of another sweep."""
    res = tmp_path_factory.mktemp("h") / "results"
    base = make_results(res / "baselines" / "default-test", seeds=(0, 1, 2))
    _edit_env(base, commit="aaaaaaa0", date="2026-11-20T08:00:00+00:00")
    mid = res / "default.20261122T080000"
    shutil.copytree(base, mid)
    _edit_env(mid, commit="bbbbbbb1", date="2026-11-22T08:00:00+00:00", packages={"jax": "0.5.0"})
    cur = res / "default"
    shutil.copytree(base, cur)
    _edit_env(cur, commit="ccccccc2", date="2026-11-24T08:00:00+00:00", packages={"jax": "0.5.0"})
    _slow(cur, "jax", 1.5)
    _fail_one(cur, "numpy")
    other = res / "default-gpu"
    shutil.copytree(base, other)
    _edit_env(other, commit="ddddddd3", gpus=[{"name": "NVIDIA H100"}])
    (res / "latest").symlink_to("default")
    _edit_env(make_results(res / "smoke", batch_sizes=(32,)), sweep="smoke")
    return res


@pytest.fixture(scope="module")
def hist(results):
    return build(["default"], results)


def _snapshot(path):
    return {p: p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def test_one_row_per_folder_and_verdict_row(hist, results):
    folders = {
        str(results / f)
        for f in ("baselines/default-test", "default.20261122T080000", "default", "default-gpu")
    }
    assert {str(p.path) for p in hist.points} == folders  # latest counted once, smoke not
    t = hist.table
    assert len(t) == sum(len(p.verdict) for p in hist.points) == 4 * 4  # 2 backends x 2 batches
    assert not t.duplicated(KEY).any()
    assert t["machine"].nunique() == 2
    first = t[t["folder"] == str(results / "baselines" / "default-test")]
    assert set(first["commit"]) == {"aaaaaaa0"} and set(first["jax_version"]) == {"0.4.30"}
    # the report's figures, computed afresh from the folder (not the point's own copy)
    from benchmarks.report.analysis import analyse
    from benchmarks.report.load import load

    point = hist.points[0]
    res = load(point.path)
    v = analyse(res.runs, res.curves, res.timings).verdict.set_index(["batch_size", "backend"])
    mine = t[t["folder"] == str(point.path)].set_index(["batch_size", "backend"])
    for col in ("samples_per_s", "ci_low", "ci_high", "best_test_acc"):
        pd.testing.assert_series_equal(mine[col], v.loc[mine.index, col], check_names=False)


def test_flags_match_pairwise_compare(hist):
    by_machine: dict[str, list] = {}
    for p in hist.points:
        by_machine.setdefault(p.machine, []).append(p)
    compared = 0
    for points in by_machine.values():
        assert all(points[i].date <= points[i + 1].date for i in range(len(points) - 1))
        first = hist.table[hist.table["folder"] == str(points[0].path)]
        assert not first["compared"].any() and not first["flagged"].any()
        for prev, cur in zip(points, points[1:]):
            cmp = compare(prev.path, cur.path)
            rows = hist.table[hist.table["folder"] == str(cur.path)]
            assert rows["compared"].all() and set(rows["previous_folder"]) == {str(prev.path)}
            for _, r in rows.iterrows():
                at = (cmp.groups[MATCH] == r[MATCH].to_numpy()).all(axis=1)
                sc = (cmp.status_changes[MATCH] == r[MATCH].to_numpy()).all(axis=1)
                ad = (cmp.accuracy_drops[MATCH] == r[MATCH].to_numpy()).all(axis=1)
                assert r["slower"] == (cmp.groups.loc[at, "verdict"] == "slower").sum()
                assert r["faster"] == (cmp.groups.loc[at, "verdict"] == "faster").sum()
                assert r["status_changes"] == sc.sum() and r["accuracy_drops"] == ad.sum()
                assert r["flagged"] == bool(r["slower"] or sc.sum() or ad.sum())
            assert rows["flagged"].any() == bool(cmp.regressions)
            compared += 1
    assert compared == 2
    last = hist.table[hist.table["commit"] == "ccccccc2"].set_index("backend")
    assert (last.loc["jax", "slower"] > 0).all()  # the injected 1.5x is flagged
    assert last.loc["numpy", "status_changes"].sum() == 1  # and the failed run
    mid = hist.table[hist.table["commit"] == "bbbbbbb1"]
    assert not mid["flagged"].any()  # an identical copy is not


def test_a_speed_change_where_nothing_changed_is_noise_not_a_flag(tmp_path):
    """Two sweeps of one clean commit, same versions and threads: a 1.5x speed change
    between them is the machine's, counted, not flagged; a failed run still is; with a
    commit between them the same change is flagged."""
    a = _edit_env(make_results(tmp_path / "a", seeds=(0, 1, 2)), commit="c0")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    _edit_env(b, commit="c0", date="2026-11-21T08:00:00+00:00")
    _slow(b, "jax", 1.5)
    (step,) = build([str(a), str(b)], tmp_path).steps
    assert step.noise > 0 and not step.comparison.regressions
    rows = build([str(a), str(b)], tmp_path).table
    assert not rows["flagged"].any() and rows["slower"].sum() == 0
    assert (
        "not flagged: the same commit, versions and threads"
        in _points_table(build([str(a), str(b)], tmp_path), step.current.machine).iloc[1][
            "compare vs. the point before"
        ]
    )
    _fail_one(b, "numpy")
    assert build([str(a), str(b)], tmp_path).steps[0].comparison.by_kind["status"] == 1
    for change in ({"commit": "c1"}, {"threads_per_worker": 1}, {"packages": {"jax": "0.5"}}):
        _edit_env(b, date="2026-11-21T08:00:00+00:00", **{"commit": "c0", **change})
        (step,) = build([str(a), str(b)], tmp_path).steps
        assert step.noise == 0 and step.comparison.by_kind["throughput"] > 0, change
        _edit_env(b, commit="c0", threads_per_worker=2, packages={"jax": "0.4.30"})


def test_a_folder_without_common_runs_is_passed_over(tmp_path):
    """The folder before ran numpy only, this one jax only: this one is compared with the
    latest earlier folder that shares a run with it (the first), and its regression is
    flagged there, the partner named."""
    first = _edit_env(make_results(tmp_path / "first", seeds=(0, 1, 2)), commit="aaaaaaa0")
    mid, cur = tmp_path / "numpy-only", tmp_path / "jax-only"
    for path, commit, date in ((mid, "bbbbbbb1", "22"), (cur, "ccccccc2", "24")):
        shutil.copytree(first, path)
        _edit_env(path, commit=commit, date=f"2026-11-{date}T08:00:00+00:00")
    _only(mid, "numpy")
    _only(cur, "jax")
    _slow(cur, "jax", 1.5)
    _fail_one(cur, "jax")
    hist = build([str(first), str(mid), str(cur)], tmp_path)
    to_mid, to_cur = hist.steps
    assert to_cur.previous.path == first and to_cur.comparison is not None
    assert to_cur.comparison.by_kind["throughput"] > 0 and to_cur.comparison.by_kind["status"] == 1
    assert [p.path for p in to_cur.passed_over] == [mid]
    assert to_mid.previous.path == first and not to_mid.passed_over  # numpy runs in common
    assert not to_mid.comparison.regressions
    rows = hist.table[hist.table["folder"] == str(cur)]
    assert set(rows["previous_folder"]) == {str(first)} and rows["compared"].all()
    assert rows["flagged"].all() and set(rows["backend"]) == {"jax"}
    said = _points_table(hist, to_cur.current.machine).iloc[2]["compare vs. the point before"]
    assert str(first) in said and "slower" in said
    line = summary(hist)
    assert "3 point(s), 1 step(s) with a regression" in line
    assert f"latest ccccccc vs. aaaaaaa ({first}" in line
    (alone,) = build([str(mid), str(cur)], tmp_path).steps  # no earlier run in common
    assert alone.previous.path == mid and alone.comparison is None
    assert "no run of" in alone.error and not alone.passed_over


def test_version_changes_are_labelled_on_the_plot(hist, monkeypatch):
    assert version_change("torch", "2.12.1+cpu", "2.13.0+cpu") == "torch 2.12 -> 2.13"
    assert version_change("jax", "0.10.2", "0.10.3") == "jax 0.10.2 -> 0.10.3"
    assert (
        version_change("torch", "2.13.0+cpu", "2.13.0+cu124") == "torch 2.13.0+cpu -> 2.13.0+cu124"
    )
    assert version_change("torch", None, "2.13.0") == "torch none -> 2.13"
    cpu = next(p.machine for p in hist.points if p.commit == "ccccccc2")
    mine = [p for p in hist.points if p.machine == cpu]
    assert changes(mine[0], mine[1]) == ["jax 0.4 -> 0.5"]
    drawn = []
    text = matplotlib.axes.Axes.text
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "text",
        lambda ax, x, y, s, *a, **k: drawn.append(s) or text(ax, x, y, s, *a, **k),
    )
    figs = machine_figures(hist, mine[0].machine)
    assert len(figs) == 2 and all(f.uri.startswith("data:image/png;base64,") for f in figs)
    assert drawn.count("jax 0.4 -> 0.5") == 2  # on the jax panel of each batch size, only


def test_the_command_writes_the_page_and_the_table(results, tmp_path, capsys):
    before = _snapshot(results)
    out = tmp_path / "out"
    assert main(["history", "--results", str(results), "--out", str(out)]) == exitcodes.OK
    assert "history.html" in capsys.readouterr().out
    assert _snapshot(results) == before  # nothing written into results
    page = (out / "history.html").read_text()
    assert "jax 0.4 -&gt; 0.5" in page and "ccccccc2" not in page  # short commits on the page
    assert "ccccccc" in page and "slower" in page and "http" not in page
    assert page.count("<img src='data:image/png;base64,") == 4  # 2 machines x 2 batch sizes
    csv = pd.read_csv(out / "history.csv")
    assert len(csv) == 16 and {"machine", "date", "commit", "jax_version", "flagged"} <= set(csv)


def test_the_default_out_is_beside_the_results(results, tmp_path):
    res = tmp_path / "results"
    shutil.copytree(results / "baselines", res / "baselines")
    assert main(["history", "--results", str(res)]) == exitcodes.OK
    assert (res / "history-default" / "history.html").is_file()
    assert main(["history", "--results", str(res)]) == exitcodes.OK  # its own output: no folder


def _fails(capsys, *argv, says=()):
    assert main(["history", *map(str, argv)]) == exitcodes.BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("optbench history: error:")
    for s in says:
        assert str(s) in err, err
    return err


def test_bad_input_exits_2_and_writes_nothing(results, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, "nosuch", "--results", results, "--out", out, says=("'nosuch'", "smoke"))
    _fails(
        capsys,
        results / "default",
        results / "smoke",
        "--out",
        out,
        says=(results / "default", results / "smoke", "different sweeps"),
    )
    _fails(capsys, "default", results / "smoke", "--out", out)  # a name and a folder
    _fails(capsys, "--results", tmp_path / "none", "--out", out, says=("none",))
    _fails(capsys, results / "default", "--out", results / "default" / "h", says=("inside",))
    assert not out.exists() and not (results / "default" / "h").exists()


@pytest.mark.parametrize("damage", ["no environment.json", "truncated runs", "bad store.json"])
def test_an_unreadable_folder_of_the_sweep_is_named(tmp_path, capsys, damage):
    res = tmp_path / "results"
    _edit_env(make_results(res / "default.20261120T080000", batch_sizes=(32,), seeds=(0,)))
    bad = _edit_env(make_results(res / "default", batch_sizes=(32,), seeds=(0,)), commit="c1")
    if damage == "no environment.json":
        (bad / "environment.json").unlink()
    elif damage == "truncated runs":
        data = (bad / "runs.parquet").read_bytes()
        (bad / "runs.parquet").write_bytes(data[: len(data) // 2])
    else:
        (bad / "store.json").write_text("{")
    before = _snapshot(res)
    _fails(capsys, "--results", res, says=(bad,))
    assert _snapshot(res) == before and not (res / "history-default").exists()


def test_the_rings_are_drawn_around_the_flagged_steps(hist, monkeypatch):
    """What the history figure rings, captured at scatter: in red, exactly the points whose
    step compare calls slower (samples/s) or whose runs regressed (accuracy); nothing else."""
    from benchmarks.track.history import RED

    cpu = next(p.machine for p in hist.points if p.commit == "ccccccc2")
    rows = hist.table[hist.table["machine"] == cpu]
    drawn = []
    real = matplotlib.axes.Axes.scatter

    def scatter(ax, x, y, *args, **kwargs):
        if kwargs.get("facecolors") == "none":  # a ring
            drawn.extend((kwargs.get("edgecolors"), float(v)) for v in np.asarray(y, float))
        return real(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", scatter)
    machine_figures(hist, cpu)
    red = sorted(v for c, v in drawn if c == RED)
    want = sorted(
        [*rows.loc[rows["slower"] > 0, "samples_per_s"],
         *rows.loc[(rows["accuracy_drops"] + rows["status_changes"] > 0), "best_test_acc"].dropna()]
    )  # fmt: skip
    assert want and red == pytest.approx(want)

"""A quiet, honest console: an ETA that leaves out first-run compile time, progress while
parity measures, `run --dry-run`, `rerun RUN_ID`, `archives`, and an install without
deprecation noise from our own pyproject.toml."""

from __future__ import annotations

import dataclasses
import io
import math
import re
import shutil
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from backends import registry
from benchmarks.app.cli import main
from benchmarks.app.pipeline import describe_grid
from benchmarks.checks.parity import ParityConfig, run_parity
from benchmarks.record.sweep import load_sweep
from benchmarks.run.driver import Progress, estimate_seconds, format_duration, run_sweep
from tests.conftest import REPO, optbench_cmd
from tests.fakes import InlineExecutor


def snapshot(folder) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (hidden ones included) with its size and mtime."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def results(tiny, tmp_path):
    """A finished two-run sweep in results/tiny (in process: no worker)."""
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1]})
    return run_sweep(
        sweep, tmp_path / "results" / "tiny", quiet=True, executor=InlineExecutor()
    ).path


# --- the ETA ------------------------------------------------------------------------------


def row(backend="torch", batch_size=32, index=2, run_s=1.0, compile_s=0.01, device="cpu"):
    return {
        "backend": backend,
        "device": device,
        "batch_size": batch_size,
        "worker_run_index": index,
        "run_s": run_s,
        "compile_s": compile_s,
    }


def specs(tiny, backend="numpy", n=10, batch_size=32):
    sweep = load_sweep(tiny, {"learning_rates": [0.01 * (i + 1) for i in range(n)]})
    return [dataclasses.replace(s, backend=backend, batch_size=batch_size) for s in sweep.runs]


def test_eta_leaves_out_the_first_runs_compile(tiny):
    todo = specs(tiny, "torch")
    first = row(index=1, run_s=600.0, compile_s=590.0)  # torch.compile on a cold cache
    assert estimate_seconds([], todo) is None
    # only the first run so far: without its compile, not 10 x 600 s
    assert estimate_seconds([first], todo) == pytest.approx(10 * 10.0)
    # where the row says how long it trained and evaluated: that, less its first step (the
    # framework's import and the data loading stay out too)
    timed = {**first, "train_wall_s": 595.0, "eval_s": 0.5}
    assert estimate_seconds([timed], todo) == pytest.approx(10 * 5.5)
    # later runs there: the first one no longer counts
    done = [first, row(run_s=1.0), row(run_s=1.2), row(run_s=0.8)]
    assert estimate_seconds(done, todo) == pytest.approx(10 * 1.0)
    # a run that did not finish has no time
    failed = row(run_s=math.nan, index=math.nan, compile_s=math.nan)
    assert estimate_seconds([*done, failed], todo) == pytest.approx(10.0)
    # a dry run (every worker starts afresh) adds what the first run cost beyond the others,
    # once per backend and device
    assert estimate_seconds(done, todo, started=set()) == pytest.approx(10.0 + 599.0)


def test_eta_goes_by_the_most_alike_runs(tiny):
    done = [row(index=1, run_s=5.0, compile_s=4.0), row(run_s=2.0), row(batch_size=512, run_s=0.5)]
    assert estimate_seconds(done, specs(tiny, "torch", 4, batch_size=512)) == pytest.approx(2.0)
    # a batch size not seen yet: the backend's later runs (median of 2.0 and 0.5)
    assert estimate_seconds(done, specs(tiny, "torch", 2, batch_size=128)) == pytest.approx(2.5)
    # a backend not seen yet: the slowest backend seen at its batch size (torch's 2.0 s at
    # 32), and its worker's start-up priced as the dearest seen (torch's first run: 3 s more)
    est = estimate_seconds(done, specs(tiny, "jax", 3), started=set())
    assert est == pytest.approx(3 * 2.0 + 3.0)
    # while running: the cheap NumPy runs done, torch not started, the ETA prices torch's
    # runs as the slowest seen and adds a start-up (it read 22 s where 90 s were left)
    numpy_done = [row(index=1, run_s=1.0, compile_s=0.5), row(run_s=0.2), row(run_s=0.2)]
    for r in numpy_done:
        r["backend"] = "numpy"
    torch = specs(tiny, "torch", 4)
    assert estimate_seconds(numpy_done, torch) == pytest.approx(4 * 0.2 + 0.8)
    # and the progress line says that this is a floor
    stream = io.StringIO()
    progress = Progress([*specs(tiny, "numpy", 2), *torch], quiet=False, stream=stream)
    ok = {"status": "ok", "samples_per_s": 1e5, "final_test_acc": 0.9}
    progress.finish(progress.todo[0], {**numpy_done[0], **ok})
    line = stream.getvalue().rstrip()
    assert "(ETA >= " in line and line.endswith("s: torch not started yet)"), line


def test_progress_lines_carry_the_estimate(tiny):
    todo = specs(tiny, "torch", 4)
    stream = io.StringIO()
    progress = Progress(todo, quiet=False, stream=stream)
    ok = {"status": "ok", "samples_per_s": 1e5, "final_test_acc": 0.9}
    progress.finish(todo[0], {**row(index=1, run_s=300.0, compile_s=299.0), **ok})
    progress.finish(todo[1], {**row(run_s=2.0), **ok})
    lines = stream.getvalue().splitlines()
    # one of four runs is a fifth: settled, so without its interval
    assert lines[0].endswith("(ETA 3s)") and lines[1].endswith("(ETA 4s)")
    assert format_duration(0.2) == "<1s" and format_duration(3725) == "1h02m"
    assert format_duration(185) == "3m05s"


# --- progress while parity measures, and before the report -------------------------------


def test_parity_says_what_it_measures_as_it_goes(capsys):
    lines = []
    run_parity(["numpy"], ["eager"], ["sgd"], ParityConfig(steps=3), log=lines.append)
    assert lines[0] == "parity 1/1: numpy: measuring every optimizer on every eager path..."
    assert lines[1].startswith("parity 1/1: numpy: 1 of 1 within 2e-06 (")
    argv = ["parity", "--backend", "numpy", "--mode", "eager", "--optimizer", "sgd", "--steps", "3"]
    assert main(argv) == 0
    assert "parity 1/1: numpy: 1 of 1 within 2e-06" in capsys.readouterr().err
    assert main([*argv, "--quiet", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and out.out.lstrip().startswith("[")


# --- optbench run --dry-run ---------------------------------------------------------------


def test_dry_run_prints_the_grid_and_writes_nothing(capsys, tiny, tmp_path):
    out = tmp_path / "results" / "new"
    argv = ["run", "--sweep", tiny, "--dry-run", "--lr", "0.05,0.1", "--batch-size", "16,32"]
    assert main([*argv, "--mode", "eager,compiled", "--seeds", "2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "modes/compilers    2  numpy eager/default, compiled/default" in said
    assert "optimizers x lr    2  sgd 0.05, 0.1" in said
    assert "total             16  runs = 2 x 2 x 2 x 2" in said
    assert f"no estimate: no earlier results in {out}" in said
    assert not (tmp_path / "results").exists()  # no folder, no lock


def test_a_run_too_short_to_time_is_warned_of_before_it_runs(capsys, tmp_path):
    argv = ["run", "--sweep", "smoke", "--backend", "numpy", "--batch-size", "64,128"]
    assert main([*argv, "--dry-run", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "optbench run: warning:" in err and "batch 128" in err and "batch 64" not in err


def test_dry_run_estimates_from_earlier_results(capsys, tiny, results):
    before = snapshot(results.parent)
    argv = ["run", "--sweep", tiny, "--lr", "0.05,0.1,0.2", "--out", str(results), "--dry-run"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "estimated time: " in said and f"of the 2 runs in {results}" in said
    # --resume: what is left, or the refusal the run would give (another grid)
    assert main([*argv, "--resume"]) == 2
    assert "--resume would be refused" in capsys.readouterr().out
    same = ["run", "--sweep", tiny, "--lr", "0.05,0.1", "--out", str(results), "--dry-run"]
    assert main([*same, "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"--resume: 2 finished in {results}, 0 to run" in said and "nothing to run" in said
    assert snapshot(results.parent) == before  # nothing archived, locked or written


def test_describe_grid_counts_every_axis(tiny):
    sweep = load_sweep(tiny, {"batch_sizes": [8, 16, 32], "learning_rates": [0.1]})
    text = describe_grid(sweep, "results/x")
    assert "batch sizes        3  8, 16, 32" in text and "total              3  runs" in text


# --- optbench rerun ---------------------------------------------------------------------


@pytest.mark.slow  # end to end through several commands (CI runs the slow set)
def test_rerun_runs_one_stored_run_in_the_foreground(cli_env, tiny, tmp_path):
    out = tmp_path / "r"
    cmd = optbench_cmd("run", "--sweep", tiny, "--backend", "numpy,raising", "--out", str(out))
    made = subprocess.run([*cmd, "--quiet"], env=cli_env, capture_output=True, text=True)
    assert made.returncode == 1, made.stderr  # the raising backend's run failed
    runs = pd.read_parquet(out / "runs.parquet").set_index("backend")
    before = snapshot(tmp_path)

    def rerun(*args):
        cmd = optbench_cmd("rerun", *args, "--results", str(out))
        return subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)

    listed = rerun("--list", "--failed")
    assert listed.returncode == 0 and runs.loc["raising", "run_id"] in listed.stdout
    assert runs.loc["numpy", "run_id"] not in listed.stdout
    failed = rerun(runs.loc["raising", "run_id"])  # the whole traceback, here
    assert failed.returncode == 1
    assert "Traceback (most recent call last)" in failed.stderr
    assert 'raise RuntimeError("injected failure at step 3")' in failed.stderr
    assert "stored: error: RuntimeError: injected failure at step 3" in failed.stderr
    ok = rerun(runs.loc["numpy", "run_id"])
    assert ok.returncode == 0, ok.stderr
    assert f"test acc {runs.loc['numpy', 'final_test_acc']:.4f}" in ok.stdout  # the same math
    unknown = rerun("0123456789ab")
    assert unknown.returncode == 2 and "no run '0123456789ab'" in unknown.stderr
    assert "optbench rerun --list" in unknown.stderr and "Traceback" not in unknown.stderr
    assert snapshot(tmp_path) == before  # nothing written into the results folder


def test_rerun_list_failed_says_when_nothing_failed(tmp_path):
    from benchmarks.run.rerun import listing
    from tests.synthetic_results import make_results

    out = make_results(tmp_path / "r", diverge=())
    assert listing(out, failed_only=True) == f"no failed run in {out}"
    runs = pd.read_parquet(out / "runs.parquet")
    runs.loc[:1, "status"] = "skipped"  # skipped did not fail: said, not listed
    runs.to_parquet(out / "runs.parquet")
    assert listing(out, failed_only=True) == f"no failed run in {out} (2 skipped, listed by --list)"


# --- optbench archives ------------------------------------------------------------------

STAMPS = ("tiny.20261101T000000", "tiny.20261102T000000", "tiny.20261103T000000")


@pytest.fixture
def archived(results):
    for name in (*STAMPS, "other.20261101T000000"):
        shutil.copytree(results, results.parent / name)
    return results.parent


def test_archives_are_listed_and_pruned_newest_kept(capsys, archived):
    assert main(["archives", "--results", str(archived), "--keep", "1"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in listed[1:-1]] == ["other", "tiny", "tiny", "tiny"]
    assert listed[1].split()[1:4] == ["2026-11-01", "00:00:00", "2"]  # name, date, runs, size
    assert [ln.endswith("would be pruned") for ln in listed[1:-1]] == [False, False, True, True]
    assert main(["archives", "--results", str(archived), "--prune"]) == 2  # --keep is needed
    assert "--prune needs --keep N" in capsys.readouterr().err
    assert main(["archives", "--results", str(archived), "--prune", "--keep", "1"]) == 0
    assert "2 archive(s) deleted" in capsys.readouterr().out
    left = sorted(p.name for p in archived.iterdir() if not p.name.startswith("."))
    assert left == ["latest", "other.20261101T000000", "tiny", "tiny.20261103T000000"]
    assert not list(archived.glob(f".{STAMPS[0]}.lock*"))  # no lock files left behind


def test_pruning_never_touches_a_locked_archive(capsys, archived):
    locked = archived / STAMPS[0]
    code = (
        "import time\nfrom benchmarks.record.store import writing\n"
        f"with writing({str(locked)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        before = snapshot(locked)
        assert main(["archives", "--results", str(archived)]) == 0
        assert "locked: host" in capsys.readouterr().out
        assert main(["archives", "--results", str(archived), "--prune", "--keep", "0"]) == 0
        out = capsys.readouterr()
        assert f"kept {locked}: another optbench run is writing it" in out.err
        assert f"PID {holder.pid}" in out.err and "3 archive(s) deleted" in out.out
        assert snapshot(locked) == before
    finally:
        holder.kill()
        holder.wait()


# --- the install ------------------------------------------------------------------------


def test_pyproject_gives_setuptools_nothing_to_warn_about(monkeypatch):
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration

    monkeypatch.chdir(REPO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(setuptools.Distribution(), REPO / "pyproject.toml")
    assert [str(w.message).splitlines()[0] for w in caught] == []
    assert dist.metadata.license_expression == "MIT"
    assert not [c for c in dist.metadata.classifiers or [] if c.startswith("License ::")]


def test_the_eta_is_within_30_percent_of_what_was_left_after_a_fifth_of_the_runs():
    """The committed baseline's two sweeps of one commit (every backend, 168 runs): the
    first is the earlier sweep into the folder, the second is fed in run by run in its
    backends' order (NumPy's cheap runs first, as the sweep ran them). After 20% of the
    runs the ETA is within 30% of the run time that was left; priced from the finished
    runs alone (NumPy's), it read 22 s where 90 s were left."""
    from benchmarks.record.schema import RunSpec

    base = REPO / "results" / "baselines" / "default-2core-cpu"
    first = pd.read_parquet(base / "repeats" / "1" / "runs.parquet")
    second = pd.read_parquet(base / "runs.parquet")
    order = {n: i for i, n in enumerate(registry.NAMES)}
    second = second.sort_values(
        ["backend", "worker_run_index"], key=lambda c: c.map(order) if c.name == "backend" else c
    ).reset_index(drop=True)
    todo = [RunSpec.from_row(r) for r in second.to_dict("records")]
    progress = Progress(todo, quiet=True, prior=first.to_dict("records"))
    cut = len(todo) // 5
    for spec, row in zip(todo[:cut], second.to_dict("records")[:cut]):
        progress.finish(spec, row)
    left = float(second["run_s"].iloc[cut:].sum())
    eta, unseen = progress.seconds_left()
    assert abs(eta - left) <= 0.3 * left and unseen == [], (eta, left)
    # without the earlier sweep: the floor, said so
    alone = Progress(todo, quiet=True)
    for spec, row in zip(todo[:cut], second.to_dict("records")[:cut]):
        alone.finish(spec, row)
    assert alone._eta().startswith("ETA >= ") and "not started yet" in alone._eta()


def test_the_eta_interval_holds_what_was_left_until_it_settles():
    """The committed baseline's second sweep fed in run by run, the first as the earlier
    sweep: while the ETA shows its interval (until a fifth of the runs, or 5 of every
    backend), the run time actually left lies inside it after every run; the line says so,
    and drops the interval once settled."""
    from benchmarks.record.schema import RunSpec

    base = REPO / "results" / "baselines" / "default-2core-cpu"
    first = pd.read_parquet(base / "repeats" / "1" / "runs.parquet")
    second = pd.read_parquet(base / "runs.parquet")
    order = {n: i for i, n in enumerate(registry.NAMES)}
    second = second.sort_values(
        ["backend", "worker_run_index"], key=lambda c: c.map(order) if c.name == "backend" else c
    ).reset_index(drop=True)
    rows = second.to_dict("records")
    todo = [RunSpec.from_row(r) for r in rows]
    progress = Progress(todo, quiet=True, prior=first.to_dict("records"))
    shown = 0
    for i, (spec, r) in enumerate(zip(todo, rows)):
        progress.finish(spec, r)
        if progress.settled():
            assert "(" not in progress._eta(), progress._eta()
            break
        left = float(second["run_s"].iloc[i + 1 :].sum())
        eta, _ = progress.seconds_left()
        lo, hi = progress.interval(eta)
        assert lo <= left <= hi, (i + 1, lo, left, hi)
        assert hi / lo < 6, (lo, hi)  # an interval that says something
        assert re.fullmatch(r"ETA \S+ \(\S+-\S+\)", progress._eta()), progress._eta()
        shown += 1
    assert shown == math.ceil(0.2 * len(todo)) - 1  # until a fifth had finished

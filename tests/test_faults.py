"""Faults a user meets, one test each: a second writer, a driver killed with kill -9,
damaged tables, an unwritable parent, bad command-line values, a GPU request with no GPU.
Each gets a clear message and the right exit code, and loses or mixes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from benchmarks.app.cli import main
from benchmarks.core import environment
from benchmarks.record import store
from benchmarks.record.files import UMASK
from benchmarks.record.store import Store, StoreError, writing
from benchmarks.record.sweep import load_sweep
from benchmarks.run.driver import run_sweep
from benchmarks.run.worker import Worker, WorkerTimeout
from tests.conftest import REPO
from tests.fakes import InlineExecutor


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def results(tiny, tmp_path) -> Path:
    """A finished two-run sweep (in process: no worker)."""
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1]})
    return run_sweep(sweep, tmp_path / "r", quiet=True, executor=InlineExecutor()).path


def _holder(path: Path) -> subprocess.Popen:
    """Another process holding ``path``'s writer lock, as a running sweep does."""
    code = (
        "import sys, time\nfrom benchmarks.record.store import writing\n"
        f"with writing({str(path)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


# --- one writer per results folder -------------------------------------------------------


def test_a_second_run_into_a_busy_folder_refuses_and_touches_nothing(capsys, tiny, results):
    before = snapshot(results)
    holder = _holder(results)
    try:
        code, err = run_cli(capsys, "run", "--sweep", tiny, "--out", str(results), "--quiet")
        assert code == 2
        assert f"PID {holder.pid}" in err and "is being written by another optbench run" in err
        code, err = run_cli(capsys, "run", "--sweep", tiny, "--out", str(results), "--resume")
        assert code == 2 and f"PID {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    assert snapshot(results) == before  # nothing archived, nothing written
    assert [p.name for p in results.parent.iterdir() if p.name.startswith("r.")] == []


def test_results_latest_is_the_folder_a_running_sweep_holds(capsys, cli_env, tiny, tmp_path):
    """A real ``optbench run`` writing results/NAME (its run waiting at the gated fake's
    gate), while results/latest points there: a run into results/latest is refused, as one
    into results/NAME is, and touches nothing."""
    sweep = load_sweep(tiny)
    results = run_sweep(
        sweep, tmp_path / "results" / "tiny", quiet=True, executor=InlineExecutor()
    ).path
    latest = results.parent / "latest"
    assert latest.resolve() == results.resolve()  # the finished sweep pointed it there
    gate = results.parent / "gate"
    env = {**cli_env, "OPTBENCH_TEST_GATE": str(gate), "OPTBENCH_TEST_GATE_AFTER": "0"}
    running = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.app.cli", "run", "--sweep", tiny, "--backend", "gated",
         "--out", str(results), "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not (results.parent / f".{results.name}.lock.json").exists():  # it holds it
            assert running.poll() is None, running.stderr.read()
            time.sleep(0.01)
        while not (gate.parent / "gate.count").exists():  # its run has started
            time.sleep(0.01)
        before = snapshot(results)
        code, err = run_cli(capsys, "run", "--sweep", tiny, "--out", str(latest), "--quiet")
        assert code == 2 and "is being written by another optbench run" in err, err
        assert f"PID {running.pid}" in err
        assert snapshot(results) == before
    finally:
        gate.touch()
        running.communicate(timeout=120)
    assert running.returncode == 0


def test_a_lock_dies_with_its_holder(tmp_path):
    holder = _holder(tmp_path / "r")
    holder.send_signal(signal.SIGKILL)  # what is left: a record, and no flock
    holder.wait()
    with writing(tmp_path / "r"):
        record = json.loads((tmp_path / ".r.lock.json").read_text())
        assert record["pid"] == os.getpid()
        with writing(tmp_path / "r"):  # nested in one process: taken once
            pass
        assert (tmp_path / ".r.lock.json").exists()
    assert not (tmp_path / ".r.lock.json").exists()


def test_archiving_into_an_unwritable_parent_is_a_clear_error(capsys, tiny, results, monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "archive", refuse)
    before = snapshot(results)
    code, err = run_cli(capsys, "run", "--sweep", tiny, "--out", str(results), "--quiet")
    assert code == 2 and "cannot move the earlier results" in err and "Permission denied" in err
    assert snapshot(results) == before


def test_a_parent_where_no_lock_can_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not writable"):
        with writing(tmp_path / "file" / "r"):
            pass


# --- workers die with their driver --------------------------------------------------------


def _wait_for_file(path, proc, limit: float = 120) -> None:
    """Until ``path`` exists (an event the process makes), failing if ``proc`` ends first."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the task never started"
        time.sleep(0.01)


def test_killing_the_driver_leaves_no_worker(tmp_path):
    started = tmp_path / "started"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from benchmarks.run.worker import Worker\n"
            "w = Worker(threads=1, label='orphan')\nw.start()\nprint(w._proc.pid, flush=True)\n"
            f"w.call('tests.fakes:sleep', {{'seconds': 120, 'started': {str(started)!r}}}, "
            "timeout=600)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = psutil.Process(int(driver.stdout.readline()))
    _wait_for_file(started, driver)  # the task is running
    driver.kill()
    driver.wait()
    # dead (or a zombie its new parent reaps) long before its task's 120 s: the watch is on
    # the event, the limit only for a worker that never goes
    deadline = time.monotonic() + 60
    while True:
        try:
            if worker.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        if time.monotonic() > deadline:
            worker.kill()
            raise AssertionError("the worker outlived its driver by 60 s")
        time.sleep(0.05)


def test_a_worker_ends_a_task_far_past_its_timeout_itself(monkeypatch):
    # a grace below zero: the worker's own deadline comes before the driver's
    monkeypatch.setattr("benchmarks.run.worker.SELF_TIMEOUT_GRACE_S", -2.5)
    with Worker(threads=1, label="stuck") as w:
        w.call("tests.fakes:sleep", {"seconds": 0}, timeout=60)  # started and ready
        t0 = time.monotonic()
        with pytest.raises(WorkerTimeout, match="the worker ended itself"):
            w.call("tests.fakes:sleep", {"seconds": 60}, timeout=3.0)
        assert time.monotonic() - t0 < 2.5


# --- readers never mistake damage for data ------------------------------------------------


def _flip_footer(f: Path) -> None:
    data = bytearray(f.read_bytes())
    for i in range(len(data) - 40, len(data) - 8):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))


DAMAGE = {
    "missing": lambda f: f.unlink(),
    "truncated": lambda f: f.write_bytes(f.read_bytes()[:100]),
    "corrupt footer": _flip_footer,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_report_and_compare_rebuild_damaged_tables_from_parts(capsys, tmp_path, results, damage):
    intact = tmp_path / "intact"
    shutil.copytree(results, intact)
    for t in ("runs", "timings"):
        DAMAGE[damage](results / f"{t}.parquet")
    tables = {f: f.read_bytes() for f in results.glob("*.parquet")}
    code, _ = run_cli(capsys, "report", str(results))
    assert code == 0
    md = (results / "report.md").read_text()
    assert "rebuilt from parts/ (2 runs)" in md and "2 / 0 / 0" in md
    assert {f: f.read_bytes() for f in results.glob("*.parquet")} == tables  # readers never write
    code = main(["compare", str(intact), str(results)])
    out = capsys.readouterr().out
    assert code == 0 and "2 runs matched" in out and "current: " in out and "OK: 0" in out


def test_tables_behind_their_parts_are_rebuilt(results):
    runs = pd.read_parquet(results / "runs.parquet")
    runs.iloc[:1].to_parquet(results / "runs.parquet")  # a driver killed before consolidating
    s = Store.open(results)
    assert len(s.table("runs")) == 2 and "lacks runs that parts/ holds" in s.notes[0]


@pytest.mark.parametrize("damage", DAMAGE)
def test_without_parts_a_damaged_table_is_bad_input_naming_the_fix(capsys, results, damage):
    shutil.rmtree(results / "parts")
    DAMAGE[damage](results / "runs.parquet")
    for cmd in (["report", str(results)], ["compare", str(results), str(results)]):
        code, err = run_cli(capsys, *cmd)
        said = "missing" if damage == "missing" else "unreadable"
        assert code == 2 and f"runs.parquet is {said}" in err
        assert re.search(r"optbench run --sweep \S+tiny.toml --out \S+ --resume", err)
    assert not (results / "report.html").exists()


def test_an_unreadable_table_is_no_traceback(capsys, results, monkeypatch):
    real = pd.read_parquet

    def denied(path, *args, **kwargs):
        if Path(path).parent == results:  # the consolidated tables, not the parts
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store.pd, "read_parquet", denied)
    code, _ = run_cli(capsys, "report", str(results))
    assert code == 0
    assert (
        "runs.parquet is unreadable (PermissionError: Permission denied)"
        in (results / "report.md").read_text()
    )


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--seeds", "0"], "command line (--seeds): --seeds 0 is invalid; expected a count >= 1"),
        (["--seeds", "-1"], "command line (--seeds): --seeds -1 is invalid"),
        (["--seed", "-1"], "command line (--seed): seeds = -1 is invalid"),
        (["--timeout", "0"], "command line (--timeout): timing.timeout_s = 0.0 is invalid"),
        (
            ["--name", "../../elsewhere"],
            "command line (--name): name = '../../elsewhere' is invalid",
        ),
        (["--name", ".."], "command line (--name): name = '..' is invalid"),
    ],
)
def test_bad_values_name_their_option(capsys, tiny, tmp_path, argv, needle):
    code, err = run_cli(capsys, "run", "--sweep", tiny, *argv)
    assert code == 2 and needle in err and "tiny.toml" not in err
    assert not (tmp_path / "elsewhere").exists() and not Path("results", "tiny").exists()


def test_one_chosen_seed(tiny):
    assert {r.seed for r in load_sweep(tiny, {"seeds": [7]}).runs} == {7}
    assert {r.seed for r in load_sweep(tiny, {"seeds": 2}).runs} == {0, 1}


def test_a_text_file_named_npz_is_not_an_archive(capsys, tiny, tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    code, err = run_cli(capsys, "run", "--sweep", tiny, "--dataset", f"npz:{tmp_path / 'x.npz'}")
    assert code == 2 and "is not an .npz archive" in err and "pickle" not in err


def test_results_are_readable_by_others(results):
    files = [p for p in results.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o666 & ~UMASK for p in files)
    folders = [results, *(p for p in results.rglob("*") if p.is_dir())]
    assert all(p.stat().st_mode & 0o777 == 0o777 & ~UMASK for p in folders)


def test_a_resume_refusal_says_what_changed(tiny, tmp_path):
    def fingerprint(lrs):
        runs = load_sweep(tiny, {"learning_rates": lrs}).runs
        return environment.fingerprint({"threads_per_worker": 2}, runs)

    Store.create(tmp_path / "r", "tiny", resume=False, fingerprint=fingerprint([0.05, 0.1]))
    with pytest.raises(StoreError) as e:
        Store.create(tmp_path / "r", "tiny", resume=True, fingerprint=fingerprint([0.05, 0.2]))
    assert "other conditions (lr: 0.2 added; 0.1 dropped)" in str(e.value)
    Store.create(tmp_path / "r", "tiny", resume=True, fingerprint=fingerprint([0.1, 0.05]))


def test_every_make_target_that_runs_a_sweep_honours_resume():
    recipes = re.findall(r"^(\S+):.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    sweeps = {t: r for t, r in recipes if "optbench run" in r}
    assert {"bench", "smoke"} <= set(sweeps)
    for target, recipe in sweeps.items():
        assert "$(if $(RESUME),--resume)" in recipe, target


def test_parity_on_a_missing_gpu_skips_each_backend_once(capsys, monkeypatch):
    monkeypatch.setattr(environment, "gpu_present", lambda: True)  # a GPU no backend sees
    code = main(["parity", "--backend", "numpy,numpy", "--device", "gpu", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 2
    assert [(r["backend"], r["variant"]) for r in rows] == [("numpy", "skipped")]
    assert rows[0]["ok"] is None and "numpy sees no gpu here" in rows[0]["error"]

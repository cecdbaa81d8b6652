"""The Dask executor on a real cluster on 127.0.0.1: the same rows as local workers, a Dask
worker killed mid-sweep (nothing lost, nothing written twice), Ctrl-C and resume, an
unreachable scheduler (a clear error, exit 2, quickly), npz data files sent with the tasks,
each row's host hardware, and progress lines that name the worker."""

from __future__ import annotations

import glob
import io
import os
import pickle
import signal
import socket
import tempfile
import time
from collections import Counter

import numpy as np
import pandas as pd
import psutil
import pytest

from benchmarks.core import environment, exitcodes
from benchmarks.record.data import DataError
from benchmarks.record.schema import RunSpec, Status, failed_record
from benchmarks.record.sweep import load_sweep
from benchmarks.run.driver import Progress, run_sweep
from benchmarks.run.execute import Executor, LocalExecutor, work_units

distributed = pytest.importorskip(
    "distributed", reason="Dask distributed not installed: pip install -e '.[dask]'"
)
from benchmarks.run import dask_executor  # noqa: E402 - needs distributed
from benchmarks.run.dask_executor import DaskExecutor  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def local_cluster():
    return distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    )


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as c:
        yield c


@pytest.fixture
def executor(cluster):
    with DaskExecutor.connect(cluster.scheduler_address, threads=1, log=lambda m: None) as ex:
        yield ex


def framework_processes(ex: DaskExecutor) -> list[psutil.Process]:
    """The framework processes the cluster's Dask workers have started (spawned children)."""
    out = []
    for pid in ex.client.run(os.getpid).values():
        for p in psutil.Process(pid).children():
            try:  # a killed process not yet reaped is a zombie: dead, as wanted
                if "resource_tracker" not in " ".join(p.cmdline()):
                    out.append(p)
            except (psutil.ZombieProcess, psutil.NoSuchProcess):
                pass
    return out


def kill_dask_worker(ex: DaskExecutor) -> list[int]:
    """SIGKILL the cluster's (one) Dask worker process, as the OOM killer would; returns the
    framework processes it had started (they must die with it)."""
    doomed = [p.pid for p in framework_processes(ex)]
    (pid,) = ex.client.run(os.getpid).values()
    os.kill(pid, signal.SIGKILL)
    return doomed


def rows(path) -> pd.DataFrame:
    return pd.read_parquet(path / "runs.parquet").set_index("run_id").sort_index()


def test_a_sweep_on_the_cluster_gives_the_rows_of_a_local_one(tiny, tmp_path, executor):
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1], "seeds": [0, 1]})
    run_sweep(sweep, tmp_path / "local", quiet=True, executor=LocalExecutor(threads=1))
    landed = []
    result = run_sweep(
        sweep, tmp_path / "dask", quiet=True, executor=executor, on_result=landed.append
    )
    assert result.counts == {"ok": 4}
    assert sorted(r["run"]["run_id"] for r in landed) == sorted(s.run_id for s in sweep.runs)
    here, there = rows(tmp_path / "local"), rows(tmp_path / "dask")
    assert list(there.index) == list(here.index)
    assert there["status"].tolist() == here["status"].tolist()
    for col in ("final_train_loss", "final_test_loss", "final_test_acc", "steps"):
        assert there[col].to_numpy() == pytest.approx(here[col].to_numpy(), rel=1e-6), col
    assert set(there["host"]) == {socket.gethostname()} == set(here["host"])
    assert (there["threads"] == 1).all()
    # the curves and the block timings too (a result that lost its timings would pass above)
    for table, key, cols in (
        ("curves", ["run_id", "step"], ["epoch", "train_loss", "test_loss", "test_acc", "val_acc"]),
        ("timings", ["run_id", "block"], ["phase", "steps"]),
    ):
        a, b = (
            pd.read_parquet(p / f"{table}.parquet") for p in (tmp_path / "local", tmp_path / "dask")
        )
        a, b = (t.sort_values(key).reset_index(drop=True) for t in (a, b))
        assert len(b) == len(a) > 0, table
        assert b[key].equals(a[key]), table
        for col in cols:
            if a[col].dtype.kind == "f":
                assert b[col].to_numpy() == pytest.approx(a[col].to_numpy(), rel=1e-6, nan_ok=True)
            else:
                assert b[col].tolist() == a[col].tolist(), (table, col)
    timed = pd.read_parquet(tmp_path / "dask" / "timings.parquet")
    assert (timed["seconds"] > 0).all()
    # the worker's host hardware beside each run (on loopback: this machine's)
    env = environment.capture()
    assert set(there["cpu_model"]) == {env["cpu_model"]}
    assert set(there["cpu_cores"]) == {env["cpu_cores_physical"]}
    assert set(there["gpu_name"]) == {", ".join(dict.fromkeys(g["name"] for g in env["gpus"]))}
    # the framework process closed with its unit
    assert not framework_processes(executor)


class CallingAtStart(Executor):
    """Passes through to ``inner``, calling ``at_start(spec)`` as each run starts."""

    def __init__(self, inner, at_start):
        self.inner, self.at_start = inner, at_start

    def run(self, units, on_start=None):
        def started(spec, *where):
            self.at_start(spec)
            if on_start is not None:
                on_start(spec, *where)

        return self.inner.run(units, started)


def test_ctrl_c_stops_the_cluster_runs_and_resume_finishes_them(tiny, tmp_path, executor):
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1, 0.2], "max_steps": 30})
    out = tmp_path / "r"

    def interrupt(result):
        raise KeyboardInterrupt  # as Ctrl-C in the driver's loop, after the first run landed

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, out, quiet=True, executor=executor, on_result=interrupt)
    assert len(rows(out)) == 1
    # the unit's framework process is killed (not left to finish its run), its task ends
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        framework_processes(executor) or any(executor.client.processing().values())
    ):
        time.sleep(0.1)
    assert not framework_processes(executor)
    assert not any(executor.client.processing().values())
    again = run_sweep(sweep, out, resume=True, quiet=True, executor=executor)
    assert again.skipped_existing == 1 and again.ran == 2 and again.counts == {"ok": 3}
    assert sorted(rows(out).index) == sorted(s.run_id for s in sweep.runs)


def test_a_dask_worker_killed_mid_unit_loses_nothing_and_writes_nothing_twice(
    tiny, tmp_path, fakes
):
    """The Dask worker dies in the middle of a run: its framework process dies with it, the
    scheduler runs the unit again on the worker the nanny restarts, and every run lands
    once: the interrupted (hanging) run times out there, the next unit runs as usual."""
    sweep = load_sweep(tiny, {"backends": ["hanging", "numpy"], "timeout_s": 3.0})
    killed: list[int] = []

    with (
        local_cluster() as cluster,
        DaskExecutor.connect(cluster.scheduler_address, threads=1, log=lambda m: None) as ex,
    ):

        def kill_once(spec):
            if killed or spec.backend != "hanging":
                return
            deadline = time.monotonic() + 60  # into the run: its framework process is up
            while not framework_processes(ex) and time.monotonic() < deadline:
                time.sleep(0.05)
            killed.extend(kill_dask_worker(ex))
            assert killed, "the hanging run's framework process"

        landed = []
        result = run_sweep(
            sweep,
            tmp_path / "r",
            quiet=True,
            executor=CallingAtStart(ex, kill_once),
            on_result=landed.append,
        )
    assert killed
    assert not [pid for pid in killed if psutil.pid_exists(pid)]  # died with its Dask worker
    ids = Counter(r["run"]["run_id"] for r in landed)
    assert sorted(ids) == sorted(s.run_id for s in sweep.runs) and set(ids.values()) == {1}
    runs = rows(tmp_path / "r")
    assert runs.groupby("backend")["status"].agg(set).to_dict() == {
        "hanging": {"timeout"},
        "numpy": {"ok"},
    }
    assert result.counts == {"ok": 1, "timeout": 1}


def test_runs_delivered_before_a_dask_worker_died_are_not_run_or_written_again(tiny, tmp_path):
    """The Dask worker dies as the unit's second run starts (or, on a busy machine, later):
    the unit's task runs again on the restarted worker (with the data file it was sent,
    held by the scheduler, not the dead worker), and each run lands once."""
    name = write_npz(tmp_path / "mine.npz")
    sweep = load_sweep(
        tiny, {"learning_rates": [0.05, 0.1, 0.2, 0.3], "max_steps": 60, "dataset": name}
    )
    landed: list[dict] = []
    killed: list[RunSpec] = []
    with (
        local_cluster() as cluster,
        DaskExecutor.connect(cluster.scheduler_address, threads=1, log=lambda m: None) as ex,
    ):

        def kill_at_the_second(spec):
            # once: where the death lands before the run is delivered, the task run again
            # starts it again, and a second death each time would exhaust allowed-failures
            if spec == sweep.runs[1] and not killed:
                killed.append(spec)
                kill_dask_worker(ex)

        result = run_sweep(
            sweep,
            tmp_path / "r",
            quiet=True,
            executor=CallingAtStart(ex, kill_at_the_second),
            on_result=landed.append,
        )
    assert killed
    ids = Counter(r["run"]["run_id"] for r in landed)
    assert sorted(ids) == sorted(s.run_id for s in sweep.runs) and set(ids.values()) == {1}
    assert result.counts == {"ok": 4} and {r["run"]["dataset"] for r in landed} == {name}


def test_a_unit_task_run_again_skips_the_runs_already_delivered(tiny, executor):
    """What the scheduler's retry of a unit task does (test above, where the timing of the
    death decides which path runs): the runs an earlier attempt delivered are skipped, the
    rest start in a fresh framework process."""
    from distributed import Queue, Variable

    (unit,) = work_units(load_sweep(tiny, {"learning_rates": [0.05, 0.1, 0.2]}).runs)
    client, token = executor.client, "retry-test"
    Variable(dask_executor.noted_name(token, 0), client=client).set([unit.specs[0].run_id])
    task = client.submit(
        dask_executor.run_unit, unit, token=token, index=0, threads=1, plan={}, pure=False
    )
    assert task.result() == 2
    queue = Queue(dask_executor.queue_name(token), client=client)
    results = [p for kind, _, p in map(pickle.loads, queue.get(batch=True)) if kind == "result"]
    assert [r["run"]["run_id"] for r in results] == [s.run_id for s in unit.specs[1:]]
    assert [r["run"]["worker_run_index"] for r in results] == [1, 2]


def test_dask_workers_of_one_host_get_cpus_of_their_own():
    """`dask worker --nworkers 2` on one host: each worker's runs are pinned to CPUs of
    their own (not both to the first), threads per run = cores / worker threads."""
    cpus = sorted(os.sched_getaffinity(0))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        DaskExecutor.connect(cluster.scheduler_address, log=lambda m: None) as ex,
    ):
        plan = ex._placement()
    per_run = max(1, min(psutil.cpu_count(logical=False) or len(cpus), len(cpus)) // 2)
    assert {threads for threads, _ in plan.values()} == {per_run}
    blocks = [block for _, block in plan.values()]
    assert len(blocks) == 2 and all(len(b) == per_run for b in blocks)
    if len(cpus) >= 2:
        assert not set(blocks[0]) & set(blocks[1])


def test_runs_of_a_unit_the_scheduler_gave_up_on_are_recorded_crashed(tiny):
    class GaveUp:  # a unit task's future after its workers died allowed-failures + 1 times
        def result(self):
            raise distributed.KilledWorker("optbench-numpy-cpu-0-x", None, 3)

    (unit,) = work_units(load_sweep(tiny, {"learning_rates": [0.05, 0.1]}).runs)
    left = {s.run_id: s for s in unit.specs[1:]}  # the first was delivered
    (out,) = dask_executor._undelivered(unit, GaveUp(), left, "node7")
    spec, record = out
    assert spec == unit.specs[1] and record["run"]["status"] == "crashed"
    assert "died 4 times" in record["run"]["error"] and record["run"]["host"] == "node7"


def test_an_unreachable_scheduler_is_a_clear_error_quickly(tiny, tmp_path, capsys, monkeypatch):
    from benchmarks.app.cli import main
    from benchmarks.run import dask_connect

    assert dask_connect.CONNECT_TIMEOUT_S <= 10
    monkeypatch.setattr(dask_connect, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "r"
    t0 = time.monotonic()
    code = main(["run", "--sweep", tiny, "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == exitcodes.BAD_INPUT and took < 10
    assert "no Dask scheduler answered at tcp://127.0.0.1:1" in err and "dask scheduler" in err
    assert "Traceback" not in err and not out.exists()  # nothing touched


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--executor", "dask"], "--executor dask needs --scheduler"),
        (["--scheduler", "nonsense"], "is not a Dask scheduler address"),
        (["--executor", "local", "--scheduler", "tcp://h:1"], "--scheduler is for --executor dask"),
    ],
)
def test_bad_executor_options_are_bad_input(tiny, tmp_path, capsys, argv, needle):
    from benchmarks.app.cli import main

    code = main(["run", "--sweep", tiny, "--out", str(tmp_path / "r"), *argv])
    assert code == exitcodes.BAD_INPUT and needle in capsys.readouterr().err


def test_a_gpu_unit_no_worker_can_take_is_skipped_after_the_stated_wait(tiny, cluster):
    """The loopback cluster offers no GPU resource: after the wait, the GPU unit's runs are
    recorded skipped with the reason, the CPU unit runs as usual."""
    import dataclasses

    cpu = load_sweep(tiny, {"seeds": [0, 1]}).runs
    gpu = [dataclasses.replace(s, device="gpu") for s in cpu]
    with DaskExecutor.connect(
        cluster.scheduler_address, threads=1, log=lambda m: None, resource_wait_s=1.0
    ) as ex:
        t0 = time.monotonic()
        got = list(ex.run(work_units(gpu + cpu)))
    assert time.monotonic() - t0 < 60
    status = Counter((s.device, r["run"]["status"]) for s, r in got)
    assert len(cpu) == 2 and status == {("gpu", "skipped"): 2, ("cpu", "ok"): 2}
    reason = next(r["run"]["error"] for s, r in got if s.device == "gpu")
    assert "no Dask worker offers a GPU after 1 s" in reason and "--resources GPU=1" in reason


# --- data files, host hardware and progress ------------------------------------------------


def write_npz(path) -> str:
    """A small npz data set (three classes, eight features) at ``path``; its dataset name."""
    rng = np.random.default_rng(3)
    y_train, y_test = np.arange(240) % 3, np.arange(60) % 3
    np.savez(
        path,
        x_train=rng.standard_normal((240, 8)) + y_train[:, None],
        y_train=y_train,
        x_test=rng.standard_normal((60, 8)) + y_test[:, None],
        y_test=y_test,
    )
    return f"npz:{path}"


def data_folders() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "optbench-data-*")))


def test_an_npz_data_set_travels_with_the_tasks(tiny, tmp_path, executor):
    """The file is read once, before the tasks start, and moved away before they run: the
    runs read the bytes they were sent, and give the rows of the same file run locally."""
    path = tmp_path / "mine.npz"
    name = write_npz(path)
    sweep = load_sweep(tiny, {"dataset": name, "learning_rates": [0.05, 0.1]})
    units = work_units(sweep.runs)
    here = {s.run_id: r for s, r in LocalExecutor(threads=1).run(units)}
    folders = data_folders()
    results = executor.run(units)  # reads the file now
    path.rename(tmp_path / "moved.npz")  # not there for the runs: they read what was sent
    there = {s.run_id: r for s, r in results}
    assert sorted(there) == sorted(here) == sorted(s.run_id for s in sweep.runs)
    for rid, result in there.items():
        run, local = result["run"], here[rid]["run"]
        assert run["status"] == "ok", run["error"]
        assert run["dataset"] == name and run["run_id"] == rid
        for col in ("final_train_loss", "final_test_loss", "final_test_acc", "steps"):
            assert run[col] == pytest.approx(local[col], rel=1e-6), col
        assert {r["run_id"] for r in result["curves"] + result["timings"]} == {rid}
        assert len(result["curves"]) == len(here[rid]["curves"])
    assert data_folders() == folders  # the task removed its copy


def test_a_run_on_a_copy_is_recorded_as_the_file_it_was_sent_from(tiny, tmp_path):
    """A run that fails on its copy (the file there unreadable, say) names the user's file,
    under its run id, not the copy's."""
    name = write_npz(tmp_path / "mine.npz")
    (spec,) = load_sweep(tiny, {"dataset": name}).runs
    local = dask_executor._on_copy(spec, {name: "/tmp/optbench-data-x/0-mine.npz"})
    assert local.dataset == "npz:/tmp/optbench-data-x/0-mine.npz" and local.run_id != spec.run_id
    failed = failed_record(local, Status.ERROR, "cannot read '/tmp/optbench-data-x/0-mine.npz'")
    run = dask_executor._as_sent(failed, local, spec)["run"]
    assert run["run_id"] == spec.run_id and run["dataset"] == name
    assert run["error"] == f"cannot read '{tmp_path / 'mine.npz'}'"
    assert dask_executor._on_copy(spec, {}) is spec


def test_a_data_file_above_the_limit_is_refused_unless_every_worker_holds_it(
    tiny, tmp_path, executor, monkeypatch
):
    """Above the limit the file is not sent: refused, before any task, with the fix, where a
    worker does not hold the same file at that path (a relative path: the loopback worker's
    working directory is not this test's); read on the workers where they all do."""
    write_npz(tmp_path / "big.npz")
    size = (tmp_path / "big.npz").stat().st_size
    monkeypatch.setattr(dask_executor, "MAX_DATA_BYTES", 1000)
    monkeypatch.chdir(tmp_path)
    relative = load_sweep(tiny, {"dataset": "npz:big.npz"}).runs
    with pytest.raises(DataError) as refused:
        executor.run(work_units(relative))
    msg = str(refused.value)
    assert f"'big.npz' is {size:,} bytes, above the 1,000 bytes" in msg
    assert "0 of the 1 connected workers hold the same file there" in msg
    assert "copy it to the same path on every worker" in msg
    assert not executor.client.futures  # nothing submitted
    absolute = load_sweep(tiny, {"dataset": f"npz:{tmp_path / 'big.npz'}"}).runs
    assert executor.data_files(absolute) == {}  # every worker holds it: not sent


def test_optbench_run_refuses_a_data_file_too_large_to_send(
    tiny, tmp_path, cluster, monkeypatch, capsys
):
    from benchmarks.app.cli import main

    write_npz(tmp_path / "big.npz")
    monkeypatch.setattr(dask_executor, "MAX_DATA_BYTES", 1000)
    monkeypatch.chdir(tmp_path)  # npz:big.npz is here, not in the loopback worker's folder
    argv = ["run", "--sweep", tiny, "--dataset", "npz:big.npz", "--quiet"]
    code = main([*argv, "--out", str(tmp_path / "r"), "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == exitcodes.BAD_INPUT and "Traceback" not in err
    assert "optbench run: error: dataset 'npz:big.npz': 'big.npz' is " in err
    assert "copy it to the same path on every worker" in err
    assert not (tmp_path / "r").exists()  # nothing touched


def test_each_started_run_names_its_worker_in_the_progress(tiny, executor):
    """The executor names the worker to ``on_start``, and the driver's progress (given as
    ``on_start``, as the driver does) prints it on the run's line."""
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1]})
    (address,) = executor.client.scheduler_info()["workers"]
    where = f"{socket.gethostname()} ({address})"
    seen = []
    progress = Progress(sweep.runs, quiet=False, stream=io.StringIO())

    def started(spec, *named):
        seen.append((spec, *named))
        progress.start(spec, *named)

    for spec, result in executor.run(work_units(sweep.runs), started):
        progress.finish(spec, result["run"])
    assert seen == [(spec, where) for spec in sweep.runs]
    lines = progress.stream.getvalue().splitlines()
    assert [line.split(": ok ")[0] for line in lines] == [
        f"[{n}/2] {spec.label()} on {where}" for n, spec in enumerate(sweep.runs, 1)
    ]


def test_the_progress_bar_names_the_worker_of_the_run_going_on(tiny):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    (spec,) = load_sweep(tiny).runs
    progress = Progress([spec], quiet=False, stream=Terminal())
    progress.start(spec, "node7 (tcp://10.0.0.5:40123)")
    bar = progress.stream.getvalue()
    assert bar.rstrip().endswith(" on node7 (tcp://10.0.0.5:40123)")
    assert spec.label()[:20] in bar and len(bar) <= 125  # fits the line it redraws

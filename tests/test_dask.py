"""The Dask executor on a real cluster on 127.0.0.1: the same rows as local workers, a Dask
worker killed mid-sweep (nothing lost, nothing written twice), Ctrl-C and resume, and an
unreachable scheduler (a clear error, exit 2, quickly)."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import time
from collections import Counter

import pandas as pd
import psutil
import pytest

from benchmarks import exitcodes
from benchmarks.driver import run_sweep
from benchmarks.execute import Executor, LocalExecutor, work_units
from benchmarks.sweep import load_sweep

distributed = pytest.importorskip(
    "distributed", reason="Dask distributed not installed: pip install -e '.[dask]'"
)
from benchmarks import dask_executor  # noqa: E402 - needs distributed
from benchmarks.dask_executor import DaskExecutor  # noqa: E402

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
    # the framework process closed with its unit
    assert not framework_processes(executor)


class CallingAtStart(Executor):
    """Passes through to ``inner``, calling ``at_start(spec)`` as each run starts."""

    def __init__(self, inner, at_start):
        self.inner, self.at_start = inner, at_start

    def run(self, units, on_start=None):
        def started(spec):
            self.at_start(spec)
            if on_start is not None:
                on_start(spec)

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
            time.sleep(1.0)  # into the run: the framework process is up, hanging at step 3
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
    the unit's task runs again on the restarted worker, and each run lands once."""
    sweep = load_sweep(tiny, {"learning_rates": [0.05, 0.1, 0.2, 0.3], "max_steps": 60})
    landed: list[dict] = []
    with (
        local_cluster() as cluster,
        DaskExecutor.connect(cluster.scheduler_address, threads=1, log=lambda m: None) as ex,
    ):

        def kill_at_the_second(spec):
            if spec == sweep.runs[1]:
                kill_dask_worker(ex)

        result = run_sweep(
            sweep,
            tmp_path / "r",
            quiet=True,
            executor=CallingAtStart(ex, kill_at_the_second),
            on_result=landed.append,
        )
    ids = Counter(r["run"]["run_id"] for r in landed)
    assert sorted(ids) == sorted(s.run_id for s in sweep.runs) and set(ids.values()) == {1}
    assert result.counts == {"ok": 4}


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
    from benchmarks.cli import main

    assert dask_executor.CONNECT_TIMEOUT_S <= 10
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1.0)
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
    from benchmarks.cli import main

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

"""Sweeps across machines: an :class:`~benchmarks.run.execute.Executor` on a Dask cluster.

``optbench run --executor dask --scheduler tcp://HOST:8786`` hands the work units to the
Dask scheduler at that address; the client (this process) receives the results and the
driver, as with local workers, alone writes the store. Workers need the project installed,
no shared file system and no copy of the results folder.

Design: **one Dask task per work unit.** The task does on its host exactly what
:class:`~benchmarks.run.execute.LocalExecutor` does here: one framework process
(:class:`~benchmarks.run.worker.Worker`: pinned, killable, each run under its own timeout)
runs the unit's runs in sweep order, so a cluster run measures what a local run measures
(the framework imported once per unit, the same first-run and compile-cache effects), and a
GPU unit holds its ``GPU=1`` resource, hence its GPU, for the whole unit. A task per run
would spread a unit's runs, but each would pay the framework's start-up again, or a Dask
worker would keep several framework processes alive between their runs, sharing its cores
and GPU memory; a unit is the finest grain that keeps timing honest without more machinery.
On a host with several Dask workers (``dask worker --nthreads 1 --nworkers N``) each
worker's runs are pinned to CPUs of their own (:meth:`DaskExecutor._placement`).

Results stream back as each run finishes: the task puts ``("start" | "result", unit,
payload)`` messages, pickled, on a Dask ``Queue`` (through the scheduler: a run's rows are
kilobytes), and notes every run it delivered in a Dask ``Variable`` per unit. The client
polls the queue and yields each result once.

Failures, never lost, never written twice: a run that raises, hangs or kills its framework
process comes back with that status, as locally. A Dask worker that dies mid-unit takes its
framework process with it (it dies with its parent); the scheduler runs the task again on
a worker that is alive (up to its ``distributed.scheduler.allowed-failures``, 3 by default),
and the new attempt skips the runs the ``Variable`` lists as delivered; the client also drops
a result it already has (a run delivered just before the death, but not yet noted). When
the scheduler gives up (``KilledWorker``) or the task fails otherwise (the project missing
on a worker, say), each run of the unit not delivered is recorded ``crashed`` (or
``error``) with the reason.

Data sets travel with the tasks: the client reads each ``npz:PATH`` data set of the units
once (:meth:`DaskExecutor.data_files`) and sends its bytes by value, in one task of the graph
that the unit tasks depend on (the scheduler holds it, so a unit run again after a death
gets it again; each worker fetches it once). On the worker the unit task writes the bytes to
a private temporary folder and runs each run on that copy
(:func:`_on_copy`), recording it under the name and run id it was sent with
(:func:`_as_sent`): the rows are those of the same file run locally. The built-in data sets
are made on the worker. A file above :data:`MAX_DATA_BYTES` is not sent: it must be at the
same path, with the same bytes, on every connected worker, or the sweep is refused before
anything runs, with the fix.

Where the runs ran: each row says its ``host``, and, since a cluster's hosts may differ,
that host's ``cpu_model``, ``cpu_cores`` (physical) and ``gpu_name`` (its GPU models, "" where
none), as ``environment.json`` says them for the machine that ran ``optbench run``
(:func:`describe_host`, once per Dask worker process); ``framework_version`` is the
framework that ran it there. The "start" message names the worker (host and Dask address)
to ``on_start``, so that the progress line of a started run says where it runs.

Stopping: closing the results (Ctrl-C in the driver) cancels the tasks and kills their
framework processes at once (``Client.run`` on every worker); a task whose client went away
stops before its next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import math
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.core import environment
from benchmarks.record.data import DataError
from benchmarks.record.schema import RunSpec, Status, failed_record
from benchmarks.run.dask_connect import (  # noqa: F401 - re-exported: callers import them here
    CONNECT_TIMEOUT_S,
    INSTALL_HINT,
    SchedulerUnreachable,
    connect,
    plain_tcp_warning,
    security_for,
)
from benchmarks.run.execute import (
    RUN_TASK,
    Executor,
    Result,
    WorkUnit,
    result_of_failure,
    stamp_host,
)
from benchmarks.run.worker import Worker, WorkerFailure, default_threads

#: how often the client looks for results (a blocking Queue.get that times out logs an error
#: on the scheduler, so the client polls without blocking)
POLL_S = 0.2
#: how long a unit that needs a resource (a GPU) waits for a worker that offers it before
#: its runs are recorded skipped with the reason
RESOURCE_WAIT_S = 120.0
#: the largest ``npz:`` data file sent to the workers with the tasks: it travels in memory,
#: through the scheduler, and stays in the memory of each worker that runs a unit on it
MAX_DATA_BYTES = 256 * 2**20


def queue_name(token: str) -> str:
    """The Dask Queue that sweep ``token``'s tasks put their messages on."""
    return f"optbench-{token}"


def noted_name(token: str, index: int) -> str:
    """The Dask Variable listing the runs unit ``index`` of sweep ``token`` delivered."""
    return f"optbench-{token}-{index}"


def data_key(token: str, index: int) -> str:
    """The Dask task holding the bytes of sweep ``token``'s data file ``index``."""
    return f"optbench-data-{index}-{token}"


#: a Dask worker's threads per run, and the CPUs its runs take them from
Placement = tuple[int, list[int]]


class DaskExecutor(Executor):
    """Work units as tasks of a Dask cluster; see the module docstring.

    ``threads``: CPUs each framework process is pinned to. None: each host's physical cores
    divided by the Dask worker threads on that host. Either way the Dask workers of a host
    pin their runs to CPUs of their own (:meth:`_placement`), so that the runs going on at
    once on a host do not share cores.

    Example::

        with DaskExecutor.connect("tcp://10.0.0.5:8786") as ex:
            run_sweep(sweep, Path("results/default"), executor=ex)
    """

    def __init__(
        self,
        client,
        threads: int | None = None,
        log: Callable[[str], None] | None = None,
        resource_wait_s: float = RESOURCE_WAIT_S,
    ):
        self.client = client
        self.threads = threads
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.resource_wait_s = resource_wait_s

    @classmethod
    def connect(
        cls,
        address: str,
        threads: int | None = None,
        timeout: float | None = None,
        tls: dict[str, str | None] | None = None,
        insecure: bool = False,
        **kw,
    ) -> DaskExecutor:
        """Connect to the scheduler at ``address``: over TLS for a ``tls://`` address (the
        files in ``tls``, or Dask's configuration); plain TCP off the loopback says
        :data:`PLAIN_TCP_WARNING` once (to ``log``, and in :meth:`describe`) unless
        ``insecure``."""
        security = security_for(address, tls)
        ex = cls(connect(address, timeout, security), threads, **kw)
        ex.address, ex.tls = address, security is not None
        ex.warning = None if insecure else plain_tcp_warning(address)
        if ex.warning:
            ex.log(ex.warning)
        return ex

    address = ""
    tls = False
    warning: str | None = None

    def describe(self) -> dict[str, Any]:
        out = {"kind": "dask", "scheduler": self.address, "tls": self.tls}
        return {**out, "warning": self.warning} if self.warning else out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the client's side -----------------------------------------------------------------
    def run(
        self, units: list[WorkUnit], on_start: Callable[..., None] | None = None
    ) -> Iterator[tuple[RunSpec, Result]]:
        """See :meth:`Executor.run`; ``on_start(spec, where)`` names the worker that runs it
        (``HOST (tcp://ADDRESS)``). Reads the data files to send first: DataError, before
        anything runs, where one cannot travel (:meth:`data_files`)."""
        data = self.data_files([s for u in units for s in u.specs])
        return self._run(units, data, on_start)

    def data_files(self, specs: list[RunSpec]) -> dict[str, bytes]:
        """The bytes of each ``npz:PATH`` data set of ``specs``, read once, to send with the
        tasks; a file above :data:`MAX_DATA_BYTES` is left out where every connected worker
        holds the same bytes at that path (they read their own), and is DataError, naming
        the file, its size, the limit and the fix, where one does not."""
        out = {}
        for name in dict.fromkeys(s.dataset for s in specs if s.dataset.startswith("npz:")):
            path = Path(name[4:])
            try:
                size = path.stat().st_size
                if size <= MAX_DATA_BYTES:
                    out[name] = path.read_bytes()
                    continue
                mine = file_digest(str(path))
            except OSError as exc:
                raise DataError(f"dataset {name!r}: cannot read {str(path)!r} ({exc})") from None
            held = self.client.run(file_digest, str(path))
            have = sum(digest == mine for digest in held.values())
            if not held or have < len(held):
                raise DataError(
                    f"dataset {name!r}: {str(path)!r} is {_size(size)}, above the "
                    f"{_size(MAX_DATA_BYTES)} that optbench sends to Dask workers with the tasks, "
                    f"and {have} of the {len(held)} connected workers hold the same file there; "
                    f"copy it to the same path on every worker (it is then read there, not sent)"
                )
        return out

    def _run(
        self, units: list[WorkUnit], data: dict[str, bytes], on_start
    ) -> Iterator[tuple[RunSpec, Result]]:
        import dask
        from distributed import Queue, Variable

        token = uuid.uuid4().hex[:12]
        queue = Queue(queue_name(token), client=self.client)
        left = {i: {s.run_id: s for s in u.specs} for i, u in enumerate(units)}
        hosts: dict[int, str] = {}  # the host each unit last ran on
        delivered = [Variable(noted_name(token, i), client=self.client) for i in left]
        for var in delivered:  # set before the tasks read them (an unset one makes them wait)
            var.set([])
        # one task per data file, by value: its bytes are in the graph once, however many
        # units read it (Dask warns of a graph above 10 MB; these are within our own limit)
        with dask.config.set(
            {"distributed.admin.large-graph-warning-threshold": 2 * MAX_DATA_BYTES}
        ):
            held = {
                name: self.client.submit(_hold, blob, key=data_key(token, k), pure=False)
                for k, (name, blob) in enumerate(data.items())
            }
        plan = self._placement()
        futures = {
            i: self.client.submit(
                run_unit,
                unit,
                token=token,
                index=i,
                threads=self.threads,
                plan=plan,
                data={s.dataset: held[s.dataset] for s in unit.specs if s.dataset in held},
                key=f"optbench-{unit.backend}-{unit.device}-{i}-{token}",
                resources={"GPU": 1} if unit.device == "gpu" else None,
                priority=-i,  # the sweep's order where workers are fewer than units
                pure=False,
            )
            for i, unit in enumerate(units)
        }
        submitted, started = time.monotonic(), set()
        try:
            while futures:
                # Finished tasks first, then the queue: a task's messages are on the queue
                # before it finishes, so a unit seen finished here has delivered everything.
                finished = [i for i, f in futures.items() if f.done()]
                for kind, i, payload in self._messages(queue):
                    todo = left.get(i, {})
                    if kind == "start":
                        started.add(i)
                        run_id, hosts[i], where = payload
                        if on_start is not None and run_id in todo:
                            on_start(todo[run_id], where)
                    elif (spec := todo.pop(payload["run"]["run_id"], None)) is not None:
                        yield spec, payload  # else: delivered before, by an earlier attempt
                for i in finished:
                    future = futures.pop(i)
                    yield from _undelivered(units[i], future, left.pop(i), hosts.get(i, ""))
                if time.monotonic() - submitted > self.resource_wait_s:
                    yield from self._unservable(units, futures, left, started)
                if futures and not finished:
                    time.sleep(POLL_S)
        finally:
            if futures:  # closed early (Ctrl-C): stop every run still going
                self._stop(token, list(futures.values()))
            for future in held.values():
                with contextlib.suppress(Exception):
                    future.release()
            with contextlib.suppress(Exception):
                queue.close()
            for var in delivered:
                with contextlib.suppress(Exception):
                    var.delete()

    def _unservable(self, units, futures, left, started) -> Iterator[tuple[RunSpec, Result]]:
        """Units still waiting for a GPU when no connected worker offers one: their runs are
        recorded skipped with the reason, instead of waiting for ever."""
        waiting = [i for i in futures if units[i].device == "gpu" and i not in started]
        if not waiting:
            return
        workers = self.client.scheduler_info()["workers"].values()
        if any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers):
            return
        why = (
            f"no Dask worker offers a GPU after {self.resource_wait_s:g} s; start one on a GPU "
            "host with `dask worker SCHEDULER --resources GPU=1 --nthreads 1`"
        )
        for i in waiting:
            with contextlib.suppress(Exception):
                self.client.cancel([futures.pop(i)], force=True)
            for spec in left.pop(i).values():
                yield spec, failed_record(spec, Status.SKIPPED, why)

    def _messages(self, queue) -> list[tuple[str, int, Any]]:
        return [pickle.loads(m) for m in queue.get(batch=True)]

    def _placement(self) -> dict[str, Placement]:
        """Each Dask worker's threads per run and the CPUs its runs take them from.

        The Dask workers of a host that may use the same CPUs (``dask worker --nworkers N``
        starts them so) share those out in blocks, one per worker thread, so that runs going
        on at once never share a CPU; a warning where they must (more worker threads x
        threads per run than cores). Workers pinned apart beforehand (``taskset``) keep
        their own CPUs. A worker that joins later takes the first CPUs it may use.
        """
        workers = self.client.scheduler_info()["workers"]
        if not workers:
            self.log("dask: no worker is connected yet; the runs wait for one (`dask worker ...`)")
            return {}
        try:
            cpus_of = self.client.run(host_cpus)
        except Exception:  # noqa: BLE001 - a worker that cannot answer: no placement
            return {}
        groups: dict[tuple, list[str]] = {}
        for addr in sorted(cpus_of):
            groups.setdefault((workers[addr]["host"], *cpus_of[addr][1]), []).append(addr)
        plan = {}
        for (host, *cpus), addrs in groups.items():
            cores = min(cpus_of[addrs[0]][0], len(cpus))
            slots = sum(workers[a]["nthreads"] for a in addrs)
            per_run = self.threads or max(1, cores // slots)
            if slots * per_run > cores:
                self.log(
                    f"dask: warning: {host} runs {slots} units at once x {per_run} thread(s) "
                    f"on {cores} cores: runs will share cores and measure each other; start "
                    f"its workers with `--nthreads 1 --nworkers N`, N x threads <= {cores}"
                )
            taken = 0
            for a in addrs:
                n = workers[a]["nthreads"] * per_run
                plan[a] = (per_run, [cpus[(taken + j) % len(cpus)] for j in range(n)])
                taken += n
        return plan

    def _stop(self, token: str, futures: list) -> None:
        with contextlib.suppress(Exception):
            self.client.cancel(futures, force=True)
        with contextlib.suppress(Exception):
            self.client.run(stop_unit_processes, token, on_error="ignore")


def _undelivered(
    unit: WorkUnit, future, left: dict[str, RunSpec], host: str
) -> Iterator[tuple[RunSpec, Result]]:
    """A record for every run of a finished unit task that did not deliver one."""
    if not left:
        return
    from distributed import KilledWorker

    tb = ""
    try:
        future.result()
        status, why = Status.CRASHED, "its Dask task ended before running it"
    except KilledWorker as exc:
        status = Status.CRASHED
        last = getattr(exc.last_worker, "address", "?")
        why = (
            f"the Dask worker running {unit.label} died {exc.allowed_failures + 1} times (the "
            f"last: {last}); the scheduler gave up (distributed.scheduler.allowed-failures)"
        )
    except Exception as exc:  # noqa: BLE001 - failed outside the runs, e.g. no project there
        status = Status.ERROR
        why = f"the Dask task of {unit.label} failed: {type(exc).__name__}: {exc}"
        tb = "".join(traceback.format_exception(exc))
    for spec in left.values():
        record = failed_record(spec, status, why, tb)
        record["run"]["host"] = host  # where the unit last ran ("": it never started)
        yield spec, record


# --- on the Dask worker ------------------------------------------------------------------

#: the framework processes running for each sweep (token) in this Dask worker
_RUNNING: dict[str, set[Worker]] = {}
#: the sweeps stopped by their client (stop_unit_processes)
_STOPPED: set[str] = set()
#: the CPUs this Dask worker's running tasks are pinned to
_CPUS_HELD: set[int] = set()
_CPU_LOCK = threading.Lock()


def run_unit(
    unit: WorkUnit,
    token: str,
    index: int,
    threads: int | None,
    plan: dict[str, Placement],
    data: dict[str, bytes] | None = None,
) -> int:
    """The Dask task of one unit: its runs in one framework process on this host (pinned as
    ``plan`` says for this Dask worker), each on a copy of its ``npz:`` data set's bytes
    where ``data`` holds them, each result put on the sweep's queue as it finishes; returns
    how many ran."""
    from distributed import Queue, Variable, get_worker

    queue = Queue(queue_name(token))
    noted = Variable(noted_name(token, index))
    try:
        done = set(noted.get(timeout=30))  # delivered by an earlier attempt of this task
    except (TimeoutError, asyncio.TimeoutError):  # its client has gone (and deleted it)
        return 0
    dask_worker = get_worker()
    host = socket.gethostname()
    where = f"{host} ({dask_worker.address})"
    described = describe_host()
    if dask_worker.address in plan:
        threads, block = plan[dask_worker.address]
    else:  # joined after the sweep started
        threads = threads or max(1, default_threads() // dask_worker.state.nthreads)
        block = []
    _allow_children()
    folder = tempfile.mkdtemp(prefix=f"optbench-data-{token}-")  # ours alone (mode 0700)
    copies = _write_copies(data or {}, folder)
    cpus = _claim(block, threads)
    worker = Worker(threads=threads, label=unit.label, cpus=cpus)
    _RUNNING.setdefault(token, set()).add(worker)
    ran = 0
    try:
        for spec in unit.specs:
            if spec.run_id in done:
                continue
            if token in _STOPPED or not _wanted(dask_worker):
                break
            queue.put(pickle.dumps(("start", index, (spec.run_id, host, where))))
            local = _on_copy(spec, copies)
            try:
                result = worker.call(RUN_TASK, {"spec": local}, timeout=spec.timeout_s)
            except WorkerFailure as exc:
                result = result_of_failure(local, exc)
            result = stamp_host(_as_sent(result, local, spec), host)
            result["run"].update(described)
            queue.put(pickle.dumps(("result", index, result)))
            done.add(spec.run_id)
            noted.set(sorted(done))
            ran += 1
    finally:
        _RUNNING[token].discard(worker)
        worker.close()
        _release(cpus)
        shutil.rmtree(folder, ignore_errors=True)
    return ran


@functools.cache
def describe_host() -> dict[str, Any]:
    """This host as each row of a run here records it (see the module docstring):
    ``cpu_model``, ``cpu_cores`` and ``gpu_name``, from :func:`benchmarks.core.environment.capture`
    (what ``environment.json`` says of the machine that ran ``optbench run``)."""
    env = environment.capture()
    return {
        "cpu_model": env["cpu_model"],
        "cpu_cores": env["cpu_cores_physical"] or math.nan,
        "gpu_name": ", ".join(dict.fromkeys(g["name"] for g in env["gpus"])),
    }


def _hold(blob: bytes) -> bytes:
    """The task that holds a data file's bytes for the unit tasks that read it."""
    return blob


def _write_copies(data: dict[str, bytes], folder: str) -> dict[str, str]:
    """Each data set's bytes written to a file in ``folder``: its name -> that file."""
    copies = {}
    for k, (name, blob) in enumerate(data.items()):
        copies[name] = os.path.join(folder, f"{k}-{os.path.basename(name[4:]) or 'data.npz'}")
        with open(copies[name], "wb") as f:
            f.write(blob)
    return copies


def _on_copy(spec: RunSpec, copies: dict[str, str]) -> RunSpec:
    """``spec``, reading this host's copy of its data file where it has one."""
    copy = copies.get(spec.dataset)
    return spec if copy is None else dataclasses.replace(spec, dataset=f"npz:{copy}")


def _as_sent(result: Result, local: RunSpec, spec: RunSpec) -> Result:
    """``result`` of ``local`` (``spec`` on this host's copy of its data file) as ``spec``'s:
    the data set's name and the run id it was sent with, in every table, and the file's path
    where a message names the copy's."""
    if local is spec:
        return result
    for table, rows in result.items():
        for row in [rows] if table == "run" else rows:
            row["run_id"] = spec.run_id
    run = result["run"]
    run["dataset"] = spec.dataset
    for key in ("error", "traceback"):
        run[key] = str(run.get(key) or "").replace(local.dataset[4:], spec.dataset[4:])
    return result


def file_digest(path: str) -> str | None:
    """The SHA-256 of the file at ``path`` here (None where there is none): run on each Dask
    worker by the client, to learn whether it holds a data file too large to send."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(2**20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def host_cpus() -> tuple[int, list[int]]:
    """Run on each Dask worker by the client: this host's physical cores, and the CPUs this
    worker process may use."""
    cpus = environment.cpu_affinity()
    return default_threads(), cpus or list(range(os.cpu_count() or 1))


def _claim(block: list[int], threads: int) -> list[int] | None:
    """The first ``threads`` CPUs of this Dask worker's ``block`` that no other of its
    tasks holds (one per worker thread); None where it has no block."""
    chunks = [block[i : i + threads] for i in range(0, len(block), threads)]
    with _CPU_LOCK:
        free = [c for c in chunks if not _CPUS_HELD & set(c)] or chunks[:1]
        if not free:
            return None
        _CPUS_HELD.update(free[0])
        return free[0]


def _release(cpus: list[int] | None) -> None:
    with _CPU_LOCK:
        _CPUS_HELD.difference_update(cpus or ())


def stop_unit_processes(token: str) -> int:
    """Run by the client on every Dask worker (``Client.run``) when it stops: kill the
    framework processes of sweep ``token``; their tasks see the death and end."""
    _STOPPED.add(token)
    killed = 0
    for worker in list(_RUNNING.get(token, ())):
        pid = worker.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _wanted(dask_worker) -> bool:
    """False once no client wants this task (cancelled, or its client went away)."""
    try:
        from distributed.worker import thread_state

        ts = dask_worker.state.tasks.get(thread_state.key)
        return ts is not None and ts.state not in ("cancelled", "released", "forgotten")
    except Exception:  # noqa: BLE001 - Dask's worker state is not a public API: assume wanted
        return True


def _allow_children() -> None:
    """Dask's nanny starts worker processes as daemons (``distributed.worker.daemon``), and
    multiprocessing refuses a daemon children, which would outlive it. A framework worker
    does not: it dies with the thread that started it (:mod:`benchmarks.run.worker`)."""
    proc = mp.current_process()
    if proc.daemon:
        proc.daemon = False

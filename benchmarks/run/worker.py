"""One process per framework: a worker that runs tasks for the driver, with a timeout.

Frameworks' thread pools and allocators do not share a process well, and a run that
hangs or is killed must not take the sweep with it. The driver starts one ``Worker`` per
(backend, device), sends it tasks one at a time (``"module:function"`` plus keyword
arguments, both picklable) and gets the return value back. Thread counts are fixed in the
worker's environment before any framework is imported.

A worker never outlives its driver (a parent-death signal on Linux, a watchdog elsewhere),
and it ends a task that runs far past its timeout itself, should the driver be stuck: an
orphan would keep the pinned cores busy while a ``--resume`` measures.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import importlib
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from backends import registry
from benchmarks.core.environment import cpu_affinity
from benchmarks.record.schema import Status

_ENV_LOCK = threading.Lock()
#: how long past its timeout a task may run before its worker ends itself (the driver
#: normally kills it at the timeout; this is for a driver that is stuck)
SELF_TIMEOUT_GRACE_S = 30.0
#: the exit status of a worker that ended itself that way
SELF_TIMEOUT_EXIT = 124


def _tail(path: str, lines: int = 30, limit: int = 8192) -> str:
    """The last ``lines`` lines of a worker's stderr file (what a crash leaves behind)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - limit))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    tail = text.splitlines()[-lines:]
    return "last lines of the worker's stderr:\n" + "\n".join(tail) if tail else ""


class WorkerFailure(RuntimeError):
    """A task did not return. ``status`` is the run status it maps to (the one place where
    worker errors become statuses); ``remote_traceback`` the worker's traceback, if any."""

    status: Status = Status.ERROR

    def __init__(self, message: str, remote_traceback: str = ""):
        super().__init__(message)
        self.remote_traceback = remote_traceback


class WorkerError(WorkerFailure):
    """The task raised inside the worker."""

    status = Status.ERROR


class WorkerTimeout(WorkerFailure):
    """The task ran past its timeout; the worker was killed."""

    status = Status.TIMEOUT


class WorkerDied(WorkerFailure):
    """The worker process exited during the task (crash, or killed, e.g. out of memory)."""

    status = Status.CRASHED


def default_threads() -> int:
    """Physical cores where known, else logical CPUs."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every framework's intra-op pool to ``threads``: the BLAS/OpenMP
    variables, plus what each registered backend asks for (``registry.Entry.worker_env``)."""
    n = str(threads)
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
    for entry in registry.REGISTRY.values():
        env.update({k: v.format(threads=n) for k, v in entry.worker_env})
    return env


def pin_cores(threads: int, cpus: list[int] | None = None) -> list[int]:
    """Confine this process to ``threads`` CPUs (before any framework starts its pools): the
    first of ``cpus`` (default: the CPUs it may use), so that workers running side by side
    (one per Dask worker slot of a host) can be given CPUs of their own.

    Environment variables pin torch, TensorFlow and BLAS, but XLA:CPU (JAX) sizes its pool
    from the machine and has no working flag for it; CPU affinity holds every framework to
    the same cores. Returns the CPUs in use.
    """
    if not hasattr(os, "sched_setaffinity"):  # macOS: the environment variables only
        return list(range(threads))
    allowed = cpu_affinity()
    mine = [c for c in cpus or () if c in allowed] or allowed  # none of them here: any
    if mine[:threads] != allowed:
        os.sched_setaffinity(0, mine[:threads])
    return cpu_affinity()


def _die_with_parent(parent: int) -> None:
    """End this process when its driver (``parent``) dies, even by kill -9."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
        # The kernel sends SIGKILL when the thread that started us exits: the driver starts
        # workers from its main thread, so that is when the driver exits.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before prctl took effect
            os._exit(1)
        return

    def watch() -> None:  # elsewhere: orphans are re-parented, so a changed ppid says it
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="optbench-parent-watch", daemon=True).start()


def _serve(conn, threads: int, parent: int, stderr_path: str, cpus: list[int] | None) -> None:
    _die_with_parent(parent)
    # The worker's stderr goes to a file whose tail the driver keeps when the worker dies
    # (a crash leaves no Python traceback); faulthandler writes the Python stack there on
    # a segfault or abort.
    fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)
    faulthandler.enable()
    # Ctrl-C reaches the whole process group; the driver alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_cores(threads, cpus)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        target, kwargs, limit = msg
        # the task's own deadline: the driver kills at the timeout, this is for a stuck driver
        deadline = threading.Timer(limit, os._exit, (SELF_TIMEOUT_EXIT,)) if limit else None
        if deadline is not None:
            deadline.daemon = True
            deadline.start()
        try:
            module, func = target.split(":")
            result = getattr(importlib.import_module(module), func)(**kwargs)
            conn.send(("ok", result))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the driver
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        finally:
            if deadline is not None:
                deadline.cancel()


def call_isolated(
    target: str,
    kwargs: dict[str, Any],
    *,
    label: str,
    threads: int | None = None,
    timeout: float | None = None,
) -> Any:
    """``target(**kwargs)`` in a fresh framework process, pinned like a sweep's workers;
    raises :class:`WorkerFailure`. For one-off framework work (parity, ``optbench
    backends``, the overhead benchmark): frameworks never load in the calling process."""
    with Worker(threads=threads, label=label) as w:
        return w.call(target, kwargs, timeout=timeout)


class Worker:
    """A child process that runs ``module:function`` tasks for the driver.

    Example::

        with Worker(threads=2, label="torch/cpu") as w:
            rows = w.call("benchmarks.run.runner:execute_run", {"spec": spec}, timeout=600)
    """

    def __init__(
        self, threads: int | None = None, label: str = "worker", cpus: list[int] | None = None
    ):
        self.threads = threads or default_threads()
        self.label = label
        self.cpus = cpus  # the CPUs to take ``threads`` of (default: the first it may use)
        self._proc: mp.process.BaseProcess | None = None
        self._conn = None
        self._stderr: str | None = None  # the current worker's stderr file
        self._last_stderr = ""  # its tail, kept when the worker is killed or dies

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        fd, self._stderr = tempfile.mkstemp(
            prefix=f"optbench-{self.label.replace('/', '-')}-", suffix=".stderr"
        )
        os.close(fd)
        proc = ctx.Process(
            target=_serve,
            args=(child, self.threads, os.getpid(), self._stderr, self.cpus),
            name=f"optbench-{self.label}",
            daemon=True,
        )
        env = thread_env(self.threads)
        with _ENV_LOCK:  # the child inherits os.environ at start; set it there, then restore
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                proc.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child.close()
        self._proc, self._conn = proc, parent

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The worker process's id while one is started: another thread may kill it by its
        id to stop the task it runs (``call`` then raises WorkerDied)."""
        return self._proc.pid if self._proc is not None else None

    def call(self, target: str, kwargs: dict[str, Any], timeout: float | None = None) -> Any:
        """Run ``target(**kwargs)`` in the worker; raise WorkerError/WorkerTimeout/WorkerDied."""
        if not self.alive:
            self.start()
        assert self._conn is not None and self._proc is not None
        try:
            limit = timeout + SELF_TIMEOUT_GRACE_S if timeout else None
            self._conn.send((target, kwargs, limit))
            ready = self._conn.poll(timeout)
        except (BrokenPipeError, EOFError, OSError):
            ready = True  # fall through to recv, which reports the death
        if not ready:
            self.kill()
            raise WorkerTimeout(
                f"{self.label}: no result after {timeout:g} s; worker killed", self._last_stderr
            )
        try:
            reply = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            code = self._proc.exitcode
            self.kill()
            if code == SELF_TIMEOUT_EXIT:
                raise WorkerTimeout(
                    f"{self.label}: no result after {timeout:g} s; the worker ended itself"
                ) from None
            why = {-9: " (SIGKILL: out of memory?)", -11: " (segmentation fault)", -6: " (aborted)"}
            raise WorkerDied(
                f"{self.label}: worker exited with code {code}{why.get(code or 0, '')}",
                self._last_stderr,
            ) from None
        if reply[0] == "ok":
            return reply[1]
        raise WorkerError(reply[1], reply[2])

    def kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._last_stderr = _tail(self._stderr) if self._stderr else ""
        if self._stderr:
            with contextlib.suppress(OSError):
                os.unlink(self._stderr)
        self._proc, self._conn, self._stderr = None, None, None

    def close(self) -> None:
        if self.alive and self._conn is not None:
            try:
                self._conn.send(None)
                self._proc.join(10)  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
        self.kill()

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Options for the step benchmarks, thread pinning as a sweep's workers are pinned, the
one-backend-per-process rule, and a clean exit on a regression.

Frameworks' thread pools and allocators do not share a process well (docs/methodology.md, "How the
numbers are taken"), so a session benchmarks one backend: ``pytest bench --step-backend
torch`` (or ``-k torch``); ``make bench-steps`` runs one such process per backend.
(``benchmarks.run.worker.call_isolated`` is not used: pytest-benchmark's timer runs in this
process, so a step in a worker would be timed together with the pipe to it.)
"""

from __future__ import annotations

import pytest

_CPUS = pytest.StashKey[list]()
_SESSION = pytest.StashKey[pytest.Session]()


def pytest_addoption(parser):
    group = parser.getgroup("optbench step benchmarks")
    group.addoption(
        "--step-backend",
        default=None,
        help="only this backend's benchmarks (what `make bench-steps` runs, one per process)",
    )
    group.addoption("--step-device", default="cpu", choices=("cpu", "gpu"))
    group.addoption(
        "--step-time",
        type=float,
        default=1.0,
        help="seconds of timed rounds per benchmark: sets the round count (default 1.0)",
    )
    group.addoption(
        "--step-rounds",
        type=int,
        default=300,
        help="at most this many timed rounds (at least 10 where this allows)",
    )
    group.addoption(
        "--step-iterations", type=int, default=5, help="steps per round, each with its sync"
    )
    # One thread by default, unlike a sweep's workers (physical cores): on 2 shared cores
    # two threads made every step hostage to any other process (NumPy and torch medians
    # 4-7x slower than alone, 9 of 32 medians off by >10% between two runs of one commit);
    # one thread: 1 of 16. A step of this model gains little from a second thread anyway.
    group.addoption(
        "--step-threads",
        type=int,
        default=1,
        help="CPUs this process is pinned to and threads each framework uses (default 1)",
    )


def pytest_configure(config):
    """Pin this process as a sweep's worker is pinned, before any framework is imported
    (the test module imports them lazily, per benchmark)."""
    import os

    import threadpoolctl  # scikit-learn's dependency

    from benchmarks.run.worker import pin_cores, thread_env

    threads = config.getoption("step_threads")
    os.environ.update(thread_env(threads))
    # NumPy's BLAS sized its pool when the harness imported NumPy, before the line above
    threadpoolctl.threadpool_limits(threads)
    config.stash[_CPUS] = pin_cores(threads)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Saved with every run, so that a comparison across thread counts is warned about."""
    machine_info["optbench_threads"] = len(config.stash[_CPUS])


@pytest.fixture(scope="session")
def pinned_cpus(pytestconfig) -> list[int]:
    """The CPUs this process runs on (``--step-threads`` of them)."""
    return pytestconfig.stash[_CPUS]


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(config, items):
    from backends import registry

    selected = sorted(
        {
            item.callspec.params["case"].backend
            for item in items
            if hasattr(item, "callspec") and "case" in item.callspec.params
        }
    )
    loaded = [b for b in selected if registry.is_installed(b)]
    if len(loaded) > 1:
        raise pytest.UsageError(
            f"the step benchmarks load one backend per process, this selection has "
            f"{', '.join(loaded)}: pick one with --step-backend {loaded[0]} (or -k {loaded[0]}), "
            "or run `make bench-steps` (one process per backend)"
        )


def pytest_sessionstart(session):
    session.config.stash[_SESSION] = session


@pytest.hookimpl(wrapper=True, trylast=True)  # inside the terminal's own summary wrapper
def pytest_terminal_summary(terminalreporter):
    """``--benchmark-compare-fail``: exit 1, without a traceback. pytest-benchmark lists the
    regressions, then raises out of the summary, which buries the list under 60 lines
    of pytest internals and skips the pass/fail count."""
    from pytest_benchmark.session import PerformanceRegression

    try:
        return (yield)
    except PerformanceRegression:
        terminalreporter.config.stash[_SESSION].exitstatus = pytest.ExitCode.TESTS_FAILED

"""One training step, timed by pytest-benchmark, for every backend path x optimizer kind x
batch size: 784-64-10 on seeded synthetic data, no download.

What a benchmark times is exactly one ``train_step`` on a staged batch and the device sync
after it (``be.sync``), so a step's asynchronous device work is inside the figure. The first
step (tracing, compilation, first allocations) runs before the timer and is recorded apart
in ``extra_info["first_step_s"]``; warm-up rounds follow, untimed. Run one backend per
process (see conftest.py)::

    pytest bench --step-backend jax --benchmark-autosave   # make bench-steps: every backend
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from typing import NamedTuple

import pytest

from backends import registry
from backends.base import ModelSpec, OptimizerSpec, init_weights

DATASET = "synthetic:n=4096,d=784,c=10"
HIDDEN = (64,)
BATCH_SIZES = (32, 128)
OPTIMIZERS = {
    "sgd_momentum": OptimizerSpec("sgd", lr=0.01, momentum=0.9),
    "adam": OptimizerSpec("adam", lr=1e-3),
}

PROBE_STEPS = 5
MIN_ROUNDS = 10


class Case(NamedTuple):
    backend: str
    path: str
    mode: str
    optimizer: str
    batch_size: int

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.path}-{self.optimizer}-b{self.batch_size}"


def cases(device: str, backends: tuple[str, ...] = registry.NAMES) -> list[Case]:
    """Every (backend, path) the registry lists on ``device`` (installed or not: a missing
    one is skipped with its install command), each in the first mode it serves."""
    return [
        Case(name, path.name, path.modes[0], opt, batch)
        for name in backends
        for path in registry.entry(name).paths
        # a path that runs a block per call has no call of one step to time: its
        # train_step is the per-step path's (``make bench-micro`` times its blocks)
        if device in path.devices and not path.block
        for opt in OPTIMIZERS
        for batch in BATCH_SIZES
    ]


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        only = metafunc.config.getoption("step_backend")
        names = (registry.entry(only).name,) if only else registry.NAMES
        found = cases(metafunc.config.getoption("step_device"), names)
        metafunc.parametrize("case", found, ids=[c.id for c in found])


def _rounds(step, config) -> tuple[int, int]:
    """Timed and warm-up rounds: as many rounds as fill ``--step-time`` seconds (at least
    MIN_ROUNDS, at most ``--step-rounds``), so that a 30 ms eager step and a 0.3 ms compiled
    one both get a median of many rounds in bounded time; a tenth as many warm-up rounds.
    The step time is the median of PROBE_STEPS steps (themselves warm-up): one step
    slowed by a busy machine does not cut the round count."""
    times = []
    for _ in range(PROBE_STEPS):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    per_round = statistics.median(times) * config.getoption("step_iterations")
    wanted = int(config.getoption("step_time") / max(per_round, 1e-9))
    rounds = min(config.getoption("step_rounds"), max(MIN_ROUNDS, wanted))
    return rounds, max(1, rounds // 10)


def test_step(benchmark, case: Case, pytestconfig, pinned_cpus):
    device = pytestconfig.getoption("step_device")
    try:
        cls = registry.load(case.backend)
    except registry.BackendNotInstalled as exc:
        pytest.skip(str(exc))
    if device not in cls.devices():
        pytest.skip(f"{case.backend} sees no {device} here")
    from benchmarks.record.data import cached_dataset

    data = cached_dataset(DATASET)
    model = ModelSpec(data.input_dim, data.num_classes, HIDDEN)
    be = cls(mode=case.mode, device=device, compiler=case.path)
    state = be.init(model, OPTIMIZERS[case.optimizer], init_weights(model, seed=0))
    batches = itertools.cycle(
        be.split_batches(*be.to_device(data.x_train, data.y_train), case.batch_size)
    )
    last = {"state": state, "loss": None}

    def step() -> None:
        last["state"], last["loss"] = be.train_step(last["state"], *next(batches))
        be.sync(last["loss"])

    t0 = time.perf_counter()
    step()  # tracing and compilation: outside the timer, recorded apart
    first_step_s = time.perf_counter() - t0
    rounds, warmup = _rounds(step, pytestconfig)

    info = be.describe()
    benchmark.extra_info.update(
        backend=case.backend,
        path=case.path,
        mode=case.mode,
        device=device,
        optimizer=case.optimizer,
        batch_size=case.batch_size,
        model="-".join(map(str, model.layer_sizes)),
        dataset=DATASET,
        framework=info.framework,
        framework_version=info.version,
        threads=len(pinned_cpus),  # the CPUs this process is pinned to
        threads_reported=str(info.extra.get("threads", "")),  # the framework's own word
        first_step_s=first_step_s,
        warmup_steps=PROBE_STEPS + warmup * pytestconfig.getoption("step_iterations"),
    )
    benchmark.pedantic(
        step,
        rounds=rounds,
        iterations=pytestconfig.getoption("step_iterations"),
        warmup_rounds=warmup,
    )
    # a diverged step computes on NaN/inf and is no figure to track
    assert math.isfinite(be.to_float(last["loss"])), f"{case.id}: loss is not finite"

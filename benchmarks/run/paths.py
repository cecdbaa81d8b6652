"""Which path a run takes when the sweep asks for a backend's default compiled step.

Where a backend has one compiled path on a device, that is the path. Where it has more
(TensorFlow with and without XLA; PyTorch on a GPU: CUDA graph or inductor), which is
fastest depends on the machine, so it is measured where the sweep runs, at its start: each
candidate's steady-state step time on the sweep's data and model at its median batch size,
for each optimizer kind of the sweep, in interleaved rounds (:func:`interleaved`, so that
drift hits all alike), in one worker per backend. The fastest total of medians wins, unless
the backend's first candidate is within :data:`TIE` of it. The choice and its figures are
recorded (``compiler_choice.json`` and each run's ``compiler_choice``); a resumed sweep
reuses them.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from backends import registry
from backends.base import (
    Backend,
    ModelSpec,
    OptimizerSpec,
    SpecError,
    candidate_paths,
    init_weights,
)
from benchmarks.record.schema import DEFAULT_COMPILER, RunSpec

ROUNDS = 15
STEPS = 12  # short rounds, many: see interleaved

K = TypeVar("K")
#: candidates within this fraction of the fastest tie, and a tie goes to the backend's first
#: candidate (its static preference): the median of 15 rounds moves by a few percent from
#: one sweep to the next (TensorFlow on a 2-core CPU: xla 1.284 against tf_function 1.296
#: ms), and a path that flips with it makes two sweeps of the same code run different steps
TIE = 0.03
Key = tuple[str, str, str, str]  # backend, device, dtype, mode
Measure = Callable[[dict[str, Any]], dict[str, float]]


def _key(spec: RunSpec) -> Key:
    return (spec.backend, spec.device, spec.dtype, spec.mode)


def resolve(
    runs: list[RunSpec],
    recorded: list[dict[str, Any]],
    measure: Measure,
    log: Callable[[str], None] = lambda msg: None,
) -> tuple[list[RunSpec], list[dict[str, Any]]]:
    """``runs`` with ``path`` and ``path_choice`` filled in, and the choices made (the
    ``recorded`` ones reused; ``measure(task) -> {path: seconds per step}`` for the rest)."""
    choices = {tuple(c["key"]): c for c in recorded}
    out = []
    for spec in runs:
        if spec.compiler != DEFAULT_COMPILER:
            out.append(dataclasses.replace(spec, path=spec.compiler, path_choice="requested"))
            continue
        paths = registry.entry(spec.backend).paths
        here = [p.name for p in candidate_paths(paths, spec.mode, spec.device)]
        if len(here) <= 1:
            why = "its only path" if here else ""
            out.append(dataclasses.replace(spec, path=here[0] if here else "", path_choice=why))
            continue
        key = _key(spec)
        if key not in choices:
            log(
                f"measuring {spec.backend}'s compiled paths on the {spec.device}: {', '.join(here)}"
            )
            choices[key] = _choose(key, here, runs, measure)
            log(f"  {choices[key]['why']}")
        c = choices[key]
        out.append(dataclasses.replace(spec, path=c["chosen"], path_choice=c["why"]))
    return out, list(choices.values())


def _choose(key: Key, candidates: list[str], runs: list[RunSpec], measure: Measure) -> dict:
    """Measure ``candidates`` for one (backend, device, dtype, mode) of the sweep; the
    first candidate (the backend's static preference) where measuring fails."""
    mine = [s for s in runs if _key(s) == key]
    batch = sorted(s.batch_size for s in mine)[len(mine) // 2]
    kinds: dict[str, OptimizerSpec] = {}
    for s in mine:  # the sweep's first configuration of each kind
        kinds.setdefault(s.opt.kind, s.opt)
    task = {
        "backend": key[0],
        "device": key[1],
        "dtype": key[2],
        "mode": key[3],
        "candidates": candidates,
        "dataset": mine[0].dataset,
        "hidden": list(mine[0].hidden),
        "batch_size": batch,
        "optimizers": [o.to_dict() for o in kinds.values()],
    }
    record: dict[str, Any] = {"key": list(key), "candidates": candidates, "batch_size": batch}
    try:
        ms = {p: t * 1e3 for p, t in measure(task).items()}
    except Exception as exc:  # noqa: BLE001 - any failure: the static default, said so
        return {
            **record,
            "chosen": candidates[0],
            "ms_per_step": {},
            "why": f"{candidates[0]}: the default; measuring failed ({str(exc).splitlines()[0]})",
        }
    fastest, first = min(ms, key=ms.get), candidates[0]
    tie = first in ms and ms[first] <= ms[fastest] * (1 + TIE)
    figures = ", ".join(f"{p} {v:.3f}" for p, v in sorted(ms.items(), key=lambda kv: kv[1]))
    why = f"measured at batch {batch} (ms/step, {'+'.join(kinds)}): {figures}"
    if tie and first != fastest:
        why += f"; {first} within {TIE:.0%} of {fastest}: a tie, {first} kept"
    return {**record, "chosen": first if tie else fastest, "ms_per_step": ms, "why": why}


def isolated(threads: int | None, timeout: float) -> Measure:
    """:func:`measure` in a worker process of its own, as the runs are measured."""
    from benchmarks.run.worker import call_isolated

    def run(task: dict[str, Any]) -> dict[str, float]:
        return call_isolated(
            "benchmarks.run.paths:measure",
            {"task": task},
            label=f"paths-{task['backend']}",
            threads=threads,
            timeout=timeout,
        )

    return run


def measure(task: dict[str, Any]) -> dict[str, float]:
    """Worker task: seconds per step of each candidate path, summed over the optimizer
    kinds: each one's median over :data:`ROUNDS` :func:`interleaved` rounds of :data:`STEPS`
    steps, after a compile and warm-up round."""
    from benchmarks.record.data import cached_dataset

    data = cached_dataset(task["dataset"])
    model = ModelSpec(data.input_dim, data.num_classes, tuple(task["hidden"]), dtype=task["dtype"])
    weights = init_weights(model, seed=0)
    blocks = {}
    for path in task["candidates"]:
        for o in task["optimizers"]:
            be = registry.create(task["backend"], task["mode"], task["device"], task["dtype"], path)
            state = be.init(model, OptimizerSpec(**o), weights)
            batches = be.split_batches(
                *be.to_device(data.x_train, data.y_train), task["batch_size"]
            )
            blocks[path, o["kind"]] = step_block(be, state, batches)
    for block in blocks.values():  # compile, then warm up
        block(1), block(STEPS)
    typical = {k: float(np.median(v)) for k, v in interleaved(blocks, ROUNDS, STEPS).items()}
    return {
        p: statistics.fsum(typical[p, o["kind"]] for o in task["optimizers"])
        for p in task["candidates"]
    }


def interleaved(
    blocks: dict[K, Callable[[int], float]], rounds: int, steps: int
) -> dict[K, np.ndarray]:
    """Seconds per step of each of ``blocks`` in each of ``rounds`` rounds of ``steps``
    steps: every round runs every block once, in an order reversed from round to round.

    Variants are compared round by round (medians, or :func:`benchmarks.core.stats.round_ratio`),
    never by each one's fastest round: a shared machine's speed drifts over seconds (on a
    2-core VM one NumPy Adam block read 0.44 ms a step, two rounds later 0.80), so the fastest
    round names whichever variant met the machine's best moment. NumPy against the same NumPy
    code read 0.84-1.10 by fastest rounds, 0.98-1.02 by the median of the rounds' ratios
    (100 rounds of 40 steps, six processes). Hence short rounds, and many."""
    times: dict[K, list[float]] = {k: [] for k in blocks}
    order = list(blocks.items())
    for r in range(rounds):
        for k, block in order if r % 2 == 0 else reversed(order):
            times[k].append(block(steps) / steps)
    return {k: np.asarray(v) for k, v in times.items()}


def step_block(be: Backend, state: Any, batches: Sequence) -> Callable[[int], float]:
    """``block(steps) -> seconds``: the adapter's steps as the runner drives them (staged
    batches, ``train_steps`` on consecutive ones from the epoch's first, cut where its
    batches end, as the runner's blocks are; no host sync inside, one device sync at the
    end). Every block starts at batch 0, as the bare loops' do, so that a block path makes
    as many calls as its bare loop (a call costs TensorFlow about 0.5 ms on a 2-core CPU;
    a block that started mid-epoch made one call more, 2-4% of a step). That a block path
    compiles once for windows of every start is the contract tests' to check."""
    if not len(batches):
        raise SpecError("no full batch to train on: the batch size is larger than the data")

    def block(steps: int) -> float:
        nonlocal state
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            n = min(steps - done, len(batches))
            state, losses = be.train_steps(state, batches[:n])
            done += n
        be.sync_losses(losses)
        return time.perf_counter() - t0

    return block

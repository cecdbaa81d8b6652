"""One run, inside a worker process: train, time and evaluate; return tidy rows.

The timing protocol:
1. data (the whole test set, and each epoch's shuffled training set) is staged on the
   device before any timer starts;
2. the first step is timed alone, with a device sync: ``compile_s`` (tracing, compiling,
   first allocations);
3. the rest runs in blocks of ``block_steps`` steps with no host sync inside a block and a
   device sync at its end; every block's time is kept (``timings``). At least
   ``warmup_steps`` steps after the first are warm-up (rounded up to a block boundary),
   outside the throughput figure; blocks also end at epoch ends and evaluation points;
4. evaluation happens between blocks and is excluded from the training wall-clock.

A non-finite loss, or one above ``diverge_factor`` x its starting value, marks the run
``diverged`` at the first step where it happened and stops it: that is data, not an error.
"""

from __future__ import annotations

import math
import os
import resource
import socket
import time
from typing import Any

import numpy as np
import pandas as pd

from backends import optimizers, registry
from backends.base import ModelSpec, SpecError, init_weights, num_parameters
from benchmarks.core import stats
from benchmarks.core.environment import cpu_affinity
from benchmarks.core.reference import reference_ms
from benchmarks.record.data import cached_dataset, epoch_permutation, validation_split
from benchmarks.record.schema import RunSpec, Status, failed_record, run_steps
from benchmarks.run.schedule import COMPILE, Block, block_schedule, full_block_steps


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return math.nan


_runs_in_process = 0


def _backend(spec: RunSpec) -> Any:
    """The run's backend, made; or the record of why it cannot run here (a dict)."""
    if spec.optimizer_source:  # a plugin, registered here too (a Dask worker has no sweep file)
        try:
            optimizers.find(spec.optimizer_source)
        except SpecError as exc:
            return failed_record(spec, Status.ERROR, str(exc))
    try:
        cls = registry.load(spec.backend)
    except registry.BackendNotInstalled as exc:  # decided where the run would execute
        return failed_record(spec, Status.SKIPPED, str(exc))
    if spec.device not in cls.devices():
        never = {d for p in registry.entry(spec.backend).paths for d in p.devices}
        why = (
            f"no {spec.device} visible to {spec.backend} here"
            if spec.device in never
            else f"{spec.backend} runs on the {'/'.join(sorted(never))} only"
        )
        return failed_record(spec, Status.SKIPPED, why)
    be = cls(
        mode=spec.mode,
        device=spec.device,
        dtype=spec.dtype,
        compiler=spec.chosen or None,
        variant=spec.variant,
    )
    path = be.path  # an optimizer plugin may not implement this framework, or this path
    plugin = spec.opt.plugin
    why = plugin and plugin.skip_reason(spec.backend, path.options(), path.name, spec.variant)
    if why:
        return failed_record(spec, Status.SKIPPED, why)
    return be


class _Training:
    """One run's training loop and what it records: curve rows, block timings, evaluation
    time, peak memory; :meth:`train` follows :func:`block_schedule`."""

    def __init__(self, spec: RunSpec, be: Any, state: Any, data: Any, val: Any) -> None:
        self.spec, self.be, self.state, self.data = spec, be, state, data
        self.x_test, self.y_test = be.to_device(data.x_test, data.y_test)
        self.val = be.to_device(*val) if len(val[1]) else None
        self.x_train_eval, self.y_train_eval = be.to_device(data.x_train, data.y_train)
        self.curves: list[dict[str, Any]] = []
        self.timings: list[dict[str, Any]] = []
        self.peak_rss = _rss_mb()
        self.eval_s = 0.0
        self.wall = 0.0
        self.compile_s = math.nan
        self.diverged_step: int | None = None
        self.steps = 0

    def evaluate(self, step: int, epoch: float, train_loss: float) -> tuple[float, float]:
        be, state = self.be, self.state
        t0 = time.perf_counter()
        test_loss, test_acc = be.evaluate(state, self.x_test, self.y_test)
        _, train_acc = be.evaluate(state, self.x_train_eval, self.y_train_eval)
        val_loss, val_acc = be.evaluate(state, *self.val) if self.val else (math.nan, math.nan)
        self.eval_s += time.perf_counter() - t0
        self.log(step, epoch, train_loss, train_acc, test_loss, test_acc, val_loss, val_acc)
        return test_loss, test_acc

    def log(self, step: int, epoch: float, train_loss: float, *evaluated: float) -> None:
        """A curve row; ``evaluated``: train_acc, test_loss, test_acc, val_loss, val_acc
        (NaN between evaluations)."""
        measured = evaluated or (math.nan,) * 5
        names = ("train_acc", "test_loss", "test_acc", "val_loss", "val_acc")
        self.curves.append(
            {
                "run_id": self.spec.run_id,
                "step": step,
                "epoch": epoch,
                "wall_s": self.wall,
                "train_loss": train_loss,
                **dict(zip(names, measured)),
            }
        )

    def train(self, blocks: list[Block], steps_per_epoch: int, limit: float, loss: float) -> float:
        """Every block of ``blocks`` until one diverges; returns the last train loss."""
        spec, be, data = self.spec, self.be, self.data
        n_train = len(data.y_train)
        batches: Any = ()
        for blk in blocks:
            if blk.offset == 0:  # an epoch's data, staged before any timer starts
                perm = epoch_permutation(n_train, spec.seed, blk.epoch)
                xs, ys = be.to_device(data.x_train[perm], data.y_train[perm])
                batches = be.split_batches(xs, ys, spec.batch_size)
                be.sync(batches)  # copies may be asynchronous
            t0 = time.perf_counter()
            self.state, losses = be.train_steps(
                self.state, batches[blk.offset : blk.offset + blk.steps]
            )
            be.sync_losses(losses)
            seconds = time.perf_counter() - t0
            self.wall += seconds
            if blk.phase == COMPILE:
                self.compile_s = seconds
            self.timings.append(
                {
                    "run_id": spec.run_id,
                    "block": blk.index,
                    "phase": blk.phase,
                    "steps": blk.steps,
                    "seconds": seconds,
                }
            )
            host = be.host_losses(losses)
            bad = np.flatnonzero(~np.isfinite(host) | (host > limit))
            if bad.size:
                self.diverged_step = blk.start + int(bad[0]) + 1
            self.steps = blk.end
            loss = float(np.mean(host))
            self.peak_rss = max(self.peak_rss, _rss_mb())
            ep = blk.end / steps_per_epoch
            if self.diverged_step is not None:
                self.log(blk.end, ep, loss)
                break
            if blk.evaluate:
                test_loss, _ = self.evaluate(blk.end, ep, loss)
                if not math.isfinite(test_loss):  # the last update blew the weights up
                    self.diverged_step = blk.end
                    break
            else:
                self.log(blk.end, ep, loss)
        return loss


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Train one configuration; returns ``{"run": row, "curves": [...], "timings": [...]}``."""
    global _runs_in_process
    _runs_in_process += 1
    t_start = time.perf_counter()
    be = _backend(spec)
    if isinstance(be, dict):
        return be
    row = spec.row()
    info = be.describe()
    data, val = validation_split(cached_dataset(spec.dataset), spec.validation_fraction)
    n_train = len(data.y_train)
    if spec.batch_size > n_train:
        raise ValueError(
            f"batch_size={spec.batch_size} is larger than the {n_train} training samples of {spec.dataset}"
        )
    steps_per_epoch = n_train // spec.batch_size
    total = run_steps(n_train, spec.batch_size, spec.epochs, spec.max_steps)
    model = ModelSpec(data.input_dim, data.num_classes, spec.hidden, spec.init, spec.dtype)
    # a learning-rate schedule spans the run's steps
    state = be.init(model, spec.opt.for_run(total), init_weights(model, spec.seed))
    run = _Training(spec, be, state, data, val)

    start_loss, _ = be.evaluate(state, run.x_train_eval, run.y_train_eval)
    run.evaluate(0, 0.0, start_loss)
    reference = [reference_ms()]  # the machine's speed around the run (benchmarks.core.reference)
    limit = spec.diverge_factor * max(start_loss, 1e-3)
    blocks = block_schedule(
        total, steps_per_epoch, spec.block_steps, spec.warmup_steps, spec.eval_every
    )
    last_train_loss = run.train(blocks, steps_per_epoch, limit, start_loss)
    reference.append(reference_ms())

    full_block = full_block_steps(spec.block_steps, steps_per_epoch)
    row.update(_measured(spec, run, full_block, last_train_loss, t_start, reference))
    row.update(_described(info))
    row["num_params"] = num_parameters(model)
    return {"run": row, "curves": run.curves, "timings": run.timings}


def _measured(
    spec: RunSpec,
    run: _Training,
    full_block: int,
    last_train_loss: float,
    t_start: float,
    reference: list[float],
) -> dict[str, Any]:
    """The run's measurements: status, compile time, throughput, times, losses, memory."""
    # samples/s by the same rule as the report and the comparison (benchmarks.core.stats)
    diverged = run.diverged_step is not None
    status = Status.DIVERGED if diverged else Status.OK
    this = {
        "run_id": spec.run_id,
        "status": status.value,
        "batch_size": spec.batch_size,
        "full_block_steps": full_block,
    }
    timings = pd.DataFrame(run.timings)
    rates = stats.block_rates(pd.DataFrame([this]), timings, [])["rate"].to_numpy()
    curves = run.curves
    last_eval = next((c for c in reversed(curves) if not math.isnan(c["test_loss"])), curves[0])
    device_peak = run.be.peak_memory_mb()
    return {
        "status": status.value,
        "error": "",
        "traceback": "",
        "diverged_step": run.diverged_step,
        "compile_s": run.compile_s,
        # 1 = this worker's first run: its first step also pays framework start-up; later
        # runs may hit the framework's in-process compile caches.
        "worker_run_index": _runs_in_process,
        "steps": run.steps,
        "full_block_steps": full_block,
        "timed_blocks": len(rates),
        "samples_per_s": float(np.median(rates)) if len(rates) else math.nan,
        "samples_per_s_mean": float(np.mean(rates)) if len(rates) else math.nan,
        "train_wall_s": run.wall,
        "eval_s": run.eval_s,
        "run_s": time.perf_counter() - t_start,
        "reference_ms": float(np.mean(reference)),
        "final_train_loss": last_train_loss,
        **{
            f"final_{k}": math.nan if diverged else last_eval[k]
            for k in ("test_loss", "test_acc", "val_loss", "val_acc")
        },
        "peak_memory_mb": device_peak if device_peak is not None else run.peak_rss,
        "peak_memory_kind": run.be.device_peak_kind if device_peak is not None else "process_rss",
        "peak_rss_mb": run.peak_rss,
        "worker_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _described(info: Any) -> dict[str, Any]:
    """What the framework and the host say about the run: versions, compiler, threads."""
    cpus = cpu_affinity()
    return {
        "framework_version": info.version,
        "compiler": info.compiler,
        "compiler_detail": info.compiler_detail,
        "threads": len(cpus),  # the CPUs this worker is pinned to
        "cpu_affinity": ",".join(map(str, cpus)),
        "threads_reported": str(info.extra.get("threads", "")),  # the framework's own word
        "matmul_precision": str(info.extra.get("matmul_precision", "")),
        "blas": str(info.extra.get("blas", "")),
        "host": socket.gethostname(),
    }

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
from benchmarks.core.reference import reference_ms
from benchmarks.record.data import cached_dataset, epoch_permutation, validation_split
from benchmarks.record.schema import RunSpec, Status, failed_record, run_steps, warmup_end


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return math.nan


_runs_in_process = 0


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Train one configuration; returns ``{"run": row, "curves": [...], "timings": [...]}``."""
    global _runs_in_process
    _runs_in_process += 1
    t_start = time.perf_counter()
    if spec.optimizer_source:  # a plugin, registered here too (a Dask worker has no sweep file)
        try:
            optimizers.find(spec.optimizer_source)
        except SpecError as exc:
            return failed_record(spec, Status.ERROR, str(exc))
    row = spec.row()
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
    info = be.describe()
    data, (x_val_host, y_val_host) = validation_split(
        cached_dataset(spec.dataset), spec.validation_fraction
    )
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
    x_test, y_test = be.to_device(data.x_test, data.y_test)
    val = be.to_device(x_val_host, y_val_host) if len(y_val_host) else None
    x_train_eval, y_train_eval = be.to_device(data.x_train, data.y_train)

    curves: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    peak_rss = _rss_mb()
    eval_s = 0.0

    def evaluate(step: int, epoch: float, wall: float, train_loss: float) -> tuple[float, float]:
        nonlocal eval_s
        t0 = time.perf_counter()
        test_loss, test_acc = be.evaluate(state, x_test, y_test)
        _, train_acc = be.evaluate(state, x_train_eval, y_train_eval)
        val_loss, val_acc = be.evaluate(state, *val) if val else (math.nan, math.nan)
        eval_s += time.perf_counter() - t0
        log(step, epoch, wall, train_loss, train_acc, test_loss, test_acc, val_loss, val_acc)
        return test_loss, test_acc

    def log(step, epoch, wall, train_loss, *evaluated: float) -> None:
        """A curve row; ``evaluated``: train_acc, test_loss, test_acc, val_loss, val_acc
        (NaN between evaluations)."""
        measured = evaluated or (math.nan,) * 5
        curves.append(
            {
                "run_id": spec.run_id,
                "step": step,
                "epoch": epoch,
                "wall_s": wall,
                "train_loss": train_loss,
                **dict(
                    zip(("train_acc", "test_loss", "test_acc", "val_loss", "val_acc"), measured)
                ),
            }
        )

    start_loss, _ = be.evaluate(state, x_train_eval, y_train_eval)
    evaluate(0, 0.0, 0.0, start_loss)
    reference = [reference_ms()]  # the machine's speed around the run (benchmarks.core.reference)
    limit = spec.diverge_factor * max(start_loss, 1e-3)

    step, wall, block = 0, 0.0, 0
    compile_s = math.nan
    diverged_step: int | None = None
    last_train_loss = start_loss
    epoch = 0
    # a full block is block_steps, or a whole epoch if shorter
    timed_from = warmup_end(spec.warmup_steps, spec.block_steps)
    full_block = min(spec.block_steps, steps_per_epoch)
    while step < total and diverged_step is None:
        perm = epoch_permutation(n_train, spec.seed, epoch)
        xs, ys = be.to_device(data.x_train[perm], data.y_train[perm])
        batches = be.split_batches(xs, ys, spec.batch_size)
        be.sync(batches)  # staged before any timer starts (copies may be asynchronous)
        i = 0
        while i < len(batches) and step < total:
            if step == 0:
                n, phase = 1, "compile"
            elif step < timed_from:
                n, phase = min(timed_from - step, spec.block_steps), "warmup"
            else:
                n, phase = spec.block_steps, "timed"
            n = min(n, len(batches) - i, total - step)
            if spec.eval_every and step:  # end blocks on evaluation points
                n = min(n, spec.eval_every - step % spec.eval_every)
            t0 = time.perf_counter()
            state, losses = be.train_steps(state, batches[i : i + n])
            be.sync_losses(losses)
            seconds = time.perf_counter() - t0
            wall += seconds
            if phase == "compile":
                compile_s = seconds
            timings.append(
                {
                    "run_id": spec.run_id,
                    "block": block,
                    "phase": phase,
                    "steps": n,
                    "seconds": seconds,
                }
            )
            block += 1
            host = be.host_losses(losses)
            bad = np.flatnonzero(~np.isfinite(host) | (host > limit))
            if bad.size:
                diverged_step = step + int(bad[0]) + 1
            step += n
            i += n
            last_train_loss = float(np.mean(host))
            peak_rss = max(peak_rss, _rss_mb())
            ep = step / steps_per_epoch
            if diverged_step is not None:
                log(step, ep, wall, last_train_loss)
                break
            at_epoch_end = i >= len(batches) or step >= total
            if at_epoch_end or (spec.eval_every and step % spec.eval_every == 0):
                test_loss, _ = evaluate(step, ep, wall, last_train_loss)
                if not math.isfinite(test_loss):  # the last update blew the weights up
                    diverged_step = step
                    break
            else:
                log(step, ep, wall, last_train_loss)
        epoch += 1

    reference.append(reference_ms())
    # samples/s by the same rule as the report and the comparison (benchmarks.core.stats)
    status = Status.DIVERGED if diverged_step is not None else Status.OK
    this = {
        "run_id": spec.run_id,
        "status": status.value,
        "batch_size": spec.batch_size,
        "full_block_steps": full_block,
    }
    rates = stats.block_rates(pd.DataFrame([this]), pd.DataFrame(timings), [])["rate"].to_numpy()
    last_eval = next((c for c in reversed(curves) if not math.isnan(c["test_loss"])), curves[0])
    device_peak = be.peak_memory_mb()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    row.update(
        {
            "status": status.value,
            "error": "",
            "traceback": "",
            "diverged_step": diverged_step,
            "compile_s": compile_s,
            # 1 = this worker's first run: its first step also pays framework start-up; later
            # runs may hit the framework's in-process compile caches.
            "worker_run_index": _runs_in_process,
            "steps": step,
            "full_block_steps": full_block,
            "timed_blocks": len(rates),
            "samples_per_s": float(np.median(rates)) if len(rates) else math.nan,
            "samples_per_s_mean": float(np.mean(rates)) if len(rates) else math.nan,
            "train_wall_s": wall,
            "eval_s": eval_s,
            "run_s": time.perf_counter() - t_start,
            "reference_ms": float(np.mean(reference)),
            "final_train_loss": last_train_loss,
            "final_test_loss": math.nan if diverged_step is not None else last_eval["test_loss"],
            "final_test_acc": math.nan if diverged_step is not None else last_eval["test_acc"],
            "final_val_loss": math.nan if diverged_step is not None else last_eval["val_loss"],
            "final_val_acc": math.nan if diverged_step is not None else last_eval["val_acc"],
            "peak_memory_mb": device_peak if device_peak is not None else peak_rss,
            "peak_memory_kind": be.device_peak_kind if device_peak is not None else "process_rss",
            "peak_rss_mb": peak_rss,
            "worker_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "framework_version": info.version,
            "compiler": info.compiler,
            "compiler_detail": info.compiler_detail,
            "threads": len(cpus),  # the CPUs this worker is pinned to
            "cpu_affinity": ",".join(map(str, cpus)),
            "threads_reported": str(info.extra.get("threads", "")),  # the framework's own word
            "matmul_precision": str(info.extra.get("matmul_precision", "")),
            "blas": str(info.extra.get("blas", "")),
            "host": socket.gethostname(),
            "num_params": num_parameters(model),
        }
    )
    return {"run": row, "curves": curves, "timings": timings}

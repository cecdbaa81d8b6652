"""The overhead benchmark's bare loop: NumPy has no framework optimizer, so the bare loop is
the same hand-written math, called directly (no adapter, no staging, no sync)."""

from __future__ import annotations

import time

import numpy as np

from backends.base import OptimizerSpec, Weights, loss_and_grads
from backends.numpy.backend import apply_update, init_state


def bare_loops(
    opt: OptimizerSpec, weights: Weights, x: np.ndarray, y: np.ndarray, batch_size: int, device: str
):
    state = init_state(weights, opt, "float32")
    xs, ys = np.ascontiguousarray(x), np.ascontiguousarray(y)
    n = len(ys) - batch_size + 1
    batches = [(xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, n, batch_size)]

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            _, grads = loss_and_grads(state.weights, *batches[i % len(batches)])
            apply_update(state, grads)
        return time.perf_counter() - t0

    return {"numpy": block}

"""The overhead benchmark's bare loops: what a JAX user writes (a pure MLP function, a stock
optax optimizer, one ``jax.jit`` step; or the same step in a ``lax.fori_loop`` over
batches stacked on the device, many steps per call), nothing of ours."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from backends.base import OptimizerSpec, Weights, for_kind

OPTIMIZERS = {
    "sgd": lambda o: optax.sgd(o.lr, momentum=o.momentum or None, nesterov=o.nesterov),
    "adam": lambda o: optax.adam(o.lr, b1=o.beta1, b2=o.beta2, eps=o.eps),
}


def bare_loops(
    opt: OptimizerSpec, weights: Weights, x: np.ndarray, y: np.ndarray, batch_size: int, device: str
):
    dev = jax.devices(device)[0]
    params = [jax.device_put(w, dev) for w in weights]
    tx = for_kind(OPTIMIZERS, opt.kind, "the jax bare loop")(opt)
    opt_state = tx.init(params)

    def loss_fn(p, xb, yb):
        # float32 matmuls as the suite runs them (a GPU's default may take TF32 passes)
        with jax.default_matmul_precision("highest"):
            h = xb
            for i in range(0, len(p) - 2, 2):
                h = jax.nn.relu(h @ p[i] + p[i + 1])
            logits = h @ p[-2] + p[-1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def update(p, s, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    # donated buffers, as a user who reads the jit docs writes it
    step = jax.jit(update, donate_argnums=(0, 1))

    # a trip count that is traced, not static: one compilation for blocks of every length
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def many(p, s, xs, ys, n):
        def body(i, carry):
            p, s, losses = carry
            p, s, loss = update(p, s, xs[i], ys[i])
            return p, s, losses.at[i].set(loss)

        return jax.lax.fori_loop(0, n, body, (p, s, jnp.zeros(len(xs))))

    k = len(y) // batch_size
    n = k * batch_size
    xs = jax.device_put(x[:n], dev)
    ys = jax.device_put(y[:n].astype(np.int32), dev)
    batches = list(zip(jnp.split(xs, k), jnp.split(ys, k)))
    stacked = xs.reshape(k, batch_size, -1), ys.reshape(k, batch_size)

    def block(steps: int) -> float:
        nonlocal params, opt_state
        t0 = time.perf_counter()
        for i in range(steps):
            params, opt_state, loss = step(params, opt_state, *batches[i % len(batches)])
        loss.block_until_ready()
        return time.perf_counter() - t0

    loop_state = jax.tree.map(jnp.copy, (params, opt_state))

    def loop_block(steps: int) -> float:
        nonlocal loop_state
        t0 = time.perf_counter()
        for done in range(0, steps, k):  # at most the batches there are, per call
            *loop_state, losses = many(*loop_state, *stacked, min(k, steps - done))
        losses.block_until_ready()
        return time.perf_counter() - t0

    return {"jit": block, "fori_loop": loop_block}

"""The overhead benchmark's bare loops: what a Keras user writes (``keras.Sequential``, a stock
Keras optimizer, a ``tf.function`` step with ``GradientTape``), nothing of ours; with and
without XLA (``jit_compile``), since which is faster depends on the machine; and each with
many steps per call (``*_loop``: a while loop over batches stacked on the device,
collecting the losses in a ``TensorArray``, as Keras' ``steps_per_execution`` does)."""

from __future__ import annotations

import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from backends.base import OptimizerSpec, Weights, for_kind  # noqa: E402

OPTIMIZERS = {
    "sgd": lambda o: keras.optimizers.SGD(
        learning_rate=o.lr, momentum=o.momentum, nesterov=o.nesterov
    ),
    "adam": lambda o: keras.optimizers.Adam(
        learning_rate=o.lr, beta_1=o.beta1, beta_2=o.beta2, epsilon=o.eps
    ),
}


def bare_loops(
    opt: OptimizerSpec, weights: Weights, x: np.ndarray, y: np.ndarray, batch_size: int, device: str
):
    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        xs, ys = tf.identity(tf.constant(x)), tf.identity(tf.constant(y))
        n = len(y) - batch_size + 1
        batches = [
            (xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, n, batch_size)
        ]
        stacked = tf.stack([b[0] for b in batches]), tf.stack([b[1] for b in batches])
    return {
        "tf_function": _loop(opt, weights, x.shape[1], batches, jit_compile=False),
        "xla": _loop(opt, weights, x.shape[1], batches, jit_compile=True),
        "tf_function_loop": _many(opt, weights, x.shape[1], stacked, jit_compile=False),
        "xla_loop": _many(opt, weights, x.shape[1], stacked, jit_compile=True),
    }


def _model_step(opt: OptimizerSpec, weights: Weights, input_dim: int):
    """A Keras model and optimizer at ``weights``, and the Python step on them."""
    sizes = [w.shape[1] for w in weights[0::2]]
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(n, activation="relu") for n in sizes[:-1]]
    model = keras.Sequential([*layers, keras.layers.Dense(sizes[-1])])
    model.set_weights(weights)
    optim = for_kind(OPTIMIZERS, opt.kind, "the tensorflow bare loop")(opt)
    optim.build(model.trainable_variables)
    loss_obj = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_obj(yb, model(xb, training=True))
        optim.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return step


def _loop(opt: OptimizerSpec, weights: Weights, input_dim: int, batches, jit_compile: bool):
    step = tf.function(_model_step(opt, weights, input_dim), jit_compile=jit_compile)

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(*batches[i % len(batches)])
        loss.numpy()
        return time.perf_counter() - t0

    return block


def _many(opt: OptimizerSpec, weights: Weights, input_dim: int, stacked, jit_compile: bool):
    step = _model_step(opt, weights, input_dim)
    xs, ys = stacked

    @tf.function(jit_compile=jit_compile)
    def steps_fn(n):
        # a while loop and a TensorArray as long as the batches: XLA compiles a Range or a
        # TensorArray of n anew for each n
        losses = tf.TensorArray(tf.float32, size=len(xs))
        i = tf.constant(0)
        while i < n:
            losses = losses.write(i, step(xs[i], ys[i]))
            i += 1
        return losses.stack()

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for done in range(0, steps, len(xs)):  # at most the batches there are, per call
            losses = steps_fn(tf.constant(min(len(xs), steps - done)))
        losses.numpy()
        return time.perf_counter() - t0

    return block

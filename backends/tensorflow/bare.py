"""The overhead benchmark's bare loops: what a Keras user writes (``keras.Sequential``, a stock
Keras optimizer, a ``tf.function`` step with ``GradientTape``), nothing of ours; with and
without XLA (``jit_compile``), since which is faster depends on the machine."""

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
    batches = [(xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, n, batch_size)]
    return {
        "tf_function": _loop(opt, weights, x.shape[1], batches, jit_compile=False),
        "xla": _loop(opt, weights, x.shape[1], batches, jit_compile=True),
    }


def _loop(opt: OptimizerSpec, weights: Weights, input_dim: int, batches, jit_compile: bool):
    sizes = [w.shape[1] for w in weights[0::2]]
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(n, activation="relu") for n in sizes[:-1]]
    model = keras.Sequential([*layers, keras.layers.Dense(sizes[-1])])
    model.set_weights(weights)
    optim = for_kind(OPTIMIZERS, opt.kind, "the tensorflow bare loop")(opt)
    optim.build(model.trainable_variables)
    loss_obj = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_obj(yb, model(xb, training=True))
        optim.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(*batches[i % len(batches)])
        loss.numpy()
        return time.perf_counter() - t0

    return block

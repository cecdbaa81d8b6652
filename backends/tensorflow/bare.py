"""The overhead benchmark's bare loop: what a Keras user writes (``keras.Sequential``, a stock
Keras optimizer, a ``tf.function`` step with ``GradientTape``), nothing of ours."""

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


def bare_loop(opt: OptimizerSpec, weights: Weights, x: np.ndarray, y: np.ndarray, batch_size: int):
    sizes = [w.shape[1] for w in weights[0::2]]
    layers = [keras.Input((x.shape[1],))]
    layers += [keras.layers.Dense(n, activation="relu") for n in sizes[:-1]]
    model = keras.Sequential([*layers, keras.layers.Dense(sizes[-1])])
    model.set_weights(weights)
    optim = for_kind(OPTIMIZERS, opt.kind, "the tensorflow bare loop")(opt)
    loss_obj = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_obj(yb, model(xb, training=True))
        optim.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    xs, ys = tf.constant(x), tf.constant(y)
    n = len(y) - batch_size + 1
    batches = [(xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, n, batch_size)]

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(*batches[i % len(batches)])
        loss.numpy()
        return time.perf_counter() - t0

    return block

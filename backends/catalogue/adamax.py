"""Adamax (Kingma and Ba, 2015, section 7.1), in PyTorch's formulation: the infinity norm
with eps inside the max. torch and optax compute exactly this; Keras adds eps outside the
max (``u = max(b2 u, |g|)``, ``w -= lr m / ((1 - b1^t)(u + eps))``), so its spec
implementation is written here. Stock defaults: torch lr 2e-3 eps 1e-8, optax eps 1e-8,
Keras eps 1e-7 (outside the max)."""

from __future__ import annotations

import numpy as np

from backends.optimizers import Hyperparameter, OptimizerKind, Reference


def _slots(hp):
    return [("m", 0.0), ("u", 0.0)]


def _update(hp, lr, w, g, slots, t):
    m, u = slots
    b1 = hp["beta1"]
    m = b1 * m + (1 - b1) * g
    u = np.maximum(hp["beta2"] * u, np.abs(g) + hp["eps"])
    return w - (lr / (1 - b1**t)) * m / u, [m, u]


def torch_spec(params, hp, lr):
    import torch

    betas = (hp["beta1"], hp["beta2"])
    return torch.optim.Adamax(params, lr=lr, betas=betas, eps=hp["eps"], foreach=True)


def torch_stock(params, hp, lr):
    import torch

    return torch.optim.Adamax(params, lr=lr, foreach=True)


def optax_spec(hp, lr):
    import optax

    # optax's bias correction 1 - b1^t is float32: at b1 = 0.9 it is 2e-7 off, inside parity
    return optax.adamax(lr, b1=hp["beta1"], b2=hp["beta2"], eps=hp["eps"])


def optax_stock(hp, lr):
    import optax

    return optax.adamax(lr)


def keras_spec(hp, lr):
    import keras
    from keras import ops

    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]

    class SpecAdamax(keras.optimizers.Optimizer):
        """Keras' Adamax with eps inside the max (the spec's), bias correction in float64."""

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self._m = [self.add_variable_from_reference(v, "m") for v in variables]
            self._u = [self.add_variable_from_reference(v, "u") for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            i = self._get_variable_index(variable)
            m, u, dt = self._m[i], self._u[i], variable.dtype
            t = ops.cast(self.iterations + 1, dt)
            c1 = -ops.expm1(t * ops.log1p(ops.cast(-(1 - b1), dt)))  # 1 - b1^t, accurate
            self.assign(m, b1 * m + (1 - b1) * gradient)
            self.assign(u, ops.maximum(b2 * u, ops.abs(gradient) + eps))
            self.assign_sub(variable, ops.cast(learning_rate, dt) / c1 * m / u)

    return SpecAdamax(learning_rate=lr, name="adamax")


def keras_stock(hp, lr):
    import keras

    return keras.optimizers.Adamax(lr)


ADAMAX = OptimizerKind(
    name="adamax",
    hyperparameters=(
        Hyperparameter("beta1", 0.9, 0, 1, high_open=True),
        Hyperparameter("beta2", 0.999, 0, 1, high_open=True),
        Hyperparameter("eps", 1e-8, 0, low_open=True, help="inside the max"),
    ),
    formula="m = b1 m + (1-b1) g; u = max(b2 u, |g| + eps); w -= lr / (1-b1^t) * m / u",
    presets={"adamax": {"lr": 2e-3}},
    reference=Reference(_slots, _update),
    implementations={"torch": torch_spec, "jax": optax_spec, "tensorflow": keras_spec},
    stock={"torch": torch_stock, "jax": optax_stock, "tensorflow": keras_stock},
)

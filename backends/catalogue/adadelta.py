"""Adadelta (Zeiler, 2012): one formula in torch, optax and Keras (each framework's class
computes exactly the spec with the spec's arguments), three sets of defaults. Stock
defaults: torch lr 1.0 rho 0.9 eps 1e-6; Keras lr 1e-3 rho 0.95 eps 1e-7; optax rho 0.9
eps 1e-6 and ``learning_rate=None``, which never negates the update: called so, optax's
Adadelta climbs the gradient (the stock variant passes the sweep's lr, as a user would)."""

from __future__ import annotations

import numpy as np

from backends.optimizers import Hyperparameter, OptimizerKind, Reference


def _slots(hp):
    return [("v", 0.0), ("u", 0.0)]


def _update(hp, lr, w, g, slots, t):
    v, u = slots
    rho, eps = hp["rho"], hp["eps"]
    v = rho * v + (1 - rho) * g * g
    d = np.sqrt(u + eps) / np.sqrt(v + eps) * g
    u = rho * u + (1 - rho) * d * d
    return w - lr * d, [v, u]


def torch_spec(params, hp, lr):
    import torch

    return torch.optim.Adadelta(params, lr=lr, rho=hp["rho"], eps=hp["eps"], foreach=True)


def torch_stock(params, hp, lr):
    import torch

    return torch.optim.Adadelta(params, lr=lr, foreach=True)


def optax_spec(hp, lr):
    import optax

    return optax.adadelta(lr, rho=hp["rho"], eps=hp["eps"])


def optax_stock(hp, lr):
    import optax

    return optax.adadelta(lr)


def keras_spec(hp, lr):
    import keras

    return keras.optimizers.Adadelta(lr, rho=hp["rho"], epsilon=hp["eps"])


def keras_stock(hp, lr):
    import keras

    return keras.optimizers.Adadelta(lr)


ADADELTA = OptimizerKind(
    name="adadelta",
    hyperparameters=(
        Hyperparameter("rho", 0.9, 0, 1, high_open=True),
        Hyperparameter("eps", 1e-6, 0, low_open=True, help="inside both roots"),
    ),
    formula=(
        "v = rho v + (1-rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) * g; "
        "u = rho u + (1-rho) d^2; w -= lr * d"
    ),
    presets={"adadelta": {"lr": 1.0}, "adadelta_keras": {"lr": 0.5, "rho": 0.95, "eps": 1e-7}},
    reference=Reference(_slots, _update),
    implementations={"torch": torch_spec, "jax": optax_spec, "tensorflow": keras_spec},
    stock={"torch": torch_stock, "jax": optax_stock, "tensorflow": keras_stock},
)

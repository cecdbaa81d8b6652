"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), in optax's and
Keras' formulation; PyTorch has none, so its implementation is written here. The update is a
sign: where ``b1 m + (1-b1) g`` is within float32 rounding of 0 the sign may flip between a
float32 run and the float64 reference and move that weight by ``2 lr``. Stock defaults: optax
``weight_decay=1e-3``, Keras none (``weight_decay=None``)."""

from __future__ import annotations

import numpy as np

from backends.optimizers import Hyperparameter, OptimizerKind, Reference


def _slots(hp):
    return [("m", 0.0)]


def _update(hp, lr, w, g, slots, t):
    (m,) = slots
    c = hp["beta1"] * m + (1 - hp["beta1"]) * g
    w = w - lr * (np.sign(c) + hp["weight_decay"] * w)
    return w, [hp["beta2"] * m + (1 - hp["beta2"]) * g]


def torch_spec(params, hp, lr):
    import torch

    b1, b2, wd = hp["beta1"], hp["beta2"], hp["weight_decay"]

    class Lion(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["m"] = torch.zeros_like(p)
                    m, g = state["m"], p.grad
                    c = torch.sign(m * b1 + g * (1 - b1))
                    p.add_(c + p * wd, alpha=-group["lr"])
                    m.mul_(b2).add_(g, alpha=1 - b2)

    return Lion(params)


def optax_spec(hp, lr):
    import optax

    return optax.lion(lr, b1=hp["beta1"], b2=hp["beta2"], weight_decay=hp["weight_decay"])


def optax_stock(hp, lr):
    import optax

    return optax.lion(lr)


def keras_spec(hp, lr):
    import keras

    wd = hp["weight_decay"] or None  # Keras' decay is decoupled (w -= lr wd w), as the spec's
    return keras.optimizers.Lion(lr, beta_1=hp["beta1"], beta_2=hp["beta2"], weight_decay=wd)


def keras_stock(hp, lr):
    import keras

    return keras.optimizers.Lion(lr)


LION = OptimizerKind(
    name="lion",
    hyperparameters=(
        Hyperparameter("beta1", 0.9, 0, 1, high_open=True),
        Hyperparameter("beta2", 0.99, 0, 1, high_open=True),
        Hyperparameter("weight_decay", 0.0, 0, help="decoupled: w -= lr wd w"),
    ),
    formula=("c = b1 m + (1-b1) g; w -= lr * (sign(c) + weight_decay * w); m = b2 m + (1-b2) g"),
    presets={"lion": {"lr": 1e-4}, "lion_decay": {"lr": 3e-4, "weight_decay": 0.1}},
    reference=Reference(_slots, _update),
    implementations={"torch": torch_spec, "jax": optax_spec, "tensorflow": keras_spec},
    stock={"jax": optax_stock, "tensorflow": keras_stock},
    sign_based=True,
)

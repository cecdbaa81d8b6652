"""AdaBelief (Zhuang et al., NeurIPS 2020) as an optbench optimizer plugin: a NumPy reference
and an implementation for each framework, none of which ships it under that name in the
form written below (optax's ``adabelief`` puts ``eps_root`` in a different place).

Run it with ``kind = "examples.optimizers.adabelief:ADABELIEF"`` in a sweep file, or check
that the four implementations agree::

    optbench parity --optimizer examples.optimizers.adabelief:ADABELIEF

Each framework's code imports its framework inside the factory, so this module imports
NumPy only. The bias corrections ``1 - b**t`` are computed accurately in float32
(``-expm1(t * log1p(-(1 - b)))``) or in Python floats: the float32 ``b**t`` is 1e-5 off at
b = 0.999, which parity's 2e-6 gate sees.
"""

from __future__ import annotations

import numpy as np

from backends.optimizers import Hyperparameter, OptimizerKind, Reference

FORMULA = (
    "m = b1 m + (1-b1) g; s = b2 s + (1-b2) (g-m)^2 + eps_root; "
    "w -= lr * (m / (1-b1^t)) / (sqrt(s / (1-b2^t)) + eps)"
)


def _slots(hp):
    return [("m", 0.0), ("s", 0.0)]


def _update(hp, lr, w, g, slots, t):
    m, s = slots
    b1, b2 = hp["beta1"], hp["beta2"]
    m = b1 * m + (1 - b1) * g
    s = b2 * s + (1 - b2) * (g - m) ** 2 + hp["eps_root"]
    w = w - lr * (m / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + hp["eps"])
    return w, [m, s]


def make_torch(params, hp, lr):
    import torch

    class AdaBelief(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": lr, **hp})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                b1, b2 = group["beta1"], group["beta2"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state.update(t=0, m=torch.zeros_like(p), s=torch.zeros_like(p))
                    state["t"] += 1
                    t, m, s, g = state["t"], state["m"], state["s"], p.grad
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    d = g - m
                    s.mul_(b2).addcmul_(d, d, value=1 - b2).add_(group["eps_root"])
                    denom = (s / (1 - b2**t)).sqrt_().add_(group["eps"])
                    p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1**t))

    return AdaBelief(params)


def make_optax(hp, lr):
    import jax
    import jax.numpy as jnp
    import optax

    b1, b2, eps, eps_root = hp["beta1"], hp["beta2"], hp["eps"], hp["eps_root"]

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (jnp.zeros([], jnp.int32), zeros, jax.tree.map(jnp.zeros_like, params))

    def update(g, state, params=None):
        count, m, s = state
        count = count + 1
        t = count.astype(jnp.float32)
        c1 = -jnp.expm1(t * jnp.log1p(jnp.float32(-(1 - b1))))
        c2 = -jnp.expm1(t * jnp.log1p(jnp.float32(-(1 - b2))))
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        s = jax.tree.map(lambda s, g, m: b2 * s + (1 - b2) * (g - m) ** 2 + eps_root, s, g, m)
        u = jax.tree.map(lambda m, s: (m / c1) / (jnp.sqrt(s / c2) + eps), m, s)
        return u, (count, m, s)

    return optax.chain(optax.GradientTransformation(init, update), optax.scale_by_learning_rate(lr))


def make_keras(hp, lr):
    import keras
    from keras import ops

    b1, b2, eps, eps_root = hp["beta1"], hp["beta2"], hp["eps"], hp["eps_root"]

    class AdaBelief(keras.optimizers.Optimizer):
        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self._m = [self.add_variable_from_reference(v, "m") for v in variables]
            self._s = [self.add_variable_from_reference(v, "s") for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            i = self._get_variable_index(variable)
            m, s, dt = self._m[i], self._s[i], variable.dtype
            t = ops.cast(self.iterations + 1, dt)
            c1 = -ops.expm1(t * ops.log1p(ops.cast(-(1 - b1), dt)))
            c2 = -ops.expm1(t * ops.log1p(ops.cast(-(1 - b2), dt)))
            self.assign(m, b1 * m + (1 - b1) * gradient)
            self.assign(s, b2 * s + (1 - b2) * ops.square(gradient - m) + eps_root)
            step = (m / c1) / (ops.sqrt(s / c2) + eps)
            self.assign_sub(variable, ops.cast(learning_rate, dt) * step)

    return AdaBelief(learning_rate=lr, name="adabelief")


ADABELIEF = OptimizerKind(
    name="adabelief",
    hyperparameters=(
        Hyperparameter("beta1", 0.9, 0, 1, high_open=True),
        Hyperparameter("beta2", 0.999, 0, 1, high_open=True),
        Hyperparameter("eps", 1e-8, 0, low_open=True, help="outside the root"),
        Hyperparameter("eps_root", 1e-16, 0, help="added to s at every step"),
    ),
    formula=FORMULA,
    presets={"adabelief": {"lr": 1e-3}, "adabelief_fast": {"lr": 3e-3, "beta2": 0.99}},
    reference=Reference(_slots, _update),
    implementations={"torch": make_torch, "jax": make_optax, "tensorflow": make_keras},
)

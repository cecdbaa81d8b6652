"""AMSGrad (Reddi et al., 2018): Adam with the running maximum of the second moment, in
PyTorch's and Keras' formulation: the maximum of the raw ``v``, bias-corrected after. optax's
``amsgrad`` takes the maximum of the bias-corrected ``v`` instead (``bias_correction_nu=True``
by default), which the stock rows measure; its spec implementation is written here, and
Keras' (whose Adam adds eps to sqrt(v) before the bias correction) too."""

from __future__ import annotations

import numpy as np

from backends.optimizers import Hyperparameter, OptimizerKind, Reference


def _slots(hp):
    return [("m", 0.0), ("v", 0.0), ("vmax", 0.0)]


def _update(hp, lr, w, g, slots, t):
    m, v, vmax = slots
    b1, b2 = hp["beta1"], hp["beta2"]
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    w = w - lr * (m / (1 - b1**t)) / (np.sqrt(vmax / (1 - b2**t)) + hp["eps"])
    return w, [m, v, vmax]


def torch_spec(params, hp, lr):
    import torch

    betas = (hp["beta1"], hp["beta2"])
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=hp["eps"], amsgrad=True, foreach=True)


def torch_stock(params, hp, lr):
    import torch

    return torch.optim.Adam(params, lr=lr, amsgrad=True, foreach=True)


def optax_spec(hp, lr):
    import jax
    import jax.numpy as jnp
    import optax

    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]

    def init(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return (jnp.zeros([], jnp.int32), zeros(), zeros(), zeros())

    def update(g, state, params=None):
        count, m, v, vmax = state
        count = count + 1
        t = count.astype(jnp.float32)
        # 1 - b^t, accurate in float32 (optax's own is 1e-5 off at b = 0.999)
        c1 = -jnp.expm1(t * jnp.log1p(jnp.float32(-(1 - b1))))
        c2 = -jnp.expm1(t * jnp.log1p(jnp.float32(-(1 - b2))))
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        vmax = jax.tree.map(jnp.maximum, vmax, v)
        u = jax.tree.map(lambda m, x: (m / c1) / (jnp.sqrt(x / c2) + eps), m, vmax)
        return u, (count, m, v, vmax)

    return optax.chain(optax.GradientTransformation(init, update), optax.scale_by_learning_rate(lr))


def optax_stock(hp, lr):
    import optax

    return optax.amsgrad(lr)


def keras_spec(hp, lr):
    import keras
    from keras import ops

    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]

    class SpecAmsgrad(keras.optimizers.Optimizer):
        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self._m = [self.add_variable_from_reference(x, "m") for x in variables]
            self._v = [self.add_variable_from_reference(x, "v") for x in variables]
            self._vmax = [self.add_variable_from_reference(x, "vmax") for x in variables]

        def update_step(self, gradient, variable, learning_rate):
            i = self._get_variable_index(variable)
            m, v, vmax, dt = self._m[i], self._v[i], self._vmax[i], variable.dtype
            t = ops.cast(self.iterations + 1, dt)
            c1 = -ops.expm1(t * ops.log1p(ops.cast(-(1 - b1), dt)))
            c2 = -ops.expm1(t * ops.log1p(ops.cast(-(1 - b2), dt)))
            self.assign(m, b1 * m + (1 - b1) * gradient)
            self.assign(v, b2 * v + (1 - b2) * ops.square(gradient))
            self.assign(vmax, ops.maximum(vmax, v))
            step = (m / c1) / (ops.sqrt(vmax / c2) + eps)
            self.assign_sub(variable, ops.cast(learning_rate, dt) * step)

    return SpecAmsgrad(learning_rate=lr, name="amsgrad")


def keras_stock(hp, lr):
    import keras

    return keras.optimizers.Adam(lr, amsgrad=True)


AMSGRAD = OptimizerKind(
    name="amsgrad",
    hyperparameters=(
        Hyperparameter("beta1", 0.9, 0, 1, high_open=True),
        Hyperparameter("beta2", 0.999, 0, 1, high_open=True),
        Hyperparameter("eps", 1e-8, 0, low_open=True),
    ),
    formula=(
        "m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; vmax = max(vmax, v); "
        "w -= lr * (m / (1-b1^t)) / (sqrt(vmax / (1-b2^t)) + eps)"
    ),
    presets={"amsgrad": {"lr": 1e-3}, "amsgrad_fast": {"lr": 3e-3, "beta2": 0.99}},
    reference=Reference(_slots, _update),
    implementations={"torch": torch_spec, "jax": optax_spec, "tensorflow": keras_spec},
    stock={"torch": torch_stock, "jax": optax_stock, "tensorflow": keras_stock},
)

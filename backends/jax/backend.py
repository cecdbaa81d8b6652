"""JAX + optax: the MLP as a pure function of a parameter list, stock optax optimizers.

``eager`` calls the step without ``jax.jit``, as a user who never writes ``jit`` would
(library functions that JAX itself wraps in small jits stay so; ``jax.disable_jit`` would
make it ~3x slower than anything a user meets); ``compiled``
runs the whole step (forward, backward, optimizer update) as one ``jax.jit`` XLA program
with the parameter and optimizer-state buffers donated. Every matmul asks for
``Precision.HIGHEST`` so that float32 means float32 on GPUs (no TF32/bf16 passes).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

from backends.base import Backend, BackendInfo, ModelSpec, OptimizerSpec, Weights, for_kind

PRECISION = jax.lax.Precision.HIGHEST
Params = list[jax.Array]
StepFn = Callable[[Params, Any, jax.Array, jax.Array], tuple[Params, Any, jax.Array]]


@dataclass(frozen=True)
class JaxState:
    params: Params
    opt_state: Any
    step: StepFn


def forward(params: Params, x: jax.Array) -> jax.Array:
    n_layers = len(params) // 2
    h = x
    for i in range(n_layers):
        h = jnp.matmul(h, params[2 * i], precision=PRECISION) + params[2 * i + 1]
        if i < n_layers - 1:
            h = jax.nn.relu(h)
    return h


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()


def _sgd(opt: OptimizerSpec) -> optax.GradientTransformation:
    # optax.trace: buf = g + mu*buf; nesterov g + mu*buf -- torch's form, as the spec.
    sgd = optax.sgd(opt.lr, momentum=opt.momentum or None, nesterov=opt.nesterov)
    if opt.weight_decay:
        return optax.chain(optax.add_decayed_weights(opt.weight_decay), sgd)  # L2: g += wd*w
    return sgd


def _adam(opt: OptimizerSpec) -> optax.GradientTransformation:
    # optax.adamw is exactly chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate):
    # -lr*(adam + wd*w) on the pre-step w == the spec's w *= 1-lr*wd, then w -= lr*adam.
    # Built from its parts to add the one correction link (and not adamw(weight_decay=0):
    # adamw's default weight_decay is 1e-4).
    return optax.chain(
        optax.scale_by_adam(b1=opt.beta1, b2=opt.beta2, eps=opt.eps),
        optax.scale_by_schedule(_bias_correction_fix(opt.beta1, opt.beta2)),
        *([optax.add_decayed_weights(opt.weight_decay)] if opt.weight_decay else []),
        optax.scale_by_learning_rate(opt.lr),
    )


#: kind -> stock optax, matching the formulas of ``base.KINDS`` (see the parity check)
OPTIMIZERS = {"sgd": _sgd, "adam": _adam}


def make_optimizer(opt: OptimizerSpec) -> optax.GradientTransformation:
    return for_kind(OPTIMIZERS, opt.kind, "the jax backend")(opt)


def _bias_correction_fix(b1: float, b2: float) -> Callable[[jax.Array], jax.Array]:
    """Step factor that turns optax's bias correction into the spec's.

    optax computes ``1 - b**t`` in float32 with b rounded to float32 (0.999 -> 0.99900001),
    so ``1 - b2**t`` is 1.3e-5 too small and every Adam step 6e-6 too short: a bias that
    grows with the steps. ``-expm1(t * log1p(-(1 - b)))`` is accurate in float32. The factor
    ignores eps (residual error 6e-6 * eps / (sqrt(v_hat) + eps)).
    """

    def factor(count: jax.Array) -> jax.Array:
        t = count + 1  # scale_by_schedule counts from 0, scale_by_adam's t from 1
        optax_c1, optax_c2 = 1 - b1**t, 1 - b2**t  # as optax.tree.bias_correction does
        exact_c1 = -jnp.expm1(t * jnp.log1p(-(1 - b1)))
        exact_c2 = -jnp.expm1(t * jnp.log1p(-(1 - b2)))
        return (optax_c1 / exact_c1) * jnp.sqrt(exact_c2 / optax_c2)

    return factor


# One optimizer/step per optimizer config, so many runs in one process reuse one jit (and
# its compiled executables) instead of piling up a new one per run.
@functools.lru_cache(maxsize=16)
def _optimizer_and_step(opt: OptimizerSpec) -> tuple[optax.GradientTransformation, StepFn]:
    tx = make_optimizer(opt)

    def step(params: Params, opt_state: Any, x: jax.Array, y: jax.Array):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return tx, step


@functools.lru_cache(maxsize=16)
def _jitted_step(opt: OptimizerSpec) -> StepFn:
    return jax.jit(_optimizer_and_step(opt)[1], donate_argnums=(0, 1))


def _eval(params: Params, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = forward(params, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (jnp.argmax(logits, axis=1) == y).mean()


_eval_jit = jax.jit(_eval)


class JaxBackend(Backend):
    name = "jax"
    extra = "jax"
    bare = "backends.jax.bare:bare_loops"
    kinds = tuple(OPTIMIZERS)
    device_peak_kind = "device_process_peak"  # XLA's peak_bytes_in_use cannot be reset

    @classmethod
    def devices(cls) -> list[str]:
        kinds = ["cpu"]
        try:
            if jax.devices("gpu"):
                kinds.append("gpu")
        except RuntimeError:  # raised when no GPU platform is present
            pass
        return kinds

    @property
    def _device(self) -> jax.Device:
        return jax.devices(self.device)[0]

    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> JaxState:
        dev = self._device
        params = [jax.device_put(np.asarray(w, dtype=np.float32), dev) for w in weights]
        tx, step = _optimizer_and_step(opt)
        # device_put commits the slots (and adam's step count) next to the params.
        opt_state = jax.device_put(tx.init(params), dev)
        step = _jitted_step(opt) if self.path.name == "jit" else step
        return JaxState(params, opt_state, step)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
        dev = self._device
        return (
            jax.device_put(np.asarray(x, dtype=np.float32), dev),
            jax.device_put(np.asarray(y, dtype=np.int32), dev),
        )

    def split_batches(
        self, x: jax.Array, y: jax.Array, batch_size: int
    ) -> list[tuple[jax.Array, jax.Array]]:
        k = len(y) // batch_size
        if k == 0:
            return []
        n = k * batch_size
        # one split op per array instead of k slicing dispatches
        return list(zip(jnp.split(x[:n], k), jnp.split(y[:n], k), strict=True))

    def train_step(self, state: JaxState, x: jax.Array, y: jax.Array) -> tuple[JaxState, jax.Array]:
        params, opt_state, loss = state.step(state.params, state.opt_state, x, y)
        return JaxState(params, opt_state, state.step), loss

    def evaluate(self, state: JaxState, x: jax.Array, y: jax.Array) -> tuple[float, float]:
        fn = _eval_jit if self.path.name == "jit" else _eval
        loss, acc = fn(state.params, x, y)
        return float(loss), float(acc)

    def get_weights(self, state: JaxState) -> Weights:
        # a copy: a view of a device buffer would die with the next donated step
        return [np.array(p, copy=True) for p in state.params]

    def sync(self, value: Any) -> None:
        jax.block_until_ready(value)

    def describe(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            framework="jax",
            version=jax.__version__,
            device=self.device,
            mode=self.mode,
            dtype=self.dtype,
            compiler=self.path.name,
            compiler_detail=self.path.detail,
            extra={
                "jaxlib": jaxlib.__version__,
                "optax": optax.__version__,
                "matmul_precision": "highest",
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "platform": self._device.platform,
                "donate": self.path.name == "jit",
            },
        )

    def peak_memory_mb(self) -> float | None:
        if self.device != "gpu":
            return None
        stats = self._device.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20

"""JAX + optax: the MLP as a pure function of a parameter list, optax optimizers.

The ``spec`` variant builds each kind from stock optax parts (plus one small correction
or transformation where optax has no part for the spec's formula, each saying why); the
``stock`` variant is optax's own optimizer at its default arguments.

``eager`` calls the step without ``jax.jit``, as a user who never writes ``jit`` would
(library functions that JAX itself wraps in small jits stay so; ``jax.disable_jit`` would
make it ~3x slower than anything a user meets); ``compiled``
runs the whole step (forward, backward, optimizer update) as one ``jax.jit`` XLA program
with the parameter and optimizer-state buffers donated: ``jit`` one call per step,
``jit_loop`` one call per block, a ``lax.fori_loop`` of the same step over the epoch's
batches stacked on the device (as a JAX user scans a training loop; no Python between
steps). Every matmul asks for
``Precision.HIGHEST`` so that float32 means float32 on GPUs (no TF32/bf16 passes).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

from backends.base import (
    Backend,
    BackendInfo,
    ModelSpec,
    OptimizerSpec,
    StackedBatches,
    Weights,
    for_kind,
    stock_arguments,
)

PRECISION = jax.lax.Precision.HIGHEST
Params = list[jax.Array]
StepFn = Callable[[Params, Any, jax.Array, jax.Array], tuple[Params, Any, jax.Array]]
#: ``(params, opt_state, xs, ys, start, n) -> (params, opt_state, losses)``: steps on
#: ``xs[start:start+n]`` (stacked batches); ``losses`` as long as ``xs``, the first n written
LoopFn = Callable[..., tuple[Params, Any, jax.Array]]

# a window of stacked batches is a pytree of its two arrays, so that block_until_ready waits
# on them (the runner syncs staged batches before its timer). Never passed into a jit: its
# window (start, stop) is static data there, and every window would compile anew.
jax.tree_util.register_pytree_node(
    StackedBatches,
    lambda b: ((b.x, b.y), (b.start, b.stop)),
    lambda window, arrays: StackedBatches(*arrays, *window),
)


@dataclass(frozen=True)
class JaxState:
    params: Params
    opt_state: Any
    step: StepFn
    loop: LoopFn | None = None  # the jit_loop path's block of steps


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


def _learning_rate(opt: OptimizerSpec) -> optax.ScalarOrSchedule:
    """``opt.lr`` itself for a constant schedule (the plain path); otherwise an optax
    schedule reading ``opt.lr_table()`` (update t's lr at t-1, the last held). Stock
    optimizers take the same: lr and its schedule are stock arguments.

    Jitted, with the float32 table a constant inside it: one dispatch per eager step and
    no host sync (``min`` on the count would read it), on whichever device the count is.
    """
    table = opt.lr_table()
    if table is None:
        return opt.lr
    lrs, last = table.astype(np.float32), len(table) - 1

    @jax.jit
    def schedule(count: jax.Array) -> jax.Array:
        # optax counts updates from 0: count k is update k+1
        return jnp.asarray(lrs)[jnp.minimum(count, last)]

    return schedule


def _l2(opt: OptimizerSpec) -> list[optax.GradientTransformation]:
    """The spec's coupled L2 (``g += weight_decay * w``), the first link of a chain."""
    return [optax.add_decayed_weights(opt.weight_decay)] if opt.weight_decay else []


def _sgd(opt: OptimizerSpec) -> optax.GradientTransformation:
    # optax.trace: buf = g + mu*buf; nesterov g + mu*buf -- torch's form, as the spec; the
    # lr (and its schedule) scales after the trace, outside the buffer, as the spec.
    lr = _learning_rate(opt)
    sgd = optax.sgd(lr, momentum=opt.momentum or None, nesterov=opt.nesterov)
    return optax.chain(*_l2(opt), sgd) if opt.weight_decay else sgd  # L2: g += wd*w


def _adam(opt: OptimizerSpec) -> optax.GradientTransformation:
    # optax.adamw is exactly chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate):
    # -lr*(adam + wd*w) on the pre-step w == the spec's w *= 1-lr*wd, then w -= lr*adam.
    # Built from its parts to add the one correction link (and not adamw(weight_decay=0):
    # adamw's default weight_decay is 1e-4).
    return optax.chain(
        optax.scale_by_adam(b1=opt.beta1, b2=opt.beta2, eps=opt.eps),
        optax.scale_by_schedule(_bias_correction_fix(opt.beta1, opt.beta2)),
        *([optax.add_decayed_weights(opt.weight_decay)] if opt.weight_decay else []),
        optax.scale_by_learning_rate(_learning_rate(opt)),
    )


def _rmsprop(opt: OptimizerSpec) -> optax.GradientTransformation:
    # Not optax.rmsprop(eps_in_sqrt=False): it scales by lr *before* its momentum trace,
    # so a scheduled lr would sit inside the buffer (old steps keep their old lr); the
    # spec (torch's) traces g / (sqrt(v) + eps), v from 0, and applies lr after.
    scale = optax.scale_by_stddev if opt.centered else optax.scale_by_rms
    return optax.chain(
        *_l2(opt),
        scale(decay=opt.rho, eps=opt.eps, initial_scale=0.0, eps_in_sqrt=False),
        *([optax.trace(decay=opt.momentum)] if opt.momentum else []),
        optax.scale_by_learning_rate(_learning_rate(opt)),
    )


def _adagrad(opt: OptimizerSpec) -> optax.GradientTransformation:
    return optax.chain(
        *_l2(opt),
        _scale_by_root_sum_of_squares(opt.initial_accumulator, opt.eps),
        optax.scale_by_learning_rate(_learning_rate(opt)),
    )


class _SumOfSquares(NamedTuple):
    sum_of_squares: optax.Updates


def _scale_by_root_sum_of_squares(initial: float, eps: float) -> optax.GradientTransformation:
    """``g / (sqrt(s) + eps)``, ``s = initial + sum g^2``: the spec's (torch's) Adagrad.

    optax has no part for it: ``optax.scale_by_rss`` computes ``rsqrt(s + eps)`` (eps
    inside the root, and 0 where s is 0), which is ``scale_by_rms``'s ``eps_in_sqrt=True``
    form with no ``eps_in_sqrt`` switch.
    """

    def init(params: Params) -> _SumOfSquares:
        return _SumOfSquares(optax.tree.full_like(params, initial))

    def update(updates: Params, state: _SumOfSquares, params: Params | None = None):
        del params
        s = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
        updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, s)
        return updates, _SumOfSquares(s)

    return optax.GradientTransformation(init, update)


def _stock(opt: OptimizerSpec) -> tuple[dict[str, Any], optax.ScalarOrSchedule]:
    """What a stock optimizer takes from the spec (``base.stock_arguments``), and its lr."""
    return stock_arguments(opt), _learning_rate(opt)


def _stock_sgd(opt: OptimizerSpec) -> optax.GradientTransformation:
    args, lr = _stock(opt)  # optax.sgd has no weight decay
    return optax.sgd(lr, momentum=args["momentum"] or None, nesterov=args["nesterov"])


def _stock_adam(opt: OptimizerSpec) -> optax.GradientTransformation:
    # adam: float32 bias correction, uncorrected; adamw: its default weight_decay (1e-4)
    args, lr = _stock(opt)
    return optax.adamw(lr) if args["adamw"] else optax.adam(lr)


def _stock_rmsprop(opt: OptimizerSpec) -> optax.GradientTransformation:
    # decay 0.9, eps 1e-8 inside the root, lr before the momentum trace
    args, lr = _stock(opt)
    return optax.rmsprop(lr, centered=args["centered"], momentum=args["momentum"] or None)


def _stock_adagrad(opt: OptimizerSpec) -> optax.GradientTransformation:
    # initial_accumulator_value 0.1, eps 1e-7 inside the root
    return optax.adagrad(_stock(opt)[1])


#: variant -> kind -> optimizer: ``spec`` matches the formulas of ``base.KINDS`` (see the
#: parity check); ``stock`` is optax's own at its defaults (``base.stock_arguments``)
OPTIMIZERS: dict[str, dict[str, Callable[[OptimizerSpec], optax.GradientTransformation]]] = {
    "spec": {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop, "adagrad": _adagrad},
    "stock": {
        "sgd": _stock_sgd,
        "adam": _stock_adam,
        "rmsprop": _stock_rmsprop,
        "adagrad": _stock_adagrad,
    },
}


def make_optimizer(opt: OptimizerSpec, variant: str = "spec") -> optax.GradientTransformation:
    if opt.plugin is not None:  # its factory: make(hp, lr), lr a float or an optax schedule
        return opt.plugin.factory("jax", variant)(dict(opt.params), _learning_rate(opt))
    where = "the jax backend" + ("" if variant == "spec" else f" ({variant})")
    return for_kind(OPTIMIZERS[variant], opt.kind, where)(opt)


def _bias_correction_fix(b1: float, b2: float) -> Callable[[jax.Array], jax.Array]:
    """Step factor that turns optax's bias correction into the spec's.

    optax computes ``1 - b**t`` in float32 with b rounded to float32 (0.999 -> 0.99900001),
    so ``1 - b2**t`` is 1.3e-5 too small and every Adam step 6e-6 too short: a bias that
    grows with the steps. ``-expm1(t * log1p(-(1 - b)))`` is accurate in float32. The factor
    ignores eps (residual error 6e-6 * eps / (sqrt(v_hat) + eps)).

    Jitted, as optax's own bias correction is: eagerly, ``b**t`` with a concrete integer
    ``t`` becomes ``lax.integer_pow`` specialised on t, a new compilation every step.
    """

    @jax.jit
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
def _optimizer_and_step(
    opt: OptimizerSpec, variant: str = "spec"
) -> tuple[optax.GradientTransformation, StepFn]:
    tx = make_optimizer(opt, variant)

    def step(params: Params, opt_state: Any, x: jax.Array, y: jax.Array):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return tx, step


@functools.lru_cache(maxsize=16)
def _jitted_step(opt: OptimizerSpec, variant: str = "spec") -> StepFn:
    return jax.jit(_optimizer_and_step(opt, variant)[1], donate_argnums=(0, 1))


@functools.lru_cache(maxsize=16)
def _jitted_loop(opt: OptimizerSpec, variant: str = "spec") -> LoopFn:
    """The step in a ``fori_loop`` over a window of stacked batches, one XLA program.

    ``start`` and ``n`` are traced (a while loop with a dynamic trip count) and the losses
    go into a buffer of fixed length, so blocks of every length (the first step, warm-up,
    timed blocks, an epoch's remainder) share one compilation per batch shape."""
    step = _optimizer_and_step(opt, variant)[1]

    def loop(params: Params, opt_state: Any, xs: jax.Array, ys: jax.Array, start, n):
        def body(i, carry):
            p, s, losses = carry
            p, s, loss = step(p, s, xs[i], ys[i])
            return p, s, losses.at[i - start].set(loss)

        losses = jnp.zeros(xs.shape[0], dtype=xs.dtype)
        return jax.lax.fori_loop(start, start + n, body, (params, opt_state, losses))

    return jax.jit(loop, donate_argnums=(0, 1))


def _eval(params: Params, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = forward(params, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (jnp.argmax(logits, axis=1) == y).mean()


_eval_jit = jax.jit(_eval)


class JaxBackend(Backend):
    name = "jax"
    kinds = tuple(OPTIMIZERS["spec"])
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

    @property
    def _jitted(self) -> bool:
        return self.path.xla

    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> JaxState:
        dev = self._device
        params = [jax.device_put(np.asarray(w, dtype=np.float32), dev) for w in weights]
        tx, step = _optimizer_and_step(opt, self.variant)
        # device_put commits the slots (and the step counts) next to the params.
        opt_state = jax.device_put(tx.init(params), dev)
        step = _jitted_step(opt, self.variant) if self._jitted else step
        loop = _jitted_loop(opt, self.variant) if self.path.block else None
        return JaxState(params, opt_state, step, loop)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
        dev = self._device
        return (
            jax.device_put(np.asarray(x, dtype=np.float32), dev),
            jax.device_put(np.asarray(y, dtype=np.int32), dev),
        )

    def split_batches(
        self, x: jax.Array, y: jax.Array, batch_size: int
    ) -> list[tuple[jax.Array, jax.Array]] | StackedBatches:
        k = len(y) // batch_size
        if k == 0:
            return []
        n = k * batch_size
        if self.path.block:
            return StackedBatches(
                x[:n].reshape(k, batch_size, *x.shape[1:]), y[:n].reshape(k, batch_size)
            )
        # one split op per array instead of k slicing dispatches
        return list(zip(jnp.split(x[:n], k), jnp.split(y[:n], k), strict=True))

    def train_step(self, state: JaxState, x: jax.Array, y: jax.Array) -> tuple[JaxState, jax.Array]:
        params, opt_state, loss = state.step(state.params, state.opt_state, x, y)
        return replace(state, params=params, opt_state=opt_state), loss

    def train_block(self, state: JaxState, window: StackedBatches) -> tuple[JaxState, jax.Array]:
        params, opt_state, losses = state.loop(
            state.params, state.opt_state, window.x, window.y, window.start, len(window)
        )
        return replace(state, params=params, opt_state=opt_state), losses

    def evaluate(self, state: JaxState, x: jax.Array, y: jax.Array) -> tuple[float, float]:
        fn = _eval_jit if self._jitted else _eval
        loss, acc = fn(state.params, x, y)
        return float(loss), float(acc)

    def get_weights(self, state: JaxState) -> Weights:
        # a copy: a view of a device buffer would die with the next donated step
        return [np.array(p, copy=True) for p in state.params]

    def sync(self, value: Any) -> None:
        jax.block_until_ready(value)

    def describe(self) -> BackendInfo:
        return self.info(
            "jax",
            jax.__version__,
            jaxlib=jaxlib.__version__,
            optax=optax.__version__,
            matmul_precision="highest",
            xla_flags=os.environ.get("XLA_FLAGS", ""),
            platform=self._device.platform,
            donate=self._jitted,
            variant=self.variant,
        )

    def peak_memory_mb(self) -> float | None:
        if self.device != "gpu":
            return None
        stats = self._device.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20

"""TensorFlow + Keras 3: Keras ``Dense`` layers, ``tf.GradientTape`` and Keras optimizers.

Paths (the registry lists them): ``eager`` runs the step as plain Python in TensorFlow's
eager mode; ``tf_function`` wraps it in ``tf.function``; ``xla`` in
``tf.function(jit_compile=True)``; ``tf_function_loop`` and ``xla_loop`` run a whole block
of steps in one such call, a while loop over the epoch's batches stacked on the
device (what Keras' ``steps_per_execution`` does: a ``tf.function`` call costs about
0.4 ms on a 2-core CPU, as much as the step itself at 784-64-10). Which compiled path is
fastest depends on the machine (on one 2-core CPU XLA was 15-25% slower, on another 10-17%
faster), so a sweep measures them where it runs (``benchmarks.run.paths``).

Variants (``base.VARIANTS``): ``spec`` runs Keras' optimizers corrected, each difference
once, to the formulas of ``base.KINDS``: every Keras ``weight_decay=`` is decoupled where
the spec's SGD/RMSprop/Adagrad decay is L2 (:func:`_l2_grads`); Adam's ``epsilon`` is
"epsilon hat" (:class:`SpecAdam`); RMSprop and Adagrad add ``epsilon`` inside the square
root (:class:`SpecRMSprop`, :class:`SpecAdagrad`); SGD and RMSprop keep ``lr`` inside the
momentum buffer, which only a learning-rate schedule shows (:class:`SpecSGD`,
:class:`SpecRMSprop`). ``stock`` runs Keras' own optimizers at their default arguments,
given only :func:`~backends.base.stock_arguments`, uncorrected.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from backends.base import (  # noqa: E402
    Backend,
    BackendInfo,
    ModelSpec,
    OptimizerSpec,
    StackedBatches,
    Weights,
    for_kind,
    stock_arguments,
)


class LrTable(keras.optimizers.schedules.LearningRateSchedule):
    """The spec's learning rate of every update (``OptimizerSpec.lr_table``), looked up at
    the optimizer's step count (0 for update 1); the last value holds past the horizon.

    Stored in float32, each value rounded once from float64 as the reference rounds it.
    """

    def __init__(self, table: np.ndarray):
        self.table = tf.constant(np.asarray(table, dtype=np.float32))

    def __call__(self, step):
        last = int(self.table.shape[0]) - 1
        return tf.gather(self.table, tf.minimum(tf.cast(step, tf.int64), last))


def _learning_rate(opt: OptimizerSpec) -> float | LrTable:
    """A constant lr as the plain float a Keras user passes (Keras' own lr variable and
    path); a schedule as :class:`LrTable`."""
    table = opt.lr_table()
    return float(opt.lr) if table is None else LrTable(table)


class SpecSGD(keras.optimizers.SGD):
    """Keras SGD in torch's form: ``buf = mu*buf + g; w -= lr * buf`` (nesterov:
    ``w -= lr * (g + mu*buf)``), used where a schedule changes lr between updates."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, lr))
            return
        mu = ops.cast(self.momentum, dtype)
        buf = self.momentums[self._get_variable_index(variable)]
        # Differs from Keras: m = mu*m - lr*g; w += m keeps every past lr inside the buffer,
        # which equals the spec only while lr is constant; here lr multiplies the whole buffer.
        self.assign(buf, ops.add(ops.multiply(buf, mu), gradient))
        step = ops.add(gradient, ops.multiply(buf, mu)) if self.nesterov else buf
        self.assign_sub(variable, ops.multiply(lr, step))


class SpecAdam(keras.optimizers.Adam):
    """Keras Adam with the spec's bias-corrected epsilon; Keras' variables and machinery.

    Decoupled weight decay (``weight_decay=``) stays Keras': ``w -= lr * wd * w`` before
    ``update_step``, which is the spec's ``w *= 1 - lr * wd`` applied before the update.
    """

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        # Bias corrections in float64 (the reference's): in float32, 1 - 0.999 is 1.3e-5 off.
        # ops.cast(0.999, "float64") would round through float32 first; convert_to_tensor doesn't.
        t = ops.cast(self.iterations + 1, "float64")
        bc1 = 1 - ops.power(ops.convert_to_tensor(self.beta_1, "float64"), t)
        bc2 = 1 - ops.power(ops.convert_to_tensor(self.beta_2, "float64"), t)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        b1, b2 = self.beta_1, self.beta_2
        self.assign(m, ops.add(ops.multiply(m, b1), ops.multiply(gradient, 1 - b1)))
        self.assign(v, ops.add(ops.multiply(v, b2), ops.multiply(ops.square(gradient), 1 - b2)))
        # Differs from Keras: eps is added to sqrt(v_hat) (torch/optax), not to sqrt(v) with
        # lr * sqrt(1-b2^t) / (1-b1^t) in front ("epsilon hat", which scales eps by 1/sqrt(bc2)).
        # The corrections are scalar factors (lr/bc1, 1/sqrt(bc2)), not divisions of m and v:
        # one elementwise pass less (about 1% of a step at 784-64-10, measured).
        step_size = ops.cast(ops.divide(ops.cast(lr, "float64"), bc1), dtype)
        v_scale = ops.cast(ops.rsqrt(bc2), dtype)
        denom = ops.add(ops.multiply(ops.sqrt(v), v_scale), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, step_size), denom))


class SpecRMSprop(keras.optimizers.RMSprop):
    """Keras RMSprop in PyTorch's form (``alpha = rho``); Keras' slots (``v`` from 0)."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        i = self._get_variable_index(variable)
        rho = self.rho
        v = self._velocities[i]
        self.assign(v, ops.add(ops.multiply(v, rho), ops.multiply(ops.square(gradient), 1 - rho)))
        if self.centered:
            a = self._average_gradients[i]
            self.assign(a, ops.add(ops.multiply(a, rho), ops.multiply(gradient, 1 - rho)))
            v = ops.subtract(v, ops.square(a))
        # Differs from Keras: eps is added to sqrt(v) (torch), not to v under the root.
        d = ops.divide(gradient, ops.add(ops.sqrt(v), self.epsilon))
        if self.momentum > 0:
            buf = self._momentums[i]
            # Differs from Keras: its buffer accumulates lr * d (lr inside); torch's
            # accumulates d and multiplies by this update's lr (the same at a constant lr).
            self.assign(buf, ops.add(ops.multiply(buf, self.momentum), d))
            d = buf
        self.assign_sub(variable, ops.multiply(lr, d))


class SpecAdagrad(keras.optimizers.Adagrad):
    """Keras Adagrad in PyTorch's form; Keras' accumulator (``initial_accumulator_value``)."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        s = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(s, ops.square(gradient))
        # Differs from Keras: eps is added to sqrt(s) (torch), not to s under the root.
        step = ops.divide(ops.multiply(lr, gradient), ops.add(ops.sqrt(s), self.epsilon))
        self.assign_sub(variable, step)


# The spec variant: every hyperparameter from the spec; SGD's, RMSprop's and Adagrad's L2
# weight decay is added to the gradients by the step function instead (see _l2_grads).


def _spec_sgd(opt: OptimizerSpec, lr: float | LrTable) -> keras.optimizers.Optimizer:
    # At a constant lr Keras' own SGD is the spec (m = mu*m - lr*g; w += m is torch's
    # buf = mu*buf + g; w -= lr*buf with m = -lr*buf); a schedule needs SpecSGD.
    cls = keras.optimizers.SGD if isinstance(lr, float) else SpecSGD
    return cls(learning_rate=lr, momentum=float(opt.momentum), nesterov=bool(opt.nesterov))


def _spec_adam(opt: OptimizerSpec, lr: float | LrTable) -> keras.optimizers.Optimizer:
    return SpecAdam(
        learning_rate=lr,
        beta_1=float(opt.beta1),
        beta_2=float(opt.beta2),
        epsilon=float(opt.eps),
        weight_decay=float(opt.weight_decay) if opt.weight_decay else None,
    )


def _spec_rmsprop(opt: OptimizerSpec, lr: float | LrTable) -> keras.optimizers.Optimizer:
    return SpecRMSprop(
        learning_rate=lr,
        rho=float(opt.rho),
        momentum=float(opt.momentum),
        epsilon=float(opt.eps),
        centered=bool(opt.centered),
    )


def _spec_adagrad(opt: OptimizerSpec, lr: float | LrTable) -> keras.optimizers.Optimizer:
    return SpecAdagrad(
        learning_rate=lr,
        initial_accumulator_value=float(opt.initial_accumulator),
        epsilon=float(opt.eps),
    )


# The stock variant: Keras' own optimizers at their defaults, given only stock_arguments
# (no corrections; docs/methodology.md, "What the stock defaults change").


def _stock_sgd(a: dict[str, Any], lr: float | LrTable) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(lr, momentum=float(a["momentum"]), nesterov=bool(a["nesterov"]))


def _stock_adam(a: dict[str, Any], lr: float | LrTable) -> keras.optimizers.Optimizer:
    return (keras.optimizers.AdamW if a["adamw"] else keras.optimizers.Adam)(lr)


def _stock_rmsprop(a: dict[str, Any], lr: float | LrTable) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(lr, momentum=float(a["momentum"]), centered=bool(a["centered"]))


def _stock_adagrad(a: dict[str, Any], lr: float | LrTable) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adagrad(lr)


#: variant -> kind -> the Keras optimizer (spec: from the OptimizerSpec; stock: from its
#: stock_arguments); the learning rate (float or LrTable) is the same for both
OPTIMIZERS: dict[str, dict[str, Callable[..., keras.optimizers.Optimizer]]] = {
    "spec": {
        "sgd": _spec_sgd,
        "adam": _spec_adam,
        "rmsprop": _spec_rmsprop,
        "adagrad": _spec_adagrad,
    },
    "stock": {
        "sgd": _stock_sgd,
        "adam": _stock_adam,
        "rmsprop": _stock_rmsprop,
        "adagrad": _stock_adagrad,
    },
}
#: kind -> whether the spec's weight_decay is L2 (coupled, added to the gradient)
L2_DECAY = {"sgd": True, "adam": False, "rmsprop": True, "adagrad": True}


def make_optimizer(opt: OptimizerSpec, variant: str = "spec") -> keras.optimizers.Optimizer:
    if opt.plugin is not None:  # its factory: make(hp, lr), lr a float or a Keras schedule
        return opt.plugin.factory("tensorflow", variant)(dict(opt.params), _learning_rate(opt))
    where = f"the tensorflow backend ({variant})"
    make = for_kind(OPTIMIZERS[variant], opt.kind, where)
    # lr and its schedule are stock arguments too: both variants follow the same table
    return make(opt if variant == "spec" else stock_arguments(opt), _learning_rate(opt))


def _l2_grads(opt: OptimizerSpec, grads: list, variables: list) -> list:
    # Differs from Keras: weight_decay= is decoupled in every Keras optimizer (w -= lr*wd*w,
    # AdamW's form); the spec's SGD/RMSprop/Adagrad decay is L2, added to the gradient.
    if opt.weight_decay and for_kind(L2_DECAY, opt.kind, "the tensorflow backend"):
        wd = opt.weight_decay
        return [g + tf.constant(wd, v.dtype) * v for g, v in zip(grads, variables, strict=True)]
    return grads


def _loss(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


@dataclass
class TensorflowState:
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    eval_fn: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
    opt: OptimizerSpec
    #: the *_loop paths' block: ``(xs, ys, start, n) -> losses`` (as long as xs, n written)
    block_fn: Callable[..., tf.Tensor] | None = None


class TensorflowBackend(Backend):
    name = "tensorflow"
    kinds = tuple(OPTIMIZERS["spec"])

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
        variant: str = "spec",
    ):
        super().__init__(mode, device, dtype, compiler, variant)
        self._tf_device = "/GPU:0" if device == "gpu" else "/CPU:0"
        if device == "gpu":
            tf.config.experimental.enable_tensor_float_32_execution(False)

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu"] + (["gpu"] if tf.config.list_physical_devices("GPU") else [])

    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> TensorflowState:
        if self.device == "gpu":
            tf.config.experimental.reset_memory_stats("GPU:0")  # peak_memory_mb is per run
        sizes = model.layer_sizes
        with tf.device(self._tf_device):
            layers: list[Any] = [keras.Input(shape=(sizes[0],), dtype=self.dtype)]
            for i, n in enumerate(sizes[1:]):
                act = "relu" if i < len(sizes) - 2 else None
                layers.append(keras.layers.Dense(n, activation=act, dtype=self.dtype))
            net = keras.Sequential(layers)
            net.set_weights([np.asarray(w, dtype=self.dtype) for w in weights])
            optimizer = make_optimizer(opt, self.variant)
            # Slots exist before the first trace: tf.function must not create variables.
            optimizer.build(net.trainable_variables)
        variables = net.trainable_variables
        spec = self.variant == "spec"

        # The device scope sits inside the functions: traced once into the graph in
        # compiled mode, instead of a Python context manager around every call.
        def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.device(self._tf_device):
                with tf.GradientTape() as tape:
                    loss = _loss(net(x, training=True), y)
                grads = tape.gradient(loss, variables)
                if spec:
                    grads = _l2_grads(opt, grads, variables)
                optimizer.apply(grads, variables)
                return loss

        def evaluate(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.device(self._tf_device):
                logits = net(x, training=False)
                acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.float64))
                return _loss(logits, y), acc

        def block(xs: tf.Tensor, ys: tf.Tensor, start: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
            # the Python step (never reassigned below), traced into the loop's own function;
            # losses in a buffer of fixed length, the trip count a tensor: blocks of every
            # length share one trace (and one XLA compilation) per batch shape. A while
            # loop, not `for i in tf.range(n)`: XLA needs a Range's bounds at compile time,
            # so each new block length compiled anew (27-42 ms a step, measured)
            with tf.device(self._tf_device):
                losses = tf.TensorArray(self.dtype, size=xs.shape[0])
                i = tf.constant(0)
                while i < n:
                    # gather, not xs[start + i]: XLA takes a slice's begin as a constant
                    # and compiled anew for every start (0.6-1.2 s a block, measured)
                    j = start + i
                    losses = losses.write(i, step(tf.gather(xs, j), tf.gather(ys, j)))
                    i += 1
                return losses.stack()

        step_fn, block_fn = step, None
        if self.path.traced:
            # The step traces with static shapes (every batch has the same shape, so one
            # trace per run): measured ~8% faster on CPU than a [None, d] signature.
            # Evaluation keeps the dynamic batch so the test and train sets share a trace.
            sig = [
                tf.TensorSpec([None, sizes[0]], self.dtype),
                tf.TensorSpec([None], tf.int64),
            ]
            jit = self.path.xla
            if self.path.block:
                block_fn = tf.function(block, jit_compile=jit)
            step_fn = tf.function(step, jit_compile=jit)
            evaluate = tf.function(evaluate, input_signature=sig, jit_compile=jit)
        return TensorflowState(net, optimizer, step_fn, evaluate, opt, block_fn)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.device(self._tf_device):
            return (
                tf.identity(tf.constant(np.asarray(x), dtype=self.dtype)),
                tf.identity(tf.constant(np.asarray(y), dtype=tf.int64)),
            )

    def split_batches(
        self, x: tf.Tensor, y: tf.Tensor, batch_size: int
    ) -> list[tuple[tf.Tensor, tf.Tensor]] | StackedBatches:
        if not self.path.block:
            return super().split_batches(x, y, batch_size)
        k = int(y.shape[0]) // batch_size
        with tf.device(self._tf_device):
            return StackedBatches(
                tf.reshape(x[: k * batch_size], [k, batch_size, *x.shape[1:]]),
                tf.reshape(y[: k * batch_size], [k, batch_size]),
            )

    def train_step(
        self, state: TensorflowState, x: tf.Tensor, y: tf.Tensor
    ) -> tuple[TensorflowState, tf.Tensor]:
        return state, state.step_fn(x, y)

    def train_block(
        self, state: TensorflowState, window: StackedBatches
    ) -> tuple[TensorflowState, tf.Tensor]:
        # tensors, not Python ints: a new int would be a new trace
        start, n = tf.constant(int(window.start), tf.int32), tf.constant(len(window), tf.int32)
        return state, state.block_fn(window.x, window.y, start, n)

    def evaluate(self, state: TensorflowState, x: tf.Tensor, y: tf.Tensor) -> tuple[float, float]:
        loss, acc = state.eval_fn(x, y)
        return float(loss.numpy()), float(acc.numpy())

    def get_weights(self, state: TensorflowState) -> Weights:
        return [np.array(w) for w in state.model.get_weights()]

    def sync(self, value: Any) -> None:
        # Copying a result to the host waits for the ops that produce it (the loss is a
        # scalar, so the copy is free); for anything else, wait for every device.
        if hasattr(value, "numpy"):
            value.numpy()
        else:
            tf.test.experimental.sync_devices()

    def describe(self) -> BackendInfo:
        tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
        return self.info(
            "tensorflow",
            tf.__version__,
            keras=keras.__version__,
            threads={
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            },
            matmul_precision="tf32" if self.device == "gpu" and tf32 else self.dtype,
            variant=self.variant,
        )

    def peak_memory_mb(self) -> float | None:
        if self.device != "gpu":
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20

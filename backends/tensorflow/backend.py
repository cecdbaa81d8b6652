"""TensorFlow + Keras 3: Keras ``Dense`` layers, ``tf.GradientTape`` and Keras optimizers.

Paths (the registry lists them): ``eager`` runs the step as plain Python in TensorFlow's
eager mode; ``tf_function`` wraps it in ``tf.function``; ``xla`` in
``tf.function(jit_compile=True)``. Which compiled path is faster depends on the machine
(on one 2-core CPU XLA was 15-25% slower, on another 10-17% faster), so a sweep measures
both where it runs (``benchmarks.paths``). Keras' optimizers
differ from the spec of :class:`~backends.base.OptimizerSpec` in two places, each
corrected once below: SGD's ``weight_decay`` argument is decoupled (the spec's is L2), and
Adam's ``epsilon`` is Kingma & Ba's "epsilon hat" (not bias-corrected).
``TensorflowBackend(..., stock_keras_adam=True)`` runs Keras Adam/AdamW uncorrected, for
showing how far stock Keras drifts from the reference.
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
    Weights,
    for_kind,
)


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
        bc1 = ops.cast(1 - ops.power(ops.convert_to_tensor(self.beta_1, "float64"), t), dtype)
        bc2 = ops.cast(1 - ops.power(ops.convert_to_tensor(self.beta_2, "float64"), t), dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        b1, b2 = self.beta_1, self.beta_2
        self.assign(m, ops.add(ops.multiply(m, b1), ops.multiply(gradient, 1 - b1)))
        self.assign(v, ops.add(ops.multiply(v, b2), ops.multiply(ops.square(gradient), 1 - b2)))
        # Differs from Keras: eps is added to sqrt(v_hat) (torch/optax), not to sqrt(v) with
        # lr * sqrt(1-b2^t) / (1-b1^t) in front ("epsilon hat", which scales eps by 1/sqrt(bc2)).
        step = ops.divide(ops.divide(m, bc1), ops.add(ops.sqrt(ops.divide(v, bc2)), self.epsilon))
        self.assign_sub(variable, ops.multiply(lr, step))


def _sgd(opt: OptimizerSpec, stock_keras_adam: bool) -> keras.optimizers.Optimizer:
    # Keras: m = mu*m - lr*g; w += m (nesterov: w += mu*m - lr*g). With a constant lr that is
    # torch's buf = mu*buf + g; w -= lr*buf with m = -lr*buf. Weight decay: see _l2_grads.
    return keras.optimizers.SGD(
        learning_rate=float(opt.lr), momentum=float(opt.momentum), nesterov=bool(opt.nesterov)
    )


def _adam(opt: OptimizerSpec, stock_keras_adam: bool) -> keras.optimizers.Optimizer:
    cls = keras.optimizers.Adam if stock_keras_adam else SpecAdam
    return cls(
        learning_rate=float(opt.lr),
        beta_1=float(opt.beta1),
        beta_2=float(opt.beta2),
        epsilon=float(opt.eps),
        weight_decay=float(opt.weight_decay) if opt.weight_decay else None,
    )


#: kind -> the Keras optimizer; SGD's L2 weight decay is added to the gradients by the step
#: function instead (see :func:`_l2_grads`)
OPTIMIZERS = {"sgd": _sgd, "adam": _adam}


def make_optimizer(
    opt: OptimizerSpec, stock_keras_adam: bool = False
) -> keras.optimizers.Optimizer:
    return for_kind(OPTIMIZERS, opt.kind, "the tensorflow backend")(opt, stock_keras_adam)


def _l2_grads(opt: OptimizerSpec, grads: list, variables: list) -> list:
    # Differs from Keras: SGD(weight_decay=) is decoupled (w -= lr*wd*w); the spec's is L2.
    if opt.kind == "sgd" and opt.weight_decay:
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


class TensorflowBackend(Backend):
    name = "tensorflow"
    extra = "tensorflow"
    # No float64: Keras keeps the learning rate in a float32 (floatx) variable and casts
    # Python hyperparameters through float32, so a float64 run would not be float64 math.
    dtypes = ("float32",)
    bare = "backends.tensorflow.bare:bare_loops"
    kinds = tuple(OPTIMIZERS)
    parity_variant = "corrected"
    # Stock Keras Adam shown beside the corrected one; eps=1e-3 (as some recipes use) makes
    # its epsilon-hat form visible, at eps=1e-8 it hides in float32 noise.
    parity_extras = {
        "stock-keras": (
            {"stock_keras_adam": True},
            {
                "adam": OptimizerSpec("adam", lr=1e-3),
                "adam_eps1e-3": OptimizerSpec("adam", lr=1e-3, eps=1e-3),
            },
        )
    }

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
        stock_keras_adam: bool = False,
    ):
        super().__init__(mode, device, dtype, compiler)
        self.stock_keras_adam = stock_keras_adam
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
            optimizer = make_optimizer(opt, self.stock_keras_adam)
            # Slots exist before the first trace: tf.function must not create variables.
            optimizer.build(net.trainable_variables)
        variables = net.trainable_variables

        # The device scope sits inside the functions: traced once into the graph in
        # compiled mode, instead of a Python context manager around every call.
        def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.device(self._tf_device):
                with tf.GradientTape() as tape:
                    loss = _loss(net(x, training=True), y)
                grads = _l2_grads(opt, tape.gradient(loss, variables), variables)
                optimizer.apply(grads, variables)
                return loss

        def evaluate(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.device(self._tf_device):
                logits = net(x, training=False)
                acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.float64))
                return _loss(logits, y), acc

        if self.path.name != "eager":
            # The step traces with static shapes (every batch has the same shape, so one
            # trace per run): measured ~8% faster on CPU than a [None, d] signature.
            # Evaluation keeps the dynamic batch so the test and train sets share a trace.
            sig = [
                tf.TensorSpec([None, sizes[0]], self.dtype),
                tf.TensorSpec([None], tf.int64),
            ]
            jit = self.path.name == "xla"
            step = tf.function(step, jit_compile=jit)
            evaluate = tf.function(evaluate, input_signature=sig, jit_compile=jit)
        return TensorflowState(net, optimizer, step, evaluate, opt)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.device(self._tf_device):
            return (
                tf.identity(tf.constant(np.asarray(x), dtype=self.dtype)),
                tf.identity(tf.constant(np.asarray(y), dtype=tf.int64)),
            )

    def train_step(
        self, state: TensorflowState, x: tf.Tensor, y: tf.Tensor
    ) -> tuple[TensorflowState, tf.Tensor]:
        return state, state.step_fn(x, y)

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
        return BackendInfo(
            name=self.name,
            framework="tensorflow",
            version=tf.__version__,
            device=self.device,
            mode=self.mode,
            dtype=self.dtype,
            compiler=self.path.name,
            compiler_detail=self.path.detail,
            extra={
                "keras": keras.__version__,
                "threads": {
                    "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                },
                "matmul_precision": "tf32" if self.device == "gpu" and tf32 else self.dtype,
                "adam": "stock keras (eps hat)" if self.stock_keras_adam else "spec (torch eps)",
            },
        )

    def peak_memory_mb(self) -> float | None:
        if self.device != "gpu":
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20

"""The NumPy reference: hand-written backprop and the optimizer formulas of ``base.py``.

Runs in float32 (a backend like the others) or float64 (the reference that parity checks
every backend against). NumPy has no compiler: ``compiled`` mode runs the same code as
``eager`` and ``describe()`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backends.base import (
    Backend,
    BackendInfo,
    ModelSpec,
    OptimizerSpec,
    Weights,
    for_kind,
    forward,
    loss_and_grads,
    softmax_cross_entropy,
)


@dataclass
class NumpyState:
    weights: Weights
    opt: OptimizerSpec
    slots: list[list[np.ndarray]]  # per weight, the kind's slots (SLOTS)
    step: int = 0
    lrs: np.ndarray | None = None  # the schedule's learning rate per update (None: constant)


def _sgd(o: OptimizerSpec, lr, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray], t: int):
    dt = w.dtype.type
    if o.weight_decay:
        g = g + dt(o.weight_decay) * w
    if o.momentum:
        buf = slots[0]
        buf *= dt(o.momentum)
        buf += g
        g = g + dt(o.momentum) * buf if o.nesterov else buf
    w -= lr * g


def _adam(o: OptimizerSpec, lr, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray], t: int):
    dt = w.dtype.type
    m, v = slots
    if o.weight_decay:
        w *= dt(1 - float(lr) * o.weight_decay)
    m *= dt(o.beta1)
    m += dt(1 - o.beta1) * g
    v *= dt(o.beta2)
    v += dt(1 - o.beta2) * g * g
    m_hat = m / dt(1 - o.beta1**t)
    v_hat = v / dt(1 - o.beta2**t)
    w -= lr * m_hat / (np.sqrt(v_hat) + dt(o.eps))


def _rmsprop(o: OptimizerSpec, lr, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray], t: int):
    dt = w.dtype.type
    if o.weight_decay:
        g = g + dt(o.weight_decay) * w
    v = slots[0]
    v *= dt(o.rho)
    v += dt(1 - o.rho) * g * g
    if o.centered:
        a = slots[1]
        a *= dt(o.rho)
        a += dt(1 - o.rho) * g
        d = g / (np.sqrt(v - a * a) + dt(o.eps))
    else:
        d = g / (np.sqrt(v) + dt(o.eps))
    if o.momentum:
        buf = slots[-1]
        buf *= dt(o.momentum)
        buf += d
        d = buf
    w -= lr * d


def _adagrad(o: OptimizerSpec, lr, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray], t: int):
    dt = w.dtype.type
    if o.weight_decay:
        g = g + dt(o.weight_decay) * w
    s = slots[0]
    s += g * g
    w -= lr * g / (np.sqrt(s) + dt(o.eps))


#: kind -> the in-place update of one weight, exactly as written in ``base.KINDS``
UPDATES = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop, "adagrad": _adagrad}
#: kind -> the slot arrays each weight needs, as (name, initial value)
SLOTS = {
    "sgd": lambda o: [("momentum", 0.0)] * bool(o.momentum),
    "adam": lambda o: [("m", 0.0), ("v", 0.0)],
    "rmsprop": lambda o: (
        [("v", 0.0)] + [("grad_avg", 0.0)] * o.centered + [("momentum", 0.0)] * bool(o.momentum)
    ),
    "adagrad": lambda o: [("sum", o.initial_accumulator)],
}


def init_state(weights: Weights, opt: OptimizerSpec, dtype: str) -> NumpyState:
    ws = [np.array(w, dtype=dtype, copy=True) for w in weights]
    slots = for_kind(SLOTS, opt.kind, "the numpy backend")(opt)
    return NumpyState(
        ws,
        opt,
        [[np.full_like(w, value) for _, value in slots] for w in ws],
        lrs=opt.lr_table(),
    )


def apply_update(state: NumpyState, grads: Weights) -> None:
    """One optimizer update in place, exactly as documented in ``base.KINDS``, at the
    schedule's learning rate for this step (rounded once to the weights' dtype)."""
    update = for_kind(UPDATES, state.opt.kind, "the numpy backend")
    state.step += 1
    dt = state.weights[0].dtype.type
    if state.lrs is None:
        lr = dt(state.opt.lr)
    else:
        lr = dt(state.lrs[min(state.step, len(state.lrs)) - 1])
    for w, g, slots in zip(state.weights, grads, state.slots):
        update(state.opt, lr, w, g, slots, state.step)


class NumpyBackend(Backend):
    name = "numpy"
    extra = ""
    dtypes = ("float32", "float64")

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu"]

    bare = "backends.numpy.bare:bare_loops"
    kinds = tuple(UPDATES)

    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> NumpyState:
        return init_state(weights, opt, self.dtype)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(x, dtype=self.dtype), np.ascontiguousarray(y, dtype=np.int64)

    def train_step(self, state: NumpyState, x: np.ndarray, y: np.ndarray):
        loss, grads = loss_and_grads(state.weights, x, y)
        apply_update(state, grads)
        return state, loss

    def evaluate(self, state: NumpyState, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        logits, _ = forward(state.weights, x)
        loss, _ = softmax_cross_entropy(logits, y)
        return loss, float((logits.argmax(axis=1) == y).mean())

    def get_weights(self, state: NumpyState) -> Weights:
        return [w.copy() for w in state.weights]

    def sync(self, value) -> None:
        return None

    def describe(self) -> BackendInfo:
        return self.info("numpy", np.__version__, blas=_blas(), threads=_blas_threads())


def _blas_threads() -> str:
    """The threads NumPy's BLAS runs with, as it says itself (threadpoolctl, which
    scikit-learn brings): OpenBLAS sizes its pool once, at import, so a thread variable set
    after that is not what runs ("" where it cannot be read)."""
    try:
        from threadpoolctl import threadpool_info

        return ",".join(str(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")
    except Exception:  # noqa: BLE001 - not installed, or a BLAS it does not know
        return ""


def _blas() -> str:
    """The BLAS NumPy was built with, e.g. "scipy-openblas 0.3.31" ("" where it does not say):
    OpenBLAS and MKL differ several-fold on the same matmul, so the numbers need it."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - an older NumPy, or a build that records none
        return ""

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
    Reference,
    SpecError,
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
    #: an optimizer plugin's NumPy update (its implementation, or its reference)
    plugin_update: Reference | None = None


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


def init_state(
    weights: Weights, opt: OptimizerSpec, dtype: str, reference: bool = False
) -> NumpyState:
    """The state of a run from ``weights``; ``reference``: a plugin runs its reference, not
    its NumPy implementation (parity's float64 reference, which that implementation is
    checked against)."""
    ws = [np.array(w, dtype=dtype, copy=True) for w in weights]
    plugin = opt.plugin
    update = None
    if plugin is not None:
        update = plugin.reference if reference else plugin.factory("numpy")
        if update is None:
            raise SpecError(f"optimizer {plugin.name!r} has no NumPy reference")
        slots = update.slots(dict(opt.params))
    else:
        slots = for_kind(SLOTS, opt.kind, "the numpy backend")(opt)
    return NumpyState(
        ws,
        opt,
        [[np.full_like(w, value) for _, value in slots] for w in ws],
        lrs=opt.lr_table(),
        plugin_update=update,
    )


def apply_update(state: NumpyState, grads: Weights) -> None:
    """One optimizer update in place, exactly as documented in ``base.KINDS`` (or by a
    plugin's reference), at the schedule's learning rate for this step (rounded once to the
    weights' dtype)."""
    # a plugin's update was found once, at init (state.plugin_update), not per step
    plugin = state.plugin_update is not None
    update = None if plugin else for_kind(UPDATES, state.opt.kind, "the numpy backend")
    state.step += 1
    dt = state.weights[0].dtype.type
    if state.lrs is None:
        lr = dt(state.opt.lr)
    else:
        lr = dt(state.lrs[min(state.step, len(state.lrs)) - 1])
    if update is None:
        _plugin_update(state, grads, lr)
        return
    for w, g, slots in zip(state.weights, grads, state.slots):
        update(state.opt, lr, w, g, slots, state.step)


def _plugin_update(state: NumpyState, grads: Weights, lr) -> None:
    """A plugin's reference update of every weight; what it returns must keep each
    weight's and slot's shape and dtype (said with the plugin's and the tensor's name)."""
    ref, hp, name = state.plugin_update, dict(state.opt.params), state.opt.kind
    names = [n for n, _ in ref.slots(hp)]
    for i, (w, g, slots) in enumerate(zip(state.weights, grads, state.slots)):
        new_w, new_slots = ref.update(hp, lr, w, g, slots, state.step)
        new_slots = list(new_slots)
        tensors = [(f"weight {i}", w, new_w)]
        if len(new_slots) != len(slots):
            raise SpecError(
                f"optimizer {name!r}'s reference returned {len(new_slots)} slots for "
                f"weight {i}; its slots() declares {len(slots)} ({', '.join(names)})"
            )
        tensors += [(f"slot {n!r} of weight {i}", a, b) for n, a, b in zip(names, slots, new_slots)]
        for what, old, new in tensors:
            new = np.asarray(new)
            if new.shape != old.shape or new.dtype != old.dtype:
                raise SpecError(
                    f"optimizer {name!r}'s reference returned {what} as {new.dtype} "
                    f"{new.shape}, for {old.dtype} {old.shape}: keep the shape and dtype "
                    "(write constants as w.dtype.type(x) or plain Python floats)"
                )
        w[...] = new_w
        state.slots[i] = [np.asarray(x) for x in new_slots]


class NumpyBackend(Backend):
    name = "numpy"
    #: runs an optimizer plugin's reference rather than its NumPy implementation
    reference = False

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu"]

    kinds = tuple(UPDATES)

    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> NumpyState:
        return init_state(weights, opt, self.dtype, self.reference)

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


class NumpyReference(NumpyBackend):
    """The float64 reference parity checks every backend against: the NumPy math, and an
    optimizer plugin's own reference (not its NumPy implementation, which is checked too)."""

    reference = True

    def __init__(self) -> None:
        super().__init__(mode="eager", dtype="float64")

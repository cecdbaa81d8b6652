"""The contract between the harness and every framework adapter, and the shared spec.

This file imports NumPy only. Everything a backend needs to know about a run is here:
the model (:class:`ModelSpec`), the optimizer with every hyperparameter explicit
(:class:`OptimizerSpec`), the initial weights (:func:`init_weights`), and the adapter
interface (:class:`Backend`). The NumPy backend implements the same math as the
reference that every other backend is checked against.

Weights travel between backends as a list of NumPy arrays ``[W0, b0, W1, b1, ...]`` with
``W`` of shape ``(in, out)`` (the Keras/JAX layout; torch stores ``(out, in)`` and
transposes at its boundary).
"""

from __future__ import annotations

import abc
import importlib
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

MODES = ("eager", "compiled")
INITS = ("glorot_uniform", "torch_uniform")
DTYPES = ("float32", "float64")

Weights = list[np.ndarray]


class SpecError(ValueError):
    """A spec value is invalid; the message names the field, the value and what is allowed."""


def _check(cond: bool, name: str, value: Any, allowed: str) -> None:
    if not cond:
        raise SpecError(f"{name}={value!r} is invalid: {allowed}")


@dataclass(frozen=True)
class ModelSpec:
    """An MLP: ``input_dim -> hidden[0] -> ReLU -> ... -> num_classes`` logits."""

    input_dim: int
    num_classes: int
    hidden: tuple[int, ...] = (64,)
    init: str = "glorot_uniform"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        _check(int(self.input_dim) >= 1, "input_dim", self.input_dim, "must be >= 1")
        _check(int(self.num_classes) >= 2, "num_classes", self.num_classes, "must be >= 2")
        for h in self.hidden:
            _check(
                isinstance(h, (int, np.integer)) and h >= 1,
                "hidden",
                list(self.hidden),
                "every hidden layer size must be an integer >= 1, e.g. hidden=[64]",
            )
        _check(self.init in INITS, "init", self.init, f"choose one of {', '.join(INITS)}")
        _check(self.dtype in DTYPES, "dtype", self.dtype, f"choose one of {', '.join(DTYPES)}")

    @property
    def layer_sizes(self) -> list[int]:
        return [self.input_dim, *self.hidden, self.num_classes]


@dataclass(frozen=True)
class OptimizerKind:
    """One optimizer kind: the hyperparameters it takes (beyond ``lr``), its update written
    out, and the parity presets that exercise it (named configurations, kind implied)."""

    name: str
    hyperparameters: tuple[str, ...]
    formula: str
    presets: dict[str, dict[str, Any]]


#: Every optimizer kind, in the PyTorch/optax formulation. Validation, the sweep loader and
#: the parity presets read this table; every backend maps each kind explicitly (a test
#: fails until it does) and raises :class:`UnknownKind` on anything else.
KINDS: dict[str, OptimizerKind] = {
    k.name: k
    for k in (
        OptimizerKind(
            "sgd",
            ("momentum", "nesterov", "weight_decay"),
            "g += weight_decay * w (L2, coupled); buf = momentum * buf + g; "
            "g = g + momentum * buf if nesterov else buf; w -= lr * g",
            {
                "sgd": {"lr": 0.1},
                "sgd_momentum": {"lr": 0.05, "momentum": 0.9},
                "sgd_nesterov": {
                    "lr": 0.05,
                    "momentum": 0.9,
                    "nesterov": True,
                    "weight_decay": 5e-4,
                },
            },
        ),
        OptimizerKind(
            "adam",
            ("beta1", "beta2", "eps", "weight_decay"),
            "w *= 1 - lr * weight_decay (decoupled, i.e. AdamW; 0 gives Adam); "
            "m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; "
            "w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)",
            {"adam": {"lr": 1e-3}, "adamw": {"lr": 1e-3, "weight_decay": 1e-2}},
        ),
    )
}
OPTIMIZER_KINDS = tuple(KINDS)


class UnknownKind(SpecError):
    """A backend was given an optimizer kind it does not map."""


def for_kind(table: dict[str, Any], kind: str, where: str) -> Any:
    """``table[kind]`` for a backend's kind -> implementation map; a clear error otherwise,
    never a silent fall-through to another optimizer."""
    try:
        return table[kind]
    except KeyError:
        raise UnknownKind(
            f"optimizer kind {kind!r} is not implemented by {where}; it maps "
            f"{', '.join(table)} (add the kind there, see backends.base.KINDS)"
        ) from None


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer kind (see :data:`KINDS` for the formulas) with every hyperparameter
    explicit. A hyperparameter the kind does not take must stay at its default."""

    kind: str
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _check(
            self.kind in KINDS,
            "optimizer",
            self.kind,
            f"choose one of {', '.join(OPTIMIZER_KINDS)}",
        )
        _check(_finite(self.lr) and self.lr > 0, "lr", self.lr, "must be > 0")
        _check(
            _finite(self.momentum) and 0 <= self.momentum < 1,
            "momentum",
            self.momentum,
            "must be in [0, 1)",
        )
        _check(
            _finite(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            self.weight_decay,
            "must be >= 0",
        )
        _check(
            _finite(self.beta1) and 0 <= self.beta1 < 1, "beta1", self.beta1, "must be in [0, 1)"
        )
        _check(
            _finite(self.beta2) and 0 <= self.beta2 < 1, "beta2", self.beta2, "must be in [0, 1)"
        )
        _check(_finite(self.eps) and self.eps > 0, "eps", self.eps, "must be > 0")
        _check(
            isinstance(self.nesterov, (bool, np.bool_)),
            "nesterov",
            self.nesterov,
            "must be true or false",
        )
        if self.nesterov:
            _check(self.momentum > 0, "nesterov", self.nesterov, "nesterov needs momentum > 0")
        takes = KINDS[self.kind].hyperparameters
        defaults = {f.name: f.default for f in fields(self) if f.name not in ("kind", "lr")}
        unused = [k for k, d in defaults.items() if k not in takes and getattr(self, k) != d]
        _check(
            not unused,
            self.kind,
            "/".join(unused),
            f"{self.kind} takes lr, {', '.join(takes)} only",
        )

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters this kind uses (unused defaults left out)."""
        return {k: getattr(self, k) for k in ("lr", *KINDS[self.kind].hyperparameters)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: Any) -> bool:
    """A real, finite number (not a string, not a bool)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(float(x))


def init_weights(model: ModelSpec, seed: int) -> Weights:
    """Initial weights, generated once in NumPy and loaded into every backend.

    ``glorot_uniform`` (Keras' default): ``W ~ U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``,
    zero biases. ``torch_uniform`` (``nn.Linear``'s default, kaiming_uniform with a=sqrt(5)):
    ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(model.dtype)
    weights: Weights = []
    sizes = model.layer_sizes
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        if model.init == "glorot_uniform":
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
            b = np.zeros(fan_out)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            w = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            b = rng.uniform(-bound, bound, size=fan_out)
        weights += [w.astype(dtype), b.astype(dtype)]
    return weights


def num_parameters(model: ModelSpec) -> int:
    sizes = model.layer_sizes
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


@dataclass(frozen=True)
class CompilePath:
    """One way a backend runs its training step: eager, or one of its compilers. Its name
    is what ``--compiler`` takes and the ``compiler`` column holds."""

    name: str
    modes: tuple[str, ...]  # the mode(s) it serves
    detail: str  # what it is, in the framework's words (the ``compiler_detail`` column)
    devices: tuple[str, ...] = ("cpu", "gpu")


#: the paths of a backend that declares none: one per mode, named after it
MODE_PATHS = (
    CompilePath("eager", ("eager",), "eager"),
    CompilePath("compiled", ("compiled",), "compiled"),
)


def candidate_paths(paths: tuple[CompilePath, ...], mode: str, device: str) -> list[CompilePath]:
    """The paths that serve ``mode`` on ``device``, in the backend's order of preference
    (the first is the default where nothing was measured)."""
    return [p for p in paths if mode in p.modes and device in p.devices]


def choose_path(
    backend: str, paths: tuple[CompilePath, ...], mode: str, device: str, compiler: str | None
) -> CompilePath:
    """The path a run takes: ``compiler`` by name, or the default for (mode, device);
    a clear error naming what is supported otherwise."""
    here = candidate_paths(paths, mode, device)
    if compiler is None:
        _check(bool(here), "mode", mode, f"{backend} has no {mode} path on the {device}")
        return here[0]
    by_name = {p.name: p for p in paths}
    _check(
        compiler in by_name,
        "compiler",
        compiler,
        f"{backend} has {', '.join(by_name)} (see `optbench backends`)",
    )
    path = by_name[compiler]
    _check(
        path in here,
        "compiler",
        compiler,
        f"{backend}'s {compiler} runs in {'/'.join(path.modes)} mode on "
        f"{'/'.join(path.devices)}; for {mode} on the {device} it has "
        f"{', '.join(p.name for p in here) or 'nothing'}",
    )
    return path


@dataclass
class BackendInfo:
    """What a backend says about itself (``Backend.describe``)."""

    name: str
    framework: str
    version: str
    device: str
    mode: str
    dtype: str
    compiler: str  # the path's name (``CompilePath.name``)
    compiler_detail: str = ""  # the path's ``detail``
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """One framework's implementation of the MLP and its optimizers.

    The life of a run::

        be = TorchBackend(mode="compiled", device="cpu")  # compiler=None: the default path
        state = be.init(model, opt, init_weights(model, seed=0))
        xb, yb = be.to_device(x_batch, y_batch)       # stage data before timing
        state, loss = be.train_step(state, xb, yb)    # loss stays on the device
        be.sync(loss)                                 # wait for the device
        be.to_float(loss), be.evaluate(state, xt, yt), be.get_weights(state)

    ``train_step`` must not synchronise with the host: the harness decides when to wait,
    so a block of steps can be timed with one sync at its end. The loss it returns must
    stay valid after later steps (the runner reads a whole block's losses after the
    block): a path that replays into static buffers (CUDA graphs) returns a copy. State is
    opaque to the harness; adapters that hold mutable framework objects keep them inside it.

    The ways a backend runs its step (eager, and each compiler) are its :class:`CompilePath`
    entries in ``backends.registry`` (so that the driver knows them without importing the
    framework); ``self.path`` is the one this instance runs.
    """

    #: registry name, e.g. "torch"
    name: ClassVar[str]
    #: the ``pip install`` extra that brings the framework
    extra: ClassVar[str]
    #: modes this backend runs in
    modes: ClassVar[tuple[str, ...]] = MODES
    #: dtypes this backend runs in
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)
    #: optimizer kinds this backend maps (the keys of its kind -> implementation table);
    #: a test fails until it equals ``KINDS``
    kinds: ClassVar[tuple[str, ...]] = ()
    #: what parity calls this backend's own rows: "stock" framework optimizers, or
    #: "corrected" where the adapter corrects a framework difference
    parity_variant: ClassVar[str] = "stock"
    #: extra, informational parity rows: variant name -> (constructor keyword arguments,
    #: {preset name: OptimizerSpec}); shown beside the checked rows, never failing them
    parity_extras: ClassVar[dict[str, tuple[dict[str, Any], dict[str, OptimizerSpec]]]] = {}
    #: "module:function" of this framework's bare loop (see :meth:`bare_loop`); imported only
    #: by the overhead benchmark
    bare: ClassVar[str] = ""

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
    ):
        _check(mode in self.modes, "mode", mode, f"{self.name} runs in {', '.join(self.modes)}")
        _check(
            dtype in self.dtypes, "dtype", dtype, f"{self.name} runs in {', '.join(self.dtypes)}"
        )
        devices = self.devices()
        _check(
            device in devices,
            "device",
            device,
            f"{self.name} has {', '.join(devices)} here",
        )
        self.mode = mode
        self.device = device
        self.dtype = dtype
        self.path = choose_path(self.name, self.compile_paths(), mode, device, compiler)

    @classmethod
    def compile_paths(cls) -> tuple[CompilePath, ...]:
        """This backend's paths (its registry entry's; :data:`MODE_PATHS` if it has none)."""
        from backends import registry  # the registry imports this module

        entry = registry.REGISTRY.get(cls.name)
        return entry.paths if entry is not None else MODE_PATHS

    @classmethod
    @abc.abstractmethod
    def devices(cls) -> list[str]:
        """Device kinds available to this framework here: ``cpu`` and, where present, ``gpu``."""

    @abc.abstractmethod
    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> Any:
        """Create the training state (parameters + optimizer slots) from NumPy weights."""

    @abc.abstractmethod
    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """Stage features (float) and integer labels on the device."""

    def split_batches(self, x: Any, y: Any, batch_size: int) -> list[tuple[Any, Any]]:
        """Cut staged data into consecutive full batches (the remainder is dropped so that
        every step has the same shape and compiled steps never recompile)."""
        n = (len(y) // batch_size) * batch_size
        return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]

    @abc.abstractmethod
    def train_step(self, state: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """One optimizer step on a staged batch; returns ``(state, loss)``, loss on device."""

    @abc.abstractmethod
    def evaluate(self, state: Any, x: Any, y: Any) -> tuple[float, float]:
        """Mean cross-entropy loss and accuracy on staged data, as Python floats."""

    @abc.abstractmethod
    def get_weights(self, state: Any) -> Weights:
        """Current weights as NumPy arrays in the shared ``[W0, b0, ...]`` layout."""

    @abc.abstractmethod
    def sync(self, value: Any) -> None:
        """Block until the device has finished the work that produced ``value``."""

    def to_float(self, value: Any) -> float:
        """A device scalar as a Python float (synchronises)."""
        return float(np.asarray(value))

    @abc.abstractmethod
    def describe(self) -> BackendInfo:
        """Framework name and version, device, mode, dtype and compiler (``self.path``)."""

    #: what ``peak_memory_mb`` measures (the ``peak_memory_kind`` column): "device", this
    #: run's peak (reset at ``init``), or "device_process_peak", the worker's high-water mark
    #: where the framework cannot reset it
    device_peak_kind: ClassVar[str] = "device"

    def peak_memory_mb(self) -> float | None:
        """Peak device memory in MiB (see ``device_peak_kind``), where the framework tracks
        it (GPU); None on the CPU, where the harness samples the process's resident memory."""
        return None

    @classmethod
    def bare_loops(
        cls,
        opt: OptimizerSpec,
        weights: Weights,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        device: str = "cpu",
    ) -> dict[str, Any]:
        """For the overhead benchmark: ``{name: block}`` with ``block(steps) -> seconds``,
        each a training loop written directly in the framework as a competent user would
        (nothing of the suite's), doing the same step on ``device``: every idiomatic loop
        that could be this framework's fastest there (eager with a fused optimizer, each
        compiler). Each backend keeps them in its ``bare.py`` and names the function in
        :attr:`bare`."""
        if not cls.bare:
            raise NotImplementedError(f"{cls.name} has no bare loop to compare against")
        module, func = cls.bare.split(":")
        loops = getattr(importlib.import_module(module), func)
        return loops(opt, weights, x, y, batch_size, device)


# ---------------------------------------------------------------------------------------
# The reference math, in NumPy, shared by the NumPy backend and the tests.
# ---------------------------------------------------------------------------------------


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy on logits and its gradient with respect to the logits.

    Computed from logits with log-sum-exp, never as softmax followed by a log of clipped
    probabilities: clipping (Keras' ``from_logits=False`` path clips to [1e-7, 1-1e-7])
    changes the loss value and zeroes the gradient of confident mistakes, and each
    framework clips differently, so the backends would not agree.
    """
    if labels.ndim != 1 or len(labels) != len(logits):
        raise ValueError(f"labels must have shape ({len(logits)},), not {labels.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    n = logits.shape[0]
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


def forward(weights: Weights, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the activations of every layer input (for backprop)."""
    acts = [x]
    h = x
    n_layers = len(weights) // 2
    for i in range(n_layers):
        h = h @ weights[2 * i] + weights[2 * i + 1]
        if i < n_layers - 1:
            h = np.maximum(h, 0)
            acts.append(h)
    return h, acts


def loss_and_grads(weights: Weights, x: np.ndarray, y: np.ndarray) -> tuple[float, Weights]:
    """Mean cross-entropy and its gradient for every weight, by hand-written backprop."""
    logits, acts = forward(weights, x)
    loss, d = softmax_cross_entropy(logits, y)
    d = d.astype(weights[0].dtype, copy=False)
    grads: Weights = [np.empty(0)] * len(weights)
    for i in reversed(range(len(weights) // 2)):
        grads[2 * i] = acts[i].T @ d
        grads[2 * i + 1] = d.sum(axis=0)
        if i > 0:
            d = (d @ weights[2 * i].T) * (acts[i] > 0)
    return loss, grads

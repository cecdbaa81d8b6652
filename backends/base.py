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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np

MODES = ("eager", "compiled")
#: how a backend runs an optimizer: "spec", corrected to the formulas of :data:`KINDS`
#: (parity-checked), or "stock", the framework's own optimizer with its default arguments
#: (see :func:`stock_arguments`), as its users run it
VARIANTS = ("spec", "stock")
INITS = ("glorot_uniform", "torch_uniform")
DTYPES = ("float32", "float64")

Weights = list[np.ndarray]


class SpecError(ValueError):
    """A spec value is invalid; the message names the field, the value and what is allowed."""


def _check(cond: bool, name: str, value: Any, allowed: str) -> None:
    if not cond:
        raise SpecError(f"{name}={value!r} is invalid: {allowed}")


def stock_arguments(opt: OptimizerSpec) -> dict[str, Any]:
    """What a ``stock`` run takes from its spec: the learning rate (and its schedule), the
    momentum, and the switches that choose the algorithm (nesterov, centered; ``adamw``:
    the framework's AdamW, at its own default decay, where the spec decays weights).
    Everything else (betas, eps, rho, the initial accumulator, SGD's and RMSprop's weight
    decay) is the framework's default."""
    return {
        "lr": opt.lr,
        "schedule": opt.schedule,
        "momentum": opt.momentum,
        "nesterov": opt.nesterov,
        "centered": opt.centered,
        "adamw": opt.kind == "adam" and opt.weight_decay > 0,
    }


def _finite(x: Any) -> bool:
    """A real, finite number (not a string, not a bool)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(float(x))


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
        OptimizerKind(
            "rmsprop",
            ("rho", "eps", "momentum", "centered", "weight_decay"),
            "g += weight_decay * w (L2, coupled); v = rho v + (1-rho) g^2 (v starts at 0); "
            "centered: a = rho a + (1-rho) g, d = g / (sqrt(v - a^2) + eps), else "
            "d = g / (sqrt(v) + eps) (eps outside the root); momentum: buf = momentum * buf + d, "
            "w -= lr * buf, else w -= lr * d (PyTorch's RMSprop, alpha = rho)",
            {
                "rmsprop": {"lr": 1e-3, "rho": 0.99},
                "rmsprop_centered_momentum": {
                    "lr": 1e-3,
                    "rho": 0.9,
                    "momentum": 0.9,
                    "centered": True,
                    "weight_decay": 1e-4,
                },
            },
        ),
        OptimizerKind(
            "adagrad",
            ("eps", "initial_accumulator", "weight_decay"),
            "g += weight_decay * w (L2, coupled); s += g^2 (s starts at initial_accumulator); "
            "w -= lr * g / (sqrt(s) + eps) (eps outside the root; PyTorch's Adagrad, lr_decay 0)",
            {
                "adagrad": {"lr": 1e-2, "eps": 1e-10},
                "adagrad_init": {"lr": 1e-2, "initial_accumulator": 0.1, "weight_decay": 1e-4},
            },
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


#: learning-rate schedules (:class:`Schedule`) -> the settings each takes beyond the
#: linear learning-rate warm-up that every one of them may start with
SCHEDULES: dict[str, tuple[str, ...]] = {
    "constant": (),
    "step": ("boundaries", "gamma"),
    "cosine": ("final_fraction",),
}


@dataclass(frozen=True)
class Schedule:
    """The learning rate of update ``t`` (1, 2, ...) over a horizon of ``H`` steps, as a
    multiple of ``lr``; identical in every backend (each reads :meth:`multipliers`).

    - ``lr_warmup_steps = w`` (any schedule; the *learning-rate* warm-up, not the timing
      warm-up steps): updates ``t <= w`` are scaled by ``t / w``, a linear ramp to ``lr``.
    - ``constant``: 1 after the warm-up.
    - ``step``: ``gamma ** k``, ``k`` the number of ``boundaries`` (fractions of ``H``) that
      ``t`` has passed: ``t > round(b * H)``.
    - ``cosine``: ``f + (1 - f) * (1 + cos(pi * p)) / 2`` with ``p = (t - w - 1) / (H - w)``
      (the first update after the warm-up at ``lr``, falling towards ``f * lr``,
      ``f = final_fraction``).

    ``horizon`` is the run's length in steps, filled in when the run starts (0 until then);
    past it the last value holds.
    """

    name: str = "constant"
    lr_warmup_steps: int = 0
    boundaries: tuple[float, ...] = ()
    gamma: float = 0.1
    final_fraction: float = 0.0
    horizon: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        names = ", ".join(SCHEDULES)
        _check(self.name in SCHEDULES, "schedule", self.name, f"choose one of {names}")
        _check(
            isinstance(self.lr_warmup_steps, (int, np.integer))
            and not isinstance(self.lr_warmup_steps, bool)
            and self.lr_warmup_steps >= 0,
            "lr_warmup_steps",
            self.lr_warmup_steps,
            "must be an integer >= 0 (steps of linear learning-rate warm-up)",
        )
        _check(
            _finite(self.gamma) and 0 < self.gamma <= 1,
            "gamma",
            self.gamma,
            "must be in (0, 1] (the factor at each step boundary)",
        )
        _check(
            _finite(self.final_fraction) and 0 <= self.final_fraction <= 1,
            "final_fraction",
            self.final_fraction,
            "must be in [0, 1] (the cosine's last learning rate, as a fraction of lr)",
        )
        b = self.boundaries
        _check(
            all(_finite(x) and 0 < x < 1 for x in b) and list(b) == sorted(set(b)),
            "boundaries",
            list(b),
            "must be increasing fractions of the run in (0, 1), e.g. [0.5, 0.75]",
        )
        if self.name == "step":
            _check(bool(b), "boundaries", list(b), "a step schedule needs at least one, e.g. [0.5]")
        default = Schedule.__dataclass_fields__
        unused = [
            k
            for k in ("boundaries", "gamma", "final_fraction")
            if k not in SCHEDULES[self.name] and getattr(self, k) != default[k].default
        ]
        _check(
            not unused,
            self.name,
            "/".join(unused),
            f"the {self.name} schedule takes lr_warmup_steps"
            + "".join(f", {k}" for k in SCHEDULES[self.name])
            + " only",
        )
        _check(
            isinstance(self.horizon, (int, np.integer)) and self.horizon >= 0,
            "horizon",
            self.horizon,
            "must be an integer >= 0 (the run's steps; 0 until it starts)",
        )
        if self.horizon:
            _check(
                self.lr_warmup_steps < self.horizon,
                "lr_warmup_steps",
                self.lr_warmup_steps,
                f"must be shorter than the run ({self.horizon} steps)",
            )

    @property
    def is_constant(self) -> bool:
        """True when every update uses ``lr`` itself (the backends' plain path)."""
        return self.name == "constant" and not self.lr_warmup_steps

    def multipliers(self) -> np.ndarray:
        """Float64 factors for updates 1..horizon (see the class docstring)."""
        _check(
            self.horizon >= 1 or self.is_constant,
            "horizon",
            self.horizon,
            "a schedule needs the run's length: use OptimizerSpec.for_run(steps)",
        )
        h, w = max(self.horizon, 1), self.lr_warmup_steps
        t = np.arange(1, h + 1, dtype=np.float64)
        if self.name == "step":
            edges = np.array([round(b * h) for b in self.boundaries], dtype=np.float64)
            out = self.gamma ** (t[:, None] > edges[None, :]).sum(axis=1).astype(np.float64)
        elif self.name == "cosine":
            p = np.clip((t - w - 1) / max(h - w, 1), 0.0, 1.0)
            f = self.final_fraction
            out = f + (1 - f) * (1 + np.cos(np.pi * p)) / 2
        else:
            out = np.ones(h)
        if w:
            out = np.where(t <= w, out * t / w, out)
        return out

    def text(self) -> str:
        """A compact form for tables (and :meth:`parse`): ``constant``,
        ``cosine:lr_warmup_steps=50,final_fraction=0``, ``step:boundaries=0.5/0.75,gamma=0.1``."""
        parts = []
        for k in ("lr_warmup_steps", *SCHEDULES[self.name]):
            v = getattr(self, k)
            if k == "lr_warmup_steps" and not v:
                continue
            parts.append(f"{k}={'/'.join(f'{b:g}' for b in v) if k == 'boundaries' else f'{v:g}'}")
        return self.name + (":" + ",".join(parts) if parts else "")

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """The inverse of :meth:`text`."""
        name, _, rest = str(text or "constant").partition(":")
        kw: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            if k == "boundaries":
                kw[k] = tuple(float(x) for x in v.split("/"))
            elif k == "lr_warmup_steps":
                kw[k] = int(v)
            else:
                kw[k] = float(v)
        return cls(name, **kw)


#: OptimizerSpec fields added after schema version 1 (kept out of run ids at their defaults)
ADDED_OPTIMIZER_FIELDS = ("rho", "centered", "initial_accumulator", "schedule")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer kind (see :data:`KINDS` for the formulas) with every hyperparameter
    explicit, and its learning-rate schedule. A hyperparameter the kind does not take must
    stay at its default."""

    kind: str
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    rho: float = 0.99  # RMSprop's decay of the squared-gradient average (PyTorch's alpha)
    centered: bool = False
    initial_accumulator: float = 0.0  # Adagrad's starting sum of squares
    schedule: Schedule = Schedule()

    def __post_init__(self) -> None:
        if isinstance(self.schedule, dict):  # from to_dict / JSON
            object.__setattr__(self, "schedule", Schedule(**self.schedule))
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
        _check(_finite(self.rho) and 0 <= self.rho < 1, "rho", self.rho, "must be in [0, 1)")
        _check(
            _finite(self.initial_accumulator) and self.initial_accumulator >= 0,
            "initial_accumulator",
            self.initial_accumulator,
            "must be >= 0",
        )
        for flag in ("nesterov", "centered"):
            value = getattr(self, flag)
            _check(isinstance(value, (bool, np.bool_)), flag, value, "must be true or false")
        if self.nesterov:
            _check(self.momentum > 0, "nesterov", self.nesterov, "nesterov needs momentum > 0")
        _check(
            isinstance(self.schedule, Schedule),
            "schedule",
            self.schedule,
            "must be a backends.base.Schedule",
        )
        takes = KINDS[self.kind].hyperparameters
        defaults = {
            f.name: f.default for f in fields(self) if f.name not in ("kind", "lr", "schedule")
        }
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

    def for_run(self, steps: int) -> OptimizerSpec:
        """This spec with its schedule's horizon set to a run of ``steps`` updates."""
        return replace(self, schedule=replace(self.schedule, horizon=int(steps)))

    def lr_table(self) -> np.ndarray | None:
        """The learning rate of every update, float64 (None for a constant schedule: the
        backends then pass ``lr`` as a plain number, as a user would)."""
        if self.schedule.is_constant:
            return None
        return self.lr * self.schedule.multipliers()


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
    #: whether one call runs a whole block of steps (``Backend.train_steps`` over
    #: :class:`StackedBatches`, a loop on the device) rather than one step per call
    block: bool = False


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


class StackedBatches(Sequence):
    """Full batches stacked on the device, ``x`` of shape ``(batches, batch_size, ...)``
    and ``y`` of ``(batches, batch_size)``, and the window ``[start, stop)`` of them that a
    block trains on: what :meth:`Backend.split_batches` gives on a path whose
    :meth:`Backend.train_steps` runs the block as one compiled loop over ``x[start:stop]``.
    Slicing gives a window on the same arrays (no copy, no device work); an item is one
    batch ``(x[i], y[i])``, as from a list of batches."""

    def __init__(self, x: Any, y: Any, start: int = 0, stop: int | None = None):
        self.x, self.y = x, y
        self.start = start
        self.stop = int(y.shape[0]) if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            start, stop, stride = index.indices(len(self))
            if stride != 1:
                raise ValueError(f"a window of batches is contiguous (step 1), not step {stride}")
            return StackedBatches(self.x, self.y, self.start + start, self.start + max(start, stop))
        i = range(self.start, self.stop)[index]  # IndexError past the window
        return self.x[i], self.y[i]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return (self[i] for i in range(len(self)))


class BlockLosses(NamedTuple):
    """The losses of a block run as one compiled call: the first ``count`` entries of
    ``values``, a device array as long as the stacked batches (a fixed shape, so that blocks
    of every length share one compiled program)."""

    values: Any
    count: int


class Backend(abc.ABC):
    """One framework's implementation of the MLP and its optimizers.

    The life of a run::

        be = TorchBackend(mode="compiled", device="cpu")  # compiler=None: the default path
        state = be.init(model, opt, init_weights(model, seed=0))
        xb, yb = be.to_device(x_batch, y_batch)       # stage data before timing
        state, loss = be.train_step(state, xb, yb)    # loss stays on the device
        be.sync(loss)                                 # wait for the device
        be.to_float(loss), be.evaluate(state, xt, yt), be.get_weights(state)

    The runner drives blocks of steps: ``batches = be.split_batches(xs, ys, batch_size)``
    once per epoch, then ``state, losses = be.train_steps(state, batches[i : i + n])``,
    ``be.sync_losses(losses)`` and ``be.host_losses(losses)``. ``train_steps`` loops over
    ``train_step`` unless a path runs the whole block in one compiled call (a loop on the
    device over :class:`StackedBatches`, as Keras' ``steps_per_execution`` does).

    ``train_step`` and ``train_steps`` must not synchronise with the host: the harness
    decides when to wait, so a block of steps can be timed with one sync at its end. The
    losses they return must stay valid after later steps (the runner reads a whole block's
    losses after the block): a path that replays into static buffers (CUDA graphs) returns
    a copy. State is opaque to the harness; adapters that hold mutable framework objects
    keep them inside it.

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
    #: the variants (:data:`VARIANTS`) it runs: "spec" always; "stock" where the framework
    #: has optimizers of its own (the NumPy reference has none: it is the spec)
    variants: ClassVar[tuple[str, ...]] = ("spec",)
    #: "module:function" of this framework's bare loop (see :meth:`bare_loop`); imported only
    #: by the overhead benchmark
    bare: ClassVar[str] = ""

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
        variant: str = "spec",
    ):
        _check(mode in self.modes, "mode", mode, f"{self.name} runs in {', '.join(self.modes)}")
        _check(
            variant in self.variants,
            "variant",
            variant,
            f"{self.name} runs {', '.join(self.variants)}"
            + ("" if "stock" in self.variants else " (it has no stock optimizers of its own)"),
        )
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
        self.variant = variant
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

    def split_batches(self, x: Any, y: Any, batch_size: int) -> Sequence[tuple[Any, Any]]:
        """Cut staged data into consecutive full batches (the remainder is dropped so that
        every step has the same shape and compiled steps never recompile): a list of
        ``(x, y)`` batches, or on a block path :class:`StackedBatches`."""
        n = (len(y) // batch_size) * batch_size
        return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]

    @abc.abstractmethod
    def train_step(self, state: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """One optimizer step on a staged batch; returns ``(state, loss)``, loss on device."""

    def train_steps(self, state: Any, batches: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
        """Consecutive steps, one per batch of ``batches`` (what :meth:`split_batches`
        returned, or a slice of it), with no host sync; returns ``(state, losses)``: every
        step's loss on the device, for :meth:`sync_losses` and :meth:`host_losses`. On a
        block path (``self.path.block``) a window of :class:`StackedBatches` is one call
        of :meth:`train_block`; anything else loops over :meth:`train_step`."""
        if self.path.block and isinstance(batches, StackedBatches) and len(batches):
            state, values = self.train_block(state, batches)
            return state, BlockLosses(values, len(batches))
        losses = []
        for xb, yb in batches:
            state, loss = self.train_step(state, xb, yb)
            losses.append(loss)
        return state, losses

    def train_block(self, state: Any, window: StackedBatches) -> tuple[Any, Any]:
        """A block path's steps on ``window`` in one compiled call: ``(state, values)``,
        values a device array as long as ``window.x`` whose first ``len(window)`` entries
        are the steps' losses (a fixed shape: one compilation for windows of every length)."""
        raise NotImplementedError(f"{self.name}'s {self.path.name} path runs no block")

    def sync_losses(self, losses: Any) -> None:
        """Wait for the block that produced ``losses`` (:meth:`train_steps`): its last loss."""
        if isinstance(losses, BlockLosses):
            self.sync(losses.values)
        elif len(losses):
            self.sync(losses[-1])

    def host_losses(self, losses: Any) -> np.ndarray:
        """A block's losses (:meth:`train_steps`) as float64 NumPy, one per step."""
        if isinstance(losses, BlockLosses):
            return np.asarray(losses.values, dtype=np.float64)[: losses.count]
        return np.array([self.to_float(v) for v in losses], dtype=np.float64)

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
        """Framework name and version, device, mode, dtype and compiler (``self.path``):
        ``self.info(framework, version, **extra)``."""

    def info(self, framework: str, version: str, **extra: Any) -> BackendInfo:
        """This run's :class:`BackendInfo`: what every backend records of itself, plus the
        framework's own ``extra`` (threads, precision, library versions)."""
        return BackendInfo(
            name=self.name,
            framework=framework,
            version=version,
            device=self.device,
            mode=self.mode,
            dtype=self.dtype,
            compiler=self.path.name,
            compiler_detail=self.path.detail,
            extra=extra,
        )

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

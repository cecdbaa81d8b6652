"""The shared spec every backend runs from: the model (:class:`ModelSpec`), the optimizer
with every hyperparameter explicit (:class:`OptimizerSpec`, the kinds in :data:`KINDS`),
the initial weights (:func:`init_weights`), and the error a bad value raises
(:class:`SpecError`). NumPy only: the driver reads it without importing a framework.

Weights travel between backends as a list of NumPy arrays ``[W0, b0, W1, b1, ...]`` with
``W`` of shape ``(in, out)`` (the Keras/JAX layout; torch stores ``(out, in)`` and
transposes at its boundary).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from backends.errors import SpecError  # noqa: F401 - re-exported: every caller catches it here
from backends.errors import check as _check
from backends.optimizers import (  # noqa: F401 - the optimizer contract, re-exported
    KINDS,
    OPTIMIZER_KINDS,
    Hyperparameter,
    OptimizerKind,
    Reference,
    UnknownKind,
    find,
    for_kind,
)
from backends.optimizers import known as known_kinds

MODES = ("eager", "compiled")
#: how a backend runs an optimizer: "spec", corrected to the formulas of :data:`KINDS`
#: (parity-checked), or "stock", the framework's own optimizer with its default arguments
#: (see :func:`stock_arguments`), as its users run it
VARIANTS = ("spec", "stock")
INITS = ("glorot_uniform", "torch_uniform")
DTYPES = ("float32", "float64")

Weights = list[np.ndarray]


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
ADDED_OPTIMIZER_FIELDS = ("rho", "centered", "initial_accumulator", "schedule", "params")
#: OptimizerSpec fields that are not hyperparameters of a built-in kind
_NOT_HYPER = ("kind", "lr", "schedule", "params")


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
    #: a plugin's hyperparameters, as (name, value) pairs (``{}`` accepted); () for a
    #: built-in kind, whose hyperparameters are the fields above
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.params, Mapping) or isinstance(self.params, list):  # dict or JSON
            items = self.params.items() if isinstance(self.params, Mapping) else self.params
            object.__setattr__(self, "params", tuple((str(k), v) for k, v in items))
        if isinstance(self.schedule, dict):  # from to_dict / JSON
            object.__setattr__(self, "schedule", Schedule(**self.schedule))
        kind = find(self.kind) if isinstance(self.kind, str) else None
        _check(
            kind is not None,
            "optimizer",
            self.kind,
            f"choose one of {', '.join(known_kinds())}, or name a plugin as 'module:Object'",
        )
        if kind.source and kind.source == self.kind:  # loaded by "module:Object": its name
            object.__setattr__(self, "kind", kind.name)
        _check(_finite(self.lr) and self.lr > 0, "lr", self.lr, "must be > 0")
        _check(
            isinstance(self.schedule, Schedule),
            "schedule",
            self.schedule,
            "must be a backends.base.Schedule",
        )
        if kind.is_plugin:
            self._check_plugin(kind)
        else:
            _check(
                not self.params, "params", self.params, f"{self.kind} is built in: set its fields"
            )
            for h in kind.hyperparameters:
                value = getattr(self, h.name)
                _check(h.valid(value), h.name, value, h.allowed())
            if self.nesterov:
                _check(self.momentum > 0, "nesterov", self.nesterov, "nesterov needs momentum > 0")
        takes = () if kind.is_plugin else kind.names
        defaults = {f.name: f.default for f in fields(self) if f.name not in _NOT_HYPER}
        unused = [k for k, d in defaults.items() if k not in takes and getattr(self, k) != d]
        _check(
            not unused,
            self.kind,
            "/".join(unused),
            f"{self.kind} takes lr, {', '.join(kind.names)} only"
            + (" (a plugin's go in params={...})" if kind.is_plugin else ""),
        )

    def _check_plugin(self, kind: OptimizerKind) -> None:
        """A plugin's hyperparameters: every one declared, in range, the rest at their
        defaults; kept as sorted (name, value) pairs, so that its run id is its values'."""
        given = dict(self.params)
        unknown = [k for k in given if k not in kind.names]
        _check(
            not unknown,
            "/".join(unknown),
            [given[k] for k in unknown],
            f"optimizer {kind.name!r} declares {', '.join(kind.names) or 'no hyperparameters'}",
        )
        values = {}
        for h in kind.hyperparameters:
            value = given.get(h.name, h.default)
            _check(h.valid(value), h.name, value, h.allowed())
            values[h.name] = bool(value) if h.is_switch else value
        object.__setattr__(self, "params", tuple(sorted(values.items())))

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters this kind uses (unused defaults left out)."""
        if self.params:
            return {"lr": self.lr, **dict(self.params)}
        return {k: getattr(self, k) for k in ("lr", *find(self.kind).names)}

    @property
    def optimizer_kind(self) -> OptimizerKind:
        """Its kind's declaration (built in or a plugin)."""
        return find(self.kind)

    @property
    def plugin(self) -> OptimizerKind | None:
        """Its kind's declaration where the kind is a plugin; None for a built-in kind (or
        one no adapter knows: each adapter's kind table then says so)."""
        kind = find(self.kind)
        return kind if kind is not None and kind.is_plugin else None

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

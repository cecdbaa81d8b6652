"""The optimizer contract: what an optimizer kind declares, for the built-in kinds
(:data:`backends.spec.KINDS`) and for plugins alike. Framework-free: NumPy only.

A kind declares its name, its hyperparameters (:class:`Hyperparameter`: default and valid
range, checked before anything runs), its update written out, its parity presets, and for a
plugin an optional float64 NumPy :class:`Reference` (what parity checks every framework
against) and one factory per framework it implements. The factories, by backend name:

- ``"torch"``: ``make(params, hp, lr) -> torch.optim.Optimizer`` (``params`` a list of
  tensors; a schedule sets each param group's ``lr`` before every step, as
  ``torch.optim.lr_scheduler`` does);
- ``"jax"``: ``make(hp, lr) -> optax.GradientTransformation`` whose updates are *added* to
  the parameters (``lr`` a float, or optax's schedule ``count -> lr``:
  ``optax.scale_by_learning_rate(lr)`` takes both);
- ``"tensorflow"``: ``make(hp, lr) -> keras.optimizers.Optimizer`` (``lr`` a float or a
  ``keras.optimizers.schedules.LearningRateSchedule``);
- ``"numpy"``: the reference itself, unless the plugin gives one of its own (same shape).

``hp`` is a dict of the declared hyperparameters' values. A factory may be the callable or a
``"module:function"`` string, imported when a run needs it (so the plugin's module need not
import every framework). A framework the plugin does not implement records its runs
``skipped`` with the reason, and so does a path whose options (:data:`backends.paths.PATH_OPTIONS`)
it names in ``unsupported``.

A plugin is found by ``"module:Object"`` (a sweep file's ``kind``, ``optbench parity
--optimizer``), by the environment variable ``OPTBENCH_OPTIMIZERS="name=module:Object,..."``,
or by an entry point in the group ``optbench.optimizers``. Its run ids hash its declared name
and hyperparameters, not where it was imported from.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from backends.errors import SpecError

#: the environment variable that names plugins for every process of a sweep
ENV = "OPTBENCH_OPTIMIZERS"
#: the entry-point group installed packages declare plugins in
ENTRY_POINT_GROUP = "optbench.optimizers"


def _number(x: Any) -> bool:
    """A real, finite number (not a string, not a bool)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(float(x))


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: its default, and for a number the range it must lie in
    (``low``/``high``, closed unless ``low_open``/``high_open``; None: unbounded). A bool
    default makes it a switch."""

    name: str
    default: float | bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""

    @property
    def is_switch(self) -> bool:
        return isinstance(self.default, (bool, np.bool_))

    def allowed(self) -> str:
        if self.is_switch:
            return "must be true or false"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        if self.low is not None and self.high is None:
            return f"must be {'>' if self.low_open else '>='} {lo}"
        if self.high is not None and self.low is None:
            return f"must be {'<' if self.high_open else '<='} {hi}"
        if self.low is None:
            return "must be a finite number"
        return (
            f"must be in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        )

    def valid(self, value: Any) -> bool:
        if self.is_switch:
            return isinstance(value, (bool, np.bool_))
        if not _number(value):
            return False
        v = float(value)
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.high_open else v > self.high))


@dataclass(frozen=True)
class Reference:
    """A plugin's update in NumPy, run in float64 as parity's reference (and in float32 by
    the NumPy backend): ``slots(hp)`` gives the state each weight keeps, as (name, initial
    value) pairs; ``update(hp, lr, w, g, slots, t)`` returns ``(new_w, new_slots)`` for one
    weight at update ``t`` (1, 2, ...), keeping ``w``'s shape and dtype (``lr`` comes typed
    to it; write constants as ``w.dtype.type(0.9)`` or plain Python floats)."""

    slots: Callable[[dict[str, Any]], list[tuple[str, float]]]
    update: Callable[..., tuple[np.ndarray, list[np.ndarray]]]


@dataclass(frozen=True)
class OptimizerKind:
    """One optimizer kind: the hyperparameters it takes beyond ``lr``, its update written
    out, and the parity presets that exercise it (named configurations, kind implied). A
    plugin adds its reference, its implementations and the path options it cannot run on."""

    name: str
    hyperparameters: tuple[Hyperparameter, ...]
    formula: str
    presets: dict[str, dict[str, Any]]
    reference: Reference | None = None
    #: backend name -> factory or "module:function" (see the module docstring); the
    #: built-in kinds have theirs in each adapter's kind table instead
    implementations: Mapping[str, Callable[..., Any] | str] = field(default_factory=dict)
    #: backend name -> the framework's own optimizer of that name at its defaults (the
    #: ``stock`` variant: same factory shapes, the hyperparameters beyond lr ignored)
    stock: Mapping[str, Callable[..., Any] | str] = field(default_factory=dict)
    #: path options (block, traced, xla, cuda_graph) its implementations cannot run on
    unsupported: tuple[str, ...] = ()
    #: its update is a sign (Lion, signSGD): parity allows a few flipped signs
    #: (:func:`benchmarks.checks.parity.sign_rule`) rather than the plain gate
    sign_based: bool = False
    #: where it was loaded from ("module:Object"); "" for the built-in kinds
    source: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Its hyperparameters' names, in declaration order."""
        return tuple(h.name for h in self.hyperparameters)

    def hyperparameter(self, name: str) -> Hyperparameter:
        return next(h for h in self.hyperparameters if h.name == name)

    @property
    def is_plugin(self) -> bool:
        return bool(self.source)

    def implementation(self, backend: str, variant: str = "spec") -> Callable[..., Any] | None:
        """The factory for ``backend`` in ``variant`` (imported if given as
        "module:function"); None where the plugin has none."""
        impl = (self.stock if variant == "stock" else self.implementations).get(backend)
        if isinstance(impl, str):
            impl = _import(impl, f"optimizer {self.name!r}'s {backend} implementation")
        return impl

    def factory(self, backend: str, variant: str = "spec") -> Any:
        """A plugin's implementation for ``backend`` (the NumPy backend: its reference
        unless it gives its own); a SpecError saying why where it has none."""
        why = self.skip_reason(backend, (), "", variant)
        if why:
            raise SpecError(why)
        impl = self.implementation(backend, variant)
        return self.reference if impl is None else impl

    def skip_reason(
        self, backend: str, options: tuple[str, ...], path: str, variant: str = "spec"
    ) -> str | None:
        """Why a run of this kind on ``backend``'s ``path`` (with path ``options``) in
        ``variant`` cannot run, or None. Built-in kinds run everywhere (a test holds every
        adapter to them)."""
        if not self.is_plugin:
            return None
        if variant == "stock":
            if backend in self.stock:
                return None
            has = ", ".join(self.stock) or "none"
            return f"optimizer {self.name!r} has no stock {backend} optimizer (stock: {has})"
        if backend not in self.implementations and not (backend == "numpy" and self.reference):
            has = sorted(self.implementations) + (["numpy"] if self.reference else [])
            return (
                f"optimizer {self.name!r} ({self.source}) has no {backend} implementation; "
                f"it implements {', '.join(dict.fromkeys(has)) or 'none'}"
            )
        blocked = [o for o in options if o in self.unsupported]
        if blocked:
            return (
                f"optimizer {self.name!r} cannot run on {backend}'s {path} path "
                f"({', '.join(blocked)}: in its unsupported options)"
            )
        return None


#: Every optimizer kind, in the PyTorch/optax formulation. Validation, the sweep loader and
#: the parity presets read this table; every backend maps each kind explicitly (a test
#: fails until it does) and raises :class:`UnknownKind` on anything else.
KINDS: dict[str, OptimizerKind] = {
    k.name: k
    for k in (
        OptimizerKind(
            "sgd",
            (
                Hyperparameter("momentum", 0.0, 0, 1, high_open=True),
                Hyperparameter("nesterov", False),
                Hyperparameter("weight_decay", 0.0, 0),
            ),
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
            (
                Hyperparameter("beta1", 0.9, 0, 1, high_open=True),
                Hyperparameter("beta2", 0.999, 0, 1, high_open=True),
                Hyperparameter("eps", 1e-8, 0, low_open=True),
                Hyperparameter("weight_decay", 0.0, 0),
            ),
            "w *= 1 - lr * weight_decay (decoupled, i.e. AdamW; 0 gives Adam); "
            "m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; "
            "w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)",
            {"adam": {"lr": 1e-3}, "adamw": {"lr": 1e-3, "weight_decay": 1e-2}},
        ),
        OptimizerKind(
            "rmsprop",
            (
                Hyperparameter("rho", 0.99, 0, 1, high_open=True),
                Hyperparameter("eps", 1e-8, 0, low_open=True),
                Hyperparameter("momentum", 0.0, 0, 1, high_open=True),
                Hyperparameter("centered", False),
                Hyperparameter("weight_decay", 0.0, 0),
            ),
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
            (
                Hyperparameter("eps", 1e-8, 0, low_open=True),
                Hyperparameter("initial_accumulator", 0.0, 0),
                Hyperparameter("weight_decay", 0.0, 0),
            ),
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
            f"{', '.join(table)} (add the kind there, see backends.optimizers)"
        ) from None


def _import(target: str, what: str) -> Any:
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise SpecError(f"{what}: {target!r} is not of the form 'module:Object'")
    if os.getcwd() not in sys.path:  # as `python -m` has it: a plugin beside the sweep file
        sys.path.append(os.getcwd())
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any error importing the user's module is theirs to see
        raise SpecError(
            f"{what}: cannot import module {module!r} ({type(exc).__name__}: {exc}); "
            "is it on PYTHONPATH (or installed)?"
        ) from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise SpecError(f"{what}: module {module!r} has no {attr!r}") from None


#: plugins by name, as registered in this process
PLUGINS: dict[str, OptimizerKind] = {}


def validate(kind: Any, where: str) -> OptimizerKind:
    """``kind`` if it is a well-formed plugin; a SpecError naming what is missing otherwise."""
    if not isinstance(kind, OptimizerKind):
        have = [a for a in ("name", "hyperparameters", "formula", "presets") if hasattr(kind, a)]
        raise SpecError(
            f"{where} is a {type(kind).__name__}, not an optimizer plugin: make it a "
            "backends.optimizers.OptimizerKind(name, hyperparameters, formula, presets, "
            "reference=..., implementations=...)"
            + (f" (it has {', '.join(have)}; wrap them)" if have else "")
        )
    if not (isinstance(kind.name, str) and kind.name.isidentifier()):
        raise SpecError(f"{where}: name={kind.name!r} is invalid: a plain identifier, e.g. 'lion'")
    for h in kind.hyperparameters:
        if not isinstance(h, Hyperparameter):
            raise SpecError(
                f"{where}: hyperparameters must be Hyperparameter(...) entries; got {h!r}"
            )
        if h.name == "lr" or not h.name.isidentifier():
            raise SpecError(f"{where}: hyperparameter name {h.name!r} is invalid (lr is implied)")
        if not h.valid(h.default):
            raise SpecError(f"{where}: {h.name}'s default {h.default!r} {h.allowed()}")
    if len(set(kind.names)) != len(kind.names):
        raise SpecError(f"{where}: hyperparameters {list(kind.names)} name one twice")
    if not kind.presets:
        raise SpecError(
            f"{where}: presets is empty; give one, e.g. {{{kind.name!r}: {{'lr': 1e-3}}}}"
        )
    from backends.paths import PATH_OPTIONS

    bad = [o for o in kind.unsupported if o not in PATH_OPTIONS]
    if bad:
        raise SpecError(f"{where}: unsupported={bad} is invalid; path options are {PATH_OPTIONS}")
    if not kind.implementations and kind.reference is None:
        raise SpecError(f"{where}: no implementations and no reference: nothing could run it")
    return kind


def register(kind: OptimizerKind, source: str) -> OptimizerKind:
    """Register a plugin under its name (loaded from ``source``, "module:Object"), and name
    it in :data:`ENV` so that worker processes find it too. Another kind of that name is an
    error, the same plugin again is not."""
    kind = replace(validate(kind, source), source=source)
    if kind.name in KINDS:
        raise SpecError(
            f"optimizer plugin {source} is named {kind.name!r}, as a built-in kind; rename it"
        )
    other = PLUGINS.get(kind.name)
    if other is not None and other.source != source:
        raise SpecError(
            f"two optimizer plugins are named {kind.name!r}: {other.source} and {source}; "
            "rename one"
        )
    PLUGINS[kind.name] = kind
    named = dict(_parse_env(os.environ.get(ENV, "")))
    if named.get(kind.name) != source and source not in CATALOGUE:
        named[kind.name] = source
        os.environ[ENV] = ",".join(f"{n}={s}" for n, s in named.items())
    return kind


def load(source: str) -> OptimizerKind:
    """The plugin at ``"module:Object"``, registered."""
    return register(_import(source, f"optimizer plugin {source!r}"), source)


def _parse_env(text: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, sep, source = item.partition("=")
        if not sep:
            raise SpecError(f"{ENV}={text!r}: {item!r} is not name=module:Object")
        out.append((name.strip(), source.strip()))
    return out


#: the optimizers the frameworks share under one name, shipped as plugins on this contract
#: (``backends/catalogue/``): found by name like any other plugin
CATALOGUE = (
    "backends.catalogue.adamax:ADAMAX",
    "backends.catalogue.adadelta:ADADELTA",
    "backends.catalogue.lion:LION",
    "backends.catalogue.amsgrad:AMSGRAD",
)

_discovered = False


def discover() -> None:
    """Register the shipped catalogue, the plugins named by :data:`ENV` and by installed
    packages' entry points (once per process)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for source in CATALOGUE:
        load(source)
    for name, source in _parse_env(os.environ.get(ENV, "")):
        kind = load(source)
        if kind.name != name:
            raise SpecError(f"{ENV}: {source} is named {kind.name!r}, not {name!r}")
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in {k.source for k in PLUGINS.values()}:
            load(ep.value)


def find(name: str) -> OptimizerKind | None:
    """The built-in kind or registered plugin called ``name``; a "module:Object" is loaded."""
    if name in KINDS:
        return KINDS[name]
    if ":" in name:
        return load(name)
    if name not in PLUGINS:
        discover()
    return PLUGINS.get(name)


def known() -> list[str]:
    discover()
    return [*KINDS, *PLUGINS]

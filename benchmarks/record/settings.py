"""Every sweep setting, declared once: its key, type, default, range, what it allows and its
``optbench run`` option.

:mod:`benchmarks.record.sweep` validates a sweep file, applies command-line overrides and
checks ranges from :data:`SETTINGS`; ``optbench run`` builds its override options from it,
and ``tests/test_docs.py`` holds docs/reference.md's sweep-key table to it. A new setting is
one :class:`Setting` here (and whatever reads it: ``RunSpec`` in :func:`sweep.expand`). The
tables (``[optimizers]``, ``[targets]``, ``[optimizer_seeds]``) bring their own parsers.

The order is the order ``optbench run --help`` lists the options; settings without one sit
beside their neighbours.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from backends import optimizers, registry
from backends.base import (
    DTYPES,
    INITS,
    KINDS,
    MODES,
    SCHEDULES,
    VARIANTS,
    OptimizerSpec,
    Schedule,
    SpecError,
)
from benchmarks.record.schema import DEFAULT_COMPILER

DEVICES = ("cpu", "gpu", "auto")


@dataclass(frozen=True)
class Setting:
    """One sweep setting.

    ``key`` is how a file names it (``timing.threads`` under ``[timing]``); ``type`` is what
    its value (a list's items) may be; ``allowed`` says so, in errors and in the docs' table.
    ``check`` is the range check (on each item of a list, or on the whole list with
    ``whole``), and ``invalid`` what its error says where that differs from ``allowed``.
    A ``"table"`` (``[optimizers]``, ...) is parsed and checked by ``sweep`` itself.
    ``flag`` is the ``optbench run`` option that overrides it (``help``: its help line);
    ``count_flag`` gives a list as a count N instead: 0..N-1.
    """

    key: str
    type: type | tuple[type, ...]
    default: Any
    allowed: str
    shape: str = "scalar"  # "scalar", "list" or "table"
    check: Callable[[Any], bool] | None = None
    invalid: str = ""
    whole: bool = False
    nonempty: bool = False
    unique: bool = False
    flag: str | None = None
    help: str | None = None
    count_flag: str | None = None
    count_help: str | None = None
    parse: Callable[[str, Any, Any], Any] | None = None  # a table's: (where, value, default)

    @property
    def section(self) -> str:
        """The table it is under (``timing``), or "" at the top level."""
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        """Its name within its table: how an override names it (``threads``)."""
        return self.key.rpartition(".")[2]

    def problem(self, value: Any) -> tuple[Any, str] | None:
        """The value that breaks the range and what is allowed, or None where it is fine."""
        says = self.invalid or self.allowed
        if self.shape == "table":
            return None
        if self.shape == "scalar" or self.whole:
            if self.check and not self.check(value):
                return value, says
        else:
            for v in value:
                if self.check and not self.check(v):
                    return v, says
            if self.nonempty and not value:
                return value, says
        if self.unique:
            seen = set()
            for v in value:
                if v in seen:
                    return value, f"each value once ({v!r} is listed twice)"
                seen.add(v)
        return None


class SweepError(SpecError):
    """An invalid sweep file or override; the message names where, what and what is allowed."""


def typed(where: str, key: str, value: Any, typ, allowed: str) -> None:
    bad = (
        isinstance(value, bool)
        and typ is not bool
        and bool not in (typ if isinstance(typ, tuple) else (typ,))
    )
    if bad or not isinstance(value, typ):
        raise SweepError(f"{where}: {key} = {value!r} is invalid; expected {allowed}")


def _targets(where: str, value: Any, _default: dict) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SweepError(
            f"{where}: [targets] must be a table of dataset = accuracy, e.g. mnist5k = 0.9"
        )
    for k, v in value.items():
        typed(where, f"targets.{k}", v, (int, float), "an accuracy in (0, 1]")
        if not 0 < v <= 1:
            raise SweepError(
                f"{where}: targets.{k} = {v!r} is invalid; expected an accuracy in (0, 1]"
            )
    return dict(value)


def _optimizer_seeds(where: str, value: Any, default: dict) -> dict[str, Any]:
    allowed = {"backend": (str, "a backend name"), "seeds": (list, "a list of seeds")}
    if not isinstance(value, dict) or set(value) - set(allowed):
        raise SweepError(
            f"{where}: [optimizer_seeds] must be a table with backend and seeds, e.g. "
            'backend = "numpy", seeds = [1, 2]'
        )
    for k, v in value.items():
        typed(where, f"optimizer_seeds.{k}", v, *allowed[k])
    for v in value.get("seeds", []):
        typed(where, "optimizer_seeds.seeds", v, int, "a list of integers >= 0")
    return {**default, **value}


def _optimizers(where: str, value: Any, _default: dict) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise SweepError(
            f'{where}: [optimizers] must hold at least one table, e.g. [optimizers.adam] kind = "adam"'
        )
    return {n: _optimizer(where, n, cfg) for n, cfg in value.items()}


def _optimizer(where: str, name: str, cfg: Any) -> dict[str, Any]:
    kinds = ", ".join(f'"{k}"' for k in KINDS)
    if not isinstance(cfg, dict):
        raise SweepError(f"{where}: optimizers.{name} must be a table with kind = one of {kinds}")
    cfg = dict(cfg)
    kind = cfg.pop("kind", name if name in KINDS else None)
    try:  # a built-in kind, or a plugin: "module:Object" (or one OPTBENCH_OPTIMIZERS names)
        declared = optimizers.find(kind) if isinstance(kind, str) else None
    except SpecError as exc:
        raise SweepError(f"{where}: optimizers.{name}.kind: {exc}") from None
    if declared is None:
        raise SweepError(
            f"{where}: optimizers.{name}.kind = {kind!r} is invalid; choose one of "
            f"{', '.join(optimizers.known())}, or name a plugin as 'module:Object'"
        )
    kind = declared.name
    lrs = cfg.pop("learning_rates", None)
    if lrs is not None:
        if not isinstance(lrs, list) or not lrs:
            raise SweepError(
                f"{where}: optimizers.{name}.learning_rates = {lrs!r} is invalid; expected a non-empty list of numbers > 0"
            )
        for v in lrs:
            typed(
                where, f"optimizers.{name}.learning_rates", v, (int, float), "a list of numbers > 0"
            )
    schedule = _schedule(where, name, cfg.pop("schedule", {}))
    allowed = declared.names
    for k in cfg:
        if k not in allowed:
            raise SweepError(
                f"{where}: unknown key optimizers.{name}.{k} for kind {kind!r}; allowed: kind, learning_rates, schedule, {', '.join(allowed)}"
            )
    # a plugin's hyperparameters travel in params, a built-in kind's as its fields
    hyper, params = ({}, cfg) if declared.is_plugin else (cfg, {})
    try:
        OptimizerSpec(kind, lr=1.0, params=params, **hyper)  # range checks now, file named
    except SpecError as exc:
        raise SweepError(f"{where}: optimizers.{name}: {exc}") from None
    return {
        "kind": kind,
        "learning_rates": lrs,
        "hyper": hyper,
        "params": params,
        "schedule": schedule,
    }


def _schedule(where: str, name: str, cfg: Any) -> dict[str, Any]:
    """``[optimizers.NAME.schedule]``: name = constant|step|cosine and its settings
    (``backends.base.Schedule``), checked now; the horizon is each run's length."""
    at = f"{where}: optimizers.{name}.schedule"
    names = ", ".join(SCHEDULES)
    if not isinstance(cfg, dict):
        raise SweepError(f'{at} must be a table, e.g. {{ name = "cosine", lr_warmup_steps = 50 }}')
    allowed = [f.name for f in fields(Schedule) if f.name != "horizon"]  # each run's length
    for k in cfg:
        if k not in allowed:
            raise SweepError(f"{at}: unknown key {k!r}; allowed: {', '.join(allowed)}")
    if "name" in cfg and cfg["name"] not in SCHEDULES:
        raise SweepError(f"{at}.name = {cfg['name']!r} is invalid; choose one of {names}")
    try:
        Schedule(**cfg)
    except (SpecError, TypeError) as exc:
        raise SweepError(f"{at}: {exc}") from None
    return dict(cfg)


def _folder(name: str | None) -> bool:
    return name is None or not (name in ("", ".", "..") or "/" in name or "\\" in name)


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "backends",
        str,
        ["installed"],
        f'a list drawn from {", ".join(registry.NAMES)}, or ["installed"]',
        "list",
        check=lambda b: b == "installed" or b in registry.REGISTRY,
        unique=True,
        flag="--backend",
        help="override: comma-separated backends",
    ),
    Setting(
        "modes",
        str,
        ["compiled"],
        f"a list drawn from {', '.join(MODES)}",
        "list",
        check=lambda m: m in MODES,
        unique=True,
        flag="--mode",
        help="override: eager,compiled",
    ),
    Setting(
        "compilers",
        str,
        [DEFAULT_COMPILER],
        'a list of "default" (each backend\'s fastest compiled path, measured), "all" (every '
        'path), path names (see `optbench backends`), or backend=path, e.g. ["torch=eager"]',
        "list",
        unique=True,  # the paths themselves: sweep.check_compilers, once backends are known
        flag="--compiler",
        help="paths to run: default (each backend's fastest compiled path, measured), all, "
        "a path name (e.g. xla), or backend=path (e.g. torch=eager); see `optbench backends`",
    ),
    Setting(
        "devices",
        str,
        ["cpu"],
        f"a list drawn from {', '.join(DEVICES)}",
        "list",
        check=lambda d: d in DEVICES,
        unique=True,
        flag="--device",
        help="override: cpu,gpu,auto",
    ),
    Setting(
        "optimizers",
        str,  # the option's values: names of the file's optimizers
        {},
        "tables [optimizers.NAME]: kind, learning_rates, schedule and the kind's "
        "hyperparameters; at least one",
        "table",
        parse=_optimizers,
        flag="--optimizer",
        help="only these of the sweep's named optimizers",
    ),
    Setting(
        "learning_rates",
        (int, float),
        [],
        "a list of numbers > 0",
        "list",
        check=_positive,
        unique=True,
        flag="--lr",
        help="override every optimizer's learning rates, e.g. 1e-3,1e-2",
    ),
    Setting(
        "batch_sizes",
        int,
        [128],
        "a list of integers >= 1",
        "list",
        check=lambda b: b >= 1,
        unique=True,
        flag="--batch-size",
        help="override: e.g. 32,128",
    ),
    Setting(
        "seeds",
        int,
        [0],
        "a list of integers >= 0",
        "list",
        check=lambda v: v >= 0,
        unique=True,
        flag="--seed",
        help="the seed to run, or several: 7 or 0,3,7",
        count_flag="--seeds",
        count_help="how many seeds: N runs seeds 0..N-1",
    ),
    Setting(
        "dataset",
        str,
        "mnist5k",
        "digits, mnist5k, synthetic[:n=..,d=..,c=..], or npz:PATH",
        flag="--dataset",
        help="override: one data set (digits, mnist5k, synthetic[:n=..,d=..], npz:PATH)",
    ),
    Setting(
        "variants",
        str,
        ["spec"],
        f"a list drawn from {', '.join(VARIANTS)} (spec: every framework corrected to one "
        "formula; stock: each framework's own optimizer at its default arguments)",
        "list",
        check=lambda v: v in VARIANTS,
        nonempty=True,
        unique=True,
        flag="--variant",
        help="override: spec (corrected to one formula), stock (each framework's defaults), "
        "or spec,stock",
    ),
    Setting("epochs", int, 3, "an integer >= 0", check=lambda v: v >= 0, flag="--epochs"),
    Setting(
        "max_steps",
        int,
        0,
        "an integer >= 0 (0: no cap)",
        check=lambda v: v >= 0,
        flag="--max-steps",
        help="cap on steps per run (0: none)",
    ),
    Setting(
        "eval_every",
        int,
        0,
        "an integer >= 0 (steps between evaluations; 0: at epoch ends only)",
        check=lambda v: v >= 0,
        flag="--eval-every",
        help="steps between evaluations (0: epoch ends)",
    ),
    Setting(
        "timing.block_steps",
        int,
        20,
        "an integer >= 1 (steps per timed block; train loss is logged at each block end)",
        check=lambda v: v >= 1,
    ),
    Setting(
        "timing.warmup_steps",
        int,
        10,
        "an integer >= 0 (steps after the first, excluded from throughput)",
        check=lambda v: v >= 0,
    ),
    Setting(
        "timing.timeout_s",
        (int, float),
        600,
        "a number > 0 (seconds before a run is killed)",
        check=lambda v: v > 0,
        flag="--timeout",
        help="seconds before a run is killed",
    ),
    Setting(
        "timing.threads",
        int,
        0,
        "an integer >= 0 (threads per worker; 0: physical cores)",
        check=lambda v: v >= 0,
        flag="--threads",
        help="threads per worker (default: physical cores)",
    ),
    Setting(
        "name",
        str,
        None,  # the file's name
        "a string",
        check=_folder,
        invalid="a folder name for results/NAME (no '/', '\\', '.' or '..')",
        flag="--name",
        help="sweep name (default: the file's)",
    ),
    Setting("description", str, "", "a string"),
    Setting(
        "datasets",
        str,
        [],  # several data sets; empty: [dataset]
        'a list of data sets (each as `dataset`), e.g. ["digits", "mnist5k"]',
        "list",
        unique=True,
    ),
    Setting(
        "validation_fraction",
        (int, float),
        0.1,
        "a fraction in [0, 1) of the training data held out to choose learning rates (0: none)",
        check=lambda v: 0 <= v < 1,
    ),
    Setting(
        "hidden",
        int,
        [64],
        "a list of integers >= 1, e.g. [64]",
        "list",
        check=lambda h: bool(h) and all(v >= 1 for v in h),
        whole=True,
    ),
    Setting("init", str, "glorot_uniform", f"one of {', '.join(INITS)}", check=INITS.__contains__),
    Setting("dtype", str, "float32", f"one of {', '.join(DTYPES)}", check=DTYPES.__contains__),
    Setting(
        "diverge_factor",
        (int, float),
        20.0,
        "a number > 1 (a loss this many times its start counts as diverged)",
        check=lambda v: math.isfinite(v) and v > 1,
    ),
    Setting(
        "targets",
        (int, float),
        {},  # the optimizer verdict's accuracy targets, {dataset: accuracy} (else a stated rule)
        "a table of data set = accuracy in (0, 1]",
        "table",
        parse=_targets,
    ),
    Setting(
        "optimizer_seeds",
        int,
        # more seeds on one backend (the math is the same in every backend): what the
        # optimizer verdict's intervals rest on, at a fraction of the cost of every backend x
        # every seed
        {"backend": "", "seeds": []},
        "a table: backend (a backend name) and seeds (a list of integers >= 0)",
        "table",
        parse=_optimizer_seeds,
    ),
)

#: setting name -> Setting, per table ("" the top level)
SECTIONS: dict[str, dict[str, Setting]] = {}
for _s in SETTINGS:
    SECTIONS.setdefault(_s.section, {})[_s.name] = _s
del _s


def defaults() -> dict[str, Any]:
    """A fresh copy of every default, as a sweep file with no keys reads."""
    out: dict[str, Any] = {}
    for s in SETTINGS:
        (out.setdefault(s.section, {}) if s.section else out)[s.name] = copy.deepcopy(s.default)
    return out


def value_of(settings: dict[str, Any], s: Setting) -> Any:
    """``s``'s value in validated ``settings``."""
    return settings[s.section][s.name] if s.section else settings[s.name]

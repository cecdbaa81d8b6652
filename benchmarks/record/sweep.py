"""Sweeps as data: a TOML file validated into a grid of typed run specs.

A sweep file (see ``benchmarks/sweeps/default.toml``) names the data set, model, training
length, axes (backends, modes, devices, batch sizes, seeds), named optimizer
configurations with their learning rates, and timing settings. Command-line options
override any axis. Every error names the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
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
from benchmarks.core.environment import gpu_present
from benchmarks.record.schema import DEFAULT_COMPILER, RunSpec, run_steps, warmup_end

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SWEEPS_DIR = Path(__file__).parent.parent / "sweeps"
DEVICES = ("cpu", "gpu", "auto")


class SweepError(SpecError):
    """An invalid sweep file or override; the message names where, what and what is allowed."""


@dataclass
class Sweep:
    name: str
    source: str
    settings: dict[str, Any]
    runs: list[RunSpec]
    threads: int | None
    #: what runs but measures less than a user would expect (``optbench run`` prints them)
    warnings: list[str] = field(default_factory=list)


# key -> (type check, description) for the scalar settings
_SCALARS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"),
    "description": (str, "a string"),
    "dataset": (str, "digits, mnist5k, synthetic[:n=..,d=..,c=..], or npz:PATH"),
    "validation_fraction": (
        (int, float),
        "a fraction in [0, 1) of the training data held out to choose learning rates (0: none)",
    ),
    "init": (str, f"one of {', '.join(INITS)}"),
    "dtype": (str, f"one of {', '.join(DTYPES)}"),
    "epochs": (int, "an integer >= 0"),
    "max_steps": (int, "an integer >= 0 (0: no cap)"),
    "eval_every": (int, "an integer >= 0 (steps between evaluations; 0: at epoch ends only)"),
    "diverge_factor": (
        (int, float),
        "a number > 1 (a loss this many times its start counts as diverged)",
    ),
}
_LISTS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "hidden": (int, "a list of integers >= 1, e.g. [64]"),
    "datasets": (str, 'a list of data sets (each as `dataset`), e.g. ["digits", "mnist5k"]'),
    "variants": (
        str,
        f"a list drawn from {', '.join(VARIANTS)} (spec: every framework corrected to one "
        "formula; stock: each framework's own optimizer at its default arguments)",
    ),
    "backends": (str, f'a list drawn from {", ".join(registry.NAMES)}, or ["installed"]'),
    "modes": (str, f"a list drawn from {', '.join(MODES)}"),
    "compilers": (
        str,
        'a list of "default" (each backend\'s fastest compiled path, measured), "all" (every '
        'path), path names (see `optbench backends`), or backend=path, e.g. ["torch=eager"]',
    ),
    "devices": (str, f"a list drawn from {', '.join(DEVICES)}"),
    "batch_sizes": (int, "a list of integers >= 1"),
    "seeds": (int, "a list of integers >= 0"),
    "learning_rates": ((int, float), "a list of numbers > 0"),
}
_TIMING: dict[str, tuple[type | tuple[type, ...], str]] = {
    "block_steps": (
        int,
        "an integer >= 1 (steps per timed block; train loss is logged at each block end)",
    ),
    "warmup_steps": (int, "an integer >= 0 (steps after the first, excluded from throughput)"),
    "timeout_s": ((int, float), "a number > 0 (seconds before a run is killed)"),
    "threads": (int, "an integer >= 0 (threads per worker; 0: physical cores)"),
}
DEFAULTS: dict[str, Any] = {
    "name": None,
    "description": "",
    "dataset": "mnist5k",
    "datasets": [],  # several data sets; empty: [dataset]
    "validation_fraction": 0.1,
    "hidden": [64],
    "init": "glorot_uniform",
    "dtype": "float32",
    "epochs": 3,
    "max_steps": 0,
    "eval_every": 0,
    "diverge_factor": 20.0,
    "backends": ["installed"],
    "modes": ["compiled"],
    "compilers": [DEFAULT_COMPILER],
    "devices": ["cpu"],
    "batch_sizes": [128],
    "seeds": [0],
    "variants": ["spec"],
    "learning_rates": [],
    "timing": {"block_steps": 20, "warmup_steps": 10, "timeout_s": 600, "threads": 0},
    "optimizers": {},
    # the optimizer verdict's accuracy targets, {dataset: accuracy} (else a stated rule)
    "targets": {},
    # more seeds on one backend (the math is the same in every backend): what the optimizer
    # verdict's intervals rest on, at a fraction of the cost of every backend x every seed
    "optimizer_seeds": {"backend": "", "seeds": []},
}


def resolve_path(name_or_path: str) -> Path:
    """A sweep by name (``benchmarks/sweeps/NAME.toml``) or by path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise SweepError(f"sweep file {str(p)!r} not found")
        return p
    p = SWEEPS_DIR / f"{name_or_path}.toml"
    if not p.is_file():
        known = ", ".join(sorted(f.stem for f in SWEEPS_DIR.glob("*.toml")))
        raise SweepError(
            f"unknown sweep {name_or_path!r}; shipped sweeps: {known} (or give a path to a .toml file)"
        )
    return p


def load_settings(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    return validate(raw, str(path))


def _typed(where: str, key: str, value: Any, typ, allowed: str) -> None:
    bad = (
        isinstance(value, bool)
        and typ is not bool
        and bool not in (typ if isinstance(typ, tuple) else (typ,))
    )
    if bad or not isinstance(value, typ):
        raise SweepError(f"{where}: {key} = {value!r} is invalid; expected {allowed}")


def validate(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Check every key of a sweep file and fill in defaults."""
    s = json.loads(json.dumps(DEFAULTS))
    for key, value in raw.items():
        if key in _SCALARS:
            _typed(where, key, value, *_SCALARS[key])
            s[key] = value
        elif key in _LISTS:
            typ, allowed = _LISTS[key]
            if not isinstance(value, list):
                raise SweepError(f"{where}: {key} = {value!r} is invalid; expected {allowed}")
            for v in value:
                _typed(where, key, v, typ, allowed)
            s[key] = value
        elif key == "timing":
            if not isinstance(value, dict):
                raise SweepError(
                    f"{where}: [timing] must be a table with keys {', '.join(_TIMING)}"
                )
            for k, v in value.items():
                if k not in _TIMING:
                    raise SweepError(
                        f"{where}: unknown key timing.{k}; allowed: {', '.join(_TIMING)}"
                    )
                _typed(where, f"timing.{k}", v, *_TIMING[k])
                s["timing"][k] = v
        elif key == "targets":
            if not isinstance(value, dict):
                raise SweepError(
                    f"{where}: [targets] must be a table of dataset = accuracy, e.g. mnist5k = 0.9"
                )
            for k, v in value.items():
                _typed(where, f"targets.{k}", v, (int, float), "an accuracy in (0, 1]")
                if not 0 < v <= 1:
                    raise SweepError(
                        f"{where}: targets.{k} = {v!r} is invalid; expected an accuracy in (0, 1]"
                    )
            s["targets"] = dict(value)
        elif key == "optimizer_seeds":
            allowed = {"backend": (str, "a backend name"), "seeds": (list, "a list of seeds")}
            if not isinstance(value, dict) or set(value) - set(allowed):
                raise SweepError(
                    f"{where}: [optimizer_seeds] must be a table with backend and seeds, e.g. "
                    'backend = "numpy", seeds = [1, 2]'
                )
            for k, v in value.items():
                _typed(where, f"optimizer_seeds.{k}", v, *allowed[k])
            for v in value.get("seeds", []):
                _typed(where, "optimizer_seeds.seeds", v, int, "a list of integers >= 0")
            s["optimizer_seeds"].update(value)
        elif key == "optimizers":
            if not isinstance(value, dict) or not value:
                raise SweepError(
                    f'{where}: [optimizers] must hold at least one table, e.g. [optimizers.adam] kind = "adam"'
                )
            s["optimizers"] = {n: _optimizer(where, n, cfg) for n, cfg in value.items()}
        else:
            allowed = sorted(
                [*_SCALARS, *_LISTS, "timing", "optimizers", "targets", "optimizer_seeds"]
            )
            raise SweepError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
    if "dataset" in raw and "datasets" in raw:
        raise SweepError(f"{where}: give dataset or datasets, not both")
    _check_ranges(s, where)
    return s


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
            _typed(
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


def _check_ranges(s: dict[str, Any], where: str, given: dict[str, str] | None = None) -> None:
    """``given``: setting -> the command-line option that set it, for the error to name."""

    def bad(key, value, allowed):
        opt = (given or {}).get(key.removeprefix("timing."))
        at = f"command line ({opt})" if opt else where
        raise SweepError(f"{at}: {key} = {value!r} is invalid; expected {allowed}")

    name = s.get("name")
    if name is not None and (name in ("", ".", "..") or "/" in name or "\\" in name):
        bad("name", name, "a folder name for results/NAME (no '/', '\\', '.' or '..')")

    if not 0 <= s["validation_fraction"] < 1:
        bad("validation_fraction", s["validation_fraction"], _SCALARS["validation_fraction"][1])
    for v in s["variants"]:
        if v not in VARIANTS:
            bad("variants", v, _LISTS["variants"][1])
    if not s["variants"]:
        bad("variants", [], _LISTS["variants"][1])
    extra = s["optimizer_seeds"]
    if extra["backend"] and extra["backend"] not in registry.REGISTRY:
        bad("optimizer_seeds.backend", extra["backend"], f"one of {', '.join(registry.NAMES)}")
    if extra["seeds"] and not extra["backend"]:
        bad("optimizer_seeds.backend", "", "the backend that runs the extra seeds, e.g. numpy")
    for v in extra["seeds"]:
        if v < 0:
            bad("optimizer_seeds.seeds", v, "a list of integers >= 0")
    for d in s["targets"]:
        if d not in (s["datasets"] or [s["dataset"]]):
            bad(f"targets.{d}", s["targets"][d], "a data set of this sweep")
    if s["init"] not in INITS:
        bad("init", s["init"], _SCALARS["init"][1])
    if s["dtype"] not in DTYPES:
        bad("dtype", s["dtype"], _SCALARS["dtype"][1])
    for k in ("epochs", "max_steps", "eval_every"):
        if s[k] < 0:
            bad(k, s[k], _SCALARS[k][1])
    if s["epochs"] == 0 and s["max_steps"] == 0:
        bad("epochs", 0, "epochs >= 1 or max_steps >= 1")
    if not (math.isfinite(s["diverge_factor"]) and s["diverge_factor"] > 1):
        bad("diverge_factor", s["diverge_factor"], _SCALARS["diverge_factor"][1])
    if any(h < 1 for h in s["hidden"]) or not s["hidden"]:
        bad("hidden", s["hidden"], _LISTS["hidden"][1])
    for b in s["backends"]:
        if b != "installed" and b not in registry.REGISTRY:
            bad("backends", b, _LISTS["backends"][1])
    for m in s["modes"]:
        if m not in MODES:
            bad("modes", m, _LISTS["modes"][1])
    for d in s["devices"]:
        if d not in DEVICES:
            bad("devices", d, _LISTS["devices"][1])
    for b in s["batch_sizes"]:
        if b < 1:
            bad("batch_sizes", b, _LISTS["batch_sizes"][1])
    for v in s["seeds"]:
        if v < 0:
            bad("seeds", v, _LISTS["seeds"][1])
    for v in s["learning_rates"]:
        if not (math.isfinite(v) and v > 0):
            bad("learning_rates", v, _LISTS["learning_rates"][1])
    for name, o in s["optimizers"].items():
        for v in o["learning_rates"] or []:
            if not (math.isfinite(v) and v > 0):
                bad(f"optimizers.{name}.learning_rates", v, "a list of finite numbers > 0")
    for key in (
        "backends",
        "modes",
        "compilers",
        "devices",
        "batch_sizes",
        "seeds",
        "learning_rates",
        "datasets",
        "variants",
    ):
        seen = set()
        for v in s[key]:
            if v in seen:
                bad(key, s[key], f"each value once ({v!r} is listed twice)")
            seen.add(v)
    t = s["timing"]
    if t["block_steps"] < 1:
        bad("timing.block_steps", t["block_steps"], _TIMING["block_steps"][1])
    if t["warmup_steps"] < 0:
        bad("timing.warmup_steps", t["warmup_steps"], _TIMING["warmup_steps"][1])
    if not t["timeout_s"] > 0:
        bad("timing.timeout_s", t["timeout_s"], _TIMING["timeout_s"][1])
    if t["threads"] < 0:
        bad("timing.threads", t["threads"], _TIMING["threads"][1])


#: the command-line option behind each override, so that an error names it
OPTIONS = {
    "backends": "--backend",
    "modes": "--mode",
    "compilers": "--compiler",
    "devices": "--device",
    "optimizers": "--optimizer",
    "learning_rates": "--lr",
    "batch_sizes": "--batch-size",
    "seeds": "--seeds",
    "dataset": "--dataset",
    "datasets": "--dataset",
    "variants": "--variant",
    "epochs": "--epochs",
    "max_steps": "--max-steps",
    "eval_every": "--eval-every",
    "timeout_s": "--timeout",
    "threads": "--threads",
    "name": "--name",
}


def apply_overrides(
    s: dict[str, Any], o: dict[str, Any], where: str = "command line"
) -> dict[str, Any]:
    """Command-line overrides (None means: keep the file's value). ``seeds`` is a count (N:
    seeds 0..N-1) or a list of the seeds themselves."""
    s = json.loads(json.dumps(s))
    for key in (
        "backends",
        "modes",
        "compilers",
        "devices",
        "batch_sizes",
        "variants",
        "epochs",
        "max_steps",
        "eval_every",
    ):
        if o.get(key) is not None:
            s[key] = o[key]
    given = {k: opt for k, opt in OPTIONS.items() if o.get(k) is not None}
    if o.get("seeds") is not None:
        seeds = o["seeds"]
        if isinstance(seeds, int):  # --seeds N: how many; a list (--seed) names them
            if seeds < 1:
                raise SweepError(
                    f"command line (--seeds): --seeds {seeds} is invalid; expected a count >= 1 "
                    "(seeds 0..N-1), or --seed S for one chosen seed (several: --seed 0,3,7)"
                )
            seeds = list(range(seeds))
        else:
            given["seeds"] = "--seed"
        s["seeds"] = seeds
    if o.get("dataset") is not None:  # one data set, replacing the file's (and its targets)
        s["dataset"], s["datasets"] = o["dataset"], []
        s["targets"] = {k: v for k, v in s["targets"].items() if k == o["dataset"]}
    if o.get("learning_rates") is not None:
        s["learning_rates"] = o["learning_rates"]
        for cfg in s["optimizers"].values():
            cfg["learning_rates"] = None  # --lr replaces every optimizer's own list
    if o.get("optimizers") is not None:
        unknown = [n for n in o["optimizers"] if n not in s["optimizers"]]
        if unknown:
            raise SweepError(
                f"{where} (--optimizer): unknown optimizer {unknown[0]!r}; this sweep defines {', '.join(s['optimizers'])}"
            )
        s["optimizers"] = {n: s["optimizers"][n] for n in o["optimizers"]}
    for key in ("timeout_s", "threads", "block_steps", "warmup_steps"):
        if o.get(key) is not None:
            s["timing"][key] = o[key]
    if o.get("name"):
        s["name"] = o["name"]
    _check_ranges(s, where, given)
    return s


def expand(s: dict[str, Any], where: str) -> list[RunSpec]:
    """The grid: backends x devices x modes x optimizers x learning rates x batch sizes x seeds."""
    if not s["optimizers"]:
        raise SweepError(
            f'{where}: no optimizers defined; add e.g. [optimizers.adam] kind = "adam"'
        )
    backends: list[str] = []
    for b in s["backends"]:
        for name in registry.installed() if b == "installed" else [b]:
            if name not in backends:
                backends.append(name)
    if s["devices"] and set(s["devices"]) == {"gpu"} and not gpu_present():
        # asked for the GPU alone: an error; with the CPU too, the GPU runs are recorded
        # skipped with the reason
        raise SweepError(
            f"{where}: devices = {s['devices']!r}: no GPU is visible here (nvidia-smi finds "
            "none); run on a GPU machine, or use "
            + ("--device auto" if "--device" in where else 'devices = ["auto"]')
            + " (the CPU, plus a GPU where present)"
        )
    devices: list[str] = []
    for d in s["devices"]:
        for dev in (["cpu", "gpu"] if gpu_present() else ["cpu"]) if d == "auto" else [d]:
            if dev not in devices:
                devices.append(dev)
    opts: list[tuple[str, OptimizerSpec]] = []
    for name, cfg in s["optimizers"].items():
        lrs = cfg["learning_rates"] or s["learning_rates"]
        if not lrs:
            raise SweepError(
                f"{where}: optimizers.{name} has no learning_rates and the sweep sets none"
            )
        schedule = Schedule(**cfg.get("schedule", {}))
        for lr in lrs:
            params = cfg.get("params", {})
            spec = OptimizerSpec(
                cfg["kind"], lr=float(lr), schedule=schedule, params=params, **cfg["hyper"]
            )
            opts.append((name, spec))
    t = s["timing"]
    runs_what = {b: _capabilities(b) for b in backends}
    for name, cfg in s["optimizers"].items():
        plugin = optimizers.find(cfg["kind"])
        if plugin.is_plugin and all(plugin.skip_reason(b, (), "") for b in backends):
            raise SweepError(
                f"{where}: optimizers.{name}: "
                + plugin.skip_reason(backends[0], (), "")
                + f"; this sweep runs {', '.join(backends)} only"
            )
    for b, (kinds, _) in runs_what.items():
        for name, cfg in s["optimizers"].items():
            if cfg["kind"] not in kinds and not optimizers.find(cfg["kind"]).is_plugin:
                raise SweepError(
                    f"{where}: optimizers.{name}: backend {b!r} does not implement kind "
                    f"{cfg['kind']!r}; it maps {', '.join(kinds)} (leave it out with --backend, "
                    "or the optimizer with --optimizer)"
                )
    cells = [
        (b, d, m, c, v)
        for b in backends
        for d in devices
        for m, c in path_axis(b, d, s["modes"], s["compilers"])
        for v in s["variants"]
        if v in runs_what[b][1]  # the NumPy reference has no stock optimizers
    ]
    check_compilers(backends, devices, s["compilers"], cells, where)

    def run(cell: tuple, dataset: str, oname: str, opt: OptimizerSpec, bs: int, seed: int):
        b, d, m, c, v = cell
        return RunSpec(
            backend=b,
            mode=m,
            compiler=c,
            device=d,
            variant=v,
            optimizer=oname,
            opt=opt,
            batch_size=bs,
            seed=seed,
            dataset=dataset,
            validation_fraction=float(s["validation_fraction"]),
            hidden=tuple(s["hidden"]),
            init=s["init"],
            dtype=s["dtype"],
            epochs=s["epochs"],
            max_steps=s["max_steps"],
            block_steps=t["block_steps"],
            warmup_steps=t["warmup_steps"],
            eval_every=s["eval_every"],
            diverge_factor=float(s["diverge_factor"]),
            timeout_s=float(t["timeout_s"]),
            optimizer_source=opt.plugin.source if opt.plugin else "",
        )

    grid = (datasets(s), opts, s["batch_sizes"])
    runs = [
        run(cell, ds, oname, opt, bs, seed)
        for cell, ds, (oname, opt), bs, seed in itertools.product(cells, *grid, s["seeds"])
    ]
    # the optimizer verdict's extra seeds: one backend, its first cell per device, spec only
    extra = s["optimizer_seeds"]
    more = [x for x in extra["seeds"] if x not in s["seeds"]]
    firsts = {}
    for cell in cells:
        if cell[0] == extra["backend"] and cell[4] == "spec":
            firsts.setdefault(cell[1], cell)
    runs += [
        run(cell, ds, oname, opt, bs, seed)
        for cell, ds, (oname, opt), bs, seed in itertools.product(firsts.values(), *grid, more)
    ]
    if not runs:
        empty = [k for k in ("backends", "modes", "devices", "batch_sizes", "seeds") if not s[k]]
        why = f"empty axis: {', '.join(empty)}" if empty else "no backend is installed"
        if not empty and backends and not cells:
            why = f"none of {', '.join(backends)} runs variants {s['variants']}"
        raise SweepError(f"{where}: the grid expands to no run ({why})")
    return runs


def _capabilities(backend: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The kinds and variants ``backend`` runs; every one where it is not installed (its
    runs are recorded skipped where they would run)."""
    try:
        return registry.capabilities(backend)
    except registry.BackendNotInstalled:
        return tuple(KINDS), VARIANTS


def _requested(backend: str, compilers: list[str]) -> list[str]:
    """The entries of ``compilers`` that apply to ``backend`` ("name" applies to every
    backend, "backend=name" to one); a backend that none addresses takes the default."""
    mine = []
    for c in compilers:
        b, _, name = c.rpartition("=")
        if not b or b == backend:
            mine.append(name)
    return mine or [DEFAULT_COMPILER]


def path_axis(backend: str, device: str, modes: list[str], compilers: list[str]) -> list[tuple]:
    """The (mode, compiler) pairs one backend runs on one device: "default" once per mode;
    a named path (or each of "all") in its own mode, or in the sweep's where it has both."""
    paths = registry.entry(backend).paths
    pairs: list[tuple[str, str]] = []
    for name in _requested(backend, compilers):
        if name == DEFAULT_COMPILER:
            pairs += [(m, name) for m in modes]
            continue
        chosen = [p for p in paths if name in ("all", p.name) and device in p.devices]
        for p in chosen:
            pairs += [(m, p.name) for m in [m for m in p.modes if m in modes] or p.modes[:1]]
    return list(dict.fromkeys(pairs))


def check_compilers(
    backends: list[str], devices: list[str], compilers: list[str], cells: list[tuple], where: str
) -> None:
    """A named path that a backend lacks, or that runs on none of the sweep's devices, is an
    error before anything runs (naming what there is); "all" never is."""
    for c in compilers:
        b, _, name = c.rpartition("=")
        if b and b not in registry.REGISTRY:
            raise SweepError(
                f"{where}: compilers = {c!r}: unknown backend {b!r}; choose from {', '.join(registry.NAMES)}"
            )
        if b and b not in backends:  # e.g. the default sweep's torch=eager with --backend jax
            continue
        if name in (DEFAULT_COMPILER, "all"):
            continue
        for backend in [b] if b else backends:
            paths = registry.entry(backend).paths
            names = [p.name for p in paths]
            if name not in names:
                raise SweepError(
                    f"{where}: compilers = {c!r}: {backend} has no path {name!r}; it has "
                    f'{", ".join(names)} (or use "all", or {backend}=PATH for one backend)'
                )
            if not any(cell[0] == backend and cell[3] == name for cell in cells):
                where_runs = "/".join(next(p for p in paths if p.name == name).devices)
                raise SweepError(
                    f"{where}: compilers = {c!r}: {backend}'s {name} runs on {where_runs} only, "
                    f"and this sweep runs on {', '.join(devices)}"
                )


def datasets(s: dict[str, Any]) -> list[str]:
    """The sweep's data sets: ``datasets``, or else the one ``dataset``."""
    return list(s["datasets"]) or [s["dataset"]]


def check_data(s: dict[str, Any], where: str) -> list[str]:
    """Load each data set once (a bad name or file fails here, not in every run), and check
    that every batch size fits its training set (less the validation split) and that every
    learning-rate warm-up is shorter than the runs it belongs to. Returns the warnings: batch
    sizes whose runs end within the timing warm-up (they train, but time nothing)."""
    warnings = []
    timing = s["timing"]
    timed_from = warmup_end(timing["warmup_steps"], timing["block_steps"])
    from benchmarks.record.data import DataError, cached_dataset, validation_split

    for name in datasets(s):
        try:
            data, _ = validation_split(cached_dataset(name), s["validation_fraction"])
        except DataError as exc:
            raise SweepError(f"{where}: dataset: {exc}") from None
        n_train = len(data.y_train)
        for b in s["batch_sizes"]:
            if b > n_train:
                raise SweepError(
                    f"{where}: batch_sizes = {b} is invalid; the {n_train} training samples of "
                    f"{name!r} allow at most {n_train}"
                )
            steps = run_steps(n_train, b, s["epochs"], s["max_steps"])
            if steps <= timed_from:
                warnings.append(
                    f"{where}: a run at batch {b} on {name!r} has {steps} steps, all of them "
                    f"warm-up (timing starts at step {timed_from}: warmup_steps = "
                    f"{timing['warmup_steps']} after the compile step, rounded up to a block of "
                    f"{timing['block_steps']}), so it measures no throughput; raise epochs or "
                    "max_steps (--epochs, --max-steps), or lower timing.warmup_steps"
                )
            for oname, cfg in s["optimizers"].items():
                warm = cfg.get("schedule", {}).get("lr_warmup_steps", 0)
                if warm >= steps:
                    raise SweepError(
                        f"{where}: optimizers.{oname}.schedule.lr_warmup_steps = {warm} is "
                        f"invalid; a run at batch {b} on {name!r} has {steps} steps, and the "
                        "learning-rate warm-up must be shorter"
                    )
    return warnings


def load_sweep(name_or_path: str, overrides: dict[str, Any] | None = None) -> Sweep:
    path = resolve_path(name_or_path)
    s = load_settings(path)
    s = apply_overrides(s, overrides or {})
    s["name"] = s["name"] or path.stem
    overrides = overrides or {}
    # an error blames the option that set the value, or else the file
    warnings = check_data(s, "command line (--dataset)" if overrides.get("dataset") else str(path))
    cli = [o for k, o in (("devices", "--device"), ("compilers", "--compiler")) if overrides.get(k)]
    runs = expand(s, f"command line ({', '.join(cli)})" if cli else str(path))
    return Sweep(
        name=s["name"],
        source=str(path),
        settings=s,
        runs=runs,
        threads=s["timing"]["threads"] or None,
        warnings=warnings,
    )

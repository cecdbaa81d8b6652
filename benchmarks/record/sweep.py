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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends import optimizers, registry
from backends.base import KINDS, VARIANTS, OptimizerSpec, Schedule
from benchmarks.core.environment import gpu_present
from benchmarks.record.schema import DEFAULT_COMPILER, RunSpec, run_steps, warmup_end
from benchmarks.record.settings import (
    SECTIONS,
    SETTINGS,
    Setting,
    SweepError,
    defaults,
    typed,
    value_of,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SWEEPS_DIR = Path(__file__).parent.parent / "sweeps"


@dataclass
class Sweep:
    name: str
    source: str
    settings: dict[str, Any]
    runs: list[RunSpec]
    threads: int | None
    #: what runs but measures less than a user would expect (``optbench run`` prints them)
    warnings: list[str] = field(default_factory=list)


#: what a sweep file with no keys reads (a copy each time: :func:`settings.defaults`)
DEFAULTS: dict[str, Any] = defaults()


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


def validate(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Check every key of a sweep file and fill in defaults."""
    s = defaults()
    top = SECTIONS[""]
    for key, value in raw.items():
        setting = top.get(key)
        if key == "timing":
            _timing(where, value, s["timing"])
        elif setting is None:
            allowed = sorted([*top, "timing"])
            raise SweepError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
        elif setting.shape == "table":
            s[key] = setting.parse(where, value, s[key])
        else:
            s[key] = _typed_value(where, setting, value)
    if "dataset" in raw and "datasets" in raw:
        raise SweepError(f"{where}: give dataset or datasets, not both")
    _check_ranges(s, where)
    return s


def _typed_value(where: str, setting: Setting, value: Any) -> Any:
    key, typ, allowed = setting.key, setting.type, setting.allowed
    if setting.shape == "list":
        if not isinstance(value, list):
            raise SweepError(f"{where}: {key} = {value!r} is invalid; expected {allowed}")
        for v in value:
            typed(where, key, v, typ, allowed)
    else:
        typed(where, key, value, typ, allowed)
    return value


def _timing(where: str, value: Any, timing: dict[str, Any]) -> None:
    known = SECTIONS["timing"]
    if not isinstance(value, dict):
        raise SweepError(f"{where}: [timing] must be a table with keys {', '.join(known)}")
    for k, v in value.items():
        if k not in known:
            raise SweepError(f"{where}: unknown key timing.{k}; allowed: {', '.join(known)}")
        timing[k] = _typed_value(where, known[k], v)


def _check_ranges(s: dict[str, Any], where: str, given: dict[str, str] | None = None) -> None:
    """Each setting's range (:meth:`Setting.problem`), then what the tables and settings
    allow together. ``given``: setting -> the command-line option that set it, for the
    error to name."""

    def bad(key, value, allowed):
        opt = (given or {}).get(key.removeprefix("timing."))
        at = f"command line ({opt})" if opt else where
        raise SweepError(f"{at}: {key} = {value!r} is invalid; expected {allowed}")

    for setting in SETTINGS:
        problem = setting.problem(value_of(s, setting))
        if problem:
            bad(setting.key, *problem)
    if s["epochs"] == 0 and s["max_steps"] == 0:
        bad("epochs", 0, "epochs >= 1 or max_steps >= 1")
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
    for name, o in s["optimizers"].items():
        for v in o["learning_rates"] or []:
            if not (math.isfinite(v) and v > 0):
                bad(f"optimizers.{name}.learning_rates", v, "a list of finite numbers > 0")


#: the command-line option behind each override, so that an error names it
OPTIONS = {s.name: s.flag for s in SETTINGS if s.flag}


def apply_overrides(
    s: dict[str, Any], o: dict[str, Any], where: str = "command line"
) -> dict[str, Any]:
    """Command-line overrides, by setting name (``threads``, not ``timing.threads``; None
    means: keep the file's value). ``seeds`` is a count (N: seeds 0..N-1) or a list of the
    seeds themselves."""
    s = json.loads(json.dumps(s))
    given: dict[str, str] = {}
    for setting in SETTINGS:
        v = o.get(setting.name)
        if v is None:
            continue
        if setting.flag:
            given[setting.name] = setting.flag
        special = _OVERRIDES.get(setting.name)
        if special:
            special(s, v, f"{where} ({setting.flag})", given)
        else:
            (s[setting.section] if setting.section else s)[setting.name] = v
    _check_ranges(s, where, given)
    return s


def _override_seeds(s: dict[str, Any], seeds: Any, where: str, given: dict[str, str]) -> None:
    if isinstance(seeds, int):  # --seeds N: how many; a list (--seed) names them
        given["seeds"] = "--seeds"
        if seeds < 1:
            raise SweepError(
                f"command line (--seeds): --seeds {seeds} is invalid; expected a count >= 1 "
                "(seeds 0..N-1), or --seed S for one chosen seed (several: --seed 0,3,7)"
            )
        seeds = list(range(seeds))
    s["seeds"] = seeds


def _override_dataset(s: dict[str, Any], dataset: str, where: str, given: dict) -> None:
    """One data set, replacing the file's (and its targets)."""
    s["dataset"], s["datasets"] = dataset, []
    s["targets"] = {k: v for k, v in s["targets"].items() if k == dataset}


def _override_learning_rates(s: dict[str, Any], lrs: list, where: str, given: dict) -> None:
    s["learning_rates"] = lrs
    for cfg in s["optimizers"].values():
        cfg["learning_rates"] = None  # --lr replaces every optimizer's own list


def _override_optimizers(s: dict[str, Any], names: list, where: str, given: dict) -> None:
    unknown = [n for n in names if n not in s["optimizers"]]
    if unknown:
        raise SweepError(
            f"{where}: unknown optimizer {unknown[0]!r}; this sweep defines {', '.join(s['optimizers'])}"
        )
    s["optimizers"] = {n: s["optimizers"][n] for n in names}


def _override_name(s: dict[str, Any], name: str, where: str, given: dict) -> None:
    if name:  # an empty --name keeps the file's
        s["name"] = name


#: the overrides that do more than set the value
_OVERRIDES = {
    "seeds": _override_seeds,
    "dataset": _override_dataset,
    "learning_rates": _override_learning_rates,
    "optimizers": _override_optimizers,
    "name": _override_name,
}


def expand(s: dict[str, Any], where: str) -> list[RunSpec]:
    """The grid: backends x devices x modes x optimizers x learning rates x batch sizes x seeds."""
    if not s["optimizers"]:
        raise SweepError(
            f'{where}: no optimizers defined; add e.g. [optimizers.adam] kind = "adam"'
        )
    backends = _backends(s)
    devices = _devices(s, where)
    opts = _optimizer_axis(s, where)
    runs_what = {b: _capabilities(b) for b in backends}
    _check_kinds(s, backends, runs_what, where)
    cells = [
        (b, d, m, c, v)
        for b in backends
        for d in devices
        for m, c in path_axis(b, d, s["modes"], s["compilers"])
        for v in s["variants"]
        if v in runs_what[b][1]  # the NumPy reference has no stock optimizers
    ]
    check_compilers(backends, devices, s["compilers"], cells, where)
    grid = (datasets(s), opts, s["batch_sizes"])
    runs = [
        _run_spec(s, cell, ds, oname, opt, bs, seed)
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
        _run_spec(s, cell, ds, oname, opt, bs, seed)
        for cell, ds, (oname, opt), bs, seed in itertools.product(firsts.values(), *grid, more)
    ]
    if not runs:
        empty = [k for k in ("backends", "modes", "devices", "batch_sizes", "seeds") if not s[k]]
        why = f"empty axis: {', '.join(empty)}" if empty else "no backend is installed"
        if not empty and backends and not cells:
            why = f"none of {', '.join(backends)} runs variants {s['variants']}"
        raise SweepError(f"{where}: the grid expands to no run ({why})")
    return runs


def _backends(s: dict[str, Any]) -> list[str]:
    """The sweep's backends, "installed" expanded, each once."""
    backends: list[str] = []
    for b in s["backends"]:
        for name in registry.installed() if b == "installed" else [b]:
            if name not in backends:
                backends.append(name)
    return backends


def _devices(s: dict[str, Any], where: str) -> list[str]:
    """The sweep's devices, "auto" expanded (the CPU, and the GPU where one is visible)."""
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
    return devices


def _optimizer_axis(s: dict[str, Any], where: str) -> list[tuple[str, OptimizerSpec]]:
    """(name, spec) per named optimizer and each of its learning rates."""
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
    return opts


def _check_kinds(s: dict[str, Any], backends: list[str], runs_what: dict, where: str) -> None:
    """Every optimizer runs on the sweep's backends: a plugin on at least one, a built-in
    kind on every one."""
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


def _run_spec(
    s: dict[str, Any], cell: tuple, dataset: str, oname: str, opt: OptimizerSpec, bs: int, seed: int
) -> RunSpec:
    """One run of the grid: a (backend, device, mode, compiler, variant) cell and the rest."""
    b, d, m, c, v = cell
    t = s["timing"]
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

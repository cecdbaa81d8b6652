"""Step-by-step parity of every backend with the float64 NumPy reference.

From identical initial weights and identical mini-batches, each backend runs N steps of
every optimizer preset in every mode; the largest loss and weight differences from the
reference over those steps must stay within a tolerance. Each backend runs in its own
worker process (``benchmarks.run.worker``); the reference runs here, in NumPy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from backends import optimizers, registry
from backends.base import (
    KINDS,
    MODES,
    ModelSpec,
    OptimizerKind,
    OptimizerSpec,
    Schedule,
    SpecError,
    candidate_paths,
    init_weights,
)

#: every kind's presets from ``base.KINDS`` (sgd, sgd_momentum, ..., adagrad_init), then
#: learning-rate schedules on the presets where a framework could get them wrong (Keras
#: keeps lr inside SGD's and RMSprop's momentum buffers; Adam's bias correction counts
#: steps); the horizon is the parity run's length
PRESETS: dict[str, OptimizerSpec] = {
    name: OptimizerSpec(kind, **hyper)
    for kind, spec in KINDS.items()
    for name, hyper in spec.presets.items()
}
_STEP = Schedule("step", lr_warmup_steps=3, boundaries=(0.5, 0.75), gamma=0.3)
_COSINE = Schedule("cosine", lr_warmup_steps=5, final_fraction=0.1)
PRESETS.update(
    {
        f"{name}+{sched.name}": replace(PRESETS[name], schedule=sched)
        for name, sched in (
            ("sgd_momentum", _STEP),
            ("sgd_nesterov", _COSINE),
            ("adamw", _COSINE),
            ("rmsprop_centered_momentum", _COSINE),
            ("adagrad", _STEP),
        )
    }
)
#: presets also run in the ``stock`` variant (where a backend has one): informational
#: rows, how far each framework's defaults take the same run from the spec
STOCK_PRESETS = ("sgd_momentum", "adam", "adamw", "rmsprop", "adagrad")


def plugin_presets(kind: OptimizerKind) -> dict[str, OptimizerSpec]:
    """A plugin's parity presets as specs (its hyperparameters in ``params``)."""
    out = {}
    for name, hyper in kind.presets.items():
        hyper = dict(hyper)
        out[name] = OptimizerSpec(kind.name, lr=hyper.pop("lr", 1e-3), params=hyper)
    return out


def preset(name: str) -> OptimizerSpec:
    """A built-in preset, or a registered plugin's (found in a worker through the plugins'
    environment variable)."""
    if name in PRESETS:
        return PRESETS[name]
    optimizers.discover()
    for kind in optimizers.PLUGINS.values():
        if name in kind.presets:
            return plugin_presets(kind)[name]
    raise SpecError(f"unknown optimizer {name!r}; choose from {', '.join(PRESETS)}")


def _has_stock(name: str, backend: str) -> bool:
    """Whether preset ``name`` also runs in the stock variant on ``backend``: the built-in
    :data:`STOCK_PRESETS`, and a plugin's presets where it names that framework's own class."""
    if name in PRESETS:
        return name in STOCK_PRESETS
    plugin = preset(name).plugin
    return plugin is not None and backend in plugin.stock


def expand_optimizers(names: list[str]) -> list[str]:
    """Preset names from what ``--optimizer`` lists: presets, kinds (all their presets), or
    plugins as "module:Object" (all theirs); a clear error for anything else."""
    out: list[str] = []
    for name in names:
        if name in PRESETS:
            out.append(name)
            continue
        kind = optimizers.find(name)
        if kind is None:
            raise SpecError(
                f"unknown optimizer {name!r}; choose from {', '.join(PRESETS)} (presets), "
                f"{', '.join(optimizers.known())} (kinds), or a plugin as 'module:Object'"
            )
        out += [n for n, o in PRESETS.items() if o.kind == kind.name] or list(kind.presets)
    return list(dict.fromkeys(out))


def presets_for(opts: list[OptimizerSpec]) -> list[str]:
    """The presets that check what a sweep runs: those of its optimizer kinds, at a constant
    learning rate or on a schedule the sweep uses (``optbench run --parity``)."""
    kinds = {o.kind for o in opts}
    schedules = {o.schedule.name for o in opts} | {"constant"}
    return [n for n, o in PRESETS.items() if o.kind in kinds and o.schedule.name in schedules]


TOLERANCE = 2e-6


@dataclass(frozen=True)
class ParityConfig:
    steps: int = 20
    dataset: str = "digits"
    batch_size: int = 32
    hidden: tuple[int, ...] = (64,)
    seed: int = 0
    #: the gate on the loss and the weights, from the float32 noise of correct code: the
    #: worst of 168 spec rows read 5.8e-7 in loss and 3.4e-7 in weight on a 2-core AMD EPYC
    #: (median 1.9e-7, 95th percentile 4.2e-7), 6.5e-7 on a Xeon and 5.6e-7 on an H200;
    #: 2e-6 is 3x the worst, and a third of the smallest error a correction fixes (Adam's
    #: bias correction in float32: 6.7e-6 in loss). At 1e-5 that error passed.
    tolerance: float = TOLERANCE
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise SpecError(f"steps={self.steps} is invalid: must be >= 1")
        if not (self.tolerance > 0):
            raise SpecError(f"tolerance={self.tolerance} is invalid: must be > 0")
        if self.batch_size < 1:
            raise SpecError(f"batch_size={self.batch_size} is invalid: must be >= 1")


def _batches(cfg: ParityConfig):
    from benchmarks.record.data import cached_dataset, epoch_permutation

    data = cached_dataset(cfg.dataset)
    model = ModelSpec(data.input_dim, data.num_classes, cfg.hidden)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    epoch = 0
    while len(out) < cfg.steps:
        perm = epoch_permutation(len(data.y_train), cfg.seed, epoch)
        x, y = data.x_train[perm], data.y_train[perm]
        n_full = len(y) // cfg.batch_size
        if n_full == 0:
            raise SpecError(
                f"batch_size={cfg.batch_size} is larger than the {len(y)} training samples of {cfg.dataset!r}"
            )
        for i in range(n_full):
            out.append(
                (
                    x[i * cfg.batch_size : (i + 1) * cfg.batch_size],
                    y[i * cfg.batch_size : (i + 1) * cfg.batch_size],
                )
            )
        epoch += 1
    return model, out[: cfg.steps]


def block_sizes(steps: int) -> list[int]:
    """Blocks of 1, 1, 2, 3, 5, 8, ... steps (the last cut to fit): the first steps one at
    a time, then blocks of several, as the runner drives them."""
    sizes, a, b = [], 1, 1
    while sum(sizes) < steps:
        sizes.append(min(a, steps - sum(sizes)))
        a, b = b, a + b
    return sizes


def trajectory(backend, model: ModelSpec, opt: OptimizerSpec, batches, seed: int) -> dict[str, Any]:
    """Every step's loss, and the weights after every block of :func:`block_sizes`, as
    NumPy float64 (a schedule spans the steps; its learning-rate warm-up is cut to half of
    them where a short check has fewer). The batches are staged once and trained on in
    windows (``train_steps``), as the runner trains on an epoch's: a path that runs a block
    as one compiled loop is checked as it runs."""
    n = len(batches)
    if opt.schedule.lr_warmup_steps >= n:
        opt = replace(opt, schedule=replace(opt.schedule, lr_warmup_steps=n // 2))
    state = backend.init(model, opt.for_run(n), init_weights(model, seed))
    x, y = (np.concatenate([b[i] for b in batches]) for i in (0, 1))
    staged = backend.split_batches(*backend.to_device(x, y), len(batches[0][1]))
    losses, weights, done = [], [], 0
    for size in block_sizes(n):
        state, block = backend.train_steps(state, staged[done : done + size])
        losses.extend(backend.host_losses(block))
        weights.append([np.asarray(w, dtype=np.float64) for w in backend.get_weights(state)])
        done += size
    return {"losses": np.asarray(losses), "weights": weights}


def backend_trajectories(
    backend: str, modes: list[str], optimizers: list[str], cfg: ParityConfig
) -> dict[str, Any]:
    """Worker task: one backend's trajectories, ``{(variant, preset, mode, compiler):
    trajectory or error text}``: the ``spec`` variant of every preset on every path, and
    the ``stock`` variant (where the backend has one) of :data:`STOCK_PRESETS` on each
    mode's default path."""
    cls = registry.load(backend)
    if cfg.device not in cls.devices():  # one skipped row for the backend, not a failure
        has = ", ".join(cls.devices())
        return {"skipped": f"{backend} sees no {cfg.device} here (it has {has})"}
    model, batches = _batches(cfg)
    out: dict[tuple[str, str, str, str], Any] = {}
    for mode in (m for m in modes if m in cls.modes):
        # every path of the mode on this device: parity holds for each, not only the default
        paths = candidate_paths(cls.compile_paths(), mode, cfg.device)
        jobs = [("spec", path, optimizers) for path in paths]
        if "stock" in cls.variants and paths:
            jobs.append(("stock", paths[0], [o for o in optimizers if _has_stock(o, backend)]))
        for variant, path, presets in jobs:
            be = cls(mode, cfg.device, "float32", path.name, variant=variant)
            for name in presets:
                key = (variant, name, mode, path.name)
                opt = preset(name)
                plugin = opt.plugin
                why = plugin and plugin.skip_reason(backend, path.options(), path.name, variant)
                if why:
                    out[key] = {"skipped": why}
                    continue
                try:
                    out[key] = trajectory(be, model, opt, batches, cfg.seed)
                except Exception as exc:  # noqa: BLE001 - reported as a failed row
                    out[key] = f"{type(exc).__name__}: {exc}"
    return {"trajectories": out}


def reference_trajectories(specs: dict[str, OptimizerSpec], cfg: ParityConfig) -> dict[str, Any]:
    """The float64 NumPy reference for each named optimizer spec."""
    from backends.numpy.backend import NumpyReference

    model, batches = _batches(cfg)
    ref = NumpyReference()
    return {name: trajectory(ref, model, opt, batches, cfg.seed) for name, opt in specs.items()}


def compare(got: dict[str, Any], ref: dict[str, Any]) -> tuple[float, float]:
    loss_diff = float(np.max(np.abs(got["losses"] - ref["losses"])))
    weight_diff = max(
        float(np.max(np.abs(g - r)))
        for gs, rs in zip(got["weights"], ref["weights"])
        for g, r in zip(gs, rs)
    )
    return loss_diff, weight_diff


#: sign-based updates (Lion): where the signed quantity is within float32 rounding of 0 the
#: sign may flip and move that weight by 2 lr. Correct code read, over 20 steps: loss up to
#: 1.96e-6 (TensorFlow, lion_decay; 1.51e-6 for NumPy's own float32), no weight off by more
#: than 2.6e-7 (no flip) on a 2-core AMD EPYC VM, 2026-12-08. The rule: the loss within
#: SIGN_LOSS_FACTOR x the gate, and at most SIGN_FLIP_FRACTION of the weights off by more than
#: the gate, none by more than a flip (2 lr per step). A wrong implementation moves most
#: weights (a decay left out: every one; b1 and b2 swapped: a third of the signs).
SIGN_LOSS_FACTOR = 5
SIGN_FLIP_FRACTION = 1e-3


def sign_rule(got: dict[str, Any], ref: dict[str, Any], lr: float, tolerance: float):
    """(ok, what failed) for a sign-based update under :data:`SIGN_FLIP_FRACTION`."""
    loss_diff = float(np.max(np.abs(got["losses"] - ref["losses"])))
    ends = np.cumsum(block_sizes(len(ref["losses"])))
    worst_fraction = 0.0
    for step, gs, rs in zip(ends, got["weights"], ref["weights"]):
        diffs = np.concatenate([np.abs(g - r).ravel() for g, r in zip(gs, rs)])
        if diffs.max() > 2 * lr * step * (1 + 1e-6) + tolerance:
            return False, f"a weight moved {diffs.max():.2e} after step {step}: more than a flip"
        worst_fraction = max(worst_fraction, float(np.mean(diffs > tolerance)))
    said = []
    if loss_diff > SIGN_LOSS_FACTOR * tolerance:
        said.append(f"loss {loss_diff:.2e} > {SIGN_LOSS_FACTOR} x the gate (sign rule)")
    if worst_fraction > SIGN_FLIP_FRACTION:
        said.append(
            f"{worst_fraction:.1%} of the weights off (sign rule allows {SIGN_FLIP_FRACTION:.1%})"
        )
    return not said, "; ".join(said)


def where_they_part(got: dict[str, Any], ref: dict[str, Any], tolerance: float) -> str:
    """The first step whose loss, and the first block and tensor whose weights, differ from
    the reference by more than ``tolerance``: where to start looking for the bug."""
    said = []
    steps = np.flatnonzero(np.abs(got["losses"] - ref["losses"]) > tolerance)
    if len(steps):
        said.append(f"loss parts at step {steps[0] + 1}")
    ends = np.cumsum(block_sizes(len(ref["losses"])))
    for block, (gs, rs) in enumerate(zip(got["weights"], ref["weights"])):
        bad = [i for i, (g, r) in enumerate(zip(gs, rs)) if np.max(np.abs(g - r)) > tolerance]
        if bad:
            tensor = f"{'W' if bad[0] % 2 == 0 else 'b'}{bad[0] // 2}"
            said.append(f"weights part after step {ends[block]}, first in {tensor}")
            break
    return "; ".join(said)


def run_parity(
    backends: list[str] | None = None,
    modes: list[str] | None = None,
    optimizers: list[str] | None = None,
    cfg: ParityConfig | None = None,
    threads: int | None = None,
    timeout: float = 900,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Parity rows for every installed backend x optimizer preset x mode, plus each
    backend's informational extras.

    Each row: ``backend, optimizer, mode, max_abs_loss_diff, max_abs_weight_diff, ok``
    (plus ``variant`` and ``error``). The ``spec`` rows are checked; ``stock`` rows (each
    framework's own optimizer at its defaults) have ``ok=None``: shown for comparison,
    never failing.
    ``log`` gets a line as each backend starts and one as it ends (what ``optbench
    parity`` prints while it works: a framework's paths take a minute on 2 cores).
    """
    from benchmarks.core.environment import gpu_present

    cfg = cfg or ParityConfig()
    if cfg.device == "gpu" and not gpu_present():
        raise SpecError(
            "device='gpu': no GPU is visible here (nvidia-smi finds none); "
            "run parity on a GPU machine, or on the CPU (the default)"
        )
    backends = list(dict.fromkeys(backends or registry.installed()))
    modes = modes or list(MODES)
    optimizers = optimizers or list(PRESETS)
    for name in backends:
        registry.require(name)  # asked for by name: an error, not a silent skip
    for m in modes:
        if m not in MODES:
            raise SpecError(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    optimizers = expand_optimizers(optimizers)
    specs = {k: preset(k) for k in optimizers}
    # a plugin without a NumPy reference has no reference trajectory: its rows say so
    with_ref = {k: o for k, o in specs.items() if o.plugin is None or o.plugin.reference}
    ref = reference_trajectories(with_ref, cfg)
    rows: list[dict[str, Any]] = []
    say = log or (lambda line: None)
    for i, name in enumerate(backends, 1):
        at, t0 = f"parity {i}/{len(backends)}: {name}", time.monotonic()
        say(f"{at}: measuring every optimizer on every {'/'.join(modes)} path...")
        mine = _backend_rows(name, modes, optimizers, cfg, ref, threads, timeout)
        say(f"{at}: {_outcome(mine, cfg)} ({time.monotonic() - t0:.1f} s)")
        rows += mine
    return rows


def _outcome(rows: list[dict[str, Any]], cfg: ParityConfig) -> str:
    """One backend's rows in a few words, for the progress line."""
    if len(rows) == 1 and rows[0]["optimizer"] == "*":  # skipped, or its worker failed
        return ("skipped: " if skipped(rows) else "FAIL: ") + rows[0]["error"].splitlines()[0]
    checked = [r for r in rows if r["ok"] is not None]
    failed = sum(r["ok"] is False for r in checked)
    said = f"{len(checked) - failed} of {len(checked)} within {cfg.tolerance:g}"
    return said + (f", {failed} FAIL" if failed else "")


def _backend_rows(name, modes, optimizers, cfg, ref, threads, timeout) -> list[dict[str, Any]]:
    """One backend's rows, measured in its own worker process."""
    from benchmarks.run.worker import WorkerFailure, call_isolated

    try:
        result = call_isolated(
            "benchmarks.checks.parity:backend_trajectories",
            {"backend": name, "modes": modes, "optimizers": optimizers, "cfg": cfg},
            label=f"parity-{name}",
            threads=threads,
            timeout=timeout,
        )
    except WorkerFailure as exc:
        return [_row(name, "*", "*", error=str(exc), ok=False)]
    if "skipped" in result:
        return [_row(name, "*", "*", variant="skipped", error=result["skipped"])]
    rows = []
    for (variant, opt, mode, path), got in result["trajectories"].items():
        checked = variant == "spec"
        where = (name, opt, mode, path)
        if isinstance(got, str):
            rows.append(_row(*where, variant=variant, error=got, ok=False if checked else None))
            continue
        if "skipped" in got:  # a plugin that does not run here: said, not failed
            rows.append(_row(*where, variant=variant, error=got["skipped"]))
            continue
        if opt not in ref:
            why = "no NumPy reference in the plugin: not checked"
            rows.append(_row(*where, variant=variant, error=why))
            continue
        loss_diff, weight_diff = compare(got, ref[opt])
        spec = preset(opt)
        if spec.plugin is not None and spec.plugin.sign_based:
            ok, why = sign_rule(got, ref[opt], spec.lr, cfg.tolerance)
        else:
            ok = loss_diff <= cfg.tolerance and weight_diff <= cfg.tolerance
            why = "" if ok else where_they_part(got, ref[opt], cfg.tolerance)
        why = "" if not checked else why
        row = _row(*where, loss_diff, weight_diff, ok if checked else None, variant)
        rows.append({**row, "parts": why} if why else row)
    return rows


def _row(
    backend,
    optimizer,
    mode,
    compiler="",
    loss=math.nan,
    weight=math.nan,
    ok=None,
    variant="spec",
    error="",
):
    return {
        "backend": backend,
        "optimizer": optimizer,
        "mode": mode,
        "compiler": compiler,
        "max_abs_loss_diff": loss,
        "max_abs_weight_diff": weight,
        "ok": ok,
        "variant": variant,
        "error": error,
    }


def skipped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of backends that could not run here (e.g. no GPU): neither passed nor failed."""
    return [r for r in rows if r.get("variant") == "skipped"]


def passed(rows: list[dict[str, Any]]) -> bool:
    """True when every checked row is within tolerance (informational rows have ok=None)."""
    return all(r["ok"] is not False for r in rows)


def format_table(rows: list[dict[str, Any]], cfg: ParityConfig) -> str:
    checked = [r for r in rows if r["ok"] is not None]
    stock = [r for r in rows if r["ok"] is None and r["variant"] == "stock"]
    # an optimizer plugin's rows where it has no implementation, or no reference
    unchecked = [r for r in rows if r["ok"] is None and r["variant"] == "spec"]
    head = (
        f"Parity with the float64 NumPy reference: {cfg.steps} steps, dataset {cfg.dataset}, "
        f"batch {cfg.batch_size}, hidden {list(cfg.hidden)}, seed {cfg.seed}, device {cfg.device}, "
        f"tolerance {cfg.tolerance:g}\n"
    )
    out = [head + (_table(checked) if checked else "(no row was checked)")]
    if stock:
        out.append(
            "\nFor comparison only: each framework's stock optimizer at its default "
            "arguments (lr and momentum as the preset's; docs/methodology.md, 'What the stock "
            "defaults change'), against the spec's reference:\n" + _table(stock)
        )
    if unchecked:
        out.append("\nNot checked (said why):\n" + _table(unchecked))
    out += [f"skipped: {r['error']}" for r in skipped(rows)]
    return "\n".join(out)


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("backend", "optimizer", "mode", "compiler", "max|dloss|", "max|dweight|", "ok")
    lines = []
    for r in rows:
        ok = {True: "ok", False: "FAIL", None: "-"}[r["ok"]]
        if r["error"]:
            where = (r["backend"], r["optimizer"], r["mode"], r.get("compiler", ""))
            lines.append((*where, "", "", ok + "  " + r["error"]))
        else:
            lines.append(
                (
                    r["backend"],
                    r["optimizer"],
                    r["mode"],
                    r.get("compiler", ""),
                    f"{r['max_abs_loss_diff']:.2e}",
                    f"{r['max_abs_weight_diff']:.2e}",
                    ok + (f"  {r['parts']}" if r.get("parts") else ""),
                )
            )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*ln) for ln in lines]
    )

"""Step-by-step parity of every backend with the float64 NumPy reference.

From identical initial weights and identical mini-batches, each backend runs N steps of
every optimizer preset in every mode; the largest loss and weight differences from the
reference over those steps must stay within a tolerance. Each backend runs in its own
worker process (``benchmarks.worker``); the reference runs here, in NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends import registry
from backends.base import ModelSpec, OptimizerSpec, SpecError, init_weights

PRESETS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("sgd", lr=0.1),
    "sgd_momentum": OptimizerSpec("sgd", lr=0.05, momentum=0.9),
    "sgd_nesterov": OptimizerSpec("sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam": OptimizerSpec("adam", lr=1e-3),
    "adamw": OptimizerSpec("adam", lr=1e-3, weight_decay=1e-2),
}
# Stock Keras Adam is shown beside the corrected one; eps=1e-3 (as some recipes use)
# makes its epsilon-hat form visible, at eps=1e-8 it hides in float32 noise.
STOCK_KERAS = {
    "adam": PRESETS["adam"],
    "adam_eps1e-3": OptimizerSpec("adam", lr=1e-3, eps=1e-3),
}


@dataclass(frozen=True)
class ParityConfig:
    steps: int = 20
    dataset: str = "digits"
    batch_size: int = 32
    hidden: tuple[int, ...] = (64,)
    seed: int = 0
    tolerance: float = 1e-5
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise SpecError(f"steps={self.steps} is invalid: must be >= 1")
        if not (self.tolerance > 0):
            raise SpecError(f"tolerance={self.tolerance} is invalid: must be > 0")
        if self.batch_size < 1:
            raise SpecError(f"batch_size={self.batch_size} is invalid: must be >= 1")


def _batches(cfg: ParityConfig):
    from benchmarks.data import cached_dataset, epoch_permutation

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


def trajectory(backend, model: ModelSpec, opt: OptimizerSpec, batches, seed: int) -> dict[str, Any]:
    """Losses and weights after every step, as NumPy float64."""
    state = backend.init(model, opt, init_weights(model, seed))
    losses, weights = [], []
    for xb, yb in batches:
        x, y = backend.to_device(xb, yb)
        state, loss = backend.train_step(state, x, y)
        losses.append(backend.to_float(loss))
        weights.append([np.asarray(w, dtype=np.float64) for w in backend.get_weights(state)])
    return {"losses": np.asarray(losses), "weights": weights}


def backend_trajectories(
    backend: str,
    modes: list[str],
    optimizers: list[str],
    cfg: ParityConfig,
    stock_keras: bool = False,
) -> dict[str, Any]:
    """Worker task: every (optimizer, mode) trajectory of one backend, or the error text."""
    cls = registry.load(backend)
    model, batches = _batches(cfg)
    out: dict[str, Any] = {}
    for mode in modes:
        if mode not in cls.modes:
            continue
        kwargs = {"stock_keras_adam": True} if stock_keras else {}
        if cfg.device not in cls.devices():
            raise SpecError(f"device={cfg.device!r}: {backend} has {', '.join(cls.devices())} here")
        be = cls(mode=mode, device=cfg.device, dtype="float32", **kwargs)
        presets = STOCK_KERAS if stock_keras else {k: PRESETS[k] for k in optimizers}
        for name, opt in presets.items():
            try:
                out[f"{name}|{mode}"] = trajectory(be, model, opt, batches, cfg.seed)
            except Exception as exc:  # noqa: BLE001 - reported as a failed row
                out[f"{name}|{mode}"] = f"{type(exc).__name__}: {exc}"
    return out


def reference_trajectories(optimizers: list[str], cfg: ParityConfig) -> dict[str, Any]:
    from backends.numpy.backend import NumpyBackend

    model, batches = _batches(cfg)
    ref = NumpyBackend(mode="eager", dtype="float64")
    specs = {**{k: PRESETS[k] for k in optimizers}, **STOCK_KERAS}
    return {name: trajectory(ref, model, opt, batches, cfg.seed) for name, opt in specs.items()}


def compare(got: dict[str, Any], ref: dict[str, Any]) -> tuple[float, float]:
    loss_diff = float(np.max(np.abs(got["losses"] - ref["losses"])))
    weight_diff = max(
        float(np.max(np.abs(g - r)))
        for gs, rs in zip(got["weights"], ref["weights"])
        for g, r in zip(gs, rs)
    )
    return loss_diff, weight_diff


def run_parity(
    backends: list[str] | None = None,
    modes: list[str] | None = None,
    optimizers: list[str] | None = None,
    cfg: ParityConfig | None = None,
    threads: int | None = None,
    timeout: float = 900,
) -> list[dict[str, Any]]:
    """Parity rows for every installed backend x optimizer x mode (plus stock Keras Adam).

    Each row: ``backend, optimizer, mode, max_abs_loss_diff, max_abs_weight_diff, ok``
    (plus ``variant`` and ``error``). Stock-Keras rows have ``variant="stock-keras"``
    and ``ok=None``: they are shown for comparison and never fail the check.
    """
    from backends.base import MODES
    from benchmarks.worker import Worker, WorkerDied, WorkerError, WorkerTimeout

    cfg = cfg or ParityConfig()
    backends = backends or registry.installed()
    modes = modes or list(MODES)
    optimizers = optimizers or list(PRESETS)
    for name in backends:
        e = registry.entry(name)
        if e.missing():  # asked for by name: an error, not a silent skip
            raise registry.BackendNotInstalled(
                f"backend {name!r} is not installed (missing {', '.join(e.missing())}); fix: {e.install_hint()}"
            )
    for m in modes:
        if m not in MODES:
            raise SpecError(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    for o in optimizers:
        if o not in PRESETS:
            raise SpecError(f"unknown optimizer {o!r}; choose from {', '.join(PRESETS)}")
    ref = reference_trajectories(optimizers, cfg)
    rows: list[dict[str, Any]] = []
    for name in backends:
        jobs = [(False, optimizers)] + ([(True, list(STOCK_KERAS))] if name == "tensorflow" else [])
        with Worker(threads=threads, label=f"parity-{name}") as w:
            for stock, opts in jobs:
                try:
                    result = w.call(
                        "benchmarks.parity:backend_trajectories",
                        {
                            "backend": name,
                            "modes": modes,
                            "optimizers": opts,
                            "cfg": cfg,
                            "stock_keras": stock,
                        },
                        timeout=timeout,
                    )
                except (WorkerError, WorkerTimeout, WorkerDied) as exc:
                    rows.append(_row(name, "*", "*", error=str(exc), ok=False))
                    continue
                for key, got in result.items():
                    opt, mode = key.split("|")
                    variant = (
                        "stock-keras" if stock else "corrected" if name == "tensorflow" else "stock"
                    )
                    if isinstance(got, str):
                        rows.append(
                            _row(
                                name,
                                opt,
                                mode,
                                variant=variant,
                                error=got,
                                ok=None if stock else False,
                            )
                        )
                        continue
                    loss_diff, weight_diff = compare(got, ref[opt])
                    ok = loss_diff <= cfg.tolerance and weight_diff <= cfg.tolerance
                    rows.append(
                        _row(
                            name, opt, mode, loss_diff, weight_diff, None if stock else ok, variant
                        )
                    )
    return rows


def _row(
    backend, optimizer, mode, loss=math.nan, weight=math.nan, ok=None, variant="stock", error=""
):
    return {
        "backend": backend,
        "optimizer": optimizer,
        "mode": mode,
        "max_abs_loss_diff": loss,
        "max_abs_weight_diff": weight,
        "ok": ok,
        "variant": variant,
        "error": error,
    }


def passed(rows: list[dict[str, Any]]) -> bool:
    """True when every checked row is within tolerance (informational rows have ok=None)."""
    return all(r["ok"] is not False for r in rows)


def format_table(rows: list[dict[str, Any]], cfg: ParityConfig) -> str:
    checked = [r for r in rows if r["variant"] != "stock-keras"]
    stock = [r for r in rows if r["variant"] == "stock-keras"]
    head = (
        f"Parity with the float64 NumPy reference: {cfg.steps} steps, dataset {cfg.dataset}, "
        f"batch {cfg.batch_size}, hidden {list(cfg.hidden)}, seed {cfg.seed}, device {cfg.device}, "
        f"tolerance {cfg.tolerance:g}\n"
    )
    out = [head + _table(checked)]
    if stock:
        out.append(
            "\nStock Keras Adam, uncorrected (eps is added before bias correction, 'epsilon hat'); "
            "for comparison only:\n" + _table(stock)
        )
    return "\n".join(out)


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("backend", "optimizer", "mode", "max|dloss|", "max|dweight|", "ok")
    lines = []
    for r in rows:
        ok = {True: "ok", False: "FAIL", None: "-"}[r["ok"]]
        if r["error"]:
            lines.append((r["backend"], r["optimizer"], r["mode"], "", "", ok + "  " + r["error"]))
        else:
            lines.append(
                (
                    r["backend"],
                    r["optimizer"],
                    r["mode"],
                    f"{r['max_abs_loss_diff']:.2e}",
                    f"{r['max_abs_weight_diff']:.2e}",
                    ok,
                )
            )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*ln) for ln in lines]
    )

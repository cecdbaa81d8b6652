"""Synthetic results folders, as the driver writes them, for the report and compare tests
(no backend runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.record.schema import Status
from benchmarks.record.store import Store

BLOCK = 10  # steps per timed block
OK, DIVERGED, ERROR = Status.OK.value, Status.DIVERGED.value, Status.ERROR.value
SKIPPED = Status.SKIPPED.value
#: columns that results folders written before the optimizer verdict lack
NEW_RUN_COLUMNS = ("variant", "schedule", "final_val_acc", "final_val_loss")
NEW_CURVE_COLUMNS = ("val_acc", "val_loss")

#: each backend's default compiled path on the CPU, as a sweep records it
PATHS = {"numpy": "numpy", "torch": "inductor", "tensorflow": "xla", "jax": "jit"}


def make_results(
    path: Path,
    backends=("numpy", "jax"),
    optimizers=None,
    batch_sizes=(32, 128),
    seeds=(0, 1),
    diverge=(("sgd_momentum", 0.3, 32),),
    fail=(),
    tables=("runs", "curves", "timings"),
    acc_scale: float | dict[str, float] = 1.0,
    parity=None,
    jitter: float = 0.2,
    datasets=("digits",),
    seeds_by_backend: dict[str, tuple[int, ...]] | None = None,
    stock=(),
    stock_shift: float = -0.03,
    val_offset: dict[tuple[str, float], float] | None = None,
    targets: dict[str, float] | None = None,
    new_columns: bool = True,
    skip=(),
) -> Path:
    """A results folder as the driver writes it. ``diverge``/``fail`` hold (optimizer, lr, batch)
    configurations that diverge (every backend) or fail (the first backend, with an error).

    The optimizer verdict's inputs: ``datasets`` (each a copy of the grid, the second and
    later ones 5 points less accurate), ``seeds_by_backend`` (a backend's own seeds, e.g.
    extra ones on the reference), ``stock`` (backends that also run the stock variant, its
    accuracy ``stock_shift`` off), ``val_offset`` ((optimizer, lr) -> added to the
    validation accuracy, which otherwise equals the test accuracy), ``targets`` (the sweep
    settings' targets); ``new_columns=False`` writes a folder from before them. ``skip``:
    backends whose every run was skipped (not installed), as the driver records them."""
    optimizers = optimizers or {"sgd_momentum": [0.03, 0.3], "adam": [0.001]}
    path.mkdir(parents=True, exist_ok=True)
    (path / "store.json").write_text(json.dumps({"schema_version": 1, "name": path.name}))
    env = _environment(backends, optimizers, batch_sizes, seeds)
    if len(datasets) > 1:
        env["sweep"]["settings"]["datasets"] = list(datasets)
    if targets is not None:
        env["sweep"]["settings"]["targets"] = targets
    (path / "environment.json").write_text(json.dumps(env))
    runs, curves, timings = [], [], []
    rng = np.random.default_rng(0)
    grid = [
        (d_i, dataset, b_i, backend, variant, opt, lr, bs, seed)
        for d_i, dataset in enumerate(datasets)
        for b_i, backend in enumerate(backends)
        for variant in ("spec", *(["stock"] if backend in stock else []))
        for opt, lrs in optimizers.items()
        for lr in lrs
        for bs in batch_sizes
        for seed in (seeds_by_backend or {}).get(backend, seeds)
    ]
    for d_i, dataset, b_i, backend, variant, opt, lr, bs, seed in grid:
        rid = f"{backend}-{opt}-{lr:g}-{bs}-{seed}"
        rid = (f"{dataset}-" if d_i else "") + rid + ("-stock" if variant == "stock" else "")
        cfg = {
            "run_id": rid,
            "backend": backend,
            "mode": "compiled",
            "compiler": PATHS.get(backend, "compiled"),
            "device": "cpu",
            "optimizer": opt,
            "kind": opt.split("_")[0],
            "lr": lr,
            "batch_size": bs,
            "seed": seed,
            "dataset": dataset,
            "variant": variant,
            "schedule": "constant",
            "hidden": "64",
            "epochs": 2,
            "max_steps": 0,
            "block_steps": BLOCK,
        }
        if backend in skip:
            runs.append({**cfg, "status": SKIPPED, "error": f"{backend} is not installed"})
            continue
        if (opt, lr, bs) in fail and b_i == 0:
            runs.append({**cfg, "status": ERROR, "error": "RuntimeError: boom"})
            continue
        speed = 50_000.0 * (b_i + 1) * (bs / 32) ** 0.5
        scale = acc_scale.get(backend, 1.0) if isinstance(acc_scale, dict) else acc_scale
        shift = (stock_shift if variant == "stock" else 0.0) - 0.05 * d_i
        val = (val_offset or {}).get((opt, lr), 0.0)
        diverged = (opt, lr, bs) in diverge
        run, c, t = _run(cfg, speed, diverged, scale, rng, jitter, shift, val)
        runs.append(run)
        curves += c
        timings += t
    frames = {
        "runs": pd.DataFrame(runs),
        "curves": pd.DataFrame(curves),
        "timings": pd.DataFrame(timings),
    }
    if not new_columns:
        frames["runs"] = frames["runs"].drop(columns=list(NEW_RUN_COLUMNS), errors="ignore")
        frames["curves"] = frames["curves"].drop(columns=list(NEW_CURVE_COLUMNS), errors="ignore")
    for name in tables:
        frames[name].to_parquet(path / f"{name}.parquet", index=False)
    if parity is not None:
        Store(path).write_parity(parity)
    return path


def _environment(backends, optimizers, batch_sizes, seeds) -> dict:
    return {
        "host": "testhost",
        "cpu_model": "Test CPU",
        "cpu_cores_physical": 2,
        "cpu_cores_logical": 4,
        "threads_per_worker": 2,
        "memory_gb": 8.0,
        "gpus": [],
        "python": "3.11.0",
        "packages": {"numpy": "2.0.0", "jax": "0.4.30"},
        "env": {},
        "git": {"commit": "abcdef1234567890", "dirty": True},
        "command": ["optbench", "run"],
        "sweep": {
            "name": "synthetic",
            "source": "test",
            "runs": 1,
            "settings": {
                "description": "test sweep",
                "dataset": "digits",
                "hidden": [64],
                "init": "glorot_uniform",
                "dtype": "float32",
                "epochs": 2,
                "eval_every": 20,
                "diverge_factor": 20.0,
                "backends": list(backends),
                "modes": ["compiled"],
                "devices": ["cpu"],
                "batch_sizes": list(batch_sizes),
                "seeds": list(seeds),
                "timing": {"block_steps": BLOCK, "warmup_steps": BLOCK},
                "optimizers": {
                    k: {"kind": k, "learning_rates": v, "hyper": {}} for k, v in optimizers.items()
                },
            },
        },
    }


def _run(
    cfg: dict,
    speed: float,
    diverged: bool,
    acc_scale: float,
    rng,
    jitter: float,
    shift: float = 0.0,
    val_offset: float = 0.0,
) -> tuple[dict, list, list]:
    rid, bs = cfg["run_id"], cfg["batch_size"]
    total = 60 if not diverged else 25
    timings = [
        {"run_id": rid, "block": 0, "phase": "compile", "steps": 1, "seconds": 0.2},
        {
            "run_id": rid,
            "block": 1,
            "phase": "warmup",
            "steps": BLOCK,
            "seconds": BLOCK * bs / speed,
        },
    ]
    for i, step in enumerate(range(1 + BLOCK, total, BLOCK)):
        n = min(BLOCK, total - step)
        timings.append(
            {
                "run_id": rid,
                "block": 2 + i,
                "phase": "timed",
                "steps": n,
                "seconds": n * bs / (speed * rng.uniform(1 - jitter, 1 + jitter)),
            }
        )
    curves, wall = [], 0.0
    for step in range(0, total + 1, BLOCK):
        wall = 0.2 + step * bs / speed if step else 0.0
        acc = acc_scale * (0.1 + 0.85 * (1 - np.exp(-step / 15))) + shift
        ev = step % 20 == 0 or step == total
        curves.append(
            {
                "run_id": rid,
                "step": step,
                "epoch": step / 30,
                "wall_s": wall,
                "train_loss": 2.3 * np.exp(-step / 20) + 0.05,
                "train_acc": acc if ev else np.nan,
                "test_loss": 2.3 * np.exp(-step / 20) + 0.1 if ev else np.nan,
                "test_acc": acc if ev else np.nan,
                "val_loss": 2.3 * np.exp(-step / 20) + 0.1 if ev else np.nan,
                "val_acc": acc + val_offset if ev else np.nan,
            }
        )
    rates = [
        t["steps"] * bs / t["seconds"]
        for t in timings
        if t["phase"] == "timed" and t["steps"] == BLOCK
    ]
    run = {
        **cfg,
        "status": DIVERGED if diverged else OK,
        "error": "",
        "diverged_step": 23.0 if diverged else np.nan,
        "compile_s": 0.2,
        "steps": total,
        "timed_blocks": len(rates),
        "samples_per_s": float(np.median(rates)),
        "train_wall_s": wall,
        "final_test_loss": np.nan if diverged else curves[-1]["test_loss"],
        "final_test_acc": np.nan if diverged else curves[-1]["test_acc"],
        "final_val_loss": np.nan if diverged else curves[-1]["val_loss"],
        "final_val_acc": np.nan if diverged else curves[-1]["val_acc"],
        "framework_version": "1.0",
    }
    return run, curves, timings


def record_figures(monkeypatch) -> list[list[dict]]:
    """What every figure drawn from now on shows, captured as it is saved: per figure, per
    visible axes (colour bars left out), its ``title``, whether it ``drew`` data (a line
    with points, a collection, an image) and its ``texts``."""
    import matplotlib.figure

    drawn: list[list[dict]] = []
    real = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kwargs):
        axes = []
        for ax in self.axes:
            if not ax.get_visible() or ax.get_label() == "<colorbar>":
                continue
            drew = (
                any(len(line.get_xdata()) for line in ax.lines)
                or any(len(c.get_offsets()) or len(c.get_paths()) for c in ax.collections)
                or bool(ax.images)
            )
            texts = [t.get_text() for t in ax.texts]
            axes.append({"title": ax.get_title(), "drew": drew, "texts": texts})
        drawn.append(axes)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return drawn

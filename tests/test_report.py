"""The report: built from small synthetic results folders (no backend runs here)."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import plots, report, stats
from benchmarks.store import StoreError

REPO = Path(__file__).resolve().parent.parent
SECTION_IDS = (
    "environment",
    "verdict",
    "convergence",
    "lr-sensitivity",
    "throughput",
    "parity",
    "problems",
)
CHROMIUM = Path("/usr/bin/chromium")
BLOCK = 10


# --- a synthetic results folder -------------------------------------------------------


def make_results(
    path: Path,
    backends=("numpy", "jax"),
    optimizers=None,
    batch_sizes=(32, 128),
    seeds=(0, 1),
    diverge=(("sgd_momentum", 0.3, 32),),
    fail=(),
    tables=("runs", "curves", "timings"),
    acc_scale=1.0,
    parity=None,
) -> Path:
    """A results folder as the driver writes it. ``diverge``/``fail`` hold (optimizer, lr, batch)
    configurations that diverge (every backend) or fail (the first backend, with an error)."""
    optimizers = optimizers or {"sgd_momentum": [0.03, 0.3], "adam": [0.001]}
    path.mkdir(parents=True, exist_ok=True)
    (path / "store.json").write_text(json.dumps({"schema_version": 1, "name": path.name}))
    (path / "environment.json").write_text(
        json.dumps(_environment(backends, optimizers, batch_sizes, seeds))
    )
    runs, curves, timings = [], [], []
    rng = np.random.default_rng(0)
    for b_i, backend in enumerate(backends):
        for opt, lrs in optimizers.items():
            for lr in lrs:
                for bs in batch_sizes:
                    for seed in seeds:
                        rid = f"{backend}-{opt}-{lr:g}-{bs}-{seed}"
                        cfg = {
                            "run_id": rid,
                            "backend": backend,
                            "mode": "compiled",
                            "device": "cpu",
                            "optimizer": opt,
                            "kind": opt.split("_")[0],
                            "lr": lr,
                            "batch_size": bs,
                            "seed": seed,
                            "dataset": "digits",
                            "hidden": "64",
                            "block_steps": BLOCK,
                        }
                        if (opt, lr, bs) in fail and b_i == 0:
                            runs.append({**cfg, "status": "error", "error": "RuntimeError: boom"})
                            continue
                        speed = 50_000.0 * (b_i + 1) * (bs / 32) ** 0.5
                        run, c, t = _run(cfg, speed, (opt, lr, bs) in diverge, acc_scale, rng)
                        runs.append(run)
                        curves += c
                        timings += t
    frames = {
        "runs": pd.DataFrame(runs),
        "curves": pd.DataFrame(curves),
        "timings": pd.DataFrame(timings),
    }
    for name in tables:
        frames[name].to_parquet(path / f"{name}.parquet", index=False)
    if parity is not None:
        (path / "parity.json").write_text(json.dumps(parity))
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


def _run(cfg: dict, speed: float, diverged: bool, acc_scale: float, rng) -> tuple[dict, list, list]:
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
                "seconds": n * bs / (speed * rng.uniform(0.8, 1.2)),
            }
        )
    curves, wall = [], 0.0
    for step in range(0, total + 1, BLOCK):
        wall = 0.2 + step * bs / speed if step else 0.0
        acc = acc_scale * (0.1 + 0.85 * (1 - np.exp(-step / 15)))
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
            }
        )
    rates = [
        t["steps"] * bs / t["seconds"]
        for t in timings
        if t["phase"] == "timed" and t["steps"] == BLOCK
    ]
    run = {
        **cfg,
        "status": "diverged" if diverged else "ok",
        "error": "",
        "diverged_step": 23.0 if diverged else np.nan,
        "compile_s": 0.2,
        "steps": total,
        "timed_blocks": len(rates),
        "samples_per_s": float(np.median(rates)),
        "train_wall_s": wall,
        "final_test_loss": np.nan if diverged else curves[-1]["test_loss"],
        "final_test_acc": np.nan if diverged else curves[-1]["test_acc"],
        "framework_version": "1.0",
    }
    return run, curves, timings


# --- helpers ----------------------------------------------------------------------------


def expected_median(folder: Path, backend: str, batch_size: int) -> float:
    """The verdict's median samples/s, recomputed from the tables: full timed blocks of ok runs
    and of diverged runs, without the block that diverged (a diverged run's last one)."""
    runs = pd.read_parquet(folder / "runs.parquet")
    t = pd.read_parquet(folder / "timings.parquet").merge(
        runs[["run_id", "status", "backend", "batch_size"]], on="run_id"
    )
    t = t[t["phase"] == "timed"]
    t = t[
        ~(
            (t["status"] == "diverged")
            & (t["block"] == t.groupby("run_id")["block"].transform("max"))
        )
    ]
    t = t[
        t["status"].isin(["ok", "diverged"])
        & (t["backend"] == backend)
        & (t["batch_size"] == batch_size)
        & (t["steps"] * 2 >= BLOCK)
    ]
    return float(np.median(t["steps"] * t["batch_size"] / t["seconds"]))


def md_verdict_rows(md: str) -> list[dict[str, str]]:
    block = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    parity = {
        "config": {"steps": 20, "dataset": "digits", "batch_size": 32, "tolerance": 1e-5},
        "rows": [
            {
                "backend": "jax",
                "optimizer": "adam",
                "mode": "compiled",
                "max_abs_loss_diff": 1e-7,
                "max_abs_weight_diff": 2e-7,
                "ok": True,
                "variant": "stock",
                "error": "",
            },
            {
                "backend": "numpy",
                "optimizer": "sgd",
                "mode": "eager",
                "max_abs_loss_diff": 3e-3,
                "max_abs_weight_diff": 1e-3,
                "ok": False,
                "variant": "stock",
                "error": "",
            },
            {
                "backend": "tensorflow",
                "optimizer": "adam",
                "mode": "eager",
                "max_abs_loss_diff": 1e-4,
                "max_abs_weight_diff": 1e-4,
                "ok": None,
                "variant": "stock-keras",
                "error": "",
            },
        ],
    }
    folder = make_results(
        tmp_path_factory.mktemp("r") / "full", fail=(("adam", 0.001, 128),), parity=parity
    )
    return folder, report.write_report(folder)


# --- the page ---------------------------------------------------------------------------


def test_writes_three_files(full):
    folder, paths = full
    assert set(paths) == {"html", "md", "csv"}
    for p in paths.values():
        assert p.parent == folder and p.is_file() and p.stat().st_size > 0


def test_every_section_present(full):
    page = full[1]["html"].read_text()
    for sid in SECTION_IDS:
        assert f"id='{sid}'" in page, sid
    assert report.QUESTION in page
    assert page.index("id='environment'") < page.index("id='verdict'") < page.index("id='problems'")


def test_images_are_png_data_uris(full):
    page = full[1]["html"].read_text()
    srcs = re.findall(r"<img[^>]*\ssrc=['\"]([^'\"]+)['\"]", page)
    assert len(srcs) >= 7  # 3 convergence, 2 lr, 2 heatmaps, 1 throughput
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        assert img.format == "PNG"
        assert 500 <= img.width <= 2000 and 150 <= img.height <= 3000, img.size


def test_no_external_references(full):
    page = full[1]["html"].read_text()
    for attr in re.findall(r"\s(?:src|href)=['\"]([^'\"]*)['\"]", page):
        assert attr.startswith(("#", "data:image/png;base64,")), attr[:80]
    assert "http://" not in page and "https://" not in page
    assert (
        "<script" not in page
        and "<link" not in page
        and "url(" not in page
        and "@import" not in page
    )


def test_markdown_verdict_matches_the_data(full):
    folder, paths = full
    rows = md_verdict_rows(paths["md"].read_text())
    assert {(r["batch"], r["backend"]) for r in rows} == {
        (b, n) for b in ("32", "128") for n in ("numpy", "jax")
    }
    for r in rows:
        assert (
            r["median samples/s"]
            == f"{expected_median(folder, r['backend'], int(r['batch'])):,.0f}"
        )
    fastest = {r["batch"]: r for r in rows if r["× fastest"] == "1.00"}
    assert {r["backend"] for r in fastest.values()} == {
        "jax"
    }  # jax is twice as fast in the fixture


def test_summary_csv(full):
    folder, paths = full
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == report.VERDICT_COLUMNS
    assert len(csv) == 4
    assert (csv.groupby("batch_size")["relative"].max() == 1.0).all()
    assert (csv["ci_low"] <= csv["samples_per_s"]).all() and (
        csv["samples_per_s"] <= csv["ci_high"]
    ).all()
    numpy32 = csv[(csv["backend"] == "numpy") & (csv["batch_size"] == 32)].iloc[0]
    assert numpy32["samples_per_s"] == pytest.approx(expected_median(folder, "numpy", 32), rel=1e-5)
    assert numpy32["diverged"] == 2 and numpy32["ok"] == 4  # lr 0.3 x 2 seeds diverge
    numpy128 = csv[(csv["backend"] == "numpy") & (csv["batch_size"] == 128)].iloc[0]
    assert numpy128["failed"] == 2
    assert (csv["best_test_acc"] > 0.9).all() and (csv["target_steps"] > 0).all()


def test_problems_and_stable_lr(full):
    md = full[1]["md"].read_text()
    problems = md.split("## Problems", 1)[1]
    assert "loss blew up at step 23" in problems and "RuntimeError: boom" in problems
    lr_part = md.split("## Learning-rate sensitivity", 1)[1].split("\n## ", 1)[0]
    assert "| numpy | sgd_momentum | 0.03 | ≥ 0.3 |" in lr_part
    assert "agree" in lr_part


def test_parity_table(full):
    md = full[1]["md"].read_text()
    parity = md.split("## Parity", 1)[1].split("\n## ", 1)[0]
    assert (
        "FAIL" in parity
        and "reference only" in parity
        and "1 row(s) outside the tolerance" in parity
    )


def test_environment_shown(full):
    page = full[1]["html"].read_text()
    assert "Test CPU" in page and "abcdef123456 (dirty" in page and "3.11.0" in page


# --- bad input --------------------------------------------------------------------------


def test_not_a_results_folder(tmp_path):
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(StoreError, match="not an optbench results folder"):
        report.write_report(tmp_path)
    with pytest.raises(StoreError, match="is not a folder"):
        report.write_report(tmp_path / "missing")
    assert not (tmp_path / "report.html").exists()


def test_empty_sweep(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "store.json").write_text(json.dumps({"schema_version": 1, "name": "empty"}))
    for name in ("runs", "curves", "timings"):
        pd.DataFrame().to_parquet(folder / f"{name}.parquet")
    paths = report.write_report(folder)
    page = paths["html"].read_text()
    assert all(f"id='{sid}'" in page for sid in SECTION_IDS)
    assert "No runs were recorded" in page and "environment.json is missing" in page
    assert pd.read_csv(paths["csv"]).columns.tolist() == report.VERDICT_COLUMNS


def test_every_run_failed_or_diverged(tmp_path):
    opts = {"sgd_momentum": [0.3]}
    folder = make_results(
        tmp_path / "bad",
        backends=("numpy", "torch"),
        optimizers=opts,
        batch_sizes=(32,),
        seeds=(0,),
        diverge=(("sgd_momentum", 0.3, 32),),
        fail=(("sgd_momentum", 0.3, 32),),
    )
    paths = report.write_report(folder)
    page, md = paths["html"].read_text(), paths["md"].read_text()
    assert all(f"id='{sid}'" in page for sid in SECTION_IDS)
    assert "2 run(s) did not finish ok" in md
    rows = {r["backend"]: r for r in md_verdict_rows(md)}
    assert rows["numpy"]["median samples/s"] == "-"  # failed: no timings at all
    # diverged: its blocks before the one that diverged still measure the step
    assert rows["torch"]["median samples/s"] == f"{expected_median(folder, 'torch', 32):,.0f}"
    assert "Traceback" not in page


def test_missing_optional_tables(tmp_path):
    folder = make_results(
        tmp_path / "bare",
        backends=("numpy",),
        optimizers={"adam": [0.001]},
        batch_sizes=(32,),
        seeds=(0,),
        tables=("runs",),
    )
    paths = report.write_report(folder)
    page = paths["html"].read_text()
    assert "curves.parquet is missing" in page and "timings.parquet is missing" in page
    assert "Parity was not recorded" in page and "optbench parity" in page and "--parity" in page
    row = md_verdict_rows(paths["md"].read_text())[0]
    runs = pd.read_parquet(folder / "runs.parquet")
    assert (
        row["median samples/s"] == f"{runs['samples_per_s'].median():,.0f}"
    )  # the runs' own figure
    assert pd.read_csv(paths["csv"])["throughput_source"].iloc[0] == "runs.samples_per_s"


def test_unreadable_table_is_a_note(tmp_path):
    folder = make_results(
        tmp_path / "broken",
        backends=("numpy",),
        optimizers={"adam": [0.001]},
        batch_sizes=(32,),
        seeds=(0,),
    )
    (folder / "curves.parquet").write_text("not parquet")
    page = report.write_report(folder)["html"].read_text()
    assert "curves.parquet is unreadable" in page


def test_target_falls_back_when_nothing_reaches_090(tmp_path):
    folder = make_results(
        tmp_path / "low",
        backends=("numpy",),
        optimizers={"adam": [0.001]},
        batch_sizes=(32,),
        seeds=(0,),
        acc_scale=0.7,
    )
    res = report.load(folder)
    target, why = report.choose_target(res)
    assert target < 0.9 and "no run reaches 0.90" in why
    md = report.write_report(folder)["md"].read_text()
    assert (
        f"time to {target:.2f}" in md
        and "not reached" not in md_verdict_rows(md)[0][f"time to {target:.2f}"]
    )


# --- pieces -----------------------------------------------------------------------------


def test_median_ci():
    rng = np.random.default_rng(1)
    runs = [rng.normal(100, 5, 20), rng.normal(110, 5, 20), rng.normal(90, 5, 20)]
    med, lo, hi = stats.median_ci(runs)
    assert med == pytest.approx(np.median(np.concatenate(runs)))
    assert lo < med < hi and hi - lo < 30
    assert stats.median_ci(runs) == (med, lo, hi)  # deterministic
    assert stats.median_ci([np.array([5.0])]) == (5.0, 5.0, 5.0)
    assert all(np.isnan(stats.median_ci([])))


def test_backend_colours_are_fixed():
    assert (
        plots.backend_color("numpy") != plots.backend_color("torch") != plots.backend_color("jax")
    )
    assert plots.backend_color("mlx") == plots.backend_color("mlx") in plots.FALLBACK_COLORS
    keys = [("jax", "compiled", "cpu"), ("jax", "eager", "cpu")]
    st = plots.styles(keys)
    assert st[keys[0]].color == st[keys[1]].color and st[keys[0]].linestyle != st[keys[1]].linestyle


def test_no_framework_is_imported():
    code = (
        "import sys, benchmarks.report; "
        "print([m for m in ('torch', 'tensorflow', 'jax', 'keras', 'seaborn') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- a real browser ---------------------------------------------------------------------

CHECK = """<img id="control" alt="control" src="data:image/png;base64,AAAA">
<script>window.addEventListener("load", () => {
  const imgs = [...document.images].filter(i => i.id !== "control");
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const control = document.getElementById("control").naturalWidth > 0 ? "loaded" : "broken";
  document.title = `CHECK imgs=${imgs.length} broken=${broken} control=${control}`;
});</script></body>"""


@pytest.mark.timeout(180)
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="chromium not installed (apt-get install chromium)"
)
def test_renders_in_headless_chromium(full, tmp_path):
    """A test copy of the page, with a script added, reports each image as loaded or broken."""
    page = full[1]["html"].read_text()
    n_imgs = len(re.findall(r"<img\s", page))
    copy = tmp_path / "check.html"
    copy.write_text(page.replace("</body>", CHECK))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
    ]
    out = subprocess.run(
        [str(CHROMIUM), *flags, "--dump-dom", copy.as_uri()],
        capture_output=True,
        text=True,
        timeout=150,
    )
    title = re.search(r"<title>(CHECK[^<]*)</title>", out.stdout)
    assert title, f"no check result; chromium said: {out.stderr[-2000:]}"
    assert title.group(1) == f"CHECK imgs={n_imgs} broken=0 control=broken"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            *flags,
            "--hide-scrollbars",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            full[1]["html"].as_uri(),
        ],
        capture_output=True,
        timeout=150,
        cwd=tmp_path,
    )
    img = Image.open(shot).convert("L")
    assert img.size == (1280, 2000) and np.asarray(img).std() > 5  # not a blank page

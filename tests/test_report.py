"""The report as a whole: the files it writes, from small synthetic results folders (no
backend runs here). The statistics are tested in test_analysis.py, the renderers in
test_document.py."""

from __future__ import annotations

import ast
import base64
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backends import registry
from benchmarks.record.schema import FINISHED, Status
from benchmarks.record.store import StoreError
from benchmarks.report import console_summary, figures, grids, write_report
from benchmarks.report import format as fmt
from benchmarks.report.analysis import VERDICT_COLUMNS, analyse, choose_target
from benchmarks.report.document import to_markdown
from benchmarks.report.load import load
from benchmarks.report.page import QUESTION
from benchmarks.report.sections import verdict as verdict_section
from tests.synthetic_results import BLOCK, make_results

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "benchmarks" / "report"
SECTION_IDS = (
    "environment",
    "verdict",
    "optimizer-verdict",
    "stock-drift",
    "convergence",
    "lr-sensitivity",
    "throughput",
    "parity",
    "problems",
)
CHROMIUM = Path("/usr/bin/chromium")


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
            (t["status"] == Status.DIVERGED.value)
            & (t["block"] == t.groupby("run_id")["block"].transform("max"))
        )
    ]
    t = t[
        t["status"].isin(FINISHED)
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
    return folder, write_report(folder)


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
    assert QUESTION in page
    # the verdict is the first section: what a reader came for, on the first screen
    where = {sid: page.index(f"id='{sid}'") for sid in SECTION_IDS}
    assert min(where, key=where.get) == "verdict"
    assert where["verdict"] < where["optimizer-verdict"] < where["environment"] < where["problems"]


#: the figures of the ``full`` fixture's page, in order, by the start of their caption
FULL_FIGURES = [
    "The verdict: the fastest path of each backend",
    "Performance profiles over 2 workload(s)",
    "Training loss vs step",
    "Training loss vs training wall-clock",
    "Test accuracy vs epoch",
    "Final test accuracy vs learning rate",
    "Final test loss vs learning rate",
    "adam: final test accuracy per learning rate x batch size",
    "sgd_momentum: final test accuracy per learning rate x batch size",
    "Throughput vs batch size",
]


def test_images_are_png_data_uris(full):
    page = full[1]["html"].read_text()
    srcs = re.findall(r"<img[^>]*\ssrc=['\"]([^'\"]+)['\"]", page)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)
    assert len(srcs) == len(captions) == len(FULL_FIGURES)  # each figure, once, captioned
    for caption, want in zip(captions, FULL_FIGURES):
        assert caption.startswith(want), (caption, want)
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
    assert list(csv.columns) == VERDICT_COLUMNS
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
    # the informational rows (ok None) are named from the data
    assert '"stock-keras" rows are shown for comparison only' in parity
    assert (
        "| tensorflow | adam | eager | stock-keras | 1.00e-04 | 1.00e-04 | reference only |"
        in parity
    )


def test_environment_shown(full):
    page = full[1]["html"].read_text()
    assert "Test CPU" in page and "abcdef123456 (dirty" in page and "3.11.0" in page


# --- bad input --------------------------------------------------------------------------


def test_not_a_results_folder(tmp_path):
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(StoreError, match="not an optbench results folder"):
        write_report(tmp_path)
    with pytest.raises(StoreError, match="is not a folder"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "report.html").exists()


def test_empty_sweep(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "store.json").write_text(json.dumps({"schema_version": 1, "name": "empty"}))
    for name in ("runs", "curves", "timings"):
        pd.DataFrame().to_parquet(folder / f"{name}.parquet")
    paths = write_report(folder)
    page = paths["html"].read_text()
    assert all(f"id='{sid}'" in page for sid in SECTION_IDS)
    assert "No runs were recorded" in page and "environment.json is missing" in page
    assert pd.read_csv(paths["csv"]).columns.tolist() == VERDICT_COLUMNS


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
    paths = write_report(folder)
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
    paths = write_report(folder)
    page = paths["html"].read_text()
    assert "curves.parquet is missing" in page and "timings.parquet is missing" in page
    assert "Parity was not recorded" in page and "optbench parity" in page and "--parity" in page
    row = md_verdict_rows(paths["md"].read_text())[0]
    runs = pd.read_parquet(folder / "runs.parquet")
    assert (
        row["median samples/s"] == f"{runs['samples_per_s'].median():,.0f}"
    )  # the runs' own figure
    assert pd.read_csv(paths["csv"])["throughput_source"].iloc[0] == "runs.samples_per_s"


def test_unreadable_files_are_notes(tmp_path):
    folder = make_results(
        tmp_path / "broken",
        backends=("numpy",),
        optimizers={"adam": [0.001]},
        batch_sizes=(32,),
        seeds=(0,),
    )
    (folder / "curves.parquet").write_text("not parquet")
    (folder / "parity.json").write_text("{not json")
    (folder / "environment.json").write_text("[1, 2]")
    paths = write_report(folder)
    page, md = paths["html"].read_text(), paths["md"].read_text()
    assert "curves.parquet is unreadable" in page and "> curves.parquet is unreadable" in md
    assert "parity.json is unreadable" in page and "Parity was not recorded" in page
    assert "environment.json is unreadable (expected an object, found list)" in page
    assert "<p class='warn'>curves.parquet is unreadable" in page


def test_target_falls_back_when_nothing_reaches_090(tmp_path):
    folder = make_results(
        tmp_path / "low",
        backends=("numpy",),
        optimizers={"adam": [0.001]},
        batch_sizes=(32,),
        seeds=(0,),
        acc_scale=0.7,
    )
    res = load(folder)
    target, why = choose_target(res.runs, res.curves)
    assert target < 0.9 and "no run reaches 0.90" in why
    md = write_report(folder)["md"].read_text()
    assert (
        f"time to {target:.2f}" in md
        and "not reached" not in md_verdict_rows(md)[0][f"time to {target:.2f}"]
    )


# --- the console summary ----------------------------------------------------------------


def test_console_summary_is_the_verdict_per_batch_size(full):
    folder, paths = full
    text = console_summary(folder)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["batch", "backend"] and "× fastest" in lines[0]
    rows = [ln.split() for ln in lines[1:]]
    assert len(rows) == 4  # 2 batch sizes x 2 backends: never pooled over batch sizes
    for r in rows:
        batch, backend = int(r[0]), r[1]
        assert r[5] == f"{expected_median(folder, backend, batch):,.0f}", r
    md = {(r["batch"], r["backend"]): r for r in md_verdict_rows(paths["md"].read_text())}
    for r in rows:
        assert md[(r[0], r[1])]["median samples/s"] == r[5]
        assert md[(r[0], r[1])]["ok / div / fail"] == " ".join(r[-5:])


def test_console_summary_of_an_empty_sweep(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "store.json").write_text(json.dumps({"schema_version": 1, "name": "empty"}))
    with pytest.raises(StoreError, match="runs.parquet is missing.*--resume"):
        console_summary(folder)  # no table and no parts: damage, not "no runs"
    pd.DataFrame().to_parquet(folder / "runs.parquet")
    assert console_summary(folder) == "(no runs)"


# --- figures and the package ------------------------------------------------------------


def test_backend_colours_come_from_the_registry():
    known = [n for n in registry.NAMES if registry.entry(n).color]
    assert len(known) >= 2
    colours = {figures.backend_color(n) for n in known}
    assert colours == {registry.entry(n).color for n in known} and len(colours) == len(known)
    assert figures.backend_color("mlx") == figures.backend_color("mlx") in figures.FALLBACK_COLORS
    name = next(n for n in known if len(registry.entry(n).paths) > 1)
    paths = registry.entry(name).paths
    first, second = (name, *_mode_of(paths[0])), (name, *_mode_of(paths[1]))
    st = figures.styles([first, second])
    assert st[first].color == st[second].color == registry.entry(name).color
    assert st[first].linestyle != st[second].linestyle and st[first].marker != st[second].marker
    assert st[first].marker == registry.entry(name).marker  # its first path: its own marker


def _mode_of(path) -> tuple[str, str, str]:
    return (path.modes[0], path.name, "cpu")


def test_a_series_keeps_its_look_whatever_else_is_drawn():
    """A series' style depends on the series alone: the same in a figure of two series and
    in one of every series (each section used to style its own set, and the styles moved)."""
    every = [(n, *_mode_of(p)) for n in registry.NAMES for p in registry.entry(n).paths]
    alone = {k: figures.styles([k])[k] for k in every}
    together = figures.styles(every)
    for k in every:
        got, want = together[k], alone[k]
        assert (got.color, got.linestyle, got.marker) == (want.color, want.linestyle, want.marker)
    # within a backend every path looks different (more than four paths: no wrap into a twin)
    for n in registry.NAMES:
        looks = [(together[k].linestyle, together[k].marker) for k in every if k[0] == n]
        assert len(set(looks)) == len(looks), n


def test_no_backend_is_named_in_the_report_package():
    """Every string of the package, docstrings and f-string parts included."""
    for f in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in registry.NAMES:
                    assert not re.search(rf"\b{re.escape(name)}\b", node.value), (f.name, name)


def test_no_framework_is_imported():
    code = (
        "import sys, benchmarks.report, benchmarks.report.page; "
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


def test_the_wall_clock_starts_after_the_first_step():
    """A cold compile (23 s) must not make a backend look 30x slower on the clock axis."""
    c = pd.DataFrame(
        {
            "step": [0, 1, 11, 21],
            "wall_s": [0.0, 23.0, 23.5, 24.0],
            "compile_s": [23.0] * 4,
        }
    )
    clock = grids.with_training_clock(c)["train_s"].tolist()
    assert math.isnan(clock[0]) and math.isnan(clock[1]) and clock[2:] == [0.5, 1.0]


def test_a_disagreeing_cell_and_a_noisy_group_are_flagged(tmp_path):
    folder = make_results(
        tmp_path / "r", acc_scale={"numpy": 1.0, "jax": 0.97}, jitter=0.8, diverge=()
    )
    md = write_report(folder)["md"].read_text()
    verdict = md[md.index("## Verdict") : md.index("## Environment")]
    assert "**Noisy**" in verdict and "not settled" in verdict
    assert "configuration(s) end more than 0.5 points apart" in verdict
    table = md[md.index("### Where backends disagree") :]
    assert "| sgd_momentum | 0.03 | 32 | 2.8 points | 0.0 points |" in table
    assert "float rounding amplified by a chaotic trajectory" in table


def test_runs_from_several_hosts_are_warned_about(tmp_path):
    folder = make_results(tmp_path / "r")
    runs = pd.read_parquet(folder / "runs.parquet")
    runs["host"] = ["node-a" if i % 3 else "node-b" for i in range(len(runs))]
    runs.to_parquet(folder / "runs.parquet", index=False)
    md = write_report(folder)["md"].read_text()
    verdict = md[md.index("## Verdict") : md.index("## Environment")]
    assert "**Several machines**" in verdict and "node-a (" in verdict and "node-b (" in verdict
    one = make_results(tmp_path / "one")
    assert "Several machines" not in write_report(one)["md"].read_text()


# --- what the verdict and the environment say --------------------------------------------


def test_the_verdict_compares_backends_on_shared_seeds_and_says_so(tmp_path):
    """numpy ran seeds 0, 1, 2 for the optimizer verdict, jax seed 0: the verdict's rows
    hold seed 0 alike, its note names the seeds left out, the sweep table the extra seeds."""
    folder = make_results(tmp_path / "r", seeds=(0,), seeds_by_backend={"numpy": (0, 1, 2)})
    env = json.loads((folder / "environment.json").read_text())
    env["sweep"]["settings"]["optimizer_seeds"] = {"backend": "numpy", "seeds": [0, 1, 2]}
    (folder / "environment.json").write_text(json.dumps(env))
    md = write_report(folder)["md"].read_text()
    rows = md_verdict_rows(md)
    for batch in ("32", "128"):
        same = {r["ok / div / fail"] for r in rows if r["batch"] == batch}
        assert len(same) == 1, same  # numpy's not pooled over three seeds
    assert {r["ok / div / fail"] for r in rows if r["batch"] == "32"} == {"2 / 1 / 0"}
    verdict = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    assert "**Seeds**: every row is on seed(s) 0" in verdict
    assert "numpy/compiled/numpy/cpu's 1, 2 (12 runs)" in verdict
    assert "| seeds | 0 (numpy: 0, 1, 2, for the optimizer verdict) |" in md
    # the optimizer verdict keeps them
    assert "3 seed(s) per configuration" in md.split("## Optimizer verdict", 1)[1]
    # series that share no seed: each row pools its own, and the note says so
    runs = pd.read_parquet(folder / "runs.parquet")
    runs["seed"] = np.where(runs["backend"] == "jax", 7, runs["seed"])
    (note,) = verdict_section.seeds_note(analyse(runs, None, None))
    assert "pools its own seeds: jax/compiled/jit/cpu 7; numpy/compiled/numpy/cpu 0, 1, 2." in (
        to_markdown(note)
    )


def test_best_at_is_chosen_by_validation_as_the_optimizer_verdict(tmp_path):
    """Both configurations end at the same test accuracy (a tie the smaller lr, adam's, would
    take); adam's validation accuracy is 5 points lower, so best at names sgd_momentum and
    the note says how it was chosen. A folder without validation says it chose by test."""
    folder = make_results(
        tmp_path / "r",
        batch_sizes=(32,),
        seeds=(0,),
        optimizers={"sgd_momentum": [0.03], "adam": [0.01]},
        val_offset={("adam", 0.01): -0.05},
        diverge=(),
    )
    md = write_report(folder)["md"].read_text()
    rows = md_verdict_rows(md)
    assert {r["best at"] for r in rows} == {"sgd_momentum 0.03"}
    assert {r["best acc"] for r in rows} == {"0.934"}  # its test accuracy
    verdict = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    assert "the highest mean final validation accuracy" in verdict
    assert "never used to choose" in verdict
    old = make_results(tmp_path / "old", batch_sizes=(32,), seeds=(0,), new_columns=False)
    md = write_report(old)["md"].read_text()
    assert "recorded no validation accuracy to choose by" in md


def test_the_cold_start_is_said_per_backend_from_the_data(tmp_path):
    """Only a backend whose later first steps are far shorter reuses its compile."""
    folder = make_results(tmp_path / "r", backends=("numpy", "jax", "torch"), seeds=(0,))
    runs = pd.read_parquet(folder / "runs.parquet")
    runs["worker_run_index"] = runs.groupby("backend").cumcount() + 1
    first = runs["worker_run_index"] == 1
    cold = {"numpy": 0.0006, "jax": 0.43, "torch": 3.9}
    later = {"numpy": 0.0008, "jax": 0.5, "torch": 0.002}
    runs["compile_s"] = [(cold if f else later)[b] for b, f in zip(runs["backend"], first)]
    runs.to_parquet(folder / "runs.parquet", index=False)
    md = write_report(folder)["md"].read_text()
    note = md.split("**Cold start**", 1)[1].split("\n", 1)[0]
    assert "hence the small medians" not in note
    assert "jax/compiled/jit/cpu 430 ms, later runs 500 ms (not reused" in note
    assert "torch/compiled/inductor/cpu 3.9 s, later runs 2 ms (the compile is reused" in note
    assert "numpy/compiled/numpy/cpu 0.6 ms, later runs 0.8 ms (nothing to compile" in note


def test_the_environment_shows_what_the_workers_ran_with(tmp_path):
    folder = make_results(tmp_path / "r", backends=("numpy", "tensorflow"), seeds=(0,))
    env = json.loads((folder / "environment.json").read_text())
    env["env"] = {"XLA_FLAGS": "--x", "OMP_NUM_THREADS": "8"}  # the shell's, overridden
    env["worker_env"] = {
        "OMP_NUM_THREADS": "2",
        "TF_NUM_INTRAOP_THREADS": "2",
        "TF_NUM_INTEROP_THREADS": "1",
    }
    (folder / "environment.json").write_text(json.dumps(env))
    runs = pd.read_parquet(folder / "runs.parquet")
    runs["threads"] = 2
    runs["threads_reported"] = np.where(
        runs["backend"] == "tensorflow", "{'intra_op': 0, 'inter_op': 0}", ""
    )
    runs.to_parquet(folder / "runs.parquet", index=False)
    md = write_report(folder)["md"].read_text()
    assert (
        "| worker env vars | XLA_FLAGS=--x, OMP_NUM_THREADS=2, TF_NUM_INTRAOP_THREADS=2, "
        "TF_NUM_INTEROP_THREADS=1 |" in md
    )
    assert "none set" not in md
    as_run = md.split("### Backends as run", 1)[1]
    assert (
        "| 2 | intra_op 0, inter_op 0 (0: the default, sized by TF_NUM_INTRAOP_THREADS=2, "
        "TF_NUM_INTEROP_THREADS=1) |" in as_run
    )
    assert "| numpy | compiled | numpy | cpu | 1.0 | numpy |  | 2 | - |" in as_run
    assert "0 is the framework's default" in as_run
    # a folder from before worker_env was recorded says what it shows
    del env["worker_env"]
    (folder / "environment.json").write_text(json.dumps(env))
    md = write_report(folder)["md"].read_text()
    assert "| thread env vars | XLA_FLAGS=--x, OMP_NUM_THREADS=8 (the run's shell;" in md


def test_the_clock_spread_is_measured_not_assumed(tmp_path):
    """jax runs twice as fast as numpy in the fixture: the caption says 2.0x, not ten-fold."""
    c = pd.DataFrame(
        {
            "backend": ["a", "a", "b", "b", "b"],
            "mode": "compiled",
            "compiler": "x",
            "device": "cpu",
            "step": [11, 21, 11, 21, 31],
            "train_s": [1.0, 3.0, 0.5, 1.0, 1.5],
        }
    )
    assert grids.clock_spread(c) == pytest.approx(3.0)  # at step 21, the last both reach
    assert math.isnan(grids.clock_spread(c[c["backend"] == "a"]))
    folder = make_results(tmp_path / "r", seeds=(0,))
    md = write_report(folder)["md"].read_text()
    assert "ten-fold" not in md
    assert "the slowest backend takes up to 2.0x the fastest's time to the same step" in md


def test_tflops_have_three_significant_digits():
    assert [fmt.sig(v) for v in (0.01, 0.00955, 0.0351, 0.124, 45.64, 0.009996)] == [
        "0.0100",
        "0.00955",
        "0.0351",
        "0.124",
        "45.6",
        "0.0100",
    ]
    assert fmt.sig(math.nan) == "-" and fmt.sig(0.0) == "0"
    v = pd.DataFrame([dict.fromkeys(VERDICT_COLUMNS, math.nan)] * 2).assign(
        dataset="d",
        batch_size=32,
        backend="b",
        mode="m",
        compiler="c",
        device="cpu",
        best_optimizer="",
        target_optimizer="",
        ok=1,
        diverged=0,
        failed=0,
        skipped=0,
        tflops=[0.01, 0.00955],
    )
    assert verdict_section.display(v, 0.9)["TFLOP/s"].tolist() == ["0.0100", "0.00955"]


def test_the_heatmaps_draw_every_cell_of_every_panel(tmp_path, monkeypatch):
    """What each heatmap panel shows, captured at imshow: every learning rate x batch size
    the series ran has its accuracy there (the bug: cells matched to panels on three of the
    series' four columns, so every panel was uniform grey)."""
    import matplotlib.axes

    from benchmarks.record.store import Store
    from benchmarks.report.analysis import GROUP, config_means

    folder = make_results(tmp_path / "r", backends=("numpy", "jax"), seeds=(0,))
    means = config_means(Store.open(folder).runs())
    drawn = []
    real = matplotlib.axes.Axes.imshow

    def imshow(self, data, *args, **kwargs):
        drawn.append((self.get_title(), np.ma.filled(np.ma.asarray(data, float), np.nan)))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", imshow)
    figs = grids.heatmaps(means)
    assert [f.caption.split(":")[0] for f in figs] == list(dict.fromkeys(means["optimizer"]))
    series = means[GROUP].drop_duplicates()
    assert len(drawn) == len(figs) * len(series)  # a panel per series per optimizer
    per_fig = [drawn[i * len(series) : (i + 1) * len(series)] for i in range(len(figs))]
    for (opt, df), panels in zip(means.groupby("optimizer", sort=False), per_fig):
        lrs, bss = sorted(df["lr"].unique()), sorted(df["batch_size"].unique())
        for (_, grid), (_, cell) in zip(panels, df.groupby(GROUP, sort=True)):
            want = np.full((len(lrs), len(bss)), np.nan)
            for r in cell.itertuples():
                want[lrs.index(r.lr), bss.index(r.batch_size)] = r.acc
            assert np.isfinite(grid).any(), opt  # not an empty panel
            np.testing.assert_array_equal(grid, want)


def test_the_throughput_figure_draws_each_series_median_and_interval(tmp_path, monkeypatch):
    """What the first panel (all optimizers pooled) draws, captured at errorbar: per series,
    the median samples/s at each batch size and its interval, as the analysis has them."""
    import matplotlib.axes

    from benchmarks.record.store import Store
    from benchmarks.report.analysis import GROUP, analyse, series

    st = Store.open(make_results(tmp_path / "r", backends=("numpy", "jax"), seeds=(0, 1)))
    an = analyse(st.runs(), st.table("curves"), st.table("timings"))
    drawn = []
    real = matplotlib.axes.Axes.errorbar

    def errorbar(self, x, y, *args, yerr=None, **kwargs):
        drawn.append((self, np.asarray(y, float), np.asarray(yerr, float)))  # titled later
        return real(self, x, y, *args, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    (fig,) = figures.throughput(
        an.rates, an.by_batch, an.by_optimizer, figures.styles(series(st.runs()))
    )
    pooled = [d for d in drawn if d[0].get_title() == "all optimizers pooled"]
    assert len(pooled) == an.by_batch[GROUP].drop_duplicates().shape[0] == 2
    for (_, y, yerr), (_, g) in zip(pooled, an.by_batch.groupby(GROUP)):
        g = g.sort_values("batch_size")
        np.testing.assert_allclose(y, g["samples_per_s"])
        np.testing.assert_allclose(y - yerr[0], g["ci_low"])
        np.testing.assert_allclose(y + yerr[1], g["ci_high"])


def test_log_axes_label_plain_numbers_without_minor_labels():
    """A wall-clock panel spanning less than a decade: labels at 1, 2, 5 x 10^k in plain
    numbers, none on the minor ticks (they overlapped: "2x10^-3" over "6x10^-2")."""
    panel = figures.Panel("t", {("numpy", "compiled", "numpy", "cpu"): pd.DataFrame(
        {"x": [0.021, 0.03, 0.045, 0.06], "y": [2.0, 1.5, 1.2, 1.0]}
    )})  # fmt: skip
    style = figures.styles(list(panel.lines))
    fig = figures.line_grid([panel], 1, "s", "loss", style, logx=True)
    ax = fig.axes[0]
    fig.canvas.draw()
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    major = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    lo, hi = ax.get_xlim()
    shown = [
        t for t, v in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= v <= hi and t.get_text()
    ]
    assert minor == [] and shown and all("times" not in m and "^" not in m for m in major), major
    figures.plt.close(fig)


def test_the_verdict_figure_comes_first_and_draws_each_backend_at_its_fastest(full, monkeypatch):
    """The answer as a picture, above the verdict table: per backend, the median samples/s
    of its fastest series at each batch size, with its interval."""
    import matplotlib.axes

    page = full[1]["html"].read_text()
    verdict = page[page.index("id='verdict'") :]
    assert verdict.index("<img") < verdict.index("<table") < verdict.index("<details>")
    an = analyse(*(load(full[0]).__getattribute__(t) for t in ("runs", "curves", "timings")))
    drawn = []
    real = matplotlib.axes.Axes.errorbar

    def errorbar(self, x, y, *args, **kwargs):
        drawn.append(np.asarray(y, float))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    v = an.verdict
    style = figures.styles(
        [
            tuple(k)
            for k in v[["backend", "mode", "compiler", "device"]]
            .drop_duplicates()
            .itertuples(index=False)
        ]
    )
    (fig,) = figures.verdict(v, style, an.target)
    fastest = v.sort_values("samples_per_s").groupby(["backend", "batch_size"]).last()
    want = [g.sort_index()["samples_per_s"].to_numpy() for _, g in fastest.groupby(level=0)]
    assert len(drawn) == len(want) == v["backend"].nunique()
    for got, w in zip(drawn, want):
        np.testing.assert_allclose(got, w)

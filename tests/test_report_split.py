"""Large grids as a figure per optimizer, each folded under its name, and the page's size.

The optimizer sweep's page (8 optimizers x 2 data sets x 2 batch sizes, numpy, torch,
tensorflow and jax, spec and stock; synthetic, 2026-12-08) measured 2.46 MB with its grids in
one figure of 32 panels each, 2.40 MB split and with 64-colour PNGs; the same page from the
real NumPy sweep's curves copied to four backends, 3.06 MB before and 2.74 MB after. The
folder here is a small one of the same shape, its grids split by a lower threshold."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from benchmarks.report import grids, write_report
from tests.synthetic_results import make_results, record_figures

OPTIMIZERS = {"sgd_momentum": [0.01, 0.1], "adam": [0.001, 0.01], "adagrad": [0.01, 0.1]}
#: report.html of :func:`page`'s folder measured 329,000 bytes (2026-12-08); a fifth more
#: fails (RGBA PNGs instead of the palette made it 1,171,000: 3.6x)
PAGE_BYTES = 329_000 * 1.2


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(grids, "SPLIT_PANELS", 4)  # 3 optimizers x 2 batch sizes: split
    drawn = record_figures(mp)
    folder = make_results(
        tmp_path_factory.mktemp("r") / "split",
        backends=("numpy", "jax"),
        optimizers=OPTIMIZERS,
        seeds=(0,),
        diverge=(),
    )
    paths = write_report(folder)
    mp.undo()
    return paths, drawn


def _details(html: str) -> dict[str, str]:
    return dict(re.findall(r"<details><summary>(.*?)</summary>(.*?)</details>", html, re.S))


def test_each_optimizer_has_its_own_folded_figures(page):
    html = page[0]["html"].read_text()
    folds = _details(html)
    for opt in OPTIMIZERS:
        curves = folds[f"{opt}: training loss and test accuracy curves"]
        caps = re.findall(r"<figcaption>(.*?)</figcaption>", curves, re.S)
        assert [c.split(":")[0] for c in caps] == [opt] * 3, caps
        lr = folds[f"{opt}: final accuracy and loss against the learning rate, and its heatmaps"]
        caps = re.findall(r"<figcaption>(.*?)</figcaption>", lr, re.S)
        assert caps == [
            f"{opt}: Final test accuracy vs learning rate",
            f"{opt}: Final test loss vs learning rate",
            f"{opt}: final test accuracy per learning rate x batch size",
        ]
    md = page[0]["md"].read_text()
    for opt in OPTIMIZERS:  # the same folds in report.md, each led by its summary
        assert f"**{opt}: training loss and test accuracy curves**\n\n({opt}: Training" in md


def test_a_figure_per_optimizer_draws_that_optimizers_panels_only(page):
    drawn = page[1]
    # the convergence and lr figures: a panel per batch size, titled without the optimizer
    grids_drawn = [f for f in drawn if f and all(ax["title"].startswith("batch ") for ax in f)]
    assert len(grids_drawn) == len(OPTIMIZERS) * 5  # 3 convergence + 2 lr figures each
    for fig in grids_drawn:
        assert [ax["title"].split(",")[0] for ax in fig] == ["batch 32", "batch 128"]
        assert all(ax["drew"] for ax in fig)


def test_the_page_stays_small(page):
    size = page[0]["html"].stat().st_size
    assert size <= PAGE_BYTES, f"report.html is {size:,} bytes, more than {PAGE_BYTES:,.0f}"


def test_a_small_grid_stays_one_figure(tmp_path):
    runs = make_results(tmp_path / "r", seeds=(0,))
    assert grids.optimizer_groups(pd.read_parquet(runs / "runs.parquet")) == [None]

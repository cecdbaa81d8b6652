"""``optbench report`` on folders that leave a figure nothing to compare: one backend, one
batch size, one learning rate, only diverged runs, only skipped runs. Each page exits 0,
says what is missing, and draws no empty axes (captured as each figure is saved)."""

from __future__ import annotations

import re

import pytest

from benchmarks.app.cli import main
from tests.synthetic_results import make_results, record_figures

CASES = {
    "one backend": (
        {"backends": ("numpy",)},
        "One backend only (numpy): nothing to compare across backends",
    ),
    "one batch size": (
        {"batch_sizes": (32,)},
        "one batch size only (32): nothing to compare across batch sizes",
    ),
    "one learning rate": (
        {"optimizers": {"adam": [0.001], "sgd_momentum": [0.03]}, "diverge": ()},
        "One learning rate per optimizer only: nothing to compare across learning rates",
    ),
    "only diverged runs": (
        {
            "optimizers": {"sgd_momentum": [0.3]},
            "batch_sizes": (32,),
            "diverge": (("sgd_momentum", 0.3, 32),),
        },
        "Every run diverged: no learning rate ran without diverging, so there are no curves",
    ),
    "only skipped runs": (
        {"skip": ("numpy", "jax")},
        "Every run was skipped (numpy is not installed; jax is not installed): nothing ran",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_page_says_what_is_missing_instead_of_an_empty_axis(case, tmp_path, monkeypatch, capsys):
    kwargs, message = CASES[case]
    folder = make_results(tmp_path / "r", seeds=(0,), **kwargs)
    drawn = record_figures(monkeypatch)
    assert main(["report", str(folder)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    page = (folder / "report.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)
    assert message in text, f"{case}: the page does not say {message!r}"
    assert message in (folder / "report.md").read_text()
    empty = [(i, ax["title"]) for i, fig in enumerate(drawn) for ax in fig if not ax["drew"]]
    assert not empty, f"{case}: empty axes (figure, title): {empty}"
    assert len(drawn) == page.count("<img")  # every figure drawn is on the page

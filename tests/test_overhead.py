"""The overhead benchmark's harness: rows per optimizer, clear errors, no tracebacks."""

from __future__ import annotations

import json

import pytest

from benchmarks import overhead
from benchmarks.worker import call_isolated
from tests.conftest import backend_params


def test_rows_for_every_optimizer(capsys):
    code = overhead.main(["--backend", "numpy", "--rounds", "2", "--steps", "5", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["optimizer"] for r in rows] == list(overhead.OPTIMIZERS)
    assert all(r["suite_ms"] > 0 and r["bare_ms"] > 0 for r in rows)
    assert code == (0 if max(r["ratio"] for r in rows) <= 1.10 else 1)


def test_missing_and_failing_backends_are_reported(fakes, capsys):
    assert overhead.main(["--backend", "ghost"]) == 2
    assert "not installed (missing no_such_framework_xyz)" in capsys.readouterr().err
    code = overhead.main(["--backend", "raising", "--rounds", "1", "--steps", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "FAIL: raising: RuntimeError: injected failure at step 3" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", backend_params())
def test_every_backend_has_a_bare_loop_that_runs(name):
    rows = call_isolated(
        "benchmarks.overhead:measure",
        {"backend": name, "rounds": 1, "steps": 3},
        label=f"overhead-{name}",
        timeout=600,
    )
    assert [r["optimizer"] for r in rows] == list(overhead.OPTIMIZERS)
    assert all(r["suite_ms"] > 0 and r["bare_ms"] > 0 for r in rows)

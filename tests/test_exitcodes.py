"""One table of exit codes: the module's, and docs/reference.md's says the same."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.core import exitcodes

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


def test_reference_table_is_the_module_table():
    section = REFERENCE.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == exitcodes.TABLE


def test_what_a_sweep_that_did_its_job_exits_with(tiny, tmp_path, capsys):
    """Exit 0 where nothing failed: a device the machine lacks is recorded skipped (the
    sweep asked for cpu,gpu on a machine with no GPU), and a diverged run is data."""
    import pandas as pd
    import pytest

    from benchmarks.app.cli import main
    from benchmarks.core.environment import gpu_present

    if gpu_present():
        pytest.skip("a GPU is present here: the gpu runs would run")
    out = tmp_path / "both"
    assert main(["run", "--sweep", tiny, "--device", "cpu,gpu", "--out", str(out), "--quiet"]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(runs["status"]) == ["ok", "skipped"]
    out = tmp_path / "diverged"
    assert main(["run", "--sweep", tiny, "--lr", "50", "--out", str(out), "--quiet"]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["status"]) == {"diverged"}

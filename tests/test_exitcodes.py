"""One table of exit codes: the module's, and the README's says the same."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import exitcodes

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_table_is_the_module_table():
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == exitcodes.TABLE

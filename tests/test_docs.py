"""The documentation says what the code does: every relative link reaches its file and
heading, and the tables that restate the code (sweep keys, run columns, statuses, parity
presets, the kinds' hyperparameters, compiled paths, the module layout) are the code's.

Each check reads one table of README.md or docs/ and compares it with the module it
restates, so a key, column or module added to the code without its line in the docs (or
the other way round) fails here, naming what differs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def _page(name: str) -> str:
    return (DOCS / name).read_text()


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a Markdown heading line) up to the next heading of its
    level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = re.search(rf"^#{{1,{level}}} ", text[start:], flags=re.M)
    return text[start : start + end.start()] if end else text[start:]


def _table(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with ``header``, as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _code(cell: str) -> list[str]:
    """The `code spans` of a cell, in order."""
    return re.findall(r"`([^`]*)`", cell)


# --- links -----------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_\[\]()]", lambda m: "_" if m.group() == "_" else "", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # no headings in code
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in links(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            bad.append(f"{target}: no such heading")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    assert broken_links(page) == []


def test_the_link_check_sees_a_broken_link(tmp_path):
    (tmp_path / "b.md").write_text("# Some `code`: here\n\n## Again\n\n## Again\n")
    page = tmp_path / "a.md"
    page.write_text(
        "[ok](b.md#some-code-here) [ok](b.md#again-1) [web](https://example.org/x.md)\n"
        "[gone](c.md) [no](b.md#elsewhere) `[in code](d.md)`\n"
    )
    assert broken_links(page) == ["c.md: no such file", "b.md#elsewhere: no such heading"]


def test_the_readme_is_a_front_page():
    """The two commands within the first screen, `make test` the test command (.ci/run
    calls it), and the rest in docs/."""
    lines = (REPO / "README.md").read_text().splitlines()
    first = "\n".join(lines[:25])
    assert "make bench" in first and "make test" in first
    assert len(lines) <= 200, len(lines)


# --- tables that restate the code ------------------------------------------------------


def _names(kind) -> list[str]:
    """A kind's hyperparameter names (each a name, or an object with ``.name``)."""
    return [getattr(h, "name", h) for h in kind.hyperparameters]


def _default(value) -> str:
    return "–" if value is None else json.dumps(value)


def test_the_sweep_key_table_is_the_sweep_code():
    from benchmarks.record.settings import SETTINGS, defaults

    rows = _table(_section(_page("reference.md"), "## Sweep keys"), "| key | default |")
    documented = {_code(r[0])[0]: _code(r[1])[0] for r in rows}
    declared = {s.key: _default(s.default) for s in SETTINGS}
    assert set(documented) == set(declared), (
        f"missing from docs/reference.md: {sorted(set(declared) - set(documented))}; "
        f"not in the code: {sorted(set(documented) - set(declared))}"
    )
    assert documented == declared  # and each default as SETTINGS has it
    # what a key allows, as its errors say it (the tables' rows say more than their errors)
    allowed = {_code(r[0])[0]: r[2] for r in rows}
    assert {s.key: allowed[s.key] for s in SETTINGS if s.shape != "table"} == {
        s.key: s.allowed for s in SETTINGS if s.shape != "table"
    }
    # every key a sweep file with none reads is a documented one
    filled = defaults()
    assert {k for k in filled if k != "timing"} | {f"timing.{k}" for k in filled["timing"]} == set(
        documented
    )


def test_the_kinds_tables_are_kinds():
    from backends.base import KINDS

    ref = _table(_page("reference.md"), "| kind | hyperparameters |")
    assert {_code(r[0])[0]: r[1] for r in ref} == {
        n: ", ".join(_names(k)) for n, k in KINDS.items()
    }
    spec = _table(_page("methodology.md"), "| kind | hyperparameters | update")
    assert {_code(r[0])[0]: r[1] for r in spec} == {
        n: ", ".join(_names(k)) for n, k in KINDS.items()
    }


def test_the_run_columns_are_the_schema():
    from backends.base import KINDS
    from benchmarks.record import schema

    hyper = ["lr"]
    for kind in KINDS.values():
        hyper += [h for h in _names(kind) if h not in hyper]
    expected = [
        ("runs", schema.CONFIG_COLUMNS),
        ("runs", tuple(hyper)),
        ("runs", schema.MEASURED_COLUMNS),
        ("runs", schema.DESCRIBED_COLUMNS),
        ("runs", schema.HOST_COLUMNS),
        ("runs", schema.OUTCOME_COLUMNS),
        ("curves", schema.CURVE_COLUMNS),
        ("timings", schema.TIMING_COLUMNS),
    ]
    rows = _table(_page("reference.md"), "| table | group | columns |")
    assert [(r[0], tuple(_code(r[2]))) for r in rows] == expected
    phases = _section(_page("reference.md"), "### Columns")
    assert re.search(r"`timings.phase` is one of (.+?) \(", phases).group(1) == ", ".join(
        f"`{p}`" for p in schema.PHASES
    )


def test_the_status_table_is_the_schema():
    from benchmarks.record.schema import Status

    rows = _table(_page("reference.md"), "| status | meaning |")
    assert [r[0].strip("`") for r in rows] == [s.value for s in Status]


def test_the_parity_presets_are_parity():
    from benchmarks.checks import parity

    rows = _table(_page("reference.md"), "| preset | kind | schedule |")
    assert {_code(r[0])[0]: (_code(r[1])[0], _code(r[2])[0]) for r in rows} == {
        name: (o.kind, o.schedule.text()) for name, o in parity.PRESETS.items()
    }
    text = _section(_page("methodology.md"), "## Parity: the same step in every framework")
    said = re.search(r"above the tolerance \(default ([0-9.e+-]+)", text.replace("\n", " "))
    assert float(said.group(1)) == parity.TOLERANCE


def test_the_compiled_paths_are_the_registry():
    from backends import registry

    rows = _table(_page("methodology.md"), "| backend | path | device |")
    documented = {(r[0], _code(r[1])[0]): r[2] for r in rows}
    declared = {
        (name, p.name): ", ".join(p.devices)
        for name, entry in registry.REGISTRY.items()
        for p in entry.paths
    }
    assert documented == declared


# --- the layout ------------------------------------------------------------------------


def modules_on_disk() -> set[str]:
    """Every module of the packages and bench/: each .py file, an ``__init__.py`` only where
    it holds code."""
    out = set()
    for top in ("backends", "benchmarks", "bench"):
        for path in (REPO / top).rglob("*.py"):
            if path.name == "__init__.py" and not path.read_text().strip():
                continue
            out.add(path.relative_to(REPO).as_posix())
    return out


def modules_listed(text: str) -> list[str]:
    blocks = re.findall(r"^```\n(.*?)^```", text, flags=re.M | re.S)
    return [line.split()[0] for block in blocks for line in block.splitlines() if line.strip()]


def test_the_layout_lists_every_module_once():
    listed = modules_listed(_page("layout.md"))
    assert len(listed) == len(set(listed)), sorted(m for m in listed if listed.count(m) > 1)
    on_disk = modules_on_disk()
    assert set(listed) == on_disk, (
        f"not in docs/layout.md: {sorted(on_disk - set(listed))}; "
        f"listed but not on disk: {sorted(set(listed) - on_disk)}"
    )


def test_the_docs_name_every_shipped_sweep():
    shipped = sorted(p.stem for p in (REPO / "benchmarks" / "sweeps").glob("*.toml"))
    layout = re.search(r"the shipped sweeps: ([^)]+)\)", _page("layout.md").replace("\n", " "))
    assert sorted(s.strip() for s in layout.group(1).split(",")) == shipped
    paths = _table(_page("reference.md"), "| path | what |")
    sweeps = next(r for r in paths if _code(r[0]) == ["benchmarks/sweeps/*.toml"])
    assert sorted(_code(sweeps[1])) == shipped

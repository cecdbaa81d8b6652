"""The house's layers, from the imports: a module imports only from its own layer or the
layers below it, and no two modules import each other, however indirectly. Imports inside
functions count (a lazy import is still a dependency); ``if TYPE_CHECKING:`` blocks do not
(they never run).

The layers, lowest first: ``backends`` (the framework adapters and their framework-free
spec), then under ``benchmarks/``: ``core`` (host facts and statistics), ``record`` (what a
run is and where it is kept), ``run`` (running sweeps), ``checks`` (parity, overhead, the GPU
check), ``report``, ``track`` (compare, recheck, baselines, history), ``app`` (the command
line), and the entry points kept at ``benchmarks/``'s top for scripts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = ("backends", "core", "record", "run", "checks", "report", "track", "app", "")


def layer_of(module: str) -> int:
    """Its layer's index in :data:`LAYERS` ("" is benchmarks' top: its entry points)."""
    parts = module.split(".")
    if parts[0] == "backends":
        return 0
    return LAYERS.index(parts[1] if len(parts) > 1 and parts[1] in LAYERS else "")


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for package in ("backends", "benchmarks"):
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:  # `from pkg import module` imports the module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in known and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} ({LAYERS[layer_of(a)] or 'top'}) imports {b} ({LAYERS[layer_of(b)] or 'top'})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(b) > layer_of(a)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_every_module_has_a_layer():
    for name in modules(REPO):
        assert 0 <= layer_of(name) < len(LAYERS), name


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(import_graph(REPO)) == []


def test_no_import_cycle():
    assert cycles(import_graph(REPO)) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"backends/__init__.py": "", "benchmarks/__init__.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "code",
    [
        "from benchmarks.report import figures\n",
        "def later():\n    from benchmarks.report.figures import draw\n",
        "import benchmarks.report.figures\n",
    ],
)
def test_a_planted_upward_import_is_found(tmp_path, code):
    """The checks themselves: a record module importing the report, at the top, inside a
    function, or by its dotted name, is named; under TYPE_CHECKING it is not."""
    root = _tree(
        tmp_path,
        {
            "benchmarks/record/__init__.py": "",
            "benchmarks/record/store.py": code,
            "benchmarks/report/__init__.py": "",
            "benchmarks/report/figures.py": "",
        },
    )
    assert upward_imports(import_graph(root)) == [
        "benchmarks.record.store (record) imports benchmarks.report.figures (report)"
    ]
    (root / "benchmarks/record/store.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        + "".join("    " + line + "\n" for line in code.splitlines())
    )
    assert upward_imports(import_graph(root)) == []


def test_a_planted_cycle_is_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "backends/base.py": "from backends import registry\n",
            "backends/registry.py": "def load():\n    from backends.base import Backend\n",
        },
    )
    assert cycles(import_graph(root)) == [["backends.base", "backends.registry"]]


def test_no_module_over_600_lines_and_no_function_over_100():
    """The sizes a reader can hold (the architecture issue's limits), for the harness and
    the backends."""
    too_long = []
    for name, path in modules(REPO).items():
        text = path.read_text()
        if len(text.splitlines()) > 600:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > 100:
                    too_long.append(f"{name}.{node.name}: {size} lines")
    assert too_long == []

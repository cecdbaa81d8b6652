"""Adding a backend touches only its folder and one registry entry: a backend registered
from outside the tree (OPTBENCH_BACKENDS) goes through run, parity, report and the overhead
benchmark, and no harness module names a framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from backends import registry
from benchmarks.checks import overhead
from benchmarks.checks.parity import ParityConfig, passed, run_parity
from benchmarks.record.sweep import load_sweep
from benchmarks.report import write_report
from benchmarks.run.driver import run_sweep

HARNESS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow  # end to end through several commands (CI runs the slow set)
def test_a_new_backend_goes_through_every_command(tiny, fakes, tmp_path, capsys):
    sweep = load_sweep(tiny, {"backends": ["mirror", "numpy"]})
    result = run_sweep(sweep, tmp_path / "r", quiet=True)
    assert result.counts == {"ok": 2}
    rows = run_parity(["mirror"], cfg=ParityConfig(steps=3))
    assert passed(rows) and {r["backend"] for r in rows} == {"mirror"}
    write_report(tmp_path / "r")
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert set(summary["backend"]) == {"mirror", "numpy"}
    assert "mirror" in (tmp_path / "r" / "report.md").read_text()
    code = overhead.main(["--backend", "mirror", "--rounds", "2", "--steps", "5", "--json"])
    out = capsys.readouterr()
    assert code in (0, 1) and '"backend": "mirror"' in out.out  # a ratio, whatever its size


def test_no_harness_module_names_a_framework():
    """Framework names live in backends/ and the registry; the harness reads them there."""
    frameworks = {n for n in registry.NAMES} | {"keras", "optax", "jaxlib", "tensorflow-cpu"}
    frameworks.discard("numpy")  # the reference, and a core dependency
    found = []
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in frameworks:
                found.append(f"{path.relative_to(HARNESS)}:{node.lineno} {node.value!r}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                bad = [n for n in names if n.split(".")[0] in frameworks]
                found += [f"{path.relative_to(HARNESS)}:{node.lineno} import {n}" for n in bad]
    assert not found, found


def test_adapters_ask_their_path_options_not_its_name():
    """A path's behaviour is its options (``CompilePath.block``, ``traced``, ``xla``,
    ``cuda_graph``): an adapter that tests ``self.path.name`` would miss a path added later
    with the same options."""
    import re

    for adapter in sorted((HARNESS.parent / "backends").glob("*/backend.py")):
        text = adapter.read_text()
        assert not re.search(r"path\.name\s*(==|!=|in\b)", text), adapter


def test_every_path_option_is_declared_where_its_adapter_needs_it():
    from backends.paths import PATH_OPTIONS
    from backends.registry import REGISTRY

    options = {e.name: {p.name: p.options() for p in e.paths} for e in REGISTRY.values()}
    assert set(PATH_OPTIONS) == {"block", "traced", "xla", "cuda_graph"}
    assert options["jax"] == {"eager": (), "jit": ("traced", "xla"), "jit_loop": PATH_OPTIONS[:3]}
    assert options["torch"]["cudagraph"] == ("cuda_graph",)
    assert options["tensorflow"]["tf_function_loop"] == ("block", "traced")


def test_a_built_in_backend_says_what_it_is_once_in_its_registry_entry():
    """extra, variants, dtypes and the bare loop are the entry's (framework-free), read by
    the class; an adapter that declared them again could drift from what the driver reads."""
    import ast

    from backends import registry

    for name in ("numpy", "torch", "tensorflow", "jax"):
        entry = registry.entry(name)
        module, cls_name = entry.target.split(":")
        source = (HARNESS.parent / Path(*module.split("."))).with_suffix(".py").read_text()
        (cls,) = [
            n
            for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.ClassDef) and n.name == cls_name
        ]
        declared = {
            t.id
            for n in cls.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        assert not declared & {"extra", "variants", "dtypes", "bare"}, (name, declared)
        if not entry.missing():
            loaded = registry.load(name)
            assert (loaded.extra, loaded.variants, loaded.dtypes, loaded.bare) == (
                entry.extra, entry.variants, entry.dtypes, entry.bare,
            )  # fmt: skip

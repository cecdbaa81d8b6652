"""Optimizer plugins (backends/optimizers.py, docs/optimizer-plugins.md): a plugin in a
user's module runs through run, parity, report and compare without touching the tree; bad
plugins and bad values are clear errors before anything runs; a wrong implementation fails
parity, named. NumPy only here (the framework implementations: the slow test at the end)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from backends import optimizers, registry
from backends.base import ModelSpec, OptimizerSpec, SpecError, init_weights
from backends.numpy.backend import NumpyBackend
from benchmarks.record.sweep import SweepError, load_sweep
from tests.conftest import REPO, optbench_cmd

MINIMAL = "examples.optimizers.dampened_sgd:DAMPENED_SGD"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test registers its plugins afresh, and what it registers stays out of the
    environment of the tests after it."""
    monkeypatch.setattr(optimizers, "PLUGINS", {})
    monkeypatch.setattr(optimizers, "_discovered", False)
    # set, not deleted: monkeypatch restores (removes) only what it recorded, and register()
    # writes the variable for the workers
    monkeypatch.setenv(optimizers.ENV, "")
    monkeypatch.syspath_prepend(str(REPO))


def _module(tmp_path, monkeypatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


PLUGIN = """
    from backends.optimizers import Hyperparameter, OptimizerKind, Reference

    def slots(hp):
        return [("buf", 0.0)]

    def update(hp, lr, w, g, slots, t):
        buf = hp["momentum"] * slots[0] + g
        return w - lr * buf, [buf]

    {extra}

    KIND = OptimizerKind(
        name={name!r},
        hyperparameters=(Hyperparameter("momentum", 0.9, 0, 1, high_open=True),),
        formula="buf = momentum buf + g; w -= lr buf",
        presets={{{name!r}: {{"lr": 0.05}}}},
        reference=Reference(slots, update),
        implementations={implementations},
    )
"""


def plugin(tmp_path, monkeypatch, module="myopt", name="heavy", implementations="{}", extra=""):
    body = PLUGIN.format(name=name, implementations=implementations, extra=extra)
    return _module(tmp_path, monkeypatch, module, body) + ":KIND"


def test_the_how_to_shows_the_minimal_plugin_as_shipped():
    """The how-to's code is the example file, byte for byte (so it runs as written), and it
    stays minimal."""
    doc = (REPO / "docs" / "optimizer-plugins.md").read_text()
    shipped = (REPO / "examples" / "optimizers" / "dampened_sgd.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert shipped in blocks
    assert len(shipped.splitlines()) <= 40


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("nosuchpackage.opt:KIND", "cannot import module 'nosuchpackage.opt' (ModuleNotFoundError"),
        ("examples.optimizers.dampened_sgd:NOPE", "has no 'NOPE'"),
        ("examples.optimizers.dampened_sgd:make_torch", "is a function, not an optimizer plugin"),
        ("examples.optimizers.dampened_sgd", "is not of the form 'module:Object'"),
    ],
)
def test_a_plugin_that_cannot_be_loaded_is_named_with_the_reason(source, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        optimizers.load(source)


def test_a_plugin_may_not_take_a_name_already_taken(tmp_path, monkeypatch):
    with pytest.raises(SpecError, match="named 'adam', as a built-in kind"):
        optimizers.load(plugin(tmp_path, monkeypatch, "as_adam", name="adam"))
    optimizers.load(plugin(tmp_path, monkeypatch, "first", name="heavy"))
    optimizers.load("first:KIND")  # the same plugin again is no clash
    with pytest.raises(SpecError, match="two optimizer plugins are named 'heavy': first:KIND and"):
        optimizers.load(plugin(tmp_path, monkeypatch, "second", name="heavy"))


def test_hyperparameters_are_checked_against_what_the_plugin_declares():
    kind = optimizers.load(MINIMAL)
    opt = OptimizerSpec(kind.name, lr=0.1, params={"dampening": 0.25})
    assert opt.hyperparameters() == {"lr": 0.1, "dampening": 0.25, "momentum": 0.9}
    with pytest.raises(
        SpecError, match=r"kappa=\[1\] is invalid: optimizer 'dampened_sgd' declares"
    ):
        OptimizerSpec(kind.name, lr=0.1, params={"kappa": 1})
    with pytest.raises(SpecError, match=re.escape("dampening=2 is invalid: must be in [0, 1]")):
        OptimizerSpec(kind.name, lr=0.1, params={"dampening": 2})
    with pytest.raises(SpecError, match="a plugin's go in params"):
        OptimizerSpec(kind.name, lr=0.1, momentum=0.5)


def _sweep(tmp_path, kind: str, backends: str = '["numpy"]', extra: str = "") -> str:
    path = tmp_path / "mine.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            name = "mine"
            dataset = "digits"
            hidden = [16]
            epochs = 1
            max_steps = 12
            eval_every = 6
            backends = {backends}
            modes = ["eager"]
            batch_sizes = [32]
            seeds = [0]
            [timing]
            block_steps = 3
            warmup_steps = 2
            [optimizers.mine]
            kind = "{kind}"
            learning_rates = [0.05]
            {extra}
            [optimizers.sgd]
            kind = "sgd"
            momentum = 0.9
            learning_rates = [0.05]
            """
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("kappa = 1", "unknown key optimizers.mine.kappa for kind 'dampened_sgd'; allowed: kind, "),
        ("dampening = 1.5", "optimizers.mine: dampening=1.5 is invalid: must be in [0, 1]"),
    ],
)
def test_a_sweep_file_names_the_bad_key_of_a_plugin(tmp_path, extra, message):
    with pytest.raises(SweepError, match=re.escape(message)):
        load_sweep(_sweep(tmp_path, MINIMAL, extra=extra))


def test_run_ids_hash_the_plugins_name_and_values_not_its_path(tmp_path, monkeypatch):
    """The same plugin imported from two places gives the same run ids; another value does not."""
    ids = []
    for module in ("here", "there"):
        monkeypatch.setattr(optimizers, "PLUGINS", {})
        source = plugin(tmp_path, monkeypatch, module)
        ids.append([r.run_id for r in load_sweep(_sweep(tmp_path, source)).runs])
    assert ids[0] == ids[1]
    monkeypatch.setattr(optimizers, "PLUGINS", {})
    other = load_sweep(_sweep(tmp_path, "here:KIND", extra="momentum = 0.5")).runs
    assert other[0].run_id != ids[0][0] and other[1].run_id == ids[0][1]  # sgd's unchanged


def _run(cli_env, *args, cwd=REPO):
    return subprocess.run(
        optbench_cmd(*args), cwd=cwd, env=cli_env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # end to end through several commands (CI runs the slow set)
def test_a_plugin_runs_through_run_report_and_compare(cli_env, tmp_path):
    """A sweep with the minimal plugin on numpy (its reference) and mirror (a backend it does
    not implement): numpy's runs train, mirror's are skipped with the reason, the built-in
    optimizer beside it runs on both; the report ranks it, and compare (a fresh process)
    finds the plugin again from the runs' optimizer_source."""
    out = tmp_path / "res"
    sweep = _sweep(tmp_path, MINIMAL, backends='["numpy", "mirror"]')
    proc = _run(cli_env, "run", "--sweep", sweep, "--out", str(out), "--report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = pd.read_parquet(out / "runs.parquet").set_index(["backend", "optimizer"])
    assert runs.loc[("numpy", "mine"), "status"] == "ok"
    assert runs.loc[("numpy", "mine"), "kind"] == "dampened_sgd"
    assert runs.loc[("numpy", "mine"), "optimizer_source"] == MINIMAL
    assert runs.loc[("mirror", "mine"), "status"] == "skipped"
    assert "has no mirror implementation; it implements torch, numpy" in str(
        runs.loc[("mirror", "mine"), "error"]
    )
    assert (runs.xs("sgd", level="optimizer")["status"] == "ok").all()
    assert "dampened_sgd" in (out / "report.html").read_text()

    cli_env = {k: v for k, v in cli_env.items() if k != optimizers.ENV}
    proc = _run(cli_env, "compare", str(out), str(out), "--recheck", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_plugin_that_runs_on_none_of_the_sweeps_backends_stops_it_first(cli_env, tmp_path):
    out = tmp_path / "res"
    sweep = _sweep(tmp_path, MINIMAL, backends='["mirror"]')
    proc = _run(cli_env, "run", "--sweep", sweep, "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "has no mirror implementation; it implements torch, numpy" in proc.stderr
    assert "this sweep runs mirror only" in proc.stderr
    assert not out.exists() and "Traceback" not in proc.stderr


def test_an_implementation_that_raises_makes_its_run_an_error_and_the_sweep_goes_on(
    cli_env, tmp_path, monkeypatch
):
    extra = "def broken(hp, lr, w, g, slots, t):\n        raise RuntimeError('my bug')\n"
    source = plugin(
        tmp_path,
        monkeypatch,
        "raising",
        extra=extra,
        implementations='{"numpy": Reference(slots, broken)}',
    )
    out = tmp_path / "res"
    proc = _run(
        cli_env, "run", "--sweep", _sweep(tmp_path, source), "--out", str(out), cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a failed run: exit 1, as always
    runs = pd.read_parquet(out / "runs.parquet").set_index("optimizer")
    assert runs.loc["mine", "status"] == "error"
    assert "RuntimeError: my bug" in runs.loc["mine", "traceback"]
    assert runs.loc["sgd", "status"] == "ok"


def test_parity_fails_on_a_wrong_implementation_and_says_where(cli_env, tmp_path, monkeypatch):
    """A planted bug: the implementation forgets the momentum. Parity fails its rows and
    names the first step and tensor where it parts from the reference."""
    extra = "def wrong(hp, lr, w, g, slots, t):\n        return w - lr * g, [slots[0]]\n"
    source = plugin(
        tmp_path,
        monkeypatch,
        "planted",
        extra=extra,
        implementations='{"numpy": Reference(slots, wrong)}',
    )
    proc = _run(cli_env, "parity", "--backend", "numpy", "--optimizer", source, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail = [line for line in proc.stdout.splitlines() if "FAIL" in line]
    assert len(fail) == 2 and all(line.startswith("numpy    heavy") for line in fail), proc.stdout
    # step 1 is the same either way (the buffer starts at 0): they part at the second update
    assert "loss parts at step 3; weights part after step 2, first in W0" in fail[0]


def test_parity_checks_a_plugins_reference_against_itself_in_float32(cli_env, tmp_path):
    proc = _run(cli_env, "parity", "--backend", "numpy", "--optimizer", MINIMAL, "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = pd.read_json(io.StringIO(proc.stdout))
    assert set(rows["optimizer"]) == {"dampened_sgd"} and rows["ok"].all()
    assert (rows["max_abs_loss_diff"] < 1e-6).all()


def test_a_reference_that_changes_a_dtype_is_named(tmp_path, monkeypatch):
    """A reference that returns float64 weights for float32 ones: the error names the plugin,
    the tensor and the fix, at the step (not a shape error deep inside the backward)."""
    extra = (
        "def f64(hp, lr, w, g, slots, t):\n        return (w - lr * g).astype('float64'), slots\n"
    )
    source = plugin(
        tmp_path,
        monkeypatch,
        "dtype",
        extra=extra,
        implementations='{"numpy": Reference(slots, f64)}',
    )
    optimizers.load(source)
    model = ModelSpec(4, 2, (3,))
    be = NumpyBackend(mode="eager")
    state = be.init(model, OptimizerSpec("heavy", lr=0.1), init_weights(model, 0))
    x, y = be.to_device(np.ones((2, 4)), np.array([0, 1]))
    with pytest.raises(
        SpecError, match=r"'heavy''s reference returned weight 0 as float64 \(4, 3\)"
    ):
        be.train_step(state, x, y)


@pytest.mark.slow
def test_the_example_plugin_agrees_on_every_framework_and_path(cli_env):
    """AdaBelief, written for all four frameworks: every implementation on every compiled
    path, within the gate (the framework backends that are installed). The eager paths run
    the same factories; the catalogue's parity covers every path of every framework."""
    names = [n for n in ("torch", "jax", "tensorflow") if not registry.entry(n).missing()]
    if not names:
        pytest.skip("no framework backend is installed (pip install -e '.[all]')")
    source = "examples.optimizers.adabelief:ADABELIEF"
    proc = _run(
        cli_env,
        "parity",
        "--backend",
        ",".join(["numpy", *names]),
        "--optimizer",
        source,
        "--mode",
        "compiled",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = pd.read_json(io.StringIO(proc.stdout))
    assert set(rows["backend"]) == {"numpy", *names}
    assert rows["ok"].all() and (rows["max_abs_loss_diff"] <= 2e-6).all()


def test_a_worker_without_the_sweep_file_finds_the_plugin_from_the_run(tmp_path, cli_env):
    """A Dask worker on another machine gets the run, not the sweep file nor the driver's
    environment: the run carries where its plugin comes from (not in its id)."""
    import pickle

    (spec,) = [r for r in load_sweep(_sweep(tmp_path, MINIMAL)).runs if r.optimizer == "mine"]
    assert spec.optimizer_source == MINIMAL
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(spec))
    code = (
        "import pickle, sys; from benchmarks.run.runner import execute_run; "
        "spec = pickle.load(open(sys.argv[1], 'rb')); print(execute_run(spec)['run']['status'])"
    )
    env = {k: v for k, v in cli_env.items() if k != optimizers.ENV}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "spec.pkl")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == "ok", proc.stdout + proc.stderr


LION_SWAPPED = """
    import numpy as np

    from backends.catalogue.lion import LION
    from backends.optimizers import Reference
    import dataclasses

    def swapped(hp, lr, w, g, slots, t):
        (m,) = slots  # the planted bug: b2 where the sign takes b1
        c = hp["beta2"] * m + (1 - hp["beta2"]) * g
        return w - lr * np.sign(c), [hp["beta2"] * m + (1 - hp["beta2"]) * g]

    KIND = dataclasses.replace(
        LION, name="lion_planted", presets={"lion_planted": {"lr": 1e-3}},
        implementations={"numpy": Reference(LION.reference.slots, swapped)},
    )
"""


def test_a_sign_based_update_passes_its_rule_and_a_wrong_one_fails_it(
    cli_env, tmp_path, monkeypatch
):
    """Lion's float32 NumPy run passes the sign rule (a few flipped signs allowed); the same
    with b1 and b2 swapped in the sign moves many signs and fails it, said so."""
    proc = _run(cli_env, "parity", "--backend", "numpy", "--optimizer", "lion")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    source = _module(tmp_path, monkeypatch, "planted_lion", LION_SWAPPED) + ":KIND"
    proc = _run(cli_env, "parity", "--backend", "numpy", "--optimizer", source, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail = [line for line in proc.stdout.splitlines() if "FAIL" in line]
    assert len(fail) == 2 and "of the weights off (sign rule allows 0.1%)" in fail[0], fail


def test_a_dry_run_lists_every_module_the_sweep_would_import(cli_env, tmp_path):
    """A sweep file is code: before anything runs, the dry run names each module it would
    import (adapters and plugins) and what names it."""
    sweep = _sweep(tmp_path, MINIMAL, backends='["numpy", "mirror"]')
    proc = _run(cli_env, "run", "--sweep", sweep, "--out", str(tmp_path / "r"), "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = proc.stdout.split("imports (a sweep runs this code")[1].splitlines()[1:]
    rows = [ln.split() for ln in listed if ln.startswith("    ")]
    imports = {row[0]: " ".join(row[1:]) for row in rows}
    assert imports == {
        "backends.numpy.backend": "backend numpy (backends/registry.py)",
        "tests.fakes": "backend mirror (OPTBENCH_BACKENDS)",
        "examples.optimizers.dampened_sgd": "optimizer dampened_sgd (plugin)",
    }
    assert not (tmp_path / "r").exists()

"""Sweep files: validation with errors that name the file, key, value and what is allowed."""

from __future__ import annotations

import pytest

from benchmarks.record.sweep import SweepError, load_sweep

BASE = """
dataset = "digits"
epochs = 1
backends = ["numpy"]
batch_sizes = [32, 64]
seeds = [0, 1]
[optimizers.sgd]
kind = "sgd"
learning_rates = [0.1, 0.01]
[optimizers.adam]
learning_rates = [0.001]
"""


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_shipped_sweeps_load():
    for name in ("default", "smoke", "gpu", "gpu-wide", "optimizers"):
        s = load_sweep(name, {"backends": ["numpy"], "devices": ["cpu"]})
        assert s.runs and all(r.backend == "numpy" for r in s.runs)
        assert not s.warnings, s.warnings  # every run of a shipped sweep times something


def test_default_sweep_grid():
    s = load_sweep("default", {"backends": ["numpy"], "devices": ["cpu"]})
    assert {r.optimizer for r in s.runs} == {"sgd_momentum", "adam"}
    assert {r.batch_size for r in s.runs} == {32, 128, 512}
    assert len({r.lr for r in s.runs if r.optimizer == "adam"}) == 4
    assert {r.mode for r in s.runs} == {"compiled"} and len(s.runs) == 24 * 3  # numpy: 3 seeds
    assert {r.validation_fraction for r in s.runs} == {0.1}


def test_grid_expansion_and_stable_ids(tmp_path):
    s = load_sweep(write(tmp_path, BASE))
    assert len(s.runs) == 3 * 2 * 2  # (2 sgd lrs + 1 adam lr) x 2 batch sizes x 2 seeds
    assert len({r.run_id for r in s.runs}) == len(s.runs)
    again = load_sweep(write(tmp_path, BASE))
    assert [r.run_id for r in s.runs] == [r.run_id for r in again.runs]


def test_overrides(tmp_path):
    s = load_sweep(
        write(tmp_path, BASE),
        {"learning_rates": [0.5], "batch_sizes": [8], "seeds": 3, "optimizers": ["adam"]},
    )
    assert {(r.optimizer, r.lr, r.batch_size) for r in s.runs} == {("adam", 0.5, 8)}
    assert sorted(r.seed for r in s.runs) == [0, 1, 2]  # --seeds 3: seeds 0..2


@pytest.mark.parametrize(
    "text, needle",
    [
        ("epochz = 3", "unknown key 'epochz'"),
        ("dataset = 3", "dataset = 3 is invalid; expected digits"),
        (
            'batch_sizes = [32, "big"]',
            "batch_sizes = 'big' is invalid; expected a list of integers",
        ),
        ("batch_sizes = [0]", "batch_sizes = 0 is invalid"),
        ('modes = ["jit"]', "modes = 'jit' is invalid; expected a list drawn from eager, compiled"),
        ('backends = ["pytorch"]', "backends = 'pytorch' is invalid"),
        (
            'devices = ["tpu"]',
            "devices = 'tpu' is invalid; expected a list drawn from cpu, gpu, auto",
        ),
        ("learning_rates = [-1]", "learning_rates = -1 is invalid"),
        ("[timing]\nblock_stepz = 3", "unknown key timing.block_stepz"),
        ("[timing]\ntimeout_s = 0", "timing.timeout_s = 0 is invalid"),
        (
            '[optimizers.x]\nkind = "lamb"',
            "optimizers.x.kind = 'lamb' is invalid; choose one of sgd, adam",
        ),
        (
            '[optimizers.x]\nkind = "sgd"\nbeta1 = 0.9',
            "unknown key optimizers.x.beta1 for kind 'sgd'",
        ),
        ('[optimizers.x]\nkind = "adam"\nbeta2 = 1.5', "optimizers.x: beta2=1.5 is invalid"),
        ("epochs = [", "not valid TOML"),
        ("learning_rates = [1e400]", "learning_rates = inf is invalid"),
        ("batch_sizes = [32, 32]", "(32 is listed twice)"),
        ("diverge_factor = nan", "diverge_factor = nan is invalid"),
        ('[optimizers.x]\nkind = "sgd"\nmomentum = "0.9"', "momentum='0.9' is invalid"),
        (
            "batch_sizes = [5000]",
            "batch_sizes = 5000 is invalid; the 1294 training samples of 'digits'",
        ),
        ('dataset = "cifar"', "unknown dataset 'cifar'"),
    ],
)
def test_bad_file_names_file_key_value(tmp_path, text, needle):
    key = text.split("=")[0].strip()
    base = "\n".join(
        ln
        for ln in BASE.splitlines()
        if ln.split("=")[0].strip() != key or ln.startswith("learning_rates")
    )
    tables = "optimizers" in text or "[timing]" in text
    path = write(tmp_path, base + "\n" + text + "\n" if tables else text + "\n" + base)
    with pytest.raises(SweepError) as e:
        load_sweep(path)
    assert needle in str(e.value)
    assert path in str(e.value)


def test_empty_grid_is_an_error(tmp_path):
    with pytest.raises(SweepError, match="expands to no run.*empty axis: seeds"):
        load_sweep(write(tmp_path, BASE.replace("seeds = [0, 1]", "seeds = []")))


def test_unknown_sweep_name_lists_shipped_ones():
    with pytest.raises(
        SweepError,
        match="unknown sweep .nope.; shipped sweeps: default, gpu, gpu-wide, optimizers, smoke",
    ):
        load_sweep("nope")


def test_unknown_optimizer_override(tmp_path):
    with pytest.raises(SweepError, match="unknown optimizer 'lion'; this sweep defines sgd, adam"):
        load_sweep(write(tmp_path, BASE), {"optimizers": ["lion"]})


def test_datasets_variants_and_extra_seeds(tmp_path, monkeypatch):
    """The data-set and variant axes, and the optimizer verdict's extra seeds on one backend:
    the NumPy reference has no stock variant, so it runs spec only."""
    monkeypatch.setattr("benchmarks.record.sweep.registry.installed", lambda: ["numpy", "mirror"])
    from backends import registry

    monkeypatch.setitem(
        registry.REGISTRY,
        "mirror",
        registry.Entry(
            "mirror", "tests.fakes:MirrorBackend", ("numpy",), "", variants=("spec", "stock")
        ),
    )
    text = BASE.replace('dataset = "digits"', 'datasets = ["digits", "synthetic:n=400,d=8"]')
    text = text.replace('backends = ["numpy"]', 'backends = ["numpy", "mirror"]')
    text = text.replace("seeds = [0, 1]", 'seeds = [0]\nvariants = ["spec", "stock"]')
    text += '[optimizer_seeds]\nbackend = "numpy"\nseeds = [0, 1, 2]\n'
    s = load_sweep(write(tmp_path, text))
    per = {}
    for r in s.runs:
        per.setdefault((r.backend, r.variant), set()).add((r.dataset, r.seed))
    datasets = {"digits", "synthetic:n=400,d=8"}
    assert per.keys() == {("numpy", "spec"), ("mirror", "spec"), ("mirror", "stock")}
    assert {d for d, _ in per["numpy", "spec"]} == datasets
    assert {seed for _, seed in per["numpy", "spec"]} == {0, 1, 2}
    assert {seed for _, seed in per["mirror", "stock"]} == {0}
    assert len({r.run_id for r in s.runs}) == len(s.runs)
    assert all(r.validation_fraction == 0.1 for r in s.runs)  # the default split
    with pytest.raises(SweepError, match="none of numpy runs variants"):
        load_sweep(write(tmp_path, BASE), {"variants": ["stock"]})


@pytest.mark.parametrize(
    "schedule, needle",
    [
        (
            '{ name = "cosine", lr_warmup_steps = 500 }',
            "optimizers.sgd.schedule.lr_warmup_steps = 500 is invalid; a run at batch 32",
        ),
        (
            '{ name = "step", boundaries = [0.5], gamma = -0.1 }',
            "optimizers.sgd.schedule: gamma=-0.1 is invalid",
        ),
        (
            '{ name = "step" }',
            "optimizers.sgd.schedule: boundaries=[] is invalid: a step schedule needs",
        ),
        (
            '{ name = "linear" }',
            "optimizers.sgd.schedule.name = 'linear' is invalid; choose one of constant, step, cosine",
        ),
        (
            '{ name = "cosine", gamma = 0.5 }',
            "the cosine schedule takes lr_warmup_steps, final_fraction only",
        ),
        ('{ name = "cosine", lr_warmup_steps = -1 }', "lr_warmup_steps=-1 is invalid"),
    ],
)
def test_bad_schedules_name_the_key(tmp_path, schedule, needle):
    text = BASE.replace('kind = "sgd"', f'kind = "sgd"\nschedule = {schedule}')
    path = write(tmp_path, text)
    with pytest.raises(SweepError) as e:
        load_sweep(path)
    assert needle in str(e.value) and path in str(e.value)


def test_a_schedule_reaches_the_run_spec_and_its_row(tmp_path):
    text = BASE.replace(
        'kind = "sgd"', 'kind = "sgd"\nschedule = { name = "cosine", lr_warmup_steps = 5 }'
    )
    run = next(r for r in load_sweep(write(tmp_path, text)).runs if r.optimizer == "sgd")
    assert run.opt.schedule.name == "cosine" and run.opt.schedule.horizon == 0
    row = run.row()
    assert (
        row["schedule"] == "cosine:lr_warmup_steps=5,final_fraction=0" and row["variant"] == "spec"
    )
    from benchmarks.record.schema import RunSpec

    assert RunSpec.from_row(row).run_id == run.run_id


def test_a_dataset_override_keeps_the_targets_of_that_data_set():
    s = load_sweep("optimizers", {"backends": ["numpy"], "dataset": "digits"})
    assert {r.dataset for r in s.runs} == {"digits"}
    assert s.settings["targets"] == {"digits": 0.95}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("validation_fraction = 1.0", "validation_fraction = 1.0 is invalid"),
        ('variants = ["fused"]', "variants = 'fused' is invalid"),
        ('datasets = ["digits"]', "give dataset or datasets, not both"),
        (
            "[targets]\nmnist5k = 0.9",
            "targets.mnist5k = 0.9 is invalid; expected a data set of this sweep",
        ),
        ("[targets]\ndigits = 1.5", "targets.digits = 1.5 is invalid"),
        (
            '[optimizer_seeds]\nbackend = "nope"\nseeds = [1]',
            "optimizer_seeds.backend = 'nope' is invalid",
        ),
    ],
)
def test_bad_new_axes(tmp_path, text, needle):
    tables = text.startswith("[")
    path = write(tmp_path, BASE + text + "\n" if tables else text + "\n" + BASE)
    with pytest.raises(SweepError) as e:
        load_sweep(path)
    assert needle in str(e.value)


def test_a_kind_an_adapter_does_not_map_fails_before_anything_runs(tmp_path, monkeypatch):
    """An adapter from outside the tree is asked what it maps (built-in ones declare it in
    the registry, and a contract test holds them to it)."""
    from backends import registry

    (entry,) = registry.parse_extra("sgdonly=tests.fakes:SgdOnlyBackend")
    monkeypatch.setitem(registry.REGISTRY, "sgdonly", entry)
    assert registry.capabilities("sgdonly") == (("sgd",), ("spec",))
    text = BASE.replace('backends = ["numpy"]', 'backends = ["numpy", "sgdonly"]')
    path = write(tmp_path, text)
    with pytest.raises(SweepError) as e:
        load_sweep(path)
    assert (
        f"{path}: optimizers.adam: backend 'sgdonly' does not implement kind 'adam'; it maps sgd"
        in str(e.value)
    )
    assert {r.backend for r in load_sweep(path, {"optimizers": ["sgd"]}).runs} == {
        "numpy",
        "sgdonly",
    }


def test_a_batch_whose_runs_end_in_the_warm_up_is_warned_of():
    """smoke at batch 128: 10 steps on digits, and timing starts at step 10 (1 + 5 warm-up
    steps, rounded up to a block of 5): the runs train but time nothing, and that is said."""
    sweep = load_sweep("smoke", {"batch_sizes": [64, 128]})
    (warning,) = sweep.warnings
    assert "a run at batch 128 on 'digits' has 10 steps, all of them warm-up" in warning
    assert "timing starts at step 10" in warning and "--epochs" in warning


def test_every_setting_with_a_flag_is_an_optbench_run_option():
    """SETTINGS is where a setting's option comes from: each flag parses into the override
    of its setting, by name."""
    from benchmarks.app.cli import build_parser
    from benchmarks.app.commands.run import overrides
    from benchmarks.record.settings import SETTINGS

    flagged = [s for s in SETTINGS if s.flag]
    assert {s.flag for s in flagged} >= {"--backend", "--lr", "--seed", "--timeout", "--name"}
    for s in flagged:
        args = build_parser().parse_args(["run", s.flag, "7"])
        assert overrides(args)[s.name] in ("7", 7, ["7"], [7]), s.key  # 7 == 7.0
    args = build_parser().parse_args(["run", "--seeds", "3"])
    assert overrides(args)["seeds"] == 3

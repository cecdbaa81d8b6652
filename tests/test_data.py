"""Loaders: shipped data sets, seeded synthetic data, user npz files, batch order."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.record.data import DataError, epoch_permutation, load_dataset


def test_digits_split_and_standardised():
    d = load_dataset("digits")
    assert d.x_train.shape == (1438, 64) and d.x_test.shape == (359, 64)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert abs(d.x_train.mean()) < 1e-5 and abs(d.x_train.std() - 1) < 1e-4
    assert set(np.unique(d.y_train)) == set(range(10))


def test_mnist5k_is_real_mnist():
    d = load_dataset("mnist5k")
    assert d.input_dim == 784 and d.num_classes == 10
    assert len(d.y_train) + len(d.y_test) == 5000
    assert np.bincount(d.y_train).min() > 300  # shuffled before the split, not sorted by label


def test_split_is_deterministic():
    a, b = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_synthetic_size_width_seed_and_learnable():
    d = load_dataset("synthetic:n=600,d=20,c=3,seed=5")
    assert d.x_train.shape == (480, 20) and d.num_classes == 3
    again = load_dataset("synthetic:n=600,d=20,c=3,seed=5")
    np.testing.assert_array_equal(d.y_train, again.y_train)
    other = load_dataset("synthetic:n=600,d=20,c=3,seed=6")
    assert not np.array_equal(d.y_train, other.y_train)
    # learnable: a linear least-squares probe beats chance by a wide margin
    onehot = np.eye(3)[d.y_train]
    w, *_ = np.linalg.lstsq(np.c_[d.x_train, np.ones(480)], onehot, rcond=None)
    acc = (np.c_[d.x_test, np.ones(120)] @ w).argmax(1) == d.y_test
    assert acc.mean() > 0.6


def test_synthetic_bad_parameter():
    with pytest.raises(DataError, match="unknown parameter 'width'"):
        load_dataset("synthetic:width=3")


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 255, (50, 4, 4)).astype(np.uint8)  # images, as in mnist.npz
    y_train = np.arange(50) % 10
    np.savez(
        tmp_path / "m.npz",
        x_train=x_train,
        y_train=y_train,
        x_test=x_train[:10],
        y_test=y_train[:10],
    )
    d = load_dataset(f"npz:{tmp_path / 'm.npz'}")
    assert d.x_train.shape == (50, 16) and d.num_classes == 10
    np.testing.assert_array_equal(d.y_test, y_train[:10])


def test_epoch_permutation_same_for_everyone_and_new_each_epoch():
    a = epoch_permutation(100, seed=3, epoch=0)
    np.testing.assert_array_equal(a, epoch_permutation(100, seed=3, epoch=0))
    assert not np.array_equal(a, epoch_permutation(100, seed=3, epoch=1))
    assert sorted(a) == list(range(100))

"""Splits and threaded cross-validation."""

import numpy as np
import pytest

import fastnn
from fastnn.datasets import load_digits
from fastnn.model_selection import (
    KFold, StratifiedKFold, cross_validate, train_val_test_split,
)


def test_split_sizes_and_disjoint():
    X = np.arange(200).reshape(100, 2)
    y = np.arange(100) % 4
    Xtr, Xv, Xte, ytr, yv, yte = train_val_test_split(X, y, 0.1, 0.2, seed=0)
    assert (len(Xtr), len(Xv), len(Xte)) == (70, 10, 20)
    ids = np.concatenate([Xtr[:, 0], Xv[:, 0], Xte[:, 0]])
    assert sorted(ids) == list(range(0, 200, 2))
    np.testing.assert_array_equal(Xtr[:, 0] // 2 % 4, ytr)


def test_stratified_split_keeps_proportions():
    y = np.array([0] * 80 + [1] * 20)
    X = np.arange(100)[:, None]
    _, Xv, Xte, ytr, yv, yte = train_val_test_split(X, y, 0.2, 0.3, stratify=True,
                                                    seed=1)
    assert np.mean(yte) == pytest.approx(0.2, abs=0.04)
    assert np.mean(yv) == pytest.approx(0.2, abs=0.06)
    assert len(set(Xv[:, 0]) & set(Xte[:, 0])) == 0


@pytest.mark.parametrize("cls", [KFold, StratifiedKFold])
def test_folds_partition_the_data(cls):
    y = np.arange(53) % 3
    X = np.zeros((53, 2))
    tests = []
    for train, test in cls(5, seed=0).split(X, y):
        assert len(set(train) & set(test)) == 0
        assert len(train) + len(test) == 53
        tests.append(test)
    assert sorted(np.concatenate(tests)) == list(range(53))
    if cls is StratifiedKFold:
        for test in tests:
            counts = np.bincount(y[test], minlength=3)
            assert counts.max() - counts.min() <= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_splits"):
        KFold(1)
    with pytest.raises(ValueError, match="n_splits"):
        list(KFold(5).split(np.zeros((3, 1))))
    with pytest.raises(ValueError, match="smallest class"):
        list(StratifiedKFold(3).split(np.zeros((4, 1)), [0, 0, 0, 1]))
    with pytest.raises(ValueError, match="val_size"):
        train_val_test_split(np.zeros((10, 1)), np.zeros(10), val_size=0.6,
                             test_size=0.5)


def test_cross_validate_threads_equal_serial():
    X, y = load_digits()
    X = X[:600] / 16.0
    y = y[:600]

    def build():
        return fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(10)], seed=0)

    kw = dict(epochs=15, seed=0)
    serial = cross_validate(build, X, y, k=3, fit_kwargs=kw, n_jobs=1)
    parallel = cross_validate(build, X, y, k=3, fit_kwargs=kw, n_jobs=2)
    np.testing.assert_array_equal(serial["scores"], parallel["scores"])
    assert serial["mean"] == pytest.approx(np.mean(serial["scores"]))
    assert serial["std"] == pytest.approx(np.std(serial["scores"]))
    assert serial["mean"] > 0.85

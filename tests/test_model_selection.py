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


def test_stratified_split_has_the_sizes_asked_for():
    # 20 classes of 3: a per-class round(3 * 0.2) = 1 would put 20 of 60 samples
    # (a third) in the test part. The parts must have the unstratified sizes,
    # round(60 * 0.1) = 6 and round(60 * 0.2) = 12, each class within one of
    # its share (0.3 and 0.6 samples).
    y = np.repeat(np.arange(20), 3)
    X = np.arange(60)[:, None]
    Xtr, Xv, Xte, ytr, yv, yte = train_val_test_split(X, y, 0.1, 0.2, stratify=True,
                                                      seed=0)
    assert (len(Xtr), len(Xv), len(Xte)) == (42, 6, 12)
    assert set(np.bincount(yte, minlength=20)) <= {0, 1}
    assert set(np.bincount(yv, minlength=20)) <= {0, 1}
    assert sorted(np.concatenate([Xtr, Xv, Xte])[:, 0]) == list(range(60))
    np.testing.assert_array_equal(y[Xte[:, 0]], yte)


def test_stratified_kfold_without_shuffle_keeps_index_order():
    # Class 0 is 0, 2, ..., 10 and class 1 is 1, 3, ..., 11; dealt in index
    # order, class after class, round-robin over 3 folds: 0 6 1 7 | 2 8 3 9 |
    # 4 10 5 11, whatever the seed.
    y = np.arange(12) % 2
    for seed in (None, 0, 7):
        tests = [test.tolist() for _, test in
                 StratifiedKFold(3, shuffle=False, seed=seed).split(np.zeros(12), y)]
        assert tests == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]


def test_split_names_a_missing_argument():
    with pytest.raises(TypeError, match="^y:"):
        train_val_test_split(np.zeros((10, 1)), None)
    with pytest.raises(TypeError, match="^X:"):
        train_val_test_split(5, np.zeros(10))


def test_cross_validate_seed_fixes_the_fits():
    X, y = load_digits()
    X = X[:300] / 16.0
    y = y[:300]

    def build():
        return fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(10)], seed=0)

    kw = dict(epochs=2)  # no seed of its own: cross_validate's seed fixes fit's
    first = cross_validate(build, X, y, k=2, fit_kwargs=kw, n_jobs=1, seed=3)
    second = cross_validate(build, X, y, k=2, fit_kwargs=kw, n_jobs=2, seed=3)
    np.testing.assert_array_equal(first["loss"], second["loss"])

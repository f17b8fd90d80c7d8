"""The shipped digits data: shapes, dtypes, and scikit-learn's copy exactly."""

import numpy as np
import pytest

from fastnn.datasets import load_digits

#: Samples per class in the UCI optdigits test set (as scikit-learn ships it).
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_shapes_dtypes_and_layout():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.flags.c_contiguous and X.flags.writeable
    assert y.flags.writeable


def test_values_are_4_bit_pixel_counts_and_digit_labels():
    X, y = load_digits()
    assert X.min() == 0 and X.max() == 16
    np.testing.assert_array_equal(X, np.round(X))  # integer counts of 4x4 blocks
    assert set(np.unique(X)) == set(range(17))
    assert y.min() == 0 and y.max() == 9
    np.testing.assert_array_equal(np.bincount(y), CLASS_COUNTS)
    # the border columns of an 8x8 digit are mostly empty
    assert X.reshape(-1, 8, 8)[:, :, 0].mean() < X.mean()


def test_matches_sklearn_load_digits_exactly():
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = datasets.load_digits()
    X, y = load_digits()
    np.testing.assert_array_equal(X, bunch.data)  # 0..16 are exact in float32
    np.testing.assert_array_equal(X.astype(np.float64), bunch.data)
    np.testing.assert_array_equal(y, bunch.target)
    np.testing.assert_array_equal(X.reshape(-1, 8, 8), bunch.images)


def test_each_call_returns_fresh_arrays():
    X, y = load_digits()
    X[:] = -1
    y[:] = -1
    X2, y2 = load_digits()
    assert X2.min() == 0 and y2.min() == 0
    assert not np.shares_memory(X, X2) and not np.shares_memory(y, y2)


def test_data_file_ships_inside_the_package():
    from importlib import resources

    res = resources.files("fastnn.datasets").joinpath("digits.csv.gz")
    assert res.is_file()
    with res.open("rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"  # gzip magic

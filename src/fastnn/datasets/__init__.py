"""Small real data shipped inside the package; nothing is ever downloaded."""

import gzip
from importlib import resources

import numpy as np


def load_digits():
    """The 8x8 handwritten digits: ``X`` (1797, 64) float32 in 0..16, ``y`` int64.

    The test part of the UCI "Optical Recognition of Handwritten Digits"
    data (E. Alpaydin and C. Kaynak, 1998; CC BY 4.0), as distributed with
    scikit-learn, shipped in this package as ``digits.csv.gz``.
    """
    with resources.files(__package__).joinpath("digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    X = np.ascontiguousarray(table[:, :-1], dtype=np.float32)
    y = table[:, -1].astype(np.int64)
    return X, y

"""NumPy twin of :mod:`fastnn._kernels.gather`."""

import numpy as np

__all__ = ["gather_labels", "gather_rows"]


def gather_rows(X, idx, out):
    """out[i, :] = X[idx[i], :]."""
    np.take(X, idx, axis=0, out=out)


def gather_labels(y, idx, out):
    """out[i] = y[idx[i]]."""
    np.take(y, idx, out=out)

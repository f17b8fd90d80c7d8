"""NumPy twin of :mod:`fastnn._kernels.gather`."""

import numpy as np

__all__ = ["gather_labels", "gather_rows"]


def _check(idx, n):
    """Indices in [0, n): np.take alone would wrap negative ones."""
    idx = np.asarray(idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(np.flatnonzero((idx < 0) | (idx >= n))[0])
        raise IndexError(f"idx: index {idx[bad]} at position {bad} is out of "
                         f"range for {n} rows")


def gather_rows(X, idx, out):
    """out[i, :] = X[idx[i], :]."""
    _check(idx, X.shape[0])
    np.take(X, idx, axis=0, out=out)


def gather_labels(y, idx, out):
    """out[i] = y[idx[i]]."""
    _check(idx, y.shape[0])
    np.take(y, idx, out=out)

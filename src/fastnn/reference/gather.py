"""NumPy twin of :mod:`fastnn._kernels.gather`."""

import numpy as np

from fastnn._kernels._checks import gather_labels_args, gather_rows_args

__all__ = ["gather_labels", "gather_rows"]


def gather_rows(X, idx, out):
    """out[i, :] = X[idx[i], :]; the arguments checked as the kernel's."""
    gather_rows_args(X, idx, out)
    np.take(X, idx, axis=0, out=out)


def gather_labels(y, idx, out):
    """out[i] = y[idx[i]]; the arguments checked as the kernel's."""
    gather_labels_args(y, idx, out)
    np.take(y, idx, out=out)

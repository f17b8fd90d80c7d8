"""NumPy twin of :mod:`fastnn._kernels.dropout`."""

import numpy as np

from fastnn._kernels._checks import dropout_args

__all__ = ["dropout_backward", "dropout_forward"]


def dropout_forward(X, U, p, Y):
    """Y = X * (U >= p) / (1 - p)."""
    p = dropout_args(X, U, p, Y)
    _apply(X, U, p, Y)


def _apply(X, U, p, Y):
    scale = X.dtype.type(1.0 / (1.0 - p))
    np.multiply(X * scale, U >= X.dtype.type(p), out=Y)


def dropout_backward(dY, U, p, dX):
    """dX = dY * (U >= p) / (1 - p)."""
    p = dropout_args(dY, U, p, dX, ("dY", "U", "dX"))
    _apply(dY, U, p, dX)

"""NumPy twin of :mod:`fastnn._kernels.dropout`."""

import numpy as np

from fastnn._validation import check_float

__all__ = ["dropout_backward", "dropout_forward"]


def dropout_forward(X, U, p, Y):
    """Y = X * (U >= p) / (1 - p)."""
    p = check_float("p", p, 0, 1, high_open=True)
    scale = X.dtype.type(1.0 / (1.0 - p))
    np.multiply(X * scale, U >= X.dtype.type(p), out=Y)


def dropout_backward(dY, U, p, dX):
    """dX = dY * (U >= p) / (1 - p)."""
    dropout_forward(dY, U, p, dX)

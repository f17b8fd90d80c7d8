"""Inverted dropout, given uniform random numbers drawn by the caller.

The caller fills ``U`` from a seeded ``numpy.random.Generator``
(``rng.random(out=U)``), so both backends drop the same units for one seed.
"""
from cython cimport floating

import numpy as np

from fastnn._kernels._checks import dropout_args

__all__ = ["dropout_backward", "dropout_forward"]


cdef void dropout_c(const floating* X, const floating* U, Py_ssize_t N, double p,
                    floating* Y) noexcept nogil:
    """Y = X * (U >= p) / (1 - p)."""
    cdef Py_ssize_t i
    cdef floating scale = <floating> (1.0 / (1.0 - p))
    cdef floating fp = <floating> p
    for i in range(N):
        Y[i] = X[i] * scale if U[i] >= fp else 0


def _apply(const floating[:, ::1] X, const floating[:, ::1] U, double p,
           floating[:, ::1] Y):
    cdef Py_ssize_t N = X.shape[0] * X.shape[1]
    if N == 0:
        return
    with nogil:
        dropout_c(&X[0, 0], &U[0, 0], N, p, &Y[0, 0])


def dropout_forward(X, U, p, Y):
    """Y = X * keep / (1 - p), keep = U >= p.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    U : ndarray of shape (n_samples, n_features), uniform in [0, 1), X's dtype
    p : float in [0, 1)
    Y : ndarray of shape (n_samples, n_features), written in place
    """
    p = dropout_args(X, U, p, Y)
    _apply(np.ascontiguousarray(X), np.ascontiguousarray(U), p, Y)


def dropout_backward(dY, U, p, dX):
    """dX = dY * keep / (1 - p), keep = U >= p."""
    p = dropout_args(dY, U, p, dX, ("dY", "U", "dX"))
    _apply(np.ascontiguousarray(dY), np.ascontiguousarray(U), p, dX)

"""NumPy twin of :mod:`fastnn._kernels.dense`."""

import numpy as np

from fastnn._kernels._checks import choice, dense_backward_args, dense_forward_args
from fastnn.reference.activations import (
    _ACTIVATIONS,
    NEEDS_INPUT,
    activation_backward,
    activation_forward,
)

__all__ = ["dense_forward", "dense_backward"]


def dense_forward(X, W, b, activation, alpha, Y, Z=None):
    """Y = f(X @ W.T + b); Z, if given, receives X @ W.T + b.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
    W : ndarray of shape (n_out, n_in)
    b : ndarray of shape (n_out,)
    activation : str
    alpha : float
    Y : ndarray of shape (n_samples, n_out), written in place.
    Z : ndarray of shape (n_samples, n_out) or None

    Raises as the kernel does (``fastnn._kernels._checks.dense_forward_args``).
    """
    choice("activation", activation, _ACTIVATIONS)
    dense_forward_args(X, W, b, Y, Z)
    pre = Y if Z is None else Z
    np.matmul(X, W.T, out=pre)
    pre += b
    activation_forward(pre, activation, alpha, Y)


def dense_backward(X, W, Z, Y, dY, activation, alpha, dX, dW, db):
    """dZ = dY * f'(Z) (into dY); dW = dZ.T @ X; db = dZ.sum(0); dX = dZ @ W.

    Raises as the kernel does (``fastnn._kernels._checks.dense_backward_args``).
    """
    choice("activation", activation, _ACTIVATIONS)
    needs = ("" if activation == "identity" else
             "Z" if activation in NEEDS_INPUT else "Y")
    dense_backward_args(X, W, Z, Y, dY, activation, needs, dX, dW, db)
    if activation != "identity":
        activation_backward(Z, Y, dY, activation, alpha, dY)
    if dW is not None:
        np.matmul(dY.T, X, out=dW)
    if db is not None:
        db[...] = dY.sum(axis=0, dtype=np.float64)
    if dX is not None:
        np.matmul(dY, W, out=dX)

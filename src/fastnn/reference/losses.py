"""NumPy twin of :mod:`fastnn._kernels.losses`.

Every loss takes raw outputs (logits) and uses mean reduction; it returns the
mean loss as a Python float (summed in float64) and, unless ``dY`` is None,
writes the gradient w.r.t. ``Y`` into ``dY`` in place (``dY`` may be ``Y``).
Elementwise work runs in the input dtype. The arguments are checked as the
kernels' (``fastnn._kernels._checks``); empty input returns NaN.
"""

import math

import numpy as np

from fastnn._kernels._checks import labels_loss_args, number, pointwise_loss_args

__all__ = [
    "binary_cross_entropy_forward_backward",
    "hinge_forward_backward",
    "huber_forward_backward",
    "mae_forward_backward",
    "mse_forward_backward",
    "softmax_cross_entropy_forward_backward",
]


def softmax_cross_entropy_forward_backward(Y, y, dY):
    """L = mean_i (logsumexp(Y_i) - Y_{i,y_i}); dY = (softmax(Y) - onehot(y)) / n.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
    y : ndarray of shape (n_samples,), integer labels in ``[0, n_classes)``
    dY : ndarray of shape (n_samples, n_classes) or None, written in place

    Returns
    -------
    loss : float
    """
    y = labels_loss_args(Y, y, dY)
    if Y.size == 0:
        return math.nan
    n = Y.shape[0]
    rows = np.arange(n)
    Z = Y - Y.max(axis=1, keepdims=True)  # z - max(z) <= 0
    E = np.exp(Z)
    s = E.sum(axis=1, dtype=np.float64)
    loss = float(np.sum(np.log(s) - Z[rows, y]) / n)
    if dY is not None:
        dY[...] = E / s[:, None]
        dY[rows, y] -= 1
        dY /= n
    return loss


def binary_cross_entropy_forward_backward(Y, T, dY):
    """L = mean(max(Y, 0) - Y T + log1p(exp(-|Y|))); dY = (sigmoid(Y) - T) / N.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out), logits
    T : ndarray of shape (n_samples, n_out), targets in ``[0, 1]``
    dY : ndarray of shape (n_samples, n_out) or None, written in place

    Returns
    -------
    loss : float
    """
    pointwise_loss_args(Y, T, dY)
    if Y.size == 0:
        return math.nan
    e = np.exp(-np.abs(Y))
    loss = float(np.sum(np.maximum(Y, 0) - Y * T + np.log1p(e), dtype=np.float64))
    loss /= Y.size
    if dY is not None:
        sigmoid = np.where(Y >= 0, 1, e) / (1 + e)
        dY[...] = (sigmoid - T) / Y.size
    return loss


def mse_forward_backward(Y, T, dY):
    """L = mean((Y - T)^2); dY = 2 (Y - T) / N.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
    T : ndarray of shape (n_samples, n_out)
    dY : ndarray of shape (n_samples, n_out) or None, written in place

    Returns
    -------
    loss : float
    """
    pointwise_loss_args(Y, T, dY)
    if Y.size == 0:
        return math.nan
    d = Y - T
    loss = float(np.sum(d * d, dtype=np.float64)) / d.size
    if dY is not None:
        dY[...] = d * (2 / d.size)
    return loss


def mae_forward_backward(Y, T, dY):
    """L = mean(|Y - T|); dY = sign(Y - T) / N, with sign(0) = 0.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
    T : ndarray of shape (n_samples, n_out)
    dY : ndarray of shape (n_samples, n_out) or None, written in place

    Returns
    -------
    loss : float
    """
    pointwise_loss_args(Y, T, dY)
    if Y.size == 0:
        return math.nan
    d = Y - T
    loss = float(np.sum(np.abs(d), dtype=np.float64)) / d.size
    if dY is not None:
        dY[...] = np.sign(d) / d.size
    return loss


def huber_forward_backward(Y, T, delta, dY):
    """L = mean(0.5 d^2 if |d| < delta else delta (|d| - delta/2)), d = Y - T;
    dY = clip(d, -delta, delta) / N.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
    T : ndarray of shape (n_samples, n_out)
    delta : float, ``> 0``
    dY : ndarray of shape (n_samples, n_out) or None, written in place

    Returns
    -------
    loss : float
    """
    delta = number("delta", delta, 0.0, np.inf, True)
    pointwise_loss_args(Y, T, dY)
    if Y.size == 0:
        return math.nan
    d = Y - T
    a = np.abs(d)
    per_element = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    loss = float(np.sum(per_element, dtype=np.float64)) / d.size
    if dY is not None:
        dY[...] = np.clip(d, -delta, delta) / d.size
    return loss


def hinge_forward_backward(Y, y, dY):
    """L = mean_i sum_{j != y_i} max(0, Y_ij - Y_{i,y_i} + 1), not divided by
    n_classes; dY_ij = [margin_ij > 0] / n for j != y_i, minus their count / n
    at y_i.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
    y : ndarray of shape (n_samples,), integer labels in ``[0, n_classes)``
    dY : ndarray of shape (n_samples, n_classes) or None, written in place

    Returns
    -------
    loss : float
    """
    y = labels_loss_args(Y, y, dY)
    if Y.size == 0:
        return math.nan
    n = Y.shape[0]
    rows = np.arange(n)
    margin = (1 - Y[rows, y])[:, None] + Y  # torch's order, in Y's dtype
    margin[rows, y] = 0
    active = margin > 0
    loss = float(np.sum(margin, where=active, dtype=np.float64)) / n
    if dY is not None:
        dY[...] = active
        dY[rows, y] = -active.sum(axis=1)
        dY /= n
    return loss

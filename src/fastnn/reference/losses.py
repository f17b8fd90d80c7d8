"""NumPy twin of :mod:`fastnn._kernels.losses`.

Each function returns the mean loss and, unless ``dY`` is None, writes its
gradient w.r.t. the raw outputs ``Y`` into ``dY``.
"""

import numpy as np

__all__ = [
    "binary_cross_entropy_forward_backward",
    "hinge_forward_backward",
    "huber_forward_backward",
    "mae_forward_backward",
    "mse_forward_backward",
    "softmax_cross_entropy_forward_backward",
]


def softmax_cross_entropy_forward_backward(Y, y, dY):
    """mean_i(logsumexp(Y_i) - Y_i[y_i]); dY = (softmax(Y) - onehot(y)) / n."""
    n = Y.shape[0]
    rows = np.arange(n)
    shifted = Y.astype(np.float64) - Y.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1)
    loss = float(np.sum(np.log(s) - shifted[rows, y]) / n)
    if dY is not None:
        p = e / s[:, None]
        p[rows, y] -= 1.0
        dY[...] = p / n
    return loss


def hinge_forward_backward(Y, y, dY):
    """mean_i sum_{k != y_i} max(0, Y_ik - Y_iy_i + 1); margin 0 is inactive."""
    n = Y.shape[0]
    rows = np.arange(n)
    Y64 = Y.astype(np.float64)
    margins = Y64 - Y64[rows, y][:, None] + 1.0
    margins[rows, y] = 0.0
    active = margins > 0
    loss = float(np.sum(margins[active]) / n)
    if dY is not None:
        g = active.astype(np.float64)
        g[rows, y] = -active.sum(axis=1)
        dY[...] = g / n
    return loss


def mse_forward_backward(Y, T, dY):
    """mean((Y - T)^2); dY = 2 (Y - T) / N."""
    d = Y.astype(np.float64) - T
    if dY is not None:
        dY[...] = 2.0 * d / d.size
    return float(np.sum(d * d) / d.size)


def mae_forward_backward(Y, T, dY):
    """mean|Y - T|; dY = sign(Y - T) / N."""
    d = Y.astype(np.float64) - T
    if dY is not None:
        dY[...] = np.sign(d) / d.size
    return float(np.sum(np.abs(d)) / d.size)


def huber_forward_backward(Y, T, delta, dY):
    """mean(0.5 d^2 if |d| < delta else delta (|d| - delta / 2)), d = Y - T."""
    d = Y.astype(np.float64) - T
    small = np.abs(d) < delta
    loss = np.where(small, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))
    if dY is not None:
        dY[...] = np.where(small, d, delta * np.sign(d)) / d.size
    return float(np.sum(loss) / d.size)


def binary_cross_entropy_forward_backward(Y, T, dY):
    """mean(max(x, 0) - x t + log1p(exp(-|x|))); dY = (sigmoid(x) - t) / N."""
    x = Y.astype(np.float64)
    e = np.exp(-np.abs(x))
    loss = np.maximum(x, 0) - x * T + np.log1p(e)
    if dY is not None:
        sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        dY[...] = (sig - T) / x.size
    return float(np.sum(loss) / x.size)

"""Loss kernels: the mean loss and its gradient in one fused pass.

Every loss takes raw outputs (logits) and uses mean reduction. Each kernel
returns the loss (accumulated in double) and, unless ``dY`` is None, writes
the gradient of that mean loss w.r.t. ``Y`` into ``dY``.
Precondition for all: at least one row; shapes agree; labels in range.
"""
from cython cimport floating
from libc.math cimport exp, fabs, log, log1p

import numpy as np

__all__ = [
    "binary_cross_entropy_forward_backward",
    "hinge_forward_backward",
    "huber_forward_backward",
    "mae_forward_backward",
    "mse_forward_backward",
    "softmax_cross_entropy_forward_backward",
]


cdef double softmax_ce_c(const floating* Y, const long long* y, Py_ssize_t n,
                         Py_ssize_t k, floating* dY) noexcept nogil:
    """sum_i (logsumexp(Y_i) - Y_i[y_i]) / n; dY = (softmax(Y) - onehot) / n."""
    cdef Py_ssize_t i, j
    cdef double total = 0.0, m, s, inv_n = 1.0 / n, e
    cdef const floating* row
    cdef floating* grow
    for i in range(n):
        row = Y + i * k
        m = row[0]
        for j in range(1, k):
            if row[j] > m:
                m = row[j]
        s = 0.0
        if dY != NULL:
            grow = dY + i * k
            for j in range(k):
                e = exp(row[j] - m)
                grow[j] = <floating> e
                s += e
        else:
            for j in range(k):
                s += exp(row[j] - m)
        total += log(s) + m - row[y[i]]
        if dY != NULL:
            s = inv_n / s
            for j in range(k):
                grow[j] = <floating> (grow[j] * s)
            grow[y[i]] = <floating> (grow[y[i]] - inv_n)
    return total * inv_n


cdef double bce_c(const floating* Y, const floating* T, Py_ssize_t N,
                  floating* dY) noexcept nogil:
    """mean(max(x, 0) - x t + log1p(exp(-|x|))); dY = (sigmoid(x) - t) / N."""
    cdef Py_ssize_t i
    cdef double total = 0.0, x, t, e, inv = 1.0 / N, sig
    for i in range(N):
        x = Y[i]
        t = T[i]
        e = exp(-fabs(x))
        total += (x if x > 0 else 0.0) - x * t + log1p(e)
        if dY != NULL:
            sig = 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)
            dY[i] = <floating> ((sig - t) * inv)
    return total * inv


cdef double mse_c(const floating* Y, const floating* T, Py_ssize_t N,
                  floating* dY) noexcept nogil:
    """mean((y - t)^2); dY = 2 (y - t) / N."""
    cdef Py_ssize_t i
    cdef double total = 0.0, d, scale = 2.0 / N
    for i in range(N):
        d = <double> Y[i] - <double> T[i]
        total += d * d
        if dY != NULL:
            dY[i] = <floating> (d * scale)
    return total / N


cdef double mae_c(const floating* Y, const floating* T, Py_ssize_t N,
                  floating* dY) noexcept nogil:
    """mean|y - t|; dY = sign(y - t) / N (0 at 0)."""
    cdef Py_ssize_t i
    cdef double total = 0.0, d, inv = 1.0 / N
    for i in range(N):
        d = <double> Y[i] - <double> T[i]
        total += fabs(d)
        if dY != NULL:
            dY[i] = <floating> (inv if d > 0 else (-inv if d < 0 else 0.0))
    return total * inv


cdef double huber_c(const floating* Y, const floating* T, Py_ssize_t N,
                    double delta, floating* dY) noexcept nogil:
    """mean(0.5 d^2 if |d| < delta else delta (|d| - delta/2)); dY / N."""
    cdef Py_ssize_t i
    cdef double total = 0.0, d, ad, inv = 1.0 / N
    for i in range(N):
        d = <double> Y[i] - <double> T[i]
        ad = fabs(d)
        if ad < delta:
            total += 0.5 * d * d
            if dY != NULL:
                dY[i] = <floating> (d * inv)
        else:
            total += delta * (ad - 0.5 * delta)
            if dY != NULL:
                dY[i] = <floating> ((delta if d > 0 else -delta) * inv)
    return total * inv


cdef double hinge_c(const floating* Y, const long long* y, Py_ssize_t n,
                    Py_ssize_t k, floating* dY) noexcept nogil:
    """mean_i sum_{j != y_i} max(0, Y_ij - Y_iy_i + 1); subgradient / n."""
    cdef Py_ssize_t i, j, c
    cdef double total = 0.0, margin, inv = 1.0 / n, correct
    cdef const floating* row
    cdef int active
    for i in range(n):
        row = Y + i * k
        c = y[i]
        correct = row[c]
        active = 0
        for j in range(k):
            if j == c:
                if dY != NULL:
                    dY[i * k + j] = 0
                continue
            margin = row[j] - correct + 1.0
            if margin > 0:
                total += margin
                active += 1
                if dY != NULL:
                    dY[i * k + j] = <floating> inv
            elif dY != NULL:
                dY[i * k + j] = 0
        if dY != NULL:
            dY[i * k + c] = <floating> (-active * inv)
    return total * inv


cdef inline floating* _out_ptr(floating[:, ::1] dY) noexcept nogil:
    if dY is None or dY.shape[0] == 0 or dY.shape[1] == 0:
        return NULL
    return &dY[0, 0]


def _labels_loss(const floating[:, ::1] Y, const long long[::1] y,
                 floating[:, ::1] dY, int kind):
    cdef Py_ssize_t n = Y.shape[0], k = Y.shape[1]
    cdef floating* out = _out_ptr(dY)
    cdef double loss
    with nogil:
        if kind == 0:
            loss = softmax_ce_c(&Y[0, 0], &y[0], n, k, out)
        else:
            loss = hinge_c(&Y[0, 0], &y[0], n, k, out)
    return loss


def _values_loss(const floating[:, ::1] Y, const floating[:, ::1] T,
                 floating[:, ::1] dY, int kind, double delta):
    cdef Py_ssize_t N = Y.shape[0] * Y.shape[1]
    cdef floating* out = _out_ptr(dY)
    cdef double loss
    with nogil:
        if kind == 0:
            loss = mse_c(&Y[0, 0], &T[0, 0], N, out)
        elif kind == 1:
            loss = mae_c(&Y[0, 0], &T[0, 0], N, out)
        elif kind == 2:
            loss = huber_c(&Y[0, 0], &T[0, 0], N, delta, out)
        else:
            loss = bce_c(&Y[0, 0], &T[0, 0], N, out)
    return loss


def _dispatch_labels(Y, y, dY, int kind):
    Y = np.ascontiguousarray(Y)
    y = np.ascontiguousarray(y, dtype=np.int64)
    if Y.dtype == np.float32:
        return _labels_loss["float"](Y, y, dY, kind)
    return _labels_loss["double"](Y, y, dY, kind)


def _dispatch_values(Y, T, dY, int kind, double delta=0.0):
    Y = np.ascontiguousarray(Y)
    T = np.ascontiguousarray(T, dtype=Y.dtype)
    if Y.dtype == np.float32:
        return _values_loss["float"](Y, T, dY, kind, delta)
    return _values_loss["double"](Y, T, dY, kind, delta)


def softmax_cross_entropy_forward_backward(Y, y, dY):
    """mean_i(logsumexp(Y_i) - Y_i[y_i]); dY = (softmax(Y) - onehot(y)) / n.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
        Logits (float32 or float64).
    y : ndarray of shape (n_samples,)
        Integer labels in ``[0, n_classes)``.
    dY : ndarray of shape (n_samples, n_classes) or None
        The gradient, written in place (same dtype as Y).

    Returns
    -------
    float
        The mean loss.
    """
    return _dispatch_labels(Y, y, dY, 0)


def hinge_forward_backward(Y, y, dY):
    """mean_i sum_{k != y_i} max(0, Y_ik - Y_iy_i + 1), not divided by k.

    The subgradient counts a margin of exactly 0 as inactive. Parameters as
    for :func:`softmax_cross_entropy_forward_backward`.
    """
    return _dispatch_labels(Y, y, dY, 1)


def mse_forward_backward(Y, T, dY):
    """mean((Y - T)^2) over all elements; dY = 2 (Y - T) / N.

    Parameters
    ----------
    Y, T : ndarray of shape (n_samples, n_outputs)
    dY : ndarray of shape (n_samples, n_outputs) or None
    """
    return _dispatch_values(Y, T, dY, 0)


def mae_forward_backward(Y, T, dY):
    """mean|Y - T| over all elements; dY = sign(Y - T) / N (0 at 0)."""
    return _dispatch_values(Y, T, dY, 1)


def huber_forward_backward(Y, T, delta, dY):
    """mean(0.5 d^2 if |d| < delta else delta (|d| - delta / 2)), d = Y - T."""
    return _dispatch_values(Y, T, dY, 2, delta)


def binary_cross_entropy_forward_backward(Y, T, dY):
    """mean(max(x, 0) - x t + log(1 + exp(-|x|))) on logits x = Y, targets T;
    dY = (sigmoid(Y) - T) / N."""
    return _dispatch_values(Y, T, dY, 3)

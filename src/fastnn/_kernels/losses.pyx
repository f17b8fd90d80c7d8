"""Loss kernels: the mean loss and its gradient w.r.t. the logits, fused.

Every loss takes the raw outputs ``Y`` of the last layer (logits, no link
applied) and uses mean reduction, as torch's losses with ``reduction="mean"``.
Each kernel makes one pass over its input (per row for the classification
losses), accumulates the loss in double and, unless ``dY`` is None, writes
``dL/dY`` into the preallocated ``dY`` in the same pass. ``dY`` may be the same
array as ``Y`` (the logits are then overwritten with their gradient).

Each wrapper checks its arrays (``fastnn._kernels._checks``): ``Y`` (and
``T``) 2-D float32/float64 of shape ``(n_samples, n_out)``; ``T`` and ``dY``
of the shape and dtype of ``Y``; ``dY`` C-contiguous and writable; one integer
label per row, in ``[0, n_out)``; ``delta > 0``. Finite values are the caller's
business (the public API checks them). Empty input does not crash: the loss is
NaN.
"""
from cython cimport floating
from libc.math cimport INFINITY, NAN, exp, fabs, log, log1p
from libc.stdint cimport int64_t

from fastnn._kernels.vecmath cimport (
    row_max, row_sum, row_sum_exp, vabs, vexp, vlog1p,
)

from fastnn._kernels._checks cimport is_float32, number

import numpy as np

from fastnn._kernels._checks import labels_loss_args, pointwise_loss_args

__all__ = [
    "binary_cross_entropy_forward_backward",
    "hinge_forward_backward",
    "huber_forward_backward",
    "mae_forward_backward",
    "mse_forward_backward",
    "softmax_cross_entropy_forward_backward",
]

cdef inline floating* _ptr(floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


cdef inline const floating* _cptr(const floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


# --------------------------------------------------------------------------
cdef enum:
    # Elements per chunk of the binary cross-entropy loop (a stack buffer).
    BCE_CHUNK = 512


cdef inline floating _flush(floating g) noexcept nogil:
    """0 for a float32 gradient entry below 2^-100 in magnitude, else g.

    Confident predictions give probabilities down to 1e-38; divided by the
    batch size, or multiplied by a weight in the next GEMM, they become
    subnormal, and each subnormal product costs the CPU a microcode assist
    (epochs of the "wide" benchmark ran 5x slower). An entry below 2^-100 is
    over 1e-20 below the float32 resolution of any sum it joins.
    """
    if floating is float:
        return g if vabs(g) >= <float> 7.8886091e-31 else 0
    else:
        return g


# Kernels (raw pointers, no GIL). dY == NULL: the loss only.

cdef inline void _bce_chunk(const floating* Y, const floating* T, Py_ssize_t m,
                            floating inv_size, floating* terms,
                            floating* dY) noexcept nogil:
    """terms[i] = max(x, 0) - x t + log1p(exp(-|x|)) and, unless dY is NULL,
    dY[i] = (sigmoid(x) - t) / size, in the arrays' dtype: a loop of its own,
    which vectorizes with vecmath's exp and log1p."""
    cdef Py_ssize_t i
    cdef floating x, t, e, one = 1
    if dY == NULL:
        for i in range(m):
            x = Y[i]
            e = vexp(-vabs(x))
            terms[i] = (x if x > 0 else 0) - x * T[i] + vlog1p(e)
    else:
        for i in range(m):
            x = Y[i]
            t = T[i]
            e = vexp(-vabs(x))
            terms[i] = (x if x > 0 else 0) - x * t + vlog1p(e)
            dY[i] = _flush(((one if x >= 0 else e) / (one + e) - t) * inv_size)


cdef double softmax_cross_entropy_c(const floating* Y, const int64_t* y,
                                    Py_ssize_t n, Py_ssize_t k,
                                    floating* dY) noexcept nogil:
    """L = mean_i (m_i - z_{i,y_i} + log sum_j exp(z_ij - m_i)), m_i = max_j z_ij;
    dY_ij = (softmax(z_i)_j - [j == y_i]) / n."""
    cdef Py_ssize_t i, j
    cdef const floating* z
    cdef floating* g
    cdef floating mf
    cdef double m, s, e, zy, total = 0.0, inv_n
    if n == 0 or k == 0:
        return NAN
    inv_n = 1.0 / n
    for i in range(n):
        z = Y + i * k
        zy = z[y[i]]  # read before dY (which may alias Y) is written
        mf = row_max(z, k)
        m = mf
        if dY == NULL:
            s = row_sum_exp(z, mf, k)
        else:
            g = dY + i * k
            # g = exp(z - m), s = sum(g): two passes, so that the first
            # vectorizes (a float sum is not reordered by the compiler)
            for j in range(k):
                g[j] = vexp(z[j] - mf)
            s = row_sum(g, k)
            # g = (softmax(z) - onehot(y)) / n
            e = inv_n / s
            for j in range(k):
                g[j] = _flush(<floating> (g[j] * e))
            g[y[i]] = <floating> ((exp(zy - m) / s - 1.0) * inv_n)
        total += (m - zy) + log(s)
    return total / n


cdef double hinge_c(const floating* Y, const int64_t* y, Py_ssize_t n,
                    Py_ssize_t k, floating* dY) noexcept nogil:
    """L = mean_i sum_{j != y_i} max(0, 1 - s_{i,y_i} + s_ij);
    dY_ij = [margin_ij > 0] / n for j != y_i, -(count of those) / n at y_i."""
    cdef Py_ssize_t i, j, yi, active
    cdef const floating* s
    cdef floating base, margin
    cdef double total = 0.0, inv_n
    if n == 0 or k == 0:
        return NAN
    inv_n = 1.0 / n
    for i in range(n):
        s = Y + i * k
        yi = y[i]
        # Margins in the input dtype and torch's order, (1 - s_y) + s_j.
        base = 1 - s[yi]
        active = 0
        for j in range(k):
            if j == yi:
                continue
            margin = base + s[j]
            if margin > 0:
                total += margin
                active += 1
                if dY != NULL:
                    dY[i * k + j] = <floating> inv_n
            elif dY != NULL:
                dY[i * k + j] = 0
        if dY != NULL:
            dY[i * k + yi] = <floating> (-active * inv_n)
    return total / n


cdef double pointwise_c(const floating* Y, const floating* T, Py_ssize_t size,
                        int loss, double delta, floating* dY) noexcept nogil:
    """L = mean_i l(Y_i, T_i) over all ``size`` elements; dY_i = l'(Y_i, T_i) / size.

    ``loss`` is a ``LOSS_*`` code; ``delta`` is Huber's threshold.
    """
    cdef Py_ssize_t i, c0, m
    cdef double x, t, d, a, e, total = 0.0, inv_size
    cdef floating terms[BCE_CHUNK]
    if size == 0:
        return NAN
    inv_size = 1.0 / size
    if loss == LOSS_BCE:
        # max(x, 0) - x t + log1p(exp(-|x|)); sigmoid(x) from the same exp.
        # In chunks: the terms go to a small buffer in a loop that vectorizes
        # (vecmath's exp and log1p for float; no double in it), then are summed
        # in double.
        c0 = 0
        while c0 < size:
            m = BCE_CHUNK if size - c0 > BCE_CHUNK else size - c0
            if dY != NULL:
                _bce_chunk(Y + c0, T + c0, m, <floating> inv_size, terms, dY + c0)
            else:
                _bce_chunk(Y + c0, T + c0, m, <floating> inv_size, terms, NULL)
            total += row_sum(terms, m)
            c0 += m
    elif loss == LOSS_MSE:
        # d^2; 2 d
        for i in range(size):
            d = <double> Y[i] - <double> T[i]
            total += d * d
            if dY != NULL:
                dY[i] = <floating> (2.0 * d * inv_size)
    elif loss == LOSS_MAE:
        # |d|; sign(d), 0 at 0
        for i in range(size):
            d = <double> Y[i] - <double> T[i]
            total += fabs(d)
            if dY != NULL:
                dY[i] = <floating> (((d > 0) - (d < 0)) * inv_size)
    elif loss == LOSS_HUBER:
        # 0.5 d^2 if |d| < delta else delta (|d| - delta / 2); clip(d, -delta, delta)
        for i in range(size):
            d = <double> Y[i] - <double> T[i]
            a = fabs(d)
            if a < delta:
                total += 0.5 * d * d
            else:
                total += delta * (a - 0.5 * delta)
            if dY != NULL:
                if d > delta:
                    d = delta
                elif d < -delta:
                    d = -delta
                dY[i] = <floating> (d * inv_size)
    return total / size


# --------------------------------------------------------------------------
# Typed glue: views from the Python arguments, then the kernel without the GIL.

cdef double _labels_loss(const floating[:, ::1] Yv, object y, object dY,
                         bint hinge) except? -1:
    cdef const int64_t[::1] yv = y
    cdef floating[:, ::1] dYv
    cdef floating* g = NULL
    cdef const int64_t* yp = &yv[0] if yv.shape[0] > 0 else NULL
    cdef Py_ssize_t n = Yv.shape[0], k = Yv.shape[1]
    cdef double loss
    if dY is not None:
        dYv = dY
        g = _ptr(dYv)
    with nogil:
        if hinge:
            loss = hinge_c(_cptr(Yv), yp, n, k, g)
        else:
            loss = softmax_cross_entropy_c(_cptr(Yv), yp, n, k, g)
    return loss


cdef double _pointwise_loss(const floating[:, ::1] Yv, object T, object dY,
                            int code, double delta) except? -1:
    cdef const floating[:, ::1] Tv = np.ascontiguousarray(T)
    cdef floating[:, ::1] dYv
    cdef floating* g = NULL
    cdef double loss
    if dY is not None:
        dYv = dY
        g = _ptr(dYv)
    with nogil:
        loss = pointwise_c(_cptr(Yv), _cptr(Tv), Yv.shape[0] * Yv.shape[1], code,
                           delta, g)
    return loss


cdef object _labels(object Y, object y, object dY, bint hinge):
    # Dispatch on Y's dtype: dY may be None, so it cannot select the fused type.
    y = labels_loss_args(Y, y, dY)
    Y = np.ascontiguousarray(Y)
    if is_float32(Y):
        return _labels_loss[float](Y, y, dY, hinge)
    return _labels_loss[double](Y, y, dY, hinge)


cdef object _pointwise(object Y, object T, object dY, int code, double delta):
    pointwise_loss_args(Y, T, dY)
    Y = np.ascontiguousarray(Y)
    if is_float32(Y):
        return _pointwise_loss[float](Y, T, dY, code, delta)
    return _pointwise_loss[double](Y, T, dY, code, delta)


# --------------------------------------------------------------------------
# Public kernels

def softmax_cross_entropy_forward_backward(Y, y, dY):
    """L = mean_i (logsumexp(Y_i) - Y_{i,y_i}); dY = (softmax(Y) - onehot(y)) / n.

    torch's ``CrossEntropyLoss()`` (mean reduction) on logits. Each row is
    shifted by its maximum before exponentiating, and the softmax, the loss
    and the gradient come from one pass of exponentials per row.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
        Logits, float32 or float64; copied to C order if it is not.
    y : ndarray of shape (n_samples,)
        Integer class labels in ``[0, n_classes)``; converted to int64.
    dY : ndarray of shape (n_samples, n_classes) or None
        Receives ``dL/dY``, written in place (it may be ``Y`` itself); None
        computes the loss only.

    Returns
    -------
    loss : float
        The mean loss, accumulated in double.

    Raises
    ------
    TypeError
        If an array is None (dY may be) or not float32/float64 of Y's dtype,
        or the labels are not integers.
    ValueError
        If the shapes do not agree, dY is not C-contiguous and writable,
        or there is not one label per row in ``[0, n_classes)``.
        Empty input is allowed: the loss is NaN.
    """
    return _labels(Y, y, dY, False)


def binary_cross_entropy_forward_backward(Y, T, dY):
    """L = mean(max(Y, 0) - Y T + log1p(exp(-|Y|))); dY = (sigmoid(Y) - T) / N.

    torch's ``BCEWithLogitsLoss()`` (mean reduction), in its stable form; the
    mean runs over all ``N = n_samples * n_out`` elements.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
        Logits, float32 or float64; copied to C order if it is not.
    T : ndarray of shape (n_samples, n_out)
        Targets in ``[0, 1]`` (labels or probabilities), Y's dtype.
    dY : ndarray of shape (n_samples, n_out) or None
        Receives ``dL/dY``, written in place (it may be ``Y`` itself); None
        computes the loss only.

    Returns
    -------
    loss : float
        The mean loss, accumulated in double.

    Raises
    ------
    TypeError
        If an array is None (dY may be) or not float32/float64 of Y's dtype.
    ValueError
        If the shapes do not agree, dY is not C-contiguous and writable.
        Empty input is allowed: the loss is NaN.
    """
    return _pointwise(Y, T, dY, LOSS_BCE, 0.0)


def mse_forward_backward(Y, T, dY):
    """L = mean((Y - T)^2); dY = 2 (Y - T) / N.

    torch's ``MSELoss()``; the mean runs over all ``N = n_samples * n_out``
    elements.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
        Predictions, float32 or float64; copied to C order if it is not.
    T : ndarray of shape (n_samples, n_out)
        Targets, Y's dtype.
    dY : ndarray of shape (n_samples, n_out) or None
        Receives ``dL/dY``, written in place (it may be ``Y`` itself); None
        computes the loss only.

    Returns
    -------
    loss : float
        The mean loss, accumulated in double.

    Raises
    ------
    TypeError
        If an array is None (dY may be) or not float32/float64 of Y's dtype.
    ValueError
        If the shapes do not agree, dY is not C-contiguous and writable.
        Empty input is allowed: the loss is NaN.
    """
    return _pointwise(Y, T, dY, LOSS_MSE, 0.0)


def mae_forward_backward(Y, T, dY):
    """L = mean(|Y - T|); dY = sign(Y - T) / N, with sign(0) = 0.

    torch's ``L1Loss()``; the mean runs over all ``N = n_samples * n_out``
    elements.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
        Predictions, float32 or float64; copied to C order if it is not.
    T : ndarray of shape (n_samples, n_out)
        Targets, Y's dtype.
    dY : ndarray of shape (n_samples, n_out) or None
        Receives ``dL/dY``, written in place (it may be ``Y`` itself); None
        computes the loss only.

    Returns
    -------
    loss : float
        The mean loss, accumulated in double.

    Raises
    ------
    TypeError
        If an array is None (dY may be) or not float32/float64 of Y's dtype.
    ValueError
        If the shapes do not agree, dY is not C-contiguous and writable.
        Empty input is allowed: the loss is NaN.
    """
    return _pointwise(Y, T, dY, LOSS_MAE, 0.0)


def huber_forward_backward(Y, T, delta, dY):
    """L = mean(0.5 d^2 if |d| < delta else delta (|d| - delta/2)), d = Y - T;
    dY = clip(d, -delta, delta) / N.

    torch's ``HuberLoss(delta=delta)``; the mean runs over all
    ``N = n_samples * n_out`` elements. At ``|d| == delta`` both branches give
    the same value and gradient (torch's backward uses ``d`` there).

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_out)
        Predictions, float32 or float64; copied to C order if it is not.
    T : ndarray of shape (n_samples, n_out)
        Targets, Y's dtype.
    delta : float
        The threshold between the quadratic and the linear part, ``> 0``.
    dY : ndarray of shape (n_samples, n_out) or None
        Receives ``dL/dY``, written in place (it may be ``Y`` itself); None
        computes the loss only.

    Returns
    -------
    loss : float
        The mean loss, accumulated in double.

    Raises
    ------
    TypeError
        If an array is None (dY may be) or not float32/float64 of Y's dtype.
    ValueError
        If the shapes do not agree, dY is not C-contiguous and writable, or ``delta`` is
        not > 0.
        Empty input is allowed: the loss is NaN.
    """
    return _pointwise(Y, T, dY, LOSS_HUBER,
                      number("delta", delta, 0.0, INFINITY, True))


def hinge_forward_backward(Y, y, dY):
    """L = mean_i sum_{j != y_i} max(0, Y_ij - Y_{i,y_i} + 1).

    The multiclass SVM (Weston-Watkins) loss, averaged over samples and NOT
    divided by the number of classes: ``n_classes`` times torch's
    ``MultiMarginLoss()``. The gradient is ``1/n`` at every ``j != y_i`` whose
    margin is positive (a margin of exactly 0 is inactive, as in torch) and
    ``-(number of those)/n`` at ``y_i``. Margins are computed in Y's dtype in
    torch's order, ``(1 - Y_{i,y_i}) + Y_ij``.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
        Scores, float32 or float64; copied to C order if it is not.
    y : ndarray of shape (n_samples,)
        Integer class labels in ``[0, n_classes)``; converted to int64.
    dY : ndarray of shape (n_samples, n_classes) or None
        Receives ``dL/dY``, written in place (it may be ``Y`` itself); None
        computes the loss only.

    Returns
    -------
    loss : float
        The mean loss, accumulated in double.

    Raises
    ------
    TypeError
        If an array is None (dY may be) or not float32/float64 of Y's dtype,
        or the labels are not integers.
    ValueError
        If the shapes do not agree, dY is not C-contiguous and writable,
        or there is not one label per row in ``[0, n_classes)``.
        Empty input is allowed: the loss is NaN.
    """
    return _labels(Y, y, dY, True)

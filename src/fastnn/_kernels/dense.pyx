"""Dense layer kernels: ``Y = f(X @ W.T + b)`` and its backward pass.

The GEMMs go through BLAS; the bias, the activation and its derivative are
fused into single passes over the GEMM output.
"""
from cython cimport floating
from libc.stdlib cimport malloc, free

from fastnn._kernels._blas cimport gemm
from fastnn._kernels.activations cimport (
    act_backward, act_needs_input, bias_act_forward,
)
from fastnn._kernels.activations import ACTIVATION_CODES

import numpy as np

__all__ = ["dense_forward", "dense_backward"]


cdef inline floating* _ptr(floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


cdef inline const floating* _cptr(const floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


cdef void column_sums(const floating* A, Py_ssize_t rows, Py_ssize_t cols,
                      floating* out) noexcept nogil:
    """out[j] = sum_i A[i, j], accumulated in double."""
    cdef Py_ssize_t i, j
    cdef double* acc = <double*> malloc(max(cols, 1) * sizeof(double))
    if acc == NULL:
        return
    for j in range(cols):
        acc[j] = 0.0
    for i in range(rows):
        for j in range(cols):
            acc[j] += A[i * cols + j]
    for j in range(cols):
        out[j] = <floating> acc[j]
    free(acc)


cdef void dense_forward_c(const floating* X, const floating* W,
                          const floating* b, Py_ssize_t n, Py_ssize_t n_in,
                          Py_ssize_t n_out, int act, double alpha,
                          floating* Y, floating* Z) noexcept nogil:
    """Z = X @ W.T + b; Y = f(Z). Z may be Y, then only Y is kept."""
    # Z = X @ W.T
    gemm(False, True, <int> n, <int> n_out, <int> n_in, <floating> 1.0,
         X, <int> n_in, W, <int> n_in, <floating> 0.0, Z, <int> n_out)
    # Z += b; Y = f(Z)
    bias_act_forward(Z, b, n, n_out, act, alpha, Y)


cdef void dense_backward_c(const floating* X, const floating* W,
                           const floating* Z, const floating* Y,
                           floating* dY, Py_ssize_t n, Py_ssize_t n_in,
                           Py_ssize_t n_out, int act, double alpha,
                           floating* dX, floating* dW,
                           floating* db) noexcept nogil:
    """dZ = dY * f'(Z) (in dY); dW = dZ.T @ X; db = sum(dZ, 0); dX = dZ @ W."""
    if act != 0:
        act_backward(Z, Y, dY, n * n_out, act, alpha, dY)
    if dW != NULL:
        # dW = dZ.T @ X
        gemm(True, False, <int> n_out, <int> n_in, <int> n, <floating> 1.0,
             dY, <int> n_out, X, <int> n_in, <floating> 0.0, dW, <int> n_in)
    if db != NULL:
        column_sums(dY, n, n_out, db)
    if dX != NULL:
        # dX = dZ @ W
        gemm(False, False, <int> n, <int> n_in, <int> n_out, <floating> 1.0,
             dY, <int> n_out, W, <int> n_in, <floating> 0.0, dX, <int> n_in)


def dense_forward(X, const floating[:, ::1] W, const floating[::1] b,
                  str activation, double alpha, floating[:, ::1] Y, Z=None):
    """Y = f(X @ W.T + b), with the bias and activation fused after the GEMM.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
        Copied to C order first if it is not.
    W : ndarray of shape (n_out, n_in)
    b : ndarray of shape (n_out,)
    activation : str
        A canonical activation name (``"identity"`` for none).
    alpha : float
        The activation's parameter (leaky_relu slope, elu alpha).
    Y : ndarray of shape (n_samples, n_out)
        Output, written in place.
    Z : ndarray of shape (n_samples, n_out) or None
        If given, receives the pre-activation ``X @ W.T + b``.

    Preconditions: shapes agree and all arrays share one dtype; the public API
    validates this.
    """
    cdef const floating[:, ::1] Xv = np.ascontiguousarray(X)
    cdef floating[:, ::1] Zv = Y if Z is None else Z
    cdef int act = ACTIVATION_CODES[activation]
    cdef Py_ssize_t n = Xv.shape[0], n_in = Xv.shape[1], n_out = W.shape[0]
    with nogil:
        dense_forward_c(_cptr(Xv), _cptr(W), &b[0] if n_out else NULL, n, n_in,
                        n_out, act, alpha, _ptr(Y), _ptr(Zv))


def dense_backward(X, const floating[:, ::1] W, Z, Y, floating[:, ::1] dY,
                   str activation, double alpha, dX, dW, db):
    """dZ = dY * f'(Z); dW = dZ.T @ X; db = dZ.sum(0); dX = dZ @ W.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
        The layer input of the forward pass.
    W : ndarray of shape (n_out, n_in)
    Z : ndarray of shape (n_samples, n_out) or None
        The pre-activation; needed only for gelu, gelu_tanh, silu, softplus.
    Y : ndarray of shape (n_samples, n_out) or None
        The forward output ``f(Z)``; needed for every other activation.
    dY : ndarray of shape (n_samples, n_out)
        Gradient of the loss w.r.t. ``Y``; overwritten with ``dZ``.
    activation : str
    alpha : float
    dX : ndarray of shape (n_samples, n_in) or None
        Written in place unless None (the first layer needs no dX).
    dW : ndarray of shape (n_out, n_in) or None
    db : ndarray of shape (n_out,) or None

    Raises
    ------
    ValueError
        If the activation needs ``Z`` (or ``Y``) and it is None.
    """
    cdef const floating[:, ::1] Xv = np.ascontiguousarray(X)
    cdef int act = ACTIVATION_CODES[activation]
    cdef const floating[:, ::1] Zv
    cdef const floating[:, ::1] Yv
    cdef floating[:, ::1] dXv
    cdef floating[:, ::1] dWv
    cdef floating[::1] dbv
    cdef const floating* zp = NULL
    cdef const floating* yp = NULL
    cdef floating* dxp = NULL
    cdef floating* dwp = NULL
    cdef floating* dbp = NULL
    cdef Py_ssize_t n = dY.shape[0], n_in = W.shape[1], n_out = W.shape[0]
    if act != 0:
        if act_needs_input(act):
            if Z is None:
                raise ValueError(f"dense_backward: activation {activation!r} needs Z")
            Zv = Z
            zp = _cptr(Zv)
        else:
            if Y is None:
                raise ValueError(f"dense_backward: activation {activation!r} needs Y")
            Yv = Y
            yp = _cptr(Yv)
    if dX is not None:
        dXv = dX
        dxp = _ptr(dXv)
    if dW is not None:
        dWv = dW
        dwp = _ptr(dWv)
    if db is not None:
        dbv = db
        dbp = &dbv[0] if n_out else NULL
    with nogil:
        dense_backward_c(_cptr(Xv), _cptr(W), zp, yp, _ptr(dY), n, n_in, n_out,
                         act, alpha, dxp, dwp, dbp)

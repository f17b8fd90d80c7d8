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
from fastnn._kernels.activations import ACTIVATION_CODES, NEEDS_INPUT
from fastnn._kernels._checks cimport choice, is_float32
from fastnn._kernels._checks import dense_backward_args, dense_forward_args

import numpy as np

__all__ = ["dense_forward", "dense_backward"]


cdef inline floating* _ptr(floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


cdef inline const floating* _cptr(const floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


cdef int column_sums(const floating* A, Py_ssize_t rows, Py_ssize_t cols,
                     floating* out) noexcept nogil:
    """out[j] = sum_i A[i, j], accumulated in double. -1 if out of memory."""
    cdef Py_ssize_t i, j
    cdef double* acc = <double*> malloc(max(cols, 1) * sizeof(double))
    if acc == NULL:
        return -1
    for j in range(cols):
        acc[j] = 0.0
    for i in range(rows):
        for j in range(cols):
            acc[j] += A[i * cols + j]
    for j in range(cols):
        out[j] = <floating> acc[j]
    free(acc)
    return 0


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


cdef int dense_backward_c(const floating* X, const floating* W,
                          const floating* Z, const floating* Y,
                          floating* dY, Py_ssize_t n, Py_ssize_t n_in,
                          Py_ssize_t n_out, int act, double alpha,
                          floating* dX, floating* dW,
                          floating* db) noexcept nogil:
    """dZ = dY * f'(Z) (in dY); dW = dZ.T @ X; db = sum(dZ, 0); dX = dZ @ W.

    Returns 0, or -1 if out of memory (before any output is written)."""
    if db != NULL:
        # db first: its scratch allocation is the only way to fail
        if act != 0:
            act_backward(Z, Y, dY, n * n_out, act, alpha, dY)
            act = 0
        if column_sums(dY, n, n_out, db) < 0:
            return -1
    if act != 0:
        act_backward(Z, Y, dY, n * n_out, act, alpha, dY)
    if dW != NULL:
        # dW = dZ.T @ X
        gemm(True, False, <int> n_out, <int> n_in, <int> n, <floating> 1.0,
             dY, <int> n_out, X, <int> n_in, <floating> 0.0, dW, <int> n_in)
    if dX != NULL:
        # dX = dZ @ W
        gemm(False, False, <int> n, <int> n_in, <int> n_out, <floating> 1.0,
             dY, <int> n_out, W, <int> n_in, <floating> 0.0, dX, <int> n_in)
    return 0


cdef int _forward(const floating[:, ::1] Xv, const floating[:, ::1] W,
                  const floating[::1] b, int act, double alpha,
                  floating[:, ::1] Y, floating[:, ::1] Zv) except -1:
    cdef Py_ssize_t n = Xv.shape[0], n_in = Xv.shape[1], n_out = W.shape[0]
    with nogil:
        dense_forward_c(_cptr(Xv), _cptr(W), &b[0] if n_out else NULL, n, n_in,
                        n_out, act, alpha, _ptr(Y), _ptr(Zv))
    return 0


def dense_forward(X, W, b, str activation, double alpha, Y, Z=None):
    """Y = f(X @ W.T + b), with the bias and activation fused after the GEMM.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
        Copied to C order first if it is not.
    W : ndarray of shape (n_out, n_in), C-contiguous
    b : ndarray of shape (n_out,), C-contiguous
    activation : str
        A canonical activation name (``"identity"`` for none).
    alpha : float
        The activation's parameter (leaky_relu slope, elu alpha).
    Y : ndarray of shape (n_samples, n_out)
        Output, written in place.
    Z : ndarray of shape (n_samples, n_out) or None
        If given, receives the pre-activation ``X @ W.T + b``.

    Raises
    ------
    TypeError
        If an array is None (other than Z) or not float32/float64 of W's dtype.
    ValueError
        If the shapes do not agree, an output is not C-contiguous and writable,
        or the activation is unknown.
    """
    cdef int act = choice("activation", activation, ACTIVATION_CODES)
    dense_forward_args(X, W, b, Y, Z)
    X = np.ascontiguousarray(X)
    if Z is None:
        Z = Y
    if is_float32(W):
        _forward[float](X, W, b, act, alpha, Y, Z)
    else:
        _forward[double](X, W, b, act, alpha, Y, Z)


cdef int _backward(const floating[:, ::1] Xv, const floating[:, ::1] W, Z, Y,
                   floating[:, ::1] dY, int act, double alpha, dX, dW,
                   db) except -1:
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
    cdef int status
    if act != 0:
        if act_needs_input(act):
            Zv = Z
            zp = _cptr(Zv)
        else:
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
        status = dense_backward_c(_cptr(Xv), _cptr(W), zp, yp, _ptr(dY), n, n_in,
                                  n_out, act, alpha, dxp, dwp, dbp)
    if status < 0:
        raise MemoryError("dense_backward: out of memory for the db sums")
    return 0


def dense_backward(X, W, Z, Y, dY, str activation, double alpha, dX, dW, db):
    """dZ = dY * f'(Z); dW = dZ.T @ X; db = dZ.sum(0); dX = dZ @ W.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
        The layer input of the forward pass.
    W : ndarray of shape (n_out, n_in), C-contiguous
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
    TypeError
        If an array is not float32/float64 of W's dtype, or W or dY is None.
    ValueError
        If the activation needs ``Z`` (or ``Y``) and it is None, the shapes do
        not agree, or an output is not C-contiguous and writable.
    MemoryError
        If the scratch memory for ``db`` cannot be had (nothing but dY is
        written then).
    """
    cdef int act = choice("activation", activation, ACTIVATION_CODES)
    needs = "" if act == 0 else "Z" if activation in NEEDS_INPUT else "Y"
    dense_backward_args(X, W, Z, Y, dY, activation, needs, dX, dW, db)
    X = np.ascontiguousarray(X)
    if is_float32(W):
        _backward[float](X, W, Z, Y, dY, act, alpha, dX, dW, db)
    else:
        _backward[double](X, W, Z, Y, dY, act, alpha, dX, dW, db)

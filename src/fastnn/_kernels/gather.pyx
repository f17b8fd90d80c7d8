"""Row gathers into preallocated minibatch buffers (no per-step allocation)."""
from cython cimport floating
from libc.string cimport memcpy

ctypedef fused value_t:
    long long
    float
    double

from fastnn._kernels._checks import gather_labels_args, gather_rows_args

__all__ = ["gather_labels", "gather_rows"]


cdef void gather_rows_c(const floating* X, Py_ssize_t d, const long long* idx,
                        Py_ssize_t m, floating* out) noexcept nogil:
    """out[i, :] = X[idx[i], :]."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(out + i * d, X + idx[i] * d, d * sizeof(floating))


def _rows(const floating[:, ::1] X, const long long[::1] idx, floating[:, ::1] out):
    cdef Py_ssize_t m = idx.shape[0], d = X.shape[1]
    if m == 0 or d == 0:
        return
    with nogil:
        gather_rows_c(&X[0, 0], d, &idx[0], m, &out[0, 0])


def gather_rows(X, idx, out):
    """out[i, :] = X[idx[i], :].

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), C-contiguous (not copied)
    idx : ndarray of shape (m,), int64, C-contiguous, each in ``[0, n_samples)``
    out : ndarray of shape (m, n_features), X's dtype, written in place

    Raises
    ------
    TypeError
        If an array is None, X or out is not float32/float64 of one dtype, or
        idx is not int64.
    ValueError
        If the shapes do not agree, an array is not C-contiguous (or out is
        read-only), or an index is out of range.
    """
    gather_rows_args(X, idx, out)
    _rows(X, idx, out)


def _labels(const value_t[::1] y, const long long[::1] idx, value_t[::1] out):
    cdef Py_ssize_t i, m = idx.shape[0]
    with nogil:
        for i in range(m):
            out[i] = y[idx[i]]


def gather_labels(y, idx, out):
    """out[i] = y[idx[i]] for 1-D int64, float32 or float64 ``y``.

    ``y`` is read in place (C-contiguous), ``out`` is of y's dtype; ``idx`` as
    in ``gather_rows``, with the same errors.
    """
    gather_labels_args(y, idx, out)
    _labels(y, idx, out)

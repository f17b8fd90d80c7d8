"""Row gathers into preallocated minibatch buffers (no per-step allocation)."""
from cython cimport floating
from libc.string cimport memcpy

ctypedef fused value_t:
    long long
    float
    double

__all__ = ["gather_labels", "gather_rows"]


cdef void gather_rows_c(const floating* X, Py_ssize_t d, const long long* idx,
                        Py_ssize_t m, floating* out) noexcept nogil:
    """out[i, :] = X[idx[i], :]."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(out + i * d, X + idx[i] * d, d * sizeof(floating))


cdef Py_ssize_t first_bad_index(const long long* idx, Py_ssize_t m,
                                Py_ssize_t n) noexcept nogil:
    """The first i with idx[i] outside [0, n), or -1."""
    cdef Py_ssize_t i
    for i in range(m):
        if idx[i] < 0 or idx[i] >= n:
            return i
    return -1


cdef int check_gather(const long long[::1] idx, Py_ssize_t n, Py_ssize_t m_out) except -1:
    cdef Py_ssize_t m = idx.shape[0], bad
    if m_out != m:
        raise ValueError(f"out: must have {m} rows (one per index), got {m_out}")
    with nogil:
        bad = first_bad_index(&idx[0], m, n) if m else -1
    if bad >= 0:
        raise IndexError(f"idx: index {idx[bad]} at position {bad} is out of "
                         f"range for {n} rows")
    return 0


def gather_rows(const floating[:, ::1] X, const long long[::1] idx,
                floating[:, ::1] out):
    """out[i, :] = X[idx[i], :].

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), C-contiguous (not copied)
    idx : ndarray of shape (m,), int64, each in ``[0, n_samples)``
    out : ndarray of shape (m, n_features), written in place
    """
    cdef Py_ssize_t m = idx.shape[0], d = X.shape[1]
    if out.shape[1] != d:
        raise ValueError(f"out: must have {d} columns like X, got {out.shape[1]}")
    check_gather(idx, X.shape[0], out.shape[0])
    if m == 0 or d == 0:
        return
    with nogil:
        gather_rows_c(&X[0, 0], d, &idx[0], m, &out[0, 0])


def gather_labels(const value_t[::1] y, const long long[::1] idx, value_t[::1] out):
    """out[i] = y[idx[i]] for 1-D int64, float32 or float64 ``y``."""
    cdef Py_ssize_t i, m = idx.shape[0]
    check_gather(idx, y.shape[0], out.shape[0])
    with nogil:
        for i in range(m):
            out[i] = y[idx[i]]

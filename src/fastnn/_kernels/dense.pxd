from cython cimport floating

cdef void dense_forward_c(const floating* X, const floating* W,
                          const floating* b, Py_ssize_t n, Py_ssize_t n_in,
                          Py_ssize_t n_out, int act, double alpha,
                          floating* Y, floating* Z) noexcept nogil

# 0, or -1 if out of memory (before dW, db or dX is written).
cdef int dense_backward_c(const floating* X, const floating* W,
                          const floating* Z, const floating* Y,
                          floating* dY, Py_ssize_t n, Py_ssize_t n_in,
                          Py_ssize_t n_out, int act, double alpha,
                          floating* dX, floating* dW,
                          floating* db) noexcept nogil

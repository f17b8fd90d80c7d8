# Loss kernels shared with the fused step loop (mlp.pyx). dY == NULL: loss only.
from cython cimport floating
from libc.stdint cimport int64_t

cdef enum:
    LOSS_BCE = 0
    LOSS_MSE = 1
    LOSS_MAE = 2
    LOSS_HUBER = 3

cdef double softmax_cross_entropy_c(const floating* Y, const int64_t* y,
                                    Py_ssize_t n, Py_ssize_t k,
                                    floating* dY) noexcept nogil

cdef double hinge_c(const floating* Y, const int64_t* y, Py_ssize_t n,
                    Py_ssize_t k, floating* dY) noexcept nogil

cdef double pointwise_c(const floating* Y, const floating* T, Py_ssize_t size,
                        int loss, double delta, floating* dY) noexcept nogil

# Batch normalization kernels shared with the training plan (plan.pyx).
# Each returns 0, or -1 if out of memory (then nothing is written).
from cython cimport floating

cdef int bn_train_c(const floating* X, Py_ssize_t n, Py_ssize_t d,
                    const floating* gamma, const floating* beta, double eps,
                    double momentum, floating* Y, floating* mean, floating* invstd,
                    floating* running_mean, floating* running_var) noexcept nogil

cdef int bn_infer_c(const floating* X, Py_ssize_t n, Py_ssize_t d,
                    const floating* gamma, const floating* beta,
                    const floating* running_mean, const floating* running_var,
                    double eps, floating* Y) noexcept nogil

cdef int bn_backward_c(const floating* X, const floating* dY, Py_ssize_t n,
                       Py_ssize_t d, const floating* gamma, const floating* mean,
                       const floating* invstd, floating* dX, floating* dgamma,
                       floating* dbeta) noexcept nogil

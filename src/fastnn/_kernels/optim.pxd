from cython cimport floating

cdef void sgd_c(const floating* g, Py_ssize_t n, double lr, double momentum,
                double dampening, bint nesterov, double weight_decay, long step,
                floating* p, floating* buf) noexcept nogil

cdef void adam_c(const floating* g, Py_ssize_t n, double lr, double beta1,
                 double beta2, double eps, double weight_decay, bint decoupled,
                 bint amsgrad, long step, floating* p, floating* m, floating* v,
                 floating* vmax) noexcept nogil

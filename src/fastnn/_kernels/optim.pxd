from cython cimport floating

cdef void sgd_c(const floating* g, Py_ssize_t n, double lr, double momentum,
                double dampening, bint nesterov, double weight_decay, long step,
                floating* p, floating* buf, bint velocity=*) noexcept nogil

cdef void adam_c(const floating* g, Py_ssize_t n, double lr, double beta1,
                 double beta2, double eps, double weight_decay, bint decoupled,
                 bint amsgrad, long step, floating* p, floating* m, floating* v,
                 floating* vmax, bint eps_uncorrected=*) noexcept nogil

cdef void adagrad_c(const floating* g, Py_ssize_t n, double lr, double lr_decay,
                    double weight_decay, double eps, double decay, long step,
                    floating* p, floating* s) noexcept nogil

cdef void rmsprop_c(const floating* g, Py_ssize_t n, double lr, double alpha,
                    double eps, double weight_decay, double momentum,
                    bint centered, floating* p, floating* v, floating* buf,
                    floating* ga) noexcept nogil

cdef void adadelta_c(const floating* g, Py_ssize_t n, double lr, double rho,
                     double eps, double weight_decay, floating* p, floating* v,
                     floating* u) noexcept nogil

cdef double nadam_c(const floating* g, Py_ssize_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay,
                    double momentum_decay, long step, double mu_product,
                    floating* p, floating* m, floating* v) noexcept nogil

cdef double sumsq_c(const floating* g, Py_ssize_t n) noexcept nogil

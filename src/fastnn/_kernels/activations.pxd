# Elementwise activations, shared with the dense kernels for fusion.
from cython cimport floating
from libc.stdint cimport int64_t

cdef enum:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LEAKY_RELU = 4
    ACT_ELU = 5
    ACT_SELU = 6
    ACT_SILU = 7
    ACT_GELU = 8
    ACT_GELU_TANH = 9
    ACT_SOFTPLUS = 10

# Y[i] = f(Z[i]) for i < n. Y may alias Z.
cdef void act_forward(const floating* Z, Py_ssize_t n, int act, double alpha,
                      floating* Y) noexcept nogil

# Z[r, :] += b, then Y[r, :] = f(Z[r, :]), row by row in one pass.
# Y may alias Z (then the pre-activation is not kept).
cdef void bias_act_forward(floating* Z, const floating* b, Py_ssize_t rows,
                           Py_ssize_t cols, int act, double alpha,
                           floating* Y) noexcept nogil

# dZ[i] = dY[i] * f'(Z[i]), using Y = f(Z) where that is cheaper.
# Z is read only for activations whose act_needs_input() is true; dZ may alias dY.
cdef void act_backward(const floating* Z, const floating* Y,
                       const floating* dY, Py_ssize_t n, int act,
                       double alpha, floating* dZ) noexcept nogil

cdef bint act_needs_input(int act) noexcept nogil

# Softmax over each row of X (rows x cols), scaled by 1 / temperature; Y may
# alias X. The backward's dX may alias dY or Y.
cdef void softmax_forward_c(const floating* X, Py_ssize_t rows, Py_ssize_t cols,
                            double temperature, floating* Y) noexcept nogil
cdef void softmax_backward_c(const floating* Y, const floating* dY,
                             Py_ssize_t rows, Py_ssize_t cols,
                             double temperature, floating* dX) noexcept nogil

# PReLU with one slope per column, or one shared slope.
cdef void prelu_forward_c(const floating* X, const floating* a, Py_ssize_t rows,
                          Py_ssize_t cols, bint shared,
                          floating* Y) noexcept nogil
cdef void prelu_backward_c(const floating* X, const floating* a,
                           const floating* dY, Py_ssize_t rows, Py_ssize_t cols,
                           bint shared, floating* dX,
                           floating* da) noexcept nogil

# Maxout over groups of `pieces` adjacent columns of X (rows x units*pieces).
cdef void maxout_forward_c(const floating* X, Py_ssize_t rows, Py_ssize_t units,
                           Py_ssize_t pieces, floating* Y,
                           int64_t* argmax) noexcept nogil
cdef void maxout_backward_c(const floating* dY, const int64_t* argmax,
                            Py_ssize_t rows, Py_ssize_t units,
                            Py_ssize_t pieces, floating* dX) noexcept nogil

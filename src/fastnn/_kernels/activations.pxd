# Elementwise activations, shared with the dense kernels for fusion.
from cython cimport floating

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

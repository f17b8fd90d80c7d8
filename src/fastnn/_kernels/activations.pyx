"""Activation kernels: elementwise activations, softmax, PReLU and Maxout.

The elementwise activations are also exposed to other kernels through
``activations.pxd`` (``act_forward``, ``bias_act_forward``, ``act_backward``),
so that the dense layer fuses its bias, activation and derivative into single
passes. Every formula and every derivative is torch's, including the value of
the derivative at 0 (``relu'(0) = 0``, ``leaky_relu'(0) = slope``, elu and selu
take their ``x <= 0`` branch).
"""
from cython cimport floating
from libc.math cimport INFINITY, fabs, fabsf
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from fastnn._kernels.vecmath cimport (
    row_max, row_sum, vexp, vexpm1, vgelu, vgelu_grad, vlog1p, vtanh,
)

from fastnn._kernels._checks cimport choice, count, is_float32, number

import numpy as np

from fastnn._kernels.codes import ACTIVATION_CODES

from fastnn._kernels._checks import (
    activation_backward_args, elementwise_args, maxout_backward_args,
    maxout_forward_args, prelu_args,
)

__all__ = [
    "activation_backward",
    "activation_forward",
    "maxout_backward",
    "maxout_forward",
    "prelu_backward",
    "prelu_forward",
    "softmax_backward",
    "softmax_forward",
]

# The codes live in one table (fastnn._kernels.codes); the enum of the pxd
# must agree with it.
if [ACTIVATION_CODES[name] for name in (
        "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "silu",
        "gelu", "gelu_tanh", "softplus")] != [
        ACT_IDENTITY, ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_LEAKY_RELU, ACT_ELU,
        ACT_SELU, ACT_SILU, ACT_GELU, ACT_GELU_TANH, ACT_SOFTPLUS]:
    raise ImportError("fastnn._kernels.activations: the ACT_* enum disagrees with "
                      "fastnn._kernels.codes.ACTIVATION_CODES")

# torch.nn.SELU's constants; torch multiplies them in double.
cdef double SELU_ALPHA = 1.6732632423543772848170429916717
cdef double SELU_SCALE = 1.0507009873554804934193349852946
cdef double SELU_SCALE_ALPHA = SELU_SCALE * SELU_ALPHA
cdef double GELU_BETA = 0.79788456080286535588  # sqrt(2 / pi)
cdef double GELU_KAPPA = 0.044715
cdef double SOFTPLUS_THRESHOLD = 20.0  # torch's default: softplus(x) = x above
cdef enum:
    # bias_act_forward works on blocks of rows of about this many elements.
    BLOCK = 2048
    # Columns per block of stack accumulators in prelu_backward.
    DA_BLOCK = 256
    DA_LANES = 8  # independent sums of PReLU's shared-slope gradient


# --------------------------------------------------------------------------
# Scalar helpers: the float versions of libm when floating is float.

cdef inline floating _fabs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), from exp(-|z|) so that it never overflows."""
    cdef floating e = vexp(-_fabs(z))
    cdef floating r = 1 / (1 + e)
    return r if z >= 0 else e * r


cdef inline void _sigmoid_pair(floating z, floating* s, floating* c) noexcept nogil:
    """s = sigmoid(z) and c = 1 - s = sigmoid(-z), both to full precision."""
    cdef floating e = vexp(-_fabs(z))
    cdef floating r = 1 / (1 + e)
    if z >= 0:
        s[0] = r
        c[0] = e * r
    else:
        s[0] = e * r
        c[0] = r


cdef inline const floating* _cptr(const floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


cdef inline floating* _ptr(floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL


# --------------------------------------------------------------------------
# Elementwise activations (the cdef interface of activations.pxd).

cdef bint act_needs_input(int act) noexcept nogil:
    """True when f' is computed from Z (silu, gelu, gelu_tanh, softplus)."""
    return (act == ACT_SILU or act == ACT_GELU or act == ACT_GELU_TANH
            or act == ACT_SOFTPLUS)


cdef void act_forward(const floating* Z, Py_ssize_t n, int act, double alpha,
                      floating* Y) noexcept nogil:
    """Y[i] = f(Z[i]) for i < n. Y may alias Z."""
    cdef Py_ssize_t i
    cdef floating z, u
    cdef floating a = <floating> alpha
    cdef floating sa = <floating> SELU_SCALE_ALPHA
    cdef floating sc = <floating> SELU_SCALE
    cdef floating beta = <floating> GELU_BETA
    cdef floating kappa = <floating> GELU_KAPPA
    cdef floating thr = <floating> SOFTPLUS_THRESHOLD
    if n <= 0:
        return
    if act == ACT_IDENTITY:
        if <const floating*> Y != Z:
            memcpy(Y, Z, n * sizeof(floating))
    elif act == ACT_SIGMOID:
        for i in range(n):
            Y[i] = _sigmoid(Z[i])
    elif act == ACT_TANH:
        for i in range(n):
            Y[i] = vtanh(Z[i])
    elif act == ACT_RELU:
        # 0 if z <= 0 else z: NaN propagates as in torch.
        for i in range(n):
            z = Z[i]
            Y[i] = 0 if z <= 0 else z
    elif act == ACT_LEAKY_RELU:
        for i in range(n):
            z = Z[i]
            Y[i] = z if z > 0 else a * z
    elif act == ACT_ELU:
        for i in range(n):
            # both branches computed, then selected: the loop vectorizes
            z = Z[i]
            u = a * vexpm1(z)
            Y[i] = z if z > 0 else u
    elif act == ACT_SELU:
        for i in range(n):
            z = Z[i]
            u = sa * vexpm1(z)
            Y[i] = sc * z if z > 0 else u
    elif act == ACT_SILU:
        for i in range(n):
            z = Z[i]
            Y[i] = z * _sigmoid(z)
    elif act == ACT_GELU:
        # 0.5 z (1 + erf(z / sqrt 2)) = 0.5 z erfc(-z / sqrt 2), exact for z << 0
        for i in range(n):
            z = Z[i]
            Y[i] = vgelu(z)
    elif act == ACT_GELU_TANH:
        # 0.5 z (1 + tanh(u)) = z sigmoid(2u), u = sqrt(2/pi) (z + 0.044715 z^3)
        for i in range(n):
            z = Z[i]
            u = beta * (z + kappa * z * z * z)
            Y[i] = z * _sigmoid(2 * u)
    elif act == ACT_SOFTPLUS:
        # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)); z above the threshold
        for i in range(n):
            z = Z[i]
            u = (z if z > 0 else 0) + vlog1p(vexp(-_fabs(z)))
            Y[i] = z if z > thr else u


cdef void bias_act_forward(floating* Z, const floating* b, Py_ssize_t rows,
                           Py_ssize_t cols, int act, double alpha,
                           floating* Y) noexcept nogil:
    """Z[r, :] += b, then Y[r, :] = f(Z[r, :]), one cache-sized block of rows
    at a time. Y may alias Z (then the pre-activation is not kept)."""
    cdef Py_ssize_t r0, r, j, nr, step
    cdef floating* z
    if rows <= 0 or cols <= 0:
        return
    step = BLOCK // cols if cols < BLOCK else 1
    r0 = 0
    while r0 < rows:
        nr = step if rows - r0 > step else rows - r0
        for r in range(r0, r0 + nr):
            z = Z + r * cols
            for j in range(cols):
                z[j] += b[j]
        act_forward(Z + r0 * cols, nr * cols, act, alpha, Y + r0 * cols)
        r0 += nr


cdef void act_backward(const floating* Z, const floating* Y,
                       const floating* dY, Py_ssize_t n, int act,
                       double alpha, floating* dZ) noexcept nogil:
    """dZ[i] = dY[i] * f'(Z[i]), from Y = f(Z) unless act_needs_input(act).

    Z is read only when act_needs_input(act), Y only otherwise (and neither
    for identity). dZ may alias dY. For leaky_relu the slope must be >= 0 and
    for elu alpha > 0, so that the sign of Y gives the branch.
    """
    cdef Py_ssize_t i
    cdef floating z, y, s, c, u, z2
    cdef floating a = <floating> alpha
    cdef floating sa = <floating> SELU_SCALE_ALPHA
    cdef floating sc = <floating> SELU_SCALE
    cdef floating beta = <floating> GELU_BETA
    cdef floating kappa = <floating> GELU_KAPPA
    cdef floating thr = <floating> SOFTPLUS_THRESHOLD
    if n <= 0:
        return
    if act == ACT_IDENTITY:
        if <const floating*> dZ != dY:
            memcpy(dZ, dY, n * sizeof(floating))
    elif act == ACT_SIGMOID:
        # y (1 - y)
        for i in range(n):
            y = Y[i]
            dZ[i] = dY[i] * (y * (1 - y))
    elif act == ACT_TANH:
        # 1 - y^2
        for i in range(n):
            y = Y[i]
            dZ[i] = dY[i] * (1 - y * y)
    elif act == ACT_RELU:
        # 1 if y > 0 else 0 (relu'(0) = 0)
        for i in range(n):
            z = dY[i]  # loaded unconditionally so that the select vectorizes
            dZ[i] = z if Y[i] > 0 else 0
    elif act == ACT_LEAKY_RELU:
        # 1 if y > 0 else slope (at 0 too)
        for i in range(n):
            dZ[i] = dY[i] if Y[i] > 0 else a * dY[i]
    elif act == ACT_ELU:
        # 1 if y > 0 else alpha exp(z) = y + alpha
        for i in range(n):
            y = Y[i]
            dZ[i] = dY[i] if y > 0 else dY[i] * (y + a)
    elif act == ACT_SELU:
        # scale if y > 0 else scale alpha exp(z) = y + scale alpha
        for i in range(n):
            y = Y[i]
            dZ[i] = sc * dY[i] if y > 0 else dY[i] * (y + sa)
    elif act == ACT_SILU:
        # s (1 + z (1 - s)), s = sigmoid(z)
        for i in range(n):
            z = Z[i]
            _sigmoid_pair(z, &s, &c)
            dZ[i] = dY[i] * (s * (1 + z * c))
    elif act == ACT_GELU:
        # Phi(z) + z phi(z)
        for i in range(n):
            z = Z[i]
            dZ[i] = dY[i] * vgelu_grad(z)
    elif act == ACT_GELU_TANH:
        # s + 2 z s (1 - s) sqrt(2/pi) (1 + 3 kappa z^2), s = sigmoid(2u)
        for i in range(n):
            z = Z[i]
            z2 = z * z
            u = beta * (z + kappa * z2 * z)
            _sigmoid_pair(2 * u, &s, &c)
            dZ[i] = dY[i] * (s + 2 * z * s * c * beta * (1 + 3 * kappa * z2))
    elif act == ACT_SOFTPLUS:
        # sigmoid(z), or 1 above the threshold
        for i in range(n):
            z = Z[i]
            dZ[i] = dY[i] if z > thr else dY[i] * _sigmoid(z)


# --------------------------------------------------------------------------
# Softmax, PReLU and Maxout.

cdef void softmax_forward_c(const floating* X, Py_ssize_t rows, Py_ssize_t cols,
                            double temperature, floating* Y) noexcept nogil:
    """Y[r] = exp((X[r] - max X[r]) / T) / sum(...). Y may alias X."""
    cdef Py_ssize_t r, j
    cdef const floating* x
    cdef floating* y
    cdef floating m
    cdef floating inv_t = <floating> (1.0 / temperature)
    cdef double inv_s
    if cols <= 0:
        return
    for r in range(rows):
        x = X + r * cols
        y = Y + r * cols
        m = row_max(x, cols)
        for j in range(cols):
            y[j] = vexp((x[j] - m) * inv_t)
        inv_s = 1.0 / row_sum(y, cols)
        for j in range(cols):
            y[j] = <floating> (y[j] * inv_s)


cdef void softmax_backward_c(const floating* Y, const floating* dY,
                             Py_ssize_t rows, Py_ssize_t cols,
                             double temperature, floating* dX) noexcept nogil:
    """dX[r] = Y[r] * (dY[r] - dY[r] . Y[r]) / T. dX may alias dY or Y."""
    cdef Py_ssize_t r, j
    cdef const floating* y
    cdef const floating* g
    cdef floating* dx
    cdef double dot
    cdef double inv_t = 1.0 / temperature
    for r in range(rows):
        y = Y + r * cols
        g = dY + r * cols
        dx = dX + r * cols
        dot = 0.0
        for j in range(cols):
            dot += <double> g[j] * y[j]
        for j in range(cols):
            dx[j] = <floating> (y[j] * (g[j] - dot) * inv_t)


cdef void prelu_forward_c(const floating* X, const floating* a, Py_ssize_t rows,
                          Py_ssize_t cols, bint shared,
                          floating* Y) noexcept nogil:
    """Y = x if x > 0 else a * x, a per column or shared. Y may alias X."""
    cdef Py_ssize_t i, j
    cdef floating x, a0
    cdef const floating* xr
    cdef floating* yr
    if rows <= 0 or cols <= 0:
        return
    if shared:
        a0 = a[0]
        for i in range(rows * cols):
            x = X[i]
            Y[i] = x if x > 0 else a0 * x
    else:
        for i in range(rows):
            xr = X + i * cols
            yr = Y + i * cols
            for j in range(cols):
                x = xr[j]
                yr[j] = x if x > 0 else a[j] * x


cdef void prelu_backward_c(const floating* X, const floating* a,
                           const floating* dY, Py_ssize_t rows, Py_ssize_t cols,
                           bint shared, floating* dX,
                           floating* da) noexcept nogil:
    """dX = dY * (1 if x > 0 else a); da = sum dY * (0 if x > 0 else x).

    The sums run in double over rows (and columns when shared). dX may alias
    dY.
    """
    cdef Py_ssize_t i, j, j0, nj, k, n = rows * cols
    cdef floating x, g, a0
    cdef double acc[DA_BLOCK]
    cdef double total = 0.0
    if shared:
        # Branch-free, with DA_LANES independent sums (added up in a fixed
        # order at the end): no mispredicted sign tests, no serial chain.
        a0 = a[0]
        for k in range(DA_LANES):
            acc[k] = 0.0
        i = 0
        while i + DA_LANES <= n:
            for k in range(DA_LANES):
                x = X[i + k]
                g = dY[i + k]
                dX[i + k] = g if x > 0 else a0 * g
                acc[k] += 0.0 if x > 0 else <double> g * x
            i += DA_LANES
        while i < n:
            x = X[i]
            g = dY[i]
            dX[i] = g if x > 0 else a0 * g
            acc[0] += 0.0 if x > 0 else <double> g * x
            i += 1
        for k in range(DA_LANES):
            total += acc[k]
        da[0] = <floating> total
        return
    # Column blocks: the double accumulators stay on the stack.
    j0 = 0
    while j0 < cols:
        nj = DA_BLOCK if cols - j0 > DA_BLOCK else cols - j0
        for j in range(nj):
            acc[j] = 0.0
        for i in range(rows):
            for j in range(nj):
                x = X[i * cols + j0 + j]
                g = dY[i * cols + j0 + j]
                if x > 0:
                    dX[i * cols + j0 + j] = g
                else:
                    dX[i * cols + j0 + j] = a[j0 + j] * g
                    acc[j] += <double> g * x
        for j in range(nj):
            da[j0 + j] = <floating> acc[j]
        j0 += nj


cdef void maxout_forward_c(const floating* X, Py_ssize_t rows, Py_ssize_t units,
                           Py_ssize_t pieces, floating* Y,
                           int64_t* argmax) noexcept nogil:
    """Y[i, u] = max_p X[i, u * pieces + p]; argmax the first such p.

    As numpy.argmax, a NaN counts as the maximum (the first NaN wins).
    """
    cdef Py_ssize_t i, u, p, k
    cdef const floating* g
    cdef floating best, x
    cdef bint take
    if pieces == 2:
        # The common case, branch-free so that it vectorizes: the same choice
        # as the loop below.
        for i in range(rows * units):
            best = X[2 * i]
            x = X[2 * i + 1]
            take = best == best and not (x <= best)
            Y[i] = x if take else best
            argmax[i] = take
        return
    for i in range(rows):
        for u in range(units):
            g = X + (i * units + u) * pieces
            best = g[0]
            k = 0
            for p in range(1, pieces):
                x = g[p]
                # switch on x > best, or on x NaN while best is not NaN
                if best == best and not (x <= best):
                    best = x
                    k = p
            Y[i * units + u] = best
            argmax[i * units + u] = k


cdef void maxout_backward_c(const floating* dY, const int64_t* argmax,
                            Py_ssize_t rows, Py_ssize_t units,
                            Py_ssize_t pieces, floating* dX) noexcept nogil:
    """dX = 0, then dX[i, u * pieces + argmax[i, u]] = dY[i, u]."""
    cdef Py_ssize_t i, n = rows * units
    if n <= 0:
        return
    memset(dX, 0, n * pieces * sizeof(floating))
    for i in range(n):
        dX[i * pieces + argmax[i]] = dY[i]


# --------------------------------------------------------------------------
# Public wrappers.

#: Activations whose derivative is computed from the input Z (not from Y).
NEEDS_INPUT = frozenset(
    name for name, code in ACTIVATION_CODES.items() if act_needs_input(code)
)


cdef int _act_forward(const floating[:, ::1] Zv, int act, double alpha,
                      floating[:, ::1] Y) except -1:
    with nogil:
        act_forward(_cptr(Zv), Zv.shape[0] * Zv.shape[1], act, alpha, _ptr(Y))
    return 0


def activation_forward(Z, str activation, double alpha, Y):
    """Y = f(Z), elementwise.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
        Copied to C order first if it is not.
    activation : str
        A canonical activation name (a key of ``ACTIVATION_CODES``).
    alpha : float
        The leaky_relu slope or the elu alpha; ignored by the others.
    Y : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``Z`` itself.

    Raises
    ------
    TypeError
        If Z or Y is None or not float32/float64 of one dtype.
    ValueError
        If ``activation`` is not a canonical name, the shapes differ, or Y is
        not C-contiguous and writable.
    """
    cdef int act = choice("activation", activation, ACTIVATION_CODES)
    elementwise_args(("Z",), (Z,), "Y", Y)
    Z = np.ascontiguousarray(Z)
    if is_float32(Y):
        _act_forward[float](Z, act, alpha, Y)
    else:
        _act_forward[double](Z, act, alpha, Y)


cdef int _act_backward(Z, Y, const floating[:, ::1] dYv, int act, double alpha,
                       floating[:, ::1] dZ) except -1:
    cdef const floating[:, ::1] Zv
    cdef const floating[:, ::1] Yv
    cdef const floating* zp = NULL
    cdef const floating* yp = NULL
    if act != ACT_IDENTITY:
        if act_needs_input(act):
            Zv = np.ascontiguousarray(Z)
            zp = _cptr(Zv)
        else:
            Yv = np.ascontiguousarray(Y)
            yp = _cptr(Yv)
    with nogil:
        act_backward(zp, yp, _cptr(dYv), dYv.shape[0] * dYv.shape[1], act, alpha,
                     _ptr(dZ))
    return 0


def activation_backward(Z, Y, dY, str activation, double alpha, dZ):
    """dZ = dY * f'(Z), elementwise, with torch's value of f' at kinks.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units) or None
        The pre-activation; read only for the activations in ``NEEDS_INPUT``.
    Y : ndarray of shape (n_samples, n_units) or None
        The output ``f(Z)``; read for every other activation except identity.
    dY : ndarray of shape (n_samples, n_units)
        Gradient of the loss w.r.t. ``Y``.
    activation : str
    alpha : float
        The leaky_relu slope (>= 0) or the elu alpha (> 0).
    dZ : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``dY`` itself.

    Raises
    ------
    TypeError
        If dY or dZ is None, or the arrays are not float32/float64 of one dtype.
    ValueError
        If the activation needs ``Z`` (or ``Y``) and it is None, is unknown, the
        shapes differ, or dZ is not C-contiguous and writable.
    """
    cdef int act = choice("activation", activation, ACTIVATION_CODES)
    needs = ("" if act == ACT_IDENTITY else "Z" if act_needs_input(act) else "Y")
    activation_backward_args(Z, Y, dY, activation, needs, dZ)
    dY = np.ascontiguousarray(dY)
    if is_float32(dZ):
        _act_backward[float](Z, Y, dY, act, alpha, dZ)
    else:
        _act_backward[double](Z, Y, dY, act, alpha, dZ)


cdef int _softmax_forward(const floating[:, ::1] Xv, double temperature,
                          floating[:, ::1] Y) except -1:
    with nogil:
        softmax_forward_c(_cptr(Xv), Xv.shape[0], Xv.shape[1], temperature,
                          _ptr(Y))
    return 0


def softmax_forward(X, temperature, Y):
    """Y = softmax(X / T) per row, after subtracting the row maximum.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_classes)
    temperature : float
        ``T > 0``.
    Y : ndarray of shape (n_samples, n_classes)
        Output, written in place; may be ``X`` itself. The row sums run in
        double.
    """
    cdef double t = number("temperature", temperature, 0.0, INFINITY, True)
    elementwise_args(("X",), (X,), "Y", Y)
    X = np.ascontiguousarray(X)
    if is_float32(Y):
        _softmax_forward[float](X, t, Y)
    else:
        _softmax_forward[double](X, t, Y)


cdef int _softmax_backward(const floating[:, ::1] Yv, const floating[:, ::1] dYv,
                           double temperature, floating[:, ::1] dX) except -1:
    with nogil:
        softmax_backward_c(_cptr(Yv), _cptr(dYv), Yv.shape[0], Yv.shape[1],
                           temperature, _ptr(dX))
    return 0


def softmax_backward(Y, dY, temperature, dX):
    """dX = Y * (dY - sum(dY * Y, axis=1, keepdims=True)) / T.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
        The output of ``softmax_forward``.
    dY : ndarray of shape (n_samples, n_classes)
    temperature : float
        ``T > 0``.
    dX : ndarray of shape (n_samples, n_classes)
        Output, written in place; may be ``dY`` or ``Y``. The row dot
        products run in double.
    """
    cdef double t = number("temperature", temperature, 0.0, INFINITY, True)
    elementwise_args(("Y", "dY"), (Y, dY), "dX", dX)
    Y = np.ascontiguousarray(Y)
    dY = np.ascontiguousarray(dY)
    if is_float32(dX):
        _softmax_backward[float](Y, dY, t, dX)
    else:
        _softmax_backward[double](Y, dY, t, dX)


cdef int _prelu_forward(const floating[:, ::1] Xv, const floating[::1] av,
                        floating[:, ::1] Y) except -1:
    cdef bint shared = av.shape[0] == 1
    with nogil:
        prelu_forward_c(_cptr(Xv), &av[0] if av.shape[0] else NULL,
                        Xv.shape[0], Xv.shape[1], shared, _ptr(Y))
    return 0


def prelu_forward(X, a, Y):
    """Y = max(0, X) + a * min(0, X), a per column or shared.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_units)
    a : ndarray of shape (n_units,) or (1,)
        The slopes: one per column, or one shared (torch's PReLU
        ``num_parameters``).
    Y : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``X``.
    """
    prelu_args(X, a, None, Y, None, False)
    X = np.ascontiguousarray(X)
    a = np.ascontiguousarray(a)
    if is_float32(Y):
        _prelu_forward[float](X, a, Y)
    else:
        _prelu_forward[double](X, a, Y)


cdef int _prelu_backward(const floating[:, ::1] Xv, const floating[::1] av,
                         const floating[:, ::1] dYv, floating[:, ::1] dX,
                         floating[::1] da) except -1:
    cdef bint shared = av.shape[0] == 1
    with nogil:
        prelu_backward_c(_cptr(Xv), &av[0] if av.shape[0] else NULL, _cptr(dYv),
                         Xv.shape[0], Xv.shape[1], shared, _ptr(dX),
                         &da[0] if da.shape[0] else NULL)
    return 0


def prelu_backward(X, a, dY, dX, da):
    """dX = dY * (1 if X > 0 else a); da = sum(dY * min(0, X)).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_units)
        The input of the forward pass.
    a : ndarray of shape (n_units,) or (1,)
    dY : ndarray of shape (n_samples, n_units)
    dX : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``dY``.
    da : ndarray of the shape of ``a``
        Output, overwritten (not accumulated): the sum over rows, and over
        columns too when ``a`` is shared, accumulated in double.
    """
    prelu_args(X, a, dY, dX, da, True)
    X = np.ascontiguousarray(X)
    a = np.ascontiguousarray(a)
    dY = np.ascontiguousarray(dY)
    if is_float32(dX):
        _prelu_backward[float](X, a, dY, dX, da)
    else:
        _prelu_backward[double](X, a, dY, dX, da)


cdef int _maxout_forward(const floating[:, ::1] Xv, Py_ssize_t pieces,
                         floating[:, ::1] Y, int64_t[:, ::1] argmax) except -1:
    with nogil:
        maxout_forward_c(_cptr(Xv), Y.shape[0], Y.shape[1], pieces, _ptr(Y),
                         &argmax[0, 0] if argmax.shape[0] * argmax.shape[1]
                         else NULL)
    return 0


def maxout_forward(X, pieces, Y, argmax):
    """Y[i, j] = max(X[i, j * pieces:(j + 1) * pieces]), with its argmax.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_units * pieces)
    pieces : int
        ``>= 1``.
    Y : ndarray of shape (n_samples, n_units)
        Output, written in place.
    argmax : ndarray of int64 of shape (n_samples, n_units)
        Output: the winning piece within each group, the first on ties.
    """
    maxout_forward_args(X, pieces, Y, argmax)
    X = np.ascontiguousarray(X)
    if is_float32(Y):
        _maxout_forward[float](X, pieces, Y, argmax)
    else:
        _maxout_forward[double](X, pieces, Y, argmax)


cdef int _maxout_backward(const floating[:, ::1] dYv, const int64_t[:, ::1] Av,
                          Py_ssize_t pieces, floating[:, ::1] dX) except -1:
    with nogil:
        maxout_backward_c(_cptr(dYv),
                          &Av[0, 0] if Av.shape[0] * Av.shape[1] else NULL,
                          dYv.shape[0], dYv.shape[1], pieces, _ptr(dX))
    return 0


def maxout_backward(dY, argmax, pieces, dX):
    """dX = 0, then dX[i, j * pieces + argmax[i, j]] = dY[i, j].

    Parameters
    ----------
    dY : ndarray of shape (n_samples, n_units)
    argmax : ndarray of integers of shape (n_samples, n_units)
        From ``maxout_forward``; every entry in ``[0, pieces)``.
    pieces : int
    dX : ndarray of shape (n_samples, n_units * pieces)
        Output, written in place.
    """
    argmax = maxout_backward_args(dY, argmax, pieces, dX)
    dY = np.ascontiguousarray(dY)
    if is_float32(dX):
        _maxout_backward[float](dY, argmax, pieces, dX)
    else:
        _maxout_backward[double](dY, argmax, pieces, dX)

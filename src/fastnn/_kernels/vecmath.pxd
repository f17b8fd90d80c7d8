# Element math and row reductions shared by the kernels, written so that the
# loops calling them vectorize. For float the transcendental functions are the
# inline ones of vecmath.h (libm's are opaque calls, one element at a time);
# for double they are libm's.
from cython cimport floating
from libc.math cimport erfc, exp, expm1, fabs, fabsf, log1p, sqrt, sqrtf, tanh

cdef extern from "vecmath.h" nogil:
    float fnn_expf(float x)
    float fnn_expm1f(float x)
    float fnn_log1pf(float u)
    float fnn_tanhf(float x)
    float fnn_geluf(float z)
    float fnn_gelu_gradf(float z)


cdef inline floating vabs(floating x) noexcept nogil:
    """fabsf for float. (gcc 12 does not vectorize some loops where |x| is
    written as a select and then clamped, as in exp's range check.)"""
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating vsqrt(floating x) noexcept nogil:
    """sqrtf for float: libm's sqrt would round-trip through double."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating vexp(floating x) noexcept nogil:
    if floating is float:
        return fnn_expf(x)
    else:
        return exp(x)


cdef inline floating vexpm1(floating x) noexcept nogil:
    if floating is float:
        return fnn_expm1f(x)
    else:
        return expm1(x)


cdef inline floating vlog1p(floating x) noexcept nogil:
    """log(1 + x) for x >= 0 (the float version's domain)."""
    if floating is float:
        return fnn_log1pf(x)
    else:
        return log1p(x)


cdef inline floating vtanh(floating x) noexcept nogil:
    if floating is float:
        return fnn_tanhf(x)
    else:
        return tanh(x)


cdef inline floating vgelu(floating z) noexcept nogil:
    """z Phi(z), Phi the standard normal CDF (exact for z << 0 in double)."""
    if floating is float:
        return fnn_geluf(z)
    else:
        return 0.5 * z * erfc(-z * 0.70710678118654752440)


cdef inline floating vgelu_grad(floating z) noexcept nogil:
    """Phi(z) + z phi(z)."""
    if floating is float:
        return fnn_gelu_gradf(z)
    else:
        return (0.5 * erfc(-z * 0.70710678118654752440)
                + z * 0.39894228040143267794 * exp(-0.5 * z * z))


cdef inline floating row_max(const floating* x, Py_ssize_t n) noexcept nogil:
    """max(x[0:n]), n >= 1, with four running maxima (a compiler may not
    reorder a float reduction itself)."""
    cdef Py_ssize_t j
    cdef floating m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0]
    for j in range(0, n - 3, 4):
        m0 = x[j] if x[j] > m0 else m0
        m1 = x[j + 1] if x[j + 1] > m1 else m1
        m2 = x[j + 2] if x[j + 2] > m2 else m2
        m3 = x[j + 3] if x[j + 3] > m3 else m3
    for j in range(n - n % 4, n):
        m0 = x[j] if x[j] > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


cdef inline double row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum(x[0:n]) in double, with four running sums."""
    cdef Py_ssize_t j
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    for j in range(0, n - 3, 4):
        s0 += x[j]
        s1 += x[j + 1]
        s2 += x[j + 2]
        s3 += x[j + 3]
    for j in range(n - n % 4, n):
        s0 += x[j]
    return (s0 + s1) + (s2 + s3)


cdef inline double row_sum_exp(const floating* x, floating shift,
                               Py_ssize_t n) noexcept nogil:
    """sum(vexp(x[0:n] - shift)) in double, in row_sum's order, so that it
    equals row_sum of the stored exponentials to the last bit."""
    cdef Py_ssize_t j
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    for j in range(0, n - 3, 4):
        s0 += vexp(x[j] - shift)
        s1 += vexp(x[j + 1] - shift)
        s2 += vexp(x[j + 2] - shift)
        s3 += vexp(x[j + 3] - shift)
    for j in range(n - n % 4, n):
        s0 += vexp(x[j] - shift)
    return (s0 + s1) + (s2 + s3)


cdef inline bint all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """No inf or NaN in x[0:n]. ``x - x`` is exactly 0 for a finite x and NaN
    otherwise; each block is checked whole, with no early exit inside it, so
    that the loop vectorizes (an exit per element keeps it scalar)."""
    cdef Py_ssize_t j, start, stop
    cdef int ok
    for start in range(0, n, 4096):
        stop = start + 4096 if start + 4096 < n else n
        ok = 1
        for j in range(start, stop):
            ok &= (x[j] - x[j]) == 0
        if not ok:
            return False
    return True

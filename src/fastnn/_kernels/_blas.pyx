"""GEMM for row-major arrays, through ``scipy.linalg.cython_blas``.

The BLAS functions are SciPy's (its OpenBLAS), taken from the C API of
``scipy.linalg.cython_blas`` when this module is imported. That extension is
loaded from its file, without importing the ``scipy.linalg`` package, whose
import costs about 200 ms of every ``import fastnn`` (a command-line call, a
process per request) for nothing the kernels use; if that fails, it is
imported the usual way.

BLAS is column-major. A row-major matrix is the transpose of the same buffer
read column-major, so ``C = op(A) @ op(B)`` in row-major order is computed as
``C.T = op(B).T @ op(A).T`` in column-major order: the operands swap places
and ``m``/``n`` swap with them.
"""
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating
from libc.string cimport memset

import numpy as np

cdef extern from *:
    """
    #ifndef FASTNN_BUILD
    #define FASTNN_BUILD "unknown"
    #endif
    """
    const char* FASTNN_BUILD

#: What the kernels were built for: "native (-march=native)" or "portable
#: (...)", set by setup.py (FASTNN_ARCH).
BUILD = FASTNN_BUILD.decode()

cdef extern from *:
    """
    /* The x86-64 level of this CPU (and its OS): 4 for x86-64-v4 (AVX-512),
     * 3 for x86-64-v3 (AVX2, FMA), else 1. */
    static int fnn_cpu_level(void) {
    #if (defined(__x86_64__) || defined(__amd64__)) && defined(__GNUC__)
        __builtin_cpu_init();
    # if !defined(__clang__) && __GNUC__ >= 12
        if (__builtin_cpu_supports("x86-64-v4")) return 4;
        if (__builtin_cpu_supports("x86-64-v3")) return 3;
    # else
        int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                 && __builtin_cpu_supports("bmi2");
        if (v3 && __builtin_cpu_supports("avx512f")
                && __builtin_cpu_supports("avx512bw")
                && __builtin_cpu_supports("avx512vl")
                && __builtin_cpu_supports("avx512dq")
                && __builtin_cpu_supports("avx512cd")) return 4;
        if (v3) return 3;
    # endif
    #endif
        return 1;
    }
    """
    int fnn_cpu_level()


def cpu_level():
    """The instruction-set level this CPU supports: "v4" (x86-64-v4,
    AVX-512), "v3" (x86-64-v3, AVX2 and FMA) or "baseline"."""
    return {4: "v4", 3: "v3"}.get(fnn_cpu_level(), "baseline")

# The Fortran BLAS signatures of scipy.linalg.cython_blas.
ctypedef void (*sgemm_t)(char*, char*, int*, int*, int*, float*, float*, int*,
                         float*, int*, float*, float*, int*) noexcept nogil
ctypedef void (*dgemm_t)(char*, char*, int*, int*, int*, double*, double*, int*,
                         double*, int*, double*, double*, int*) noexcept nogil
ctypedef void (*sgemv_t)(char*, int*, int*, float*, float*, int*, float*, int*,
                         float*, float*, int*) noexcept nogil
ctypedef void (*dgemv_t)(char*, int*, int*, double*, double*, int*, double*, int*,
                         double*, double*, int*) noexcept nogil

cdef sgemm_t sgemm = NULL
cdef dgemm_t dgemm = NULL
cdef sgemv_t sgemv = NULL
cdef dgemv_t dgemv = NULL


def _cython_blas():
    """The module scipy.linalg.cython_blas, loaded from its file when the
    scipy.linalg package is not imported yet (and registered under its name,
    so that a later import of scipy.linalg finds it)."""
    import importlib.machinery
    import importlib.util
    import os
    import sys

    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        return importlib.import_module(name)
    try:
        scipy_spec = importlib.util.find_spec("scipy")
        folder = os.path.join(os.path.dirname(scipy_spec.origin), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.exists(path):
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[name] = module
                return module
    except Exception:  # noqa: BLE001 - any layout we do not know: the usual way
        pass
    return importlib.import_module(name)


cdef void* _function(dict capi, str name) except NULL:
    capsule = capi[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


def _load():
    global sgemm, dgemm, sgemv, dgemv
    capi = _cython_blas().__pyx_capi__
    sgemm = <sgemm_t> _function(capi, "sgemm")
    dgemm = <dgemm_t> _function(capi, "dgemm")
    sgemv = <sgemv_t> _function(capi, "sgemv")
    dgemv = <dgemv_t> _function(capi, "dgemv")


_load()


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, all row-major.

    ``op(A)`` is ``(m, k)``, ``op(B)`` is ``(k, n)`` and ``C`` is ``(m, n)``;
    ``lda``, ``ldb`` and ``ldc`` are the row strides in elements.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m == 0 or n == 0:
        return
    if m == 1:
        # One row of C (single-sample inference, a one-output layer's dW):
        # a matrix-vector product, which reads op(B) once and packs nothing.
        gemv_row(trans_a, trans_b, n, k, alpha, A, lda, B, ldb, beta, C)
        return
    # BLAS rejects a leading dimension of 0 even when nothing is read.
    if lda < 1:
        lda = 1
    if ldb < 1:
        ldb = 1
    if ldc < 1:
        ldc = 1
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb,
              <float*> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb,
              <double*> A, &lda, &beta, C, &ldc)


cdef void gemv_row(bint trans_a, bint trans_b, int n, int k, floating alpha,
                   const floating* A, int lda, const floating* B, int ldb,
                   floating beta, floating* C) noexcept nogil:
    """The ``m == 1`` case of ``gemm``: the row ``C = alpha * a @ op(B) + beta * C``
    with ``a`` the one row of ``op(A)``, through GEMV.

    Read column-major, row-major ``B`` (k, n) is an (n, k) matrix, so
    ``C = B.T a`` is GEMV 'N'; row-major ``B`` (n, k), used transposed, is a
    (k, n) matrix and ``C`` is GEMV 'T' of it. ``a`` is contiguous, or for
    ``trans_a`` a column of row-major ``A`` (k, 1), strided by ``lda``.
    """
    cdef char tv = b'T' if trans_b else b'N'
    cdef int rows = k if trans_b else n
    cdef int cols = n if trans_b else k
    cdef int inc_a = lda if trans_a else 1
    cdef int inc_c = 1
    cdef int j
    if beta == 0:
        # BLAS may scale the old C by beta, and 0 * NaN is NaN: start from zeros.
        memset(C, 0, n * sizeof(floating))
    if k == 0:
        if beta != 0:
            for j in range(n):
                C[j] = beta * C[j]
        return
    if inc_a < 1:
        inc_a = 1
    if ldb < rows:
        ldb = rows
    if floating is float:
        sgemv(&tv, &rows, &cols, &alpha, <float*> B, &ldb, <float*> A, &inc_a,
              &beta, C, &inc_c)
    else:
        dgemv(&tv, &rows, &cols, &alpha, <double*> B, &ldb, <double*> A, &inc_a,
              &beta, C, &inc_c)


def gemm_nt(const floating[:, ::1] A, const floating[:, ::1] B,
            floating[:, ::1] C, floating alpha=1, floating beta=0):
    """C = alpha * A @ B.T + beta * C.

    Parameters
    ----------
    A : ndarray of shape (m, k)
    B : ndarray of shape (n, k)
    C : ndarray of shape (m, n), written in place.
    """
    cdef int m = A.shape[0], n = B.shape[0], k = A.shape[1]
    with nogil:
        gemm(False, True, m, n, k, alpha, &A[0, 0] if A.shape[0] * A.shape[1] else NULL, k,
             &B[0, 0] if B.shape[0] * B.shape[1] else NULL, k, beta,
             &C[0, 0] if m * n else NULL, n)

"""GEMM for row-major arrays, through ``scipy.linalg.cython_blas``.

BLAS is column-major. A row-major matrix is the transpose of the same buffer
read column-major, so ``C = op(A) @ op(B)`` in row-major order is computed as
``C.T = op(B).T @ op(A).T`` in column-major order: the operands swap places
and ``m``/``n`` swap with them.
"""
from cython cimport floating
from libc.string cimport memset
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

import numpy as np


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

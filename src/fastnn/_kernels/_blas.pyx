"""GEMM for row-major arrays, through ``scipy.linalg.cython_blas``.

BLAS is column-major. A row-major matrix is the transpose of the same buffer
read column-major, so ``C = op(A) @ op(B)`` in row-major order is computed as
``C.T = op(B).T @ op(A).T`` in column-major order: the operands swap places
and ``m``/``n`` swap with them.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

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

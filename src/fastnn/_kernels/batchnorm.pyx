"""Batch normalization over the rows of a batch (torch's BatchNorm1d).

Column sums run row by row into double accumulators, so the row-major batch
is read in order. The batch variance uses two passes (mean, then squared
deviations) for accuracy when a column's mean is large.
"""
from cython cimport floating
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

import numpy as np

from fastnn._kernels._checks import batchnorm_args


__all__ = ["batchnorm_backward", "batchnorm_forward_infer", "batchnorm_forward_train"]


cdef int bn_train_c(const floating* X, Py_ssize_t n, Py_ssize_t d,
                     const floating* gamma, const floating* beta, double eps,
                     double momentum, floating* Y, floating* mean, floating* invstd,
                    floating* running_mean, floating* running_var) noexcept nogil:
    """Y = (X - mean) * invstd * gamma + beta; running stats updated.
    0, or -1 if out of memory (then nothing is written)."""
    cdef Py_ssize_t i, j
    cdef double* acc = <double*> malloc(2 * d * sizeof(double))
    cdef double* mu
    cdef double* var
    cdef double diff, scale, shift
    if acc == NULL:
        return -1
    mu = acc
    var = acc + d
    for j in range(d):
        mu[j] = 0.0
        var[j] = 0.0
    for i in range(n):
        for j in range(d):
            mu[j] += X[i * d + j]
    for j in range(d):
        mu[j] /= n
    for i in range(n):
        for j in range(d):
            diff = X[i * d + j] - mu[j]
            var[j] += diff * diff
    for j in range(d):
        mean[j] = <floating> mu[j]
        invstd[j] = <floating> (1.0 / sqrt(var[j] / n + eps))
        running_mean[j] = <floating> ((1.0 - momentum) * running_mean[j]
                                      + momentum * mu[j])
        running_var[j] = <floating> ((1.0 - momentum) * running_var[j]
                                     + momentum * var[j] / (n - 1))
        # Y = X * scale + shift, scale = gamma * invstd, shift = beta - mu * scale
        var[j] = gamma[j] / sqrt(var[j] / n + eps)
        mu[j] = beta[j] - mu[j] * var[j]
    for i in range(n):
        for j in range(d):
            Y[i * d + j] = <floating> (X[i * d + j] * var[j] + mu[j])
    free(acc)
    return 0


cdef int bn_infer_c(const floating* X, Py_ssize_t n, Py_ssize_t d,
                     const floating* gamma, const floating* beta,
                     const floating* running_mean, const floating* running_var,
                    double eps, floating* Y) noexcept nogil:
    """Y = (X - running_mean) / sqrt(running_var + eps) * gamma + beta.
    0, or -1 if out of memory (then nothing is written)."""
    cdef Py_ssize_t i, j
    cdef double* acc = <double*> malloc(2 * d * sizeof(double))
    if acc == NULL:
        return -1
    for j in range(d):
        acc[j] = gamma[j] / sqrt(running_var[j] + eps)
        acc[d + j] = beta[j] - running_mean[j] * acc[j]
    for i in range(n):
        for j in range(d):
            Y[i * d + j] = <floating> (X[i * d + j] * acc[j] + acc[d + j])
    free(acc)
    return 0


cdef int bn_backward_c(const floating* X, const floating* dY, Py_ssize_t n,
                        Py_ssize_t d, const floating* gamma, const floating* mean,
                        const floating* invstd, floating* dX, floating* dgamma,
                       floating* dbeta) noexcept nogil:
    """dX = gamma * invstd / n * (n dY - sum dY - xhat * sum(dY xhat)).
    0, or -1 if out of memory (then nothing is written)."""
    cdef Py_ssize_t i, j
    cdef double* acc = <double*> malloc(2 * d * sizeof(double))
    cdef double* sdy
    cdef double* sdyx
    cdef double xhat, g
    if acc == NULL:
        return -1
    sdy = acc
    sdyx = acc + d
    for j in range(d):
        sdy[j] = 0.0
        sdyx[j] = 0.0
    for i in range(n):
        for j in range(d):
            g = dY[i * d + j]
            sdy[j] += g
            sdyx[j] += g * (X[i * d + j] - mean[j]) * invstd[j]
    for j in range(d):
        dbeta[j] = <floating> sdy[j]
        dgamma[j] = <floating> sdyx[j]
    for i in range(n):
        for j in range(d):
            xhat = (X[i * d + j] - mean[j]) * invstd[j]
            dX[i * d + j] = <floating> (gamma[j] * invstd[j] / n * (
                n * <double> dY[i * d + j] - sdy[j] - xhat * sdyx[j]))
    free(acc)
    return 0


def _train(const floating[:, ::1] X, const floating[::1] gamma,
           const floating[::1] beta, double eps, double momentum,
           floating[:, ::1] Y, floating[::1] mean, floating[::1] invstd,
           floating[::1] running_mean, floating[::1] running_var):
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef int status
    if n == 0 or d == 0:
        return
    with nogil:
        status = bn_train_c(&X[0, 0], n, d, &gamma[0], &beta[0], eps, momentum,
                            &Y[0, 0], &mean[0], &invstd[0], &running_mean[0],
                            &running_var[0])
    if status < 0:
        raise MemoryError("batchnorm_forward_train: out of memory")


def batchnorm_forward_train(X, gamma, beta, eps, momentum, Y, mean, invstd,
                            running_mean, running_var):
    """Y = (X - mean) / sqrt(var + eps) * gamma + beta with batch statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features); n_samples >= 2
    gamma, beta : ndarray of shape (n_features,)
    eps, momentum : float
    Y : ndarray of shape (n_samples, n_features), written in place
    mean, invstd : ndarray of shape (n_features,)
        Receive the batch mean and ``1 / sqrt(var + eps)`` (biased var).
    running_mean, running_var : ndarray of shape (n_features,)
        Updated in place: ``(1 - momentum) * running + momentum * batch``, with
        the unbiased variance, as torch.
    """
    batchnorm_args(X, None, (("gamma", gamma, False), ("beta", beta, False),
                             ("mean", mean, True), ("invstd", invstd, True),
                             ("running_mean", running_mean, True),
                             ("running_var", running_var, True)), "Y", Y)
    _train(np.ascontiguousarray(X), gamma, beta, eps, momentum, Y, mean, invstd,
           running_mean, running_var)


def _infer(const floating[:, ::1] X, const floating[::1] gamma,
           const floating[::1] beta, const floating[::1] running_mean,
           const floating[::1] running_var, double eps, floating[:, ::1] Y):
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef int status
    if n == 0 or d == 0:
        return
    with nogil:
        status = bn_infer_c(&X[0, 0], n, d, &gamma[0], &beta[0], &running_mean[0],
                            &running_var[0], eps, &Y[0, 0])
    if status < 0:
        raise MemoryError("batchnorm_forward_infer: out of memory")


def batchnorm_forward_infer(X, gamma, beta, running_mean, running_var, eps, Y):
    """Y = (X - running_mean) / sqrt(running_var + eps) * gamma + beta."""
    batchnorm_args(X, None, (("gamma", gamma, False), ("beta", beta, False),
                             ("running_mean", running_mean, False),
                             ("running_var", running_var, False)), "Y", Y)
    _infer(np.ascontiguousarray(X), gamma, beta, running_mean, running_var, eps, Y)


def _backward(const floating[:, ::1] X, const floating[:, ::1] dY,
              const floating[::1] gamma, const floating[::1] mean,
              const floating[::1] invstd, floating[:, ::1] dX,
              floating[::1] dgamma, floating[::1] dbeta):
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef int status
    if n == 0 or d == 0:
        return
    with nogil:
        status = bn_backward_c(&X[0, 0], &dY[0, 0], n, d, &gamma[0], &mean[0],
                               &invstd[0], &dX[0, 0], &dgamma[0], &dbeta[0])
    if status < 0:
        raise MemoryError("batchnorm_backward: out of memory")


def batchnorm_backward(X, dY, gamma, mean, invstd, dX, dgamma, dbeta):
    """Training-mode backward: xhat = (X - mean) * invstd; dbeta = sum dY;
    dgamma = sum dY * xhat; dX = gamma * invstd / n * (n dY - dbeta - xhat dgamma).

    dgamma and dbeta are written, not accumulated.
    """
    batchnorm_args(X, dY, (("gamma", gamma, False), ("mean", mean, False),
                           ("invstd", invstd, False), ("dgamma", dgamma, True),
                           ("dbeta", dbeta, True)), "dX", dX, True)
    _backward(np.ascontiguousarray(X), np.ascontiguousarray(dY), gamma, mean,
              invstd, dX, dgamma, dbeta)

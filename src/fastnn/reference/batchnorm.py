"""NumPy twin of :mod:`fastnn._kernels.batchnorm`."""

import numpy as np

from fastnn._kernels._checks import batchnorm_args

__all__ = ["batchnorm_backward", "batchnorm_forward_infer", "batchnorm_forward_train"]


def batchnorm_forward_train(X, gamma, beta, eps, momentum, Y, mean, invstd,
                            running_mean, running_var):
    """Y = (X - mean) / sqrt(var + eps) * gamma + beta; running stats updated."""
    batchnorm_args(X, None, (("gamma", gamma, False), ("beta", beta, False),
                             ("mean", mean, True), ("invstd", invstd, True),
                             ("running_mean", running_mean, True),
                             ("running_var", running_var, True)), "Y", Y)
    n = X.shape[0]
    mu = X.mean(axis=0, dtype=np.float64)
    var = ((X - mu) ** 2).sum(axis=0) / n
    mean[...] = mu
    invstd[...] = 1.0 / np.sqrt(var + eps)
    running_mean[...] = (1.0 - momentum) * running_mean + momentum * mu
    running_var[...] = (1.0 - momentum) * running_var + momentum * var * n / (n - 1)
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mu * scale
    Y[...] = X * scale + shift


def batchnorm_forward_infer(X, gamma, beta, running_mean, running_var, eps, Y):
    """Y = (X - running_mean) / sqrt(running_var + eps) * gamma + beta."""
    batchnorm_args(X, None, (("gamma", gamma, False), ("beta", beta, False),
                             ("running_mean", running_mean, False),
                             ("running_var", running_var, False)), "Y", Y)
    scale = gamma / np.sqrt(running_var.astype(np.float64) + eps)
    shift = beta - running_mean * scale
    Y[...] = X * scale + shift


def batchnorm_backward(X, dY, gamma, mean, invstd, dX, dgamma, dbeta):
    """dX = gamma * invstd / n * (n dY - sum dY - xhat * sum(dY xhat))."""
    batchnorm_args(X, dY, (("gamma", gamma, False), ("mean", mean, False),
                           ("invstd", invstd, False), ("dgamma", dgamma, True),
                           ("dbeta", dbeta, True)), "dX", dX, True)
    n = X.shape[0]
    xhat = (X - mean.astype(np.float64)) * invstd
    sdy = dY.sum(axis=0, dtype=np.float64)
    sdyx = (dY * xhat).sum(axis=0)
    dbeta[...] = sdy
    dgamma[...] = sdyx
    dX[...] = gamma * invstd.astype(np.float64) / n * (n * dY - sdy - xhat * sdyx)

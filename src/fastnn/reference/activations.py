"""NumPy twin of :mod:`fastnn._kernels.activations`.

Each activation is a pair: ``f(Z)`` and ``f'`` as a function of ``(Z, Y,
alpha)``, where ``Y = f(Z)``. The derivatives are torch's, including their
value at 0. Activations in :data:`NEEDS_INPUT` compute ``f'`` from ``Z``; the
others from ``Y`` (identity from neither).

NumPy has no ``erf``, so gelu takes ``erfc`` from :mod:`scipy.special`.
"""

import numpy as np
from scipy.special import erfc

from fastnn._kernels._checks import (
    activation_backward_args,
    choice,
    elementwise_args,
    maxout_backward_args,
    maxout_forward_args,
    number,
    prelu_args,
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

#: torch.nn.SELU's constants.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_SCALE_ALPHA = SELU_SCALE * SELU_ALPHA
SQRT1_2 = 0.70710678118654752440  # 1 / sqrt(2)
INV_SQRT_2PI = 0.39894228040143267794  # 1 / sqrt(2 pi)
GELU_BETA = 0.79788456080286535588  # sqrt(2 / pi)
GELU_KAPPA = 0.044715
SOFTPLUS_THRESHOLD = 20.0  # torch's default: softplus(z) = z above it


def _sigmoid_pair(Z):
    """``(sigmoid(Z), 1 - sigmoid(Z))``, from ``exp(-|Z|)``: no overflow."""
    e = np.exp(-np.abs(Z))
    r = 1 / (1 + e)
    positive = Z >= 0
    return np.where(positive, r, e * r), np.where(positive, e * r, r)


def _sigmoid(Z):
    return _sigmoid_pair(Z)[0]


# Forward: f(Z, alpha).


def _identity(Z, alpha):
    return Z


def _tanh(Z, alpha):
    return np.tanh(Z)


def _relu(Z, alpha):
    # 0 if z <= 0 else z, so that NaN propagates as in torch.
    return np.where(Z <= 0, 0, Z)


def _leaky_relu(Z, alpha):
    return np.where(Z > 0, Z, alpha * Z)


def _elu(Z, alpha):
    return np.where(Z > 0, Z, alpha * np.expm1(np.minimum(Z, 0)))


def _selu(Z, alpha):
    negative = SELU_SCALE_ALPHA * np.expm1(np.minimum(Z, 0))
    return np.where(Z > 0, SELU_SCALE * Z, negative)


def _silu(Z, alpha):
    return Z * _sigmoid(Z)


def _gelu(Z, alpha):
    # 0.5 z (1 + erf(z / sqrt 2)) = 0.5 z erfc(-z / sqrt 2), exact for z << 0.
    return 0.5 * Z * erfc(-Z * SQRT1_2)


def _gelu_tanh(Z, alpha):
    # 0.5 z (1 + tanh(u)) = z sigmoid(2u), u = sqrt(2/pi) (z + 0.044715 z^3).
    U = GELU_BETA * (Z + GELU_KAPPA * Z * Z * Z)
    return Z * _sigmoid(2 * U)


def _softplus(Z, alpha):
    # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)); z above the threshold.
    smooth = np.where(Z > 0, Z, 0) + np.log1p(np.exp(-np.abs(Z)))
    return np.where(Z > SOFTPLUS_THRESHOLD, Z, smooth)


# Derivative: f'(Z, Y, alpha).


def _d_identity(Z, Y, alpha):
    return 1


def _d_sigmoid(Z, Y, alpha):
    return Y * (1 - Y)


def _d_tanh(Z, Y, alpha):
    return 1 - Y * Y


def _d_relu(Z, Y, alpha):
    return np.where(Y > 0, 1, 0).astype(Y.dtype)


def _d_leaky_relu(Z, Y, alpha):
    return np.where(Y > 0, 1, alpha).astype(Y.dtype)


def _d_elu(Z, Y, alpha):
    # alpha exp(z) = y + alpha on the z <= 0 branch.
    return np.where(Y > 0, 1, Y + alpha)


def _d_selu(Z, Y, alpha):
    return np.where(Y > 0, SELU_SCALE, Y + SELU_SCALE_ALPHA).astype(Y.dtype)


def _d_silu(Z, Y, alpha):
    S, C = _sigmoid_pair(Z)
    return S * (1 + Z * C)


def _d_gelu(Z, Y, alpha):
    # Phi(z) + z phi(z)
    return 0.5 * erfc(-Z * SQRT1_2) + Z * INV_SQRT_2PI * np.exp(-0.5 * Z * Z)


def _d_gelu_tanh(Z, Y, alpha):
    # s + 2 z s (1 - s) sqrt(2/pi) (1 + 3 kappa z^2), s = sigmoid(2u).
    Z2 = Z * Z
    U = GELU_BETA * (Z + GELU_KAPPA * Z2 * Z)
    S, C = _sigmoid_pair(2 * U)
    return S + 2 * Z * S * C * GELU_BETA * (1 + 3 * GELU_KAPPA * Z2)


def _d_softplus(Z, Y, alpha):
    return np.where(Z > SOFTPLUS_THRESHOLD, 1, _sigmoid(Z)).astype(Z.dtype)


_ACTIVATIONS = {
    "identity": (_identity, _d_identity),
    "sigmoid": (lambda Z, alpha: _sigmoid(Z), _d_sigmoid),
    "tanh": (_tanh, _d_tanh),
    "relu": (_relu, _d_relu),
    "leaky_relu": (_leaky_relu, _d_leaky_relu),
    "elu": (_elu, _d_elu),
    "selu": (_selu, _d_selu),
    "silu": (_silu, _d_silu),
    "gelu": (_gelu, _d_gelu),
    "gelu_tanh": (_gelu_tanh, _d_gelu_tanh),
    "softplus": (_softplus, _d_softplus),
}

#: Activations whose derivative is computed from the input Z (not from Y).
NEEDS_INPUT = frozenset({"silu", "gelu", "gelu_tanh", "softplus"})


def activation_forward(Z, activation, alpha, Y):
    """Y = f(Z), elementwise.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
    activation : str
        A canonical activation name.
    alpha : float
        The leaky_relu slope or the elu alpha; ignored by the others.
    Y : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``Z`` itself.

    Raises
    ------
    TypeError, ValueError
        As the kernel (an unknown activation is a ValueError).
    """
    forward, _ = choice("activation", activation, _ACTIVATIONS)
    elementwise_args(("Z",), (Z,), "Y", Y)
    Y[...] = forward(Z, alpha)


def activation_backward(Z, Y, dY, activation, alpha, dZ):
    """dZ = dY * f'(Z), elementwise, with torch's value of f' at kinks.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units) or None
        Read only for the activations in ``NEEDS_INPUT``.
    Y : ndarray of shape (n_samples, n_units) or None
        ``f(Z)``; read for every other activation except identity.
    dY : ndarray of shape (n_samples, n_units)
    activation : str
    alpha : float
        The leaky_relu slope (>= 0) or the elu alpha (> 0).
    dZ : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``dY`` itself.

    Raises
    ------
    ValueError
        If the activation needs ``Z`` (or ``Y``) and it is None.
    """
    _, derivative = choice("activation", activation, _ACTIVATIONS)
    needs = ("" if activation == "identity" else
             "Z" if activation in NEEDS_INPUT else "Y")
    activation_backward_args(Z, Y, dY, activation, needs, dZ)
    dZ[...] = dY * derivative(Z, Y, alpha)


def softmax_forward(X, temperature, Y):
    """Y = softmax(X / T) per row, after subtracting the row maximum.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_classes)
    temperature : float
        ``T > 0``.
    Y : ndarray of shape (n_samples, n_classes)
        Output, written in place; may be ``X``. The row sums run in double.
    """
    temperature = number("temperature", temperature, 0.0, np.inf, True)
    elementwise_args(("X",), (X,), "Y", Y)
    if X.shape[1] == 0:
        return
    E = np.exp((X - X.max(axis=1, keepdims=True)) * (1.0 / temperature))
    Y[...] = E * (1.0 / E.sum(axis=1, dtype=np.float64, keepdims=True))


def softmax_backward(Y, dY, temperature, dX):
    """dX = Y * (dY - sum(dY * Y, axis=1, keepdims=True)) / T.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)
    dY : ndarray of shape (n_samples, n_classes)
    temperature : float
    dX : ndarray of shape (n_samples, n_classes)
        Output, written in place; may be ``dY`` or ``Y``. The row dot
        products run in double.
    """
    temperature = number("temperature", temperature, 0.0, np.inf, True)
    elementwise_args(("Y", "dY"), (Y, dY), "dX", dX)
    dot = (dY.astype(np.float64) * Y).sum(axis=1, keepdims=True)
    dX[...] = Y * (dY - dot) * (1.0 / temperature)


def prelu_forward(X, a, Y):
    """Y = max(0, X) + a * min(0, X), a per column or shared.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_units)
    a : ndarray of shape (n_units,) or (1,)
    Y : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``X``.
    """
    prelu_args(X, a, None, Y, None, False)
    Y[...] = np.where(X > 0, X, a * X)


def prelu_backward(X, a, dY, dX, da):
    """dX = dY * (1 if X > 0 else a); da = sum(dY * min(0, X)).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_units)
    a : ndarray of shape (n_units,) or (1,)
    dY : ndarray of shape (n_samples, n_units)
    dX : ndarray of shape (n_samples, n_units)
        Output, written in place; may be ``dY``.
    da : ndarray of the shape of ``a``
        Output, overwritten: summed over rows (and columns when ``a`` is
        shared) in double.
    """
    prelu_args(X, a, dY, dX, da, True)
    negative = np.where(X > 0, 0, dY.astype(np.float64) * X)
    da_new = negative.sum(axis=0) if a.shape[0] != 1 else negative.sum(keepdims=True)
    dX[...] = np.where(X > 0, dY, a * dY)
    da[...] = da_new.reshape(da.shape)


def maxout_forward(X, pieces, Y, argmax):
    """Y[i, j] = max(X[i, j * pieces:(j + 1) * pieces]), with its argmax.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_units * pieces)
    pieces : int
    Y : ndarray of shape (n_samples, n_units)
        Output, written in place.
    argmax : ndarray of int64 of shape (n_samples, n_units)
        Output: the winning piece within each group, the first on ties (a NaN
        counts as the maximum, as in ``numpy.argmax``).
    """
    maxout_forward_args(X, pieces, Y, argmax)
    groups = X.reshape(Y.shape[0], Y.shape[1], pieces)
    if groups.size == 0:
        return
    idx = groups.argmax(axis=2)
    Y[...] = np.take_along_axis(groups, idx[..., None], axis=2)[..., 0]
    argmax[...] = idx


def maxout_backward(dY, argmax, pieces, dX):
    """dX = 0, then dX[i, j * pieces + argmax[i, j]] = dY[i, j].

    Parameters
    ----------
    dY : ndarray of shape (n_samples, n_units)
    argmax : ndarray of int64 of shape (n_samples, n_units)
    pieces : int
    dX : ndarray of shape (n_samples, n_units * pieces)
        Output, written in place.
    """
    argmax = maxout_backward_args(dY, argmax, pieces, dX)
    dX[...] = 0
    groups = dX.reshape(dY.shape[0], dY.shape[1], pieces)
    np.put_along_axis(groups, argmax[..., None], dY[..., None], axis=2)

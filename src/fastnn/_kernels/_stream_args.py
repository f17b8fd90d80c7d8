"""Argument checks of the random-stream kernels, shared by
:mod:`fastnn._kernels.random` and its twin :mod:`fastnn.reference.random`, so
that both refuse the same calls with the same errors."""

import math

import numpy as np

from fastnn._kernels._checks import integer, number

#: One past the largest seed: the key of Philox4x64 has 128 bits.
SEED_LIMIT = 1 << 128
#: One past the largest epoch, step, layer or element position (64 bits each).
WORD_LIMIT = 1 << 64
_MASK64 = WORD_LIMIT - 1
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def stream_args(seed, epoch, step, layer, start):
    """The checked stream coordinates: ``(key0, key1, epoch, step, layer,
    start)`` as Python ints, the key being the seed's two 64-bit halves."""
    seed = integer("seed", seed, 0, SEED_LIMIT - 1)
    epoch = integer("epoch", epoch, 0, WORD_LIMIT - 1)
    step = integer("step", step, 0, WORD_LIMIT - 1)
    layer = integer("layer", layer, 0, WORD_LIMIT - 1)
    start = integer("start", start, 0, WORD_LIMIT - 1)
    return seed & _MASK64, seed >> 64, epoch, step, layer, start


def check_out(name, out, start):
    """``out`` must be a writable, C-contiguous float32 or float64 ndarray of one
    or two dimensions whose elements, counted from ``start``, stay within the
    stream's 2^64 positions. Returns its flat view (no copy)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype not in _FLOATS:
        raise TypeError(f"{name}: must be float32 or float64, got {out.dtype}")
    if out.ndim not in (1, 2):
        raise ValueError(f"{name}: must have 1 or 2 dimensions, got {out.ndim}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name}: is read-only")
    if start + out.size > WORD_LIMIT:
        raise ValueError(f"start: {start} + {out.size} elements of {name} pass the "
                         "end of the stream (2^64 elements)")
    return out.reshape(-1)


def check_input(name, X, out):
    """``X`` as a C-contiguous array of ``out``'s dtype and shape (converted
    only in layout). It may be ``out`` itself, but not overlap it otherwise."""
    if X is None:
        raise TypeError(f"{name}: must be an array, got None")
    X = np.asarray(X)
    if X.dtype != out.dtype:
        raise TypeError(f"{name}: must have the output's dtype {out.dtype}, got "
                        f"{X.dtype}")
    if X.shape != out.shape:
        raise ValueError(f"{name}: must have the output's shape {out.shape}, got "
                         f"{X.shape}")
    X = np.ascontiguousarray(X)
    same = (X.__array_interface__["data"][0] == out.__array_interface__["data"][0])
    if not same and np.may_share_memory(X, out):
        raise ValueError(f"{name}: overlaps the output without being it")
    return X.reshape(-1)


def check_p(p):
    """The drop probability, a float in [0, 1)."""
    return number("p", p, 0.0, 1.0, False, True)


def check_std(std):
    """The noise's standard deviation, a finite float >= 0."""
    return number("std", std, 0.0, math.inf)

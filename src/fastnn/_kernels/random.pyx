"""Counter-based random numbers for the training step: uniforms, normals,
dropout masks and Gaussian noise, drawn in nogil code.

The stream
----------
Every number is a pure function of ``(seed, epoch, step, layer, e)``, where
``e`` is the element's position in the stream: its flat (C-order) index in
the output plus ``start`` (0 by default). There is no generator state, so the
numbers are the same on every machine, with any number of threads, and however
the work is split or ordered. :mod:`fastnn.reference.random` computes the same
bits with NumPy.

- **Generator.** Philox4x64-10 (Salmon et al., "Parallel random numbers: as
  easy as 1, 2, 3", SC 2011), the algorithm and constants of
  :class:`numpy.random.Philox`: the block function maps a 256-bit counter and
  a 128-bit key to four 64-bit words.
- **Key.** The seed, an integer in ``[0, 2**128)``: ``key = (seed % 2**64,
  seed // 2**64)``, as ``np.random.Philox(key=seed)`` reads it.
- **Counter.** Block ``b`` of the stream has the counter words ``(b, layer,
  step, epoch)``, one 64-bit word each; as the integer ``np.random.Philox``
  takes, ``b + 2**64 layer + 2**128 step + 2**192 epoch``. So the streams of
  two different ``(epoch, step, layer)`` never share a block. Each of epoch,
  step and layer ranges over ``[0, 2**64)`` and a stream holds ``2**64``
  blocks (positions ``e < 2**64``). ``np.random.Philox(key=seed, counter=c -
  1).random_raw(4)`` gives the words of counter ``c``, since NumPy increments
  its counter before each block.
- **Element ``e`` draws from block ``e // 4`` only.**

  - *Uniform*: its word ``w``, word ``e % 4`` of the block. float64:
    ``(w >> 11) * 2**-53``; float32: ``(w >> 40) * 2**-24``. Both are exact
    and in ``[0, 1)``.
  - *Dropout mask*: ``1 / (1 - p)`` where ``U >= p``, else 0, with ``U`` the
    uniform above in the mask's dtype and ``p`` and ``1 / (1 - p)`` rounded
    to that dtype: the test and scale of ``dropout_forward``, so that ``X *
    mask`` is ``dropout_forward(X, U, p)`` for finite ``X``. A unit is kept
    with probability ``P(U >= p)``, ``1 - p`` up to the uniform's grid.
  - *Normal*: Box-Muller on the word pair ``w0, w1`` = words ``2 (e // 2)``
    and ``2 (e // 2) + 1`` (a block's words 0, 1 or 2, 3):
    ``r = sqrt(-2 log u)`` with ``u = ((w0 >> 11) + 1) * 2**-53`` in
    ``(0, 1]`` (never 0), ``theta = 2 pi (w1 >> 9) * 2**-55``; an even ``e``
    gets ``r cos(theta)``, an odd ``e`` ``r sin(theta)``. It is computed in
    float64 and rounded to float32 for float32 outputs, so ``|z| <= 8.57``.
    log, sin and cos are fdlibm's (within 1 ulp), written out in ``philox.h``
    with ``+ - * /`` and ``sqrt`` only, which IEEE 754 rounds exactly, so that
    the NumPy twin computes the same bits (libm's and NumPy's own log, sin and
    cos may differ in the last bit). The angle is reduced exactly: its
    quadrant is the top two bits of ``w1``.
  - *Gaussian noise*: ``out = X + std * z``, with ``z`` the normal above and
    ``std`` rounded to the dtype and the product and sum computed in it, as
    ``Y = z; Y *= std; Y += X`` does in NumPy.

The caller chooses the numbering; within one ``(seed, epoch, step, layer)`` a
mask and the noise of the same positions use the same words, so one layer
should not draw both. Kernels that ``cimport fastnn._kernels.philox`` draw
the same stream inside their own nogil loops.
"""
from cython cimport floating
from libc.stdint cimport uint64_t

import numpy as np

from fastnn._kernels._stream_args import (
    check_input, check_out, check_p, check_std, stream_args)
from fastnn._kernels.philox cimport (
    fnn_philox4x64_10, fnn_philox4x64_10_limbs, fnn_stream, make_stream,
    stream_dropout_mask, stream_gaussian_noise, stream_normal, stream_uniform)

__all__ = ["dropout_mask_philox", "gaussian_noise_philox", "philox_normal",
           "philox_uniform"]


def _uniform(tuple c, floating[::1] out):
    cdef fnn_stream s = make_stream(c[0], c[1], c[2], c[3], c[4])
    cdef uint64_t start = c[5]
    cdef Py_ssize_t n = out.shape[0]
    if n:
        with nogil:
            stream_uniform(&s, start, n, &out[0])


def _normal(tuple c, floating[::1] out):
    cdef fnn_stream s = make_stream(c[0], c[1], c[2], c[3], c[4])
    cdef uint64_t start = c[5]
    cdef Py_ssize_t n = out.shape[0]
    if n:
        with nogil:
            stream_normal(&s, start, n, &out[0])


def _mask(tuple c, double p, floating[::1] out):
    cdef fnn_stream s = make_stream(c[0], c[1], c[2], c[3], c[4])
    cdef uint64_t start = c[5]
    cdef Py_ssize_t n = out.shape[0]
    if n:
        with nogil:
            stream_dropout_mask(&s, start, n, p, &out[0])


def _noise(tuple c, double std, const floating[::1] X, floating[::1] out):
    cdef fnn_stream s = make_stream(c[0], c[1], c[2], c[3], c[4])
    cdef uint64_t start = c[5]
    cdef Py_ssize_t n = out.shape[0]
    if n:
        with nogil:
            stream_gaussian_noise(&s, start, n, std, &X[0], &out[0])


def philox_uniform(seed, epoch, step, layer, out, *, start=0):
    """out = U[0, 1) numbers of the stream (seed, epoch, step, layer).

    Parameters
    ----------
    seed : int in [0, 2**128)
    epoch, step, layer : int in [0, 2**64)
    out : ndarray of shape (n,) or (n_samples, n_features), float32 or float64,
        C-contiguous, written in place
    start : int, default 0
        The stream position of out's first element.

    Raises
    ------
    TypeError
        If an argument has the wrong type or out the wrong dtype.
    ValueError
        If an argument is out of range or out has the wrong layout.
    """
    c = stream_args(seed, epoch, step, layer, start)
    _uniform(c, check_out("out", out, c[5]))


def philox_normal(seed, epoch, step, layer, out, *, start=0):
    """out = N(0, 1) numbers of the stream (seed, epoch, step, layer).

    Parameters, Raises: as :func:`philox_uniform`.
    """
    c = stream_args(seed, epoch, step, layer, start)
    _normal(c, check_out("out", out, c[5]))


def dropout_mask_philox(seed, epoch, step, layer, p, mask_out, *, start=0):
    """mask_out = (U >= p) / (1 - p), U the stream's uniforms: the scale mask of
    inverted dropout.

    Parameters
    ----------
    seed, epoch, step, layer, start : as :func:`philox_uniform`
    p : float in [0, 1)
        The drop probability.
    mask_out : ndarray of shape (n,) or (n_samples, n_features), float32 or
        float64, C-contiguous, written in place with 0 or 1 / (1 - p)

    Raises
    ------
    TypeError, ValueError
        As :func:`philox_uniform`, and for a bad ``p``.
    """
    c = stream_args(seed, epoch, step, layer, start)
    p = check_p(p)
    _mask(c, p, check_out("mask_out", mask_out, c[5]))


def gaussian_noise_philox(seed, epoch, step, layer, std, X, out, *, start=0):
    """out = X + std * Z, Z the stream's N(0, 1) numbers.

    Parameters
    ----------
    seed, epoch, step, layer, start : as :func:`philox_uniform`
    std : float >= 0
    X : ndarray of out's shape and dtype (out itself is allowed)
    out : ndarray of shape (n,) or (n_samples, n_features), float32 or float64,
        C-contiguous, written in place

    Raises
    ------
    TypeError, ValueError
        As :func:`philox_uniform`, for a bad ``std``, or if X does not match
        out or overlaps it without being it.
    """
    c = stream_args(seed, epoch, step, layer, start)
    std = check_std(std)
    flat = check_out("out", out, c[5])
    _noise(c, std, check_input("X", X, out), flat)


def _philox_block(key, counter, bint limbs=False):
    """The four words of Philox4x64-10 for a 128-bit key and a 256-bit counter
    (Python ints), from the 128-bit multiply (or, with ``limbs``, its portable
    32-bit-limb fallback). For the tests."""
    cdef uint64_t k[2]
    cdef uint64_t ctr[4]
    cdef uint64_t out[4]
    cdef int i
    key, counter = int(key), int(counter)
    if not (0 <= key < 1 << 128 and 0 <= counter < 1 << 256):
        raise ValueError("key: 128 bits and counter: 256 bits, non-negative")
    for i in range(2):
        k[i] = (key >> (64 * i)) & 0xFFFFFFFFFFFFFFFF
    for i in range(4):
        ctr[i] = (counter >> (64 * i)) & 0xFFFFFFFFFFFFFFFF
    if limbs:
        fnn_philox4x64_10_limbs(ctr, k, out)
    else:
        fnn_philox4x64_10(ctr, k, out)
    return np.array([out[0], out[1], out[2], out[3]], dtype=np.uint64)

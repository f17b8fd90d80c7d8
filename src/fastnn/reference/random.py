"""NumPy twin of :mod:`fastnn._kernels.random`, whose docstring defines the
stream; this module computes the same bits, in vectorized uint64 and float64
arithmetic, evaluating each expression of ``philox.h`` in the same order."""

import numpy as np

from fastnn._kernels._stream_args import (
    check_input,
    check_out,
    check_p,
    check_std,
    stream_args,
)

__all__ = ["dropout_mask_philox", "gaussian_noise_philox", "philox_normal",
           "philox_uniform"]

_U64 = np.uint64
_M0, _M1 = _U64(0xD2E7470EE14C6C93), _U64(0xCA5A826395121157)
_W0, _W1 = _U64(0x9E3779B97F4A7C15), _U64(0xBB67AE8584CAA73B)
_LO32 = _U64(0xFFFFFFFF)
_S32, _S11, _S40 = _U64(32), _U64(11), _U64(40)


def _mulhilo(a, b):
    """(lo, hi) of the 128-bit product a * b of uint64 a (a scalar) and b,
    from four 32 x 32 -> 64-bit products."""
    al, ah = a & _LO32, a >> _S32
    bl, bh = b & _LO32, b >> _S32
    ll, lh, hl, hh = al * bl, al * bh, ah * bl, ah * bh
    mid = (ll >> _S32) + (lh & _LO32) + (hl & _LO32)
    return a * b, hh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)


def philox4x64_10(counter, key):
    """Philox4x64-10 of each counter row.

    Parameters
    ----------
    counter : ndarray of shape (n, 4), uint64
    key : sequence of two uint64

    Returns
    -------
    words : ndarray of shape (n, 4), uint64
    """
    c0, c1, c2, c3 = (np.array(counter[:, i], dtype=_U64) for i in range(4))
    k0, k1 = _U64(key[0]), _U64(key[1])
    with np.errstate(over="ignore"):
        for r in range(10):
            if r > 0:
                k0, k1 = k0 + _W0, k1 + _W1
            lo0, hi0 = _mulhilo(_M0, c0)
            lo1, hi1 = _mulhilo(_M1, c2)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3], axis=1)


def _words(c, n):
    """Words w with w[i] = the word of stream position start + i's block that
    position start + i would take as a uniform, for i < n, and one more pair
    where a normal needs it: the blocks from start // 4 on, flattened and
    offset so that w[i] belongs to position start + i."""
    key0, key1, epoch, step, layer, start = c
    first = start >> 2
    n_blocks = (start + n + 3 - (start & ~3)) >> 2
    counter = np.empty((n_blocks, 4), _U64)
    # first + j < 2**64: the checks keep start + n <= 2**64
    counter[:, 0] = _U64(first) + np.arange(n_blocks, dtype=_U64)
    counter[:, 1], counter[:, 2], counter[:, 3] = layer, step, epoch
    return philox4x64_10(counter, (key0, key1)).reshape(-1), start & 3


def _uniforms(words, dtype):
    """float64: (w >> 11) 2^-53; float32: (w >> 40) 2^-24."""
    if dtype == np.float32:
        return (words >> _S40).astype(np.int32).astype(np.float32) * np.float32(
            2.0 ** -24)
    return (words >> _S11).astype(np.int64).astype(np.float64) * 2.0 ** -53


_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01,
       2.857142874366239149e-01, 2.222219843214978396e-01,
       1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03,
      -1.98412698298579493134e-04, 2.75573137070700676789e-06,
      -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03,
      2.48015872894767294178e-05, -2.75573143513906633035e-07,
      2.08757232129817482790e-09, -1.13596475577881948265e-11)


def _log(x):
    """fdlibm's log of normal positive float64 x (fnn_log_normal)."""
    Lg1, Lg2, Lg3, Lg4, Lg5, Lg6, Lg7 = _LG
    bits = x.view(_U64)
    hx = (bits >> _S32) + _U64(0x3FF00000 - 0x3FE6A09E)
    k = (hx >> _U64(20)).astype(np.int64) - 0x3FF
    hx = (hx & _U64(0x000FFFFF)) + _U64(0x3FE6A09E)
    m = ((hx << _S32) | (bits & _LO32)).view(np.float64)
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (Lg2 + w * (Lg4 + w * Lg6))
    t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)))
    R = t2 + t1
    dk = k.astype(np.float64)
    return s * (hfsq + R) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


def _sin_kernel(x):
    """sin(x) for |x| <= pi/4 (fnn_sin_kernel)."""
    S1, S2, S3, S4, S5, S6 = _S
    z = x * x
    w = z * z
    r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6)
    v = z * x
    return x + v * (S1 + z * r)


def _cos_kernel(x):
    """cos(x) for |x| <= pi/4 (fnn_cos_kernel)."""
    C1, C2, C3, C4, C5, C6 = _C
    z = x * x
    w = z * z
    r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + z * r)


def _normals(words):
    """Box-Muller on the word pairs (words[2 j], words[2 j + 1]) as
    fnn_normal_pair: z[2 j] = r cos(theta), z[2 j + 1] = r sin(theta)."""
    w0, w1 = words[0::2], words[1::2]
    u = ((w0 >> _S11) + _U64(1)).astype(np.int64).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2.0 * _log(u))
    q = w1 >> _U64(62)
    t = ((w1 >> _U64(9)) & _U64((1 << 53) - 1)).astype(np.int64).astype(
        np.float64) * 2.0 ** -53
    upper = t >= 0.5
    x = 1.57079632679489661923 * np.where(upper, 1.0 - t, t)
    sx, cx = _sin_kernel(x), _cos_kernel(x)
    c = np.where(upper, sx, cx)
    s = np.where(upper, cx, sx)
    odd = (q & _U64(1)) == 1
    cq = np.where(odd, s, c)
    sq = np.where(odd, c, s)
    cq = np.where((q == 1) | (q == 2), -cq, cq)
    sq = np.where(q >= 2, -sq, sq)
    z = np.empty(2 * len(w0))
    z[0::2] = r * cq
    z[1::2] = r * sq
    return z


def _stream_uniform(c, n, dtype):
    words, off = _words(c, n)
    return _uniforms(words[off:off + n], dtype)


def _stream_normal(c, n, dtype):
    words, off = _words(c, n)
    return _normals(words)[off:off + n].astype(dtype)


def philox_uniform(seed, epoch, step, layer, out, *, start=0):
    """out = U[0, 1) numbers of the stream (seed, epoch, step, layer)."""
    c = stream_args(seed, epoch, step, layer, start)
    flat = check_out("out", out, c[5])
    flat[...] = _stream_uniform(c, flat.size, flat.dtype)


def philox_normal(seed, epoch, step, layer, out, *, start=0):
    """out = N(0, 1) numbers of the stream (seed, epoch, step, layer)."""
    c = stream_args(seed, epoch, step, layer, start)
    flat = check_out("out", out, c[5])
    flat[...] = _stream_normal(c, flat.size, flat.dtype)


def dropout_mask_philox(seed, epoch, step, layer, p, mask_out, *, start=0):
    """mask_out = (U >= p) / (1 - p), U the stream's uniforms."""
    c = stream_args(seed, epoch, step, layer, start)
    p = check_p(p)
    flat = check_out("mask_out", mask_out, c[5])
    dtype = flat.dtype.type
    U = _stream_uniform(c, flat.size, flat.dtype)
    flat[...] = np.where(U >= dtype(p), dtype(1.0 / (1.0 - p)), dtype(0))


def gaussian_noise_philox(seed, epoch, step, layer, std, X, out, *, start=0):
    """out = X + std * Z, Z the stream's N(0, 1) numbers."""
    c = stream_args(seed, epoch, step, layer, start)
    std = check_std(std)
    flat = check_out("out", out, c[5])
    X = check_input("X", X, out)
    dtype = flat.dtype.type
    Z = _stream_normal(c, flat.size, flat.dtype)
    np.add(X, dtype(std) * Z, out=flat)

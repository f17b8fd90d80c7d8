"""The counter-based random stream: Philox4x64-10 words against NumPy's
Philox bit generator, the documented layout and transforms against direct
formulas over those words, the kernels against their twin bit for bit, the
distributions, independence of the streams, threads, and bad input."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import stats

from fastnn._kernels import dropout as cy_dropout
from fastnn._kernels import random as cy
from fastnn.reference import random as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
SHAPES = [(1,), (1, 1), (7,), (5, 1), (33, 17), (1001,), (0,), (0, 3)]
SHAPE_IDS = ["1", "1x1", "odd", "col", "2d-odd", "long", "empty", "empty-2d"]
STARTS = [0, 1, 3, 6]
MASK64 = (1 << 64) - 1
#: Keys and counters (Python ints) around the words' edges and in between.
KEYS = [0, 1, 0xDEADBEEF, (1 << 64) - 1, 1 << 64, (1 << 128) - 1,
        0x0123456789ABCDEF_FEDCBA9876543210]
COUNTERS = [0, 1, 2, (1 << 64) - 1, 1 << 64, 7 + (3 << 64) + (5 << 128) + (9 << 192),
            (1 << 256) - 1]


def numpy_words(key, counter, n_blocks=1):
    """The words of the blocks counter, counter + 1, ... from NumPy's Philox,
    which increments its 256-bit counter before each block."""
    bg = np.random.Philox(key=key, counter=(counter - 1) % (1 << 256))
    return bg.random_raw(4 * n_blocks)


def stream_counter(epoch, step, layer, block):
    """The documented counter of a stream's block, as one integer."""
    return block + (layer << 64) + (step << 128) + (epoch << 192)


def draw(mod, kind, shape, dtype, coords=(42, 1, 2, 3), start=0, X=None):
    """A kernel's output, written over NaN (every element must be written)."""
    out = np.full(shape, np.nan, dtype)
    if kind == "uniform":
        mod.philox_uniform(*coords, out, start=start)
    elif kind == "normal":
        mod.philox_normal(*coords, out, start=start)
    elif kind == "mask":
        mod.dropout_mask_philox(*coords, 0.3, out, start=start)
    else:
        if X is None:
            X = np.random.default_rng(7).normal(size=shape).astype(dtype)
        mod.gaussian_noise_philox(*coords, 0.25, X, out, start=start)
    return out


def test_module_interface():
    assert cy.__all__ == ref.__all__ == [
        "dropout_mask_philox", "gaussian_noise_philox", "philox_normal",
        "philox_uniform"]


# --------------------------------------------------------------------------
# Philox4x64-10 against numpy.random.Philox


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("key", KEYS)
def test_block_words_equal_numpy_philox(key, counter):
    want = numpy_words(key, counter)
    assert_array_equal(cy._philox_block(key, counter), want)
    # the portable 32-bit-limb multiply, used where there is no 128-bit integer
    assert_array_equal(cy._philox_block(key, counter, limbs=True), want)
    ctr = np.array([[(counter >> (64 * i)) & MASK64 for i in range(4)]], np.uint64)
    assert_array_equal(ref.philox4x64_10(ctr, (key & MASK64, key >> 64))[0], want)


def test_twin_block_function_over_many_counters():
    rng = np.random.default_rng(3)
    ctr = rng.integers(0, 1 << 64, (200, 4), dtype=np.uint64, endpoint=False)
    key = (0x1234, 0xFFFFFFFFFFFFFFFF)
    got = ref.philox4x64_10(ctr, key)
    for row, words in zip(ctr[:20], got[:20]):
        counter = sum(int(v) << (64 * i) for i, v in enumerate(row))
        assert_array_equal(words, numpy_words(key[0] + (key[1] << 64), counter))
        assert_array_equal(cy._philox_block(key[0] + (key[1] << 64), counter), words)


# --------------------------------------------------------------------------
# The documented stream, computed directly from NumPy's words


@pytest.mark.parametrize("seed, epoch, step, layer", [
    (0, 0, 0, 0), (42, 1, 2, 3), ((1 << 128) - 1, MASK64, MASK64, MASK64),
    (1 << 70, 5, 1 << 40, 65536)])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_uniforms_are_the_documented_words(mod, seed, epoch, step, layer):
    n = 4 * 5 + 3
    raw = numpy_words(seed, stream_counter(epoch, step, layer, 0), 6)[:n]
    u64 = draw(mod, "uniform", (n,), np.float64, (seed, epoch, step, layer))
    assert_array_equal(u64, (raw >> np.uint64(11)).astype(np.float64) * 2.0 ** -53)
    u32 = draw(mod, "uniform", (n,), np.float32, (seed, epoch, step, layer))
    assert_array_equal(u32, (raw >> np.uint64(40)).astype(np.float32)
                       * np.float32(2.0 ** -24))


def box_muller_libm(words):
    """The documented Box-Muller transform with NumPy's log, cos and sin."""
    w0, w1 = words[0::2], words[1::2]
    u = ((w0 >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2.0 * np.log(u))
    theta = 2 * np.pi * ((w1 >> np.uint64(9)).astype(np.float64) * 2.0 ** -55)
    z = np.empty(words.size)
    z[0::2], z[1::2] = r * np.cos(theta), r * np.sin(theta)
    return z


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_normals_are_box_muller_on_the_documented_words(mod):
    n_blocks = 2000
    raw = numpy_words(9, stream_counter(4, 5, 6, 0), n_blocks)
    z = draw(mod, "normal", (4 * n_blocks,), np.float64, (9, 4, 5, 6))
    # libm's transcendental functions are within an ulp or so of the ones
    # written out in philox.h; |z| < 9 and theta < 2 pi
    np.testing.assert_allclose(z, box_muller_libm(raw), rtol=0, atol=1e-14)
    assert np.abs(z).max() <= np.sqrt(106 * np.log(2))


def test_box_muller_radius_and_angle_edges():
    """u = 1 (radius 0) and u = 2^-53 (the largest radius); the angle at each
    quadrant boundary and at the switch between the sin and cos kernels."""
    top = np.uint64(MASK64)
    q = [np.uint64(k) << np.uint64(62) for k in range(4)]
    half = np.uint64(1) << np.uint64(61)
    w1 = np.array(q + [qq | half for qq in q] + [top], np.uint64)
    for w0 in (np.uint64(0), top):
        words = np.empty(2 * w1.size, np.uint64)
        words[0::2], words[1::2] = w0, w1
        np.testing.assert_allclose(ref._normals(words), box_muller_libm(words),
                                   rtol=0, atol=2e-15)
    r_max = ref._normals(np.array([0, 0], np.uint64))[0]
    assert r_max == np.sqrt(-2.0 * np.log(2.0 ** -53))


def ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_written_out_log_sin_cos_are_within_an_ulp_of_libm():
    rng = np.random.default_rng(5)
    u = (rng.integers(1, 1 << 53, 200_000, dtype=np.int64, endpoint=True)
         .astype(np.float64) * 2.0 ** -53)
    u = np.concatenate([u, [2.0 ** -53, 0.5, np.sqrt(0.5), 1 - 2.0 ** -53]])
    assert ulps(ref._log(u), np.log(u)).max() <= 1
    assert ref._log(np.array([1.0]))[0] == 0
    x = rng.uniform(0, np.pi / 4, 200_000)
    x = np.concatenate([x, [0.0, 1e-300, np.pi / 4]])
    assert ulps(ref._sin_kernel(x)[x > 0], np.sin(x)[x > 0]).max() <= 1
    assert ulps(ref._cos_kernel(x), np.cos(x)).max() <= 1


# --------------------------------------------------------------------------
# Kernel against twin: bit-identical


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", ["uniform", "normal", "mask", "noise"])
def test_kernel_equals_twin_bit_for_bit(kind, shape, start, dtype):
    got = draw(cy, kind, shape, dtype, start=start)
    want = draw(ref, kind, shape, dtype, start=start)
    assert got.dtype == want.dtype == dtype
    assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert not np.isnan(got).any()


@pytest.mark.parametrize("kind", ["uniform", "normal", "mask", "noise"])
def test_kernel_equals_twin_over_a_long_stream(kind, dtype):
    """Several of the kernel's internal chunks of blocks, from an odd start."""
    coords = ((1 << 100) + 17, 3, 123456, 2)
    got = draw(cy, kind, (257, 31), dtype, coords, start=5)
    want = draw(ref, kind, (257, 31), dtype, coords, start=5)
    assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("kind", ["uniform", "normal", "mask", "noise"])
def test_pieces_from_start_equal_the_whole(mod, kind, dtype):
    """Element e depends on e alone: rows drawn one call each (as threads of a
    plan would) equal one call over the whole."""
    X = np.random.default_rng(1).normal(size=(9, 13)).astype(dtype)
    whole = draw(mod, kind, X.shape, dtype, X=X)
    rows = np.stack([draw(mod, kind, (13,), dtype, start=13 * i, X=X[i])
                     for i in range(9)])
    assert_array_equal(rows, whole)
    flat = whole.reshape(-1)
    for a, b in [(0, 1), (1, 2), (3, 10), (5, 117)]:
        piece = draw(mod, kind, (b - a,), dtype, start=a, X=X.reshape(-1)[a:b])
        assert_array_equal(piece, flat[a:b])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_float32_is_float64_rounded(mod):
    u64 = draw(mod, "uniform", (999,), np.float64)
    u32 = draw(mod, "uniform", (999,), np.float32)
    assert_array_equal(u32, np.floor(u64 * 2.0 ** 24) * 2.0 ** -24)
    z64 = draw(mod, "normal", (999,), np.float64)
    assert_array_equal(draw(mod, "normal", (999,), np.float32),
                       z64.astype(np.float32))


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_last_positions_of_the_stream(mod):
    coords = ((1 << 128) - 1, MASK64, MASK64, MASK64)
    end = draw(mod, "uniform", (5,), np.float64, coords, start=(1 << 64) - 5)
    raw = numpy_words((1 << 128) - 1, stream_counter(*coords[1:], (1 << 62) - 2), 2)
    assert_array_equal(end, (raw[3:] >> np.uint64(11)).astype(np.float64) * 2.0 ** -53)
    with pytest.raises(ValueError, match="start"):
        draw(mod, "uniform", (6,), np.float64, coords, start=(1 << 64) - 5)


# --------------------------------------------------------------------------
# Masks and noise as the layers use them


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_mask_is_dropout_forward_of_the_streams_uniforms(mod, p, dtype):
    """X * mask equals the dropout kernel fed the same uniforms, bit for bit."""
    shape = (37, 29)
    X = np.random.default_rng(2).normal(size=shape).astype(dtype)
    U = np.empty(shape, dtype)
    mod.philox_uniform(11, 2, 3, 4, U)
    mask = np.full(shape, np.nan, dtype)
    mod.dropout_mask_philox(11, 2, 3, 4, p, mask)
    scale = dtype(1.0 / (1.0 - p))
    assert set(np.unique(mask)) <= {dtype(0), scale}
    assert_array_equal(mask != 0, U >= dtype(p))
    Y = np.empty(shape, dtype)
    cy_dropout.dropout_forward(X, U, p, Y)
    assert_array_equal(X * mask, Y)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_mask_keeps_a_unit_whose_uniform_equals_p(mod, dtype):
    """The boundary U == p keeps the unit (U >= p), as dropout_forward does."""
    U = draw(mod, "uniform", (64,), dtype)
    mask = np.empty(64, dtype)
    for k in (0, 17, 63):
        mod.dropout_mask_philox(42, 1, 2, 3, float(U[k]), mask)
        assert mask[k] == dtype(1.0 / (1.0 - float(U[k])))
        assert_array_equal(mask != 0, U >= U[k])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_noise_is_x_plus_std_times_the_normals(mod, dtype):
    X = np.random.default_rng(4).normal(size=(19, 23)).astype(dtype)
    Z = draw(mod, "normal", X.shape, dtype, (8, 1, 1, 0))
    out = np.full(X.shape, np.nan, dtype)
    mod.gaussian_noise_philox(8, 1, 1, 0, 0.3, X, out)
    want = Z.copy()
    want *= 0.3  # as the layer computes it: Y = z; Y *= std; Y += X
    want += X
    assert_array_equal(out, want)
    inplace = X.copy()
    mod.gaussian_noise_philox(8, 1, 1, 0, 0.3, inplace, inplace)
    assert_array_equal(inplace, out)
    # non-contiguous X is read, not refused
    wide = np.repeat(X, 2, axis=1)
    mod.gaussian_noise_philox(8, 1, 1, 0, 0.3, wide[:, ::2], out)
    assert_array_equal(out, want)
    mod.gaussian_noise_philox(8, 1, 1, 0, 0.0, X, out)
    assert_array_equal(out, X)


# --------------------------------------------------------------------------
# Distributions (fixed seeds: these cannot flake)


def test_uniform_moments(dtype):
    u = draw(cy, "uniform", (1_000_000,), dtype, (2024, 0, 0, 0))
    assert u.min() >= 0 and u.max() < 1
    n = u.size
    # mean 1/2, variance 1/12: within 5 standard errors
    assert abs(u.mean(dtype=np.float64) - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(u.var(dtype=np.float64) - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_moments_and_ks(dtype):
    z = draw(cy, "normal", (1_000_000,), dtype, (2024, 0, 0, 1)).astype(np.float64)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the two members of each pair are uncorrelated
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / np.sqrt(n / 2)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_dropout_keep_rate_within_binomial_bound(p, dtype):
    mask = np.empty((512, 784), dtype)
    cy.dropout_mask_philox(77, 3, 9, 1, p, mask)
    n, kept = mask.size, np.count_nonzero(mask)
    assert abs(kept - n * (1 - p)) < 5 * np.sqrt(n * p * (1 - p))


# --------------------------------------------------------------------------
# Streams: distinct for distinct coordinates, equal for equal ones


def test_different_coordinates_give_different_streams():
    base = (5, 1, 2, 3)
    others = [(6, 1, 2, 3), (5 + (1 << 64), 1, 2, 3), (5, 2, 2, 3), (5, 1, 3, 3),
              (5, 1, 2, 4), (5, 0, 0, 0), (5, 1, 3, 2), (5, 2, 1, 3)]
    streams = [draw(cy, "uniform", (4000,), np.float64, c) for c in [base] + others]
    for i, a in enumerate(streams):
        for b in streams[i + 1:]:
            # equal doubles from 53-bit words: about 4000^2 / 2^53, never
            assert len(np.intersect1d(a, b)) == 0
            assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)


def test_same_arguments_give_the_same_numbers_from_threads():
    coords = [(s, e, t, 1) for s in (1, 2) for e in (0, 1) for t in (0, 7)]
    X = np.random.default_rng(6).normal(size=(128, 784)).astype(np.float32)

    def job(c):
        return (draw(cy, "mask", X.shape, np.float32, c),
                draw(cy, "noise", X.shape, np.float32, c, X=X))

    serial = [job(c) for c in coords]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(job, coords + coords))
    for got, want in zip(parallel, serial + serial):
        assert_array_equal(got[0], want[0])
        assert_array_equal(got[1], want[1])


# --------------------------------------------------------------------------
# Bad input: the same refusal from both backends, the output left unchanged

GOOD = {"seed": 1, "epoch": 0, "step": 0, "layer": 0}
BAD_COORDS = [
    ("seed", -1, ValueError), ("seed", 1 << 128, ValueError),
    ("seed", 1.5, TypeError), ("seed", True, TypeError), ("seed", None, TypeError),
    ("seed", "1", TypeError), ("epoch", -1, ValueError),
    ("epoch", 1 << 64, ValueError), ("step", 2.0, TypeError),
    ("layer", -3, ValueError), ("layer", None, TypeError),
]


def call(mod, kind, out, X=..., p=0.5, std=0.1, start=0, **coords):
    args = dict(GOOD, **coords)
    c = (args["seed"], args["epoch"], args["step"], args["layer"])
    if kind == "uniform":
        mod.philox_uniform(*c, out, start=start)
    elif kind == "normal":
        mod.philox_normal(*c, out, start=start)
    elif kind == "mask":
        mod.dropout_mask_philox(*c, p, out, start=start)
    else:
        mod.gaussian_noise_philox(*c, std, np.zeros_like(out) if X is ... else X,
                                  out, start=start)


KINDS = ["uniform", "normal", "mask", "noise"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, value, error", BAD_COORDS,
                         ids=[f"{n}={v!r}" for n, v, _ in BAD_COORDS])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_bad_coordinates_raise_naming_them(mod, kind, name, value, error):
    out = np.full(4, 9.0)
    with pytest.raises(error, match=f"^{name}: "):
        call(mod, kind, out, **{name: value})
    assert_array_equal(out, 9.0)


def bad_outputs():
    a = np.full((6, 4), 9.0)
    ro = np.full(4, 9.0)
    ro.flags.writeable = False
    return [
        ("list", [0.0] * 4, TypeError),
        ("int", np.full(4, 9, np.int64), TypeError),
        ("float16", np.full(4, 9, np.float16), TypeError),
        ("0-d", np.array(9.0), ValueError),
        ("3-d", np.full((2, 2, 2), 9.0), ValueError),
        ("strided", a[:, ::2], ValueError),
        ("fortran", np.asfortranarray(a), ValueError),
        ("read-only", ro, ValueError),
        ("none", None, TypeError),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", range(len(bad_outputs())),
                         ids=[c[0] for c in bad_outputs()])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_bad_outputs_raise_naming_them(mod, kind, case):
    _, out, error = bad_outputs()[case]
    name = "mask_out" if kind == "mask" else "out"
    X = np.zeros(4) if kind == "noise" else ...
    with pytest.raises(error, match=f"^{name}: "):
        call(mod, kind, out, X=X)
    if isinstance(out, np.ndarray):
        assert (np.asarray(out) == 9).all()


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("p, error", [(1.0, ValueError), (-0.1, ValueError),
                                      (np.nan, ValueError), ("0.5", TypeError),
                                      (None, TypeError)])
def test_bad_p_raises(mod, p, error):
    out = np.full(4, 9.0)
    with pytest.raises(error, match="^p: "):
        call(mod, "mask", out, p=p)
    assert_array_equal(out, 9.0)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_bad_std_and_x_raise(mod):
    out = np.full((3, 4), 9.0)
    for std, error in [(-1.0, ValueError), (np.inf, ValueError), (None, TypeError)]:
        with pytest.raises(error, match="^std: "):
            call(mod, "noise", out, std=std)
    buf = np.zeros(13)
    for X, error in [(np.zeros((3, 4), np.float32), TypeError),
                     (np.zeros((4, 3)), ValueError), (np.zeros(12), ValueError),
                     (None, TypeError), ([[0.0] * 4] * 3, None)]:
        if error is None:  # a nested list of out's shape is read as float64
            call(mod, "noise", np.full((3, 4), 9.0), X=X)
            continue
        with pytest.raises(error, match="^X: "):
            call(mod, "noise", out, X=X)
    # X overlapping out without being it
    with pytest.raises(ValueError, match="^X: overlaps"):
        call(mod, "noise", buf[:12], X=buf[1:])
    assert_array_equal(out, 9.0)
    with pytest.raises(ValueError, match="^start: "):
        call(mod, "uniform", out, start=-1)
    with pytest.raises(TypeError, match="^start: "):
        call(mod, "uniform", out, start=0.5)
    assert_array_equal(out, 9.0)


def test_block_helper_refuses_out_of_range():
    with pytest.raises(ValueError, match="key"):
        cy._philox_block(1 << 128, 0)
    with pytest.raises(ValueError, match="counter"):
        cy._philox_block(0, -1)

"""Loss kernels: Cython vs NumPy twin, twin vs finite differences, both vs torch's
functional losses, stability on huge logits and the design's worked example."""

import math

import numpy as np
import pytest
from conftest import RTOL, tolerance
from numpy.testing import assert_allclose, assert_array_equal

from fastnn._kernels import losses as cy
from fastnn.reference import losses as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
#: Losses on integer labels; the others take a target array T.
LABEL_LOSSES = {"softmax_cross_entropy", "hinge"}
LOSSES = [
    "softmax_cross_entropy",
    "binary_cross_entropy",
    "mse",
    "mae",
    "huber",
    "hinge",
]
HUBER_DELTA = 0.8
SHAPES = [(1, 1), (1, 10), (7, 1), (33, 17), (256, 10), (256, 1000)]
SHAPE_IDS = ["1x1", "1row", "1col", "odd", "tall", "large"]


def test_module_interface():
    assert cy.__all__ == ref.__all__
    assert ref.__all__ == sorted(f"{name}_forward_backward" for name in LOSSES)


def make(rng, loss, shape, dtype):
    """Y and its target (int64 labels or a float array of Y's shape)."""
    n, k = shape
    Y = (3 * rng.normal(size=shape)).astype(dtype)
    if loss in LABEL_LOSSES:
        return Y, rng.integers(0, k, size=n)
    if loss == "binary_cross_entropy":
        T = rng.uniform(size=shape)
        T[::2] = T[::2] > 0.5  # hard 0/1 labels in every other row
        return Y, T.astype(dtype)
    return Y, (3 * rng.normal(size=shape)).astype(dtype)


def call(mod, loss, Y, target, dY, delta=HUBER_DELTA):
    fn = getattr(mod, f"{loss}_forward_backward")
    if loss == "huber":
        return fn(Y, target, delta, dY)
    return fn(Y, target, dY)


def run(mod, loss, Y, target, delta=HUBER_DELTA):
    """The loss and a gradient written over garbage (it must be fully written)."""
    dY = np.full(Y.shape, np.nan, Y.dtype)
    value = call(mod, loss, Y, target, dY, delta)
    assert type(value) is float
    return value, dY


def term_scale(loss, Y, target, delta=HUBER_DELTA):
    """Bound on one summed term of the loss, for the absolute part of the
    tolerance (the loss is a mean of such nonnegative terms)."""
    if loss in LABEL_LOSSES:  # (max - z_y) + log(k), or the sum of k margins
        k = Y.shape[1]
        return (1 + np.ptp(Y, axis=1).max()) * (k if loss == "hinge" else 1) + np.log(k)
    d = np.abs(Y.astype(np.float64) - target).max()
    if loss == "binary_cross_entropy":
        return 1 + np.abs(Y).max()
    return {"mse": d * d, "mae": d, "huber": delta * d}[loss]


# --------------------------------------------------------------------------
# Cython kernel vs NumPy twin


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_kernel_matches_twin(loss, shape, dtype, rng):
    Y, target = make(rng, loss, shape, dtype)
    value, dY = run(cy, loss, Y, target)
    value_r, dY_r = run(ref, loss, Y, target)
    assert_allclose(value, value_r, **tolerance(dtype, term_scale(loss, Y, target)))
    assert_allclose(dY, dY_r, **tolerance(dtype, np.abs(dY_r).max()))
    # dY=None computes the same loss, in the same order, without the gradient.
    assert call(cy, loss, Y, target, None) == value
    assert call(ref, loss, Y, target, None) == value_r


@pytest.mark.parametrize("loss", LOSSES)
def test_float32_loss_is_accumulated_in_double(loss, rng):
    """The float32 kernel's loss equals the float64 kernel's on the same values to
    ~1e-9 (hinge margins are rounded to float32); a float32 running sum of these
    256000 terms is off by ~1e-4."""
    Y, target = make(rng, loss, (256, 1000), np.float32)
    target64 = target if loss in LABEL_LOSSES else target.astype(np.float64)
    value = call(cy, loss, Y, target, None)
    assert_allclose(
        value, call(cy, loss, Y.astype(np.float64), target64, None), rtol=1e-8
    )


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_readonly_and_noncontiguous_inputs(mod, loss, dtype, rng):
    Y, target = make(rng, loss, (33, 34), dtype)
    value, dY = run(mod, loss, Y, target)
    tol = tolerance(dtype, term_scale(loss, Y, target))
    gtol = tolerance(dtype, np.abs(dY).max())

    def check(Y_in, target_in, want_value, want_dY):
        got_value, got_dY = run(mod, loss, Y_in, target_in)
        if mod is cy:  # converted to the same C-contiguous data: bit for bit
            assert got_value == want_value
            assert_array_equal(got_dY, want_dY)
        else:  # NumPy may sum strided data in another order
            assert_allclose(got_value, want_value, **tol)
            assert_allclose(got_dY, want_dY, **gtol)

    # Read-only.
    Y_ro, t_ro = Y.copy(), target.copy()
    Y_ro.setflags(write=False)
    t_ro.setflags(write=False)
    check(Y_ro, t_ro, value, dY)
    # Fortran order (labels: a strided int32 view).
    if loss in LABEL_LOSSES:
        labels = np.repeat(target.astype(np.int32), 2)[::2]
        check(np.asfortranarray(Y), labels, value, dY)
    else:
        check(np.asfortranarray(Y), np.asfortranarray(target), value, dY)
    # Every other column: compared with the same columns made contiguous.
    Y_half = Y[:, ::2]
    if loss in LABEL_LOSSES:
        t_half = t_half_c = target % Y_half.shape[1]
    else:
        t_half = target[:, ::2]
        t_half_c = np.ascontiguousarray(t_half)
    value_h, dY_h = run(mod, loss, np.ascontiguousarray(Y_half), t_half_c)
    check(Y_half, t_half, value_h, dY_h)
    # Y, read through the strided view above, is untouched.
    assert_array_equal(Y_ro, Y)
    assert_array_equal(t_ro, target)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_may_overwrite_the_logits(mod, loss, dtype, rng):
    Y, target = make(rng, loss, (9, 7), dtype)
    value, dY = run(mod, loss, Y, target)
    Y_work = Y.copy()
    assert call(mod, loss, Y_work, target, Y_work) == value
    assert_array_equal(Y_work, dY)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_empty_input_gives_nan_without_crashing(mod, loss, dtype):
    """n = 0 is outside the precondition (the API rejects it); it must not crash."""
    Y = np.zeros((0, 3), dtype)
    target = np.zeros(0, np.int64) if loss in LABEL_LOSSES else Y.copy()
    assert math.isnan(call(mod, loss, Y, target, np.zeros_like(Y)))
    assert math.isnan(call(mod, loss, Y, target, None))


# --------------------------------------------------------------------------
# The twin's gradients vs central finite differences (float64, away from kinks)


def away_from_kinks(loss, Y, target, delta, gap=1e-3):
    """True if no element sits within ``gap`` of a kink, and both sides of the kink
    occur (so the test exercises both branches)."""
    if loss == "hinge":
        rows = np.arange(Y.shape[0])
        margin = Y - Y[rows, target][:, None] + 1
        margin[rows, target] = np.nan
        m = margin[~np.isnan(margin)]
        return np.abs(m).min() > gap and (m > 0).any() and (m < 0).any()
    if loss in ("softmax_cross_entropy", "binary_cross_entropy", "mse"):
        return True  # smooth
    d = Y - target
    if loss == "mae":
        return np.abs(d).min() > gap
    if loss == "huber":
        a = np.abs(d)
        return np.abs(a - delta).min() > gap and (a < delta).any() and (a > delta).any()
    raise AssertionError(loss)


@pytest.mark.parametrize("loss", LOSSES)
def test_twin_gradient_matches_finite_differences(loss, rng):
    delta = HUBER_DELTA
    for _ in range(100):
        Y, target = make(rng, loss, (4, 5), np.float64)
        Y /= 3  # scores of order 1: hinge margins on both sides of 0
        if away_from_kinks(loss, Y, target, delta):
            break
    else:  # pragma: no cover
        pytest.fail("no sample away from the kinks")
    _, dY = run(ref, loss, Y, target, delta)
    h = 1e-6
    numeric = np.empty_like(Y)
    for idx in np.ndindex(Y.shape):
        Yp, Ym = Y.copy(), Y.copy()
        Yp[idx] += h
        Ym[idx] -= h
        numeric[idx] = (
            call(ref, loss, Yp, target, None, delta)
            - call(ref, loss, Ym, target, None, delta)
        ) / (2 * h)
    # Truncation O(h^2) and rounding O(eps / h) ~ 1e-10.
    assert_allclose(dY, numeric, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------
# Against torch (float64, values and autograd gradients)


def torch_loss(torch, loss, Y, target, delta):
    F = torch.nn.functional
    Yt = torch.tensor(Y, requires_grad=True)
    tt = torch.tensor(target)
    if loss == "softmax_cross_entropy":
        value = F.cross_entropy(Yt, tt)
    elif loss == "binary_cross_entropy":
        value = F.binary_cross_entropy_with_logits(Yt, tt)
    elif loss == "mse":
        value = F.mse_loss(Yt, tt)
    elif loss == "mae":
        value = F.l1_loss(Yt, tt)
    elif loss == "huber":
        value = F.huber_loss(Yt, tt, delta=delta)
    else:  # torch's multi_margin_loss divides by the number of classes
        value = F.multi_margin_loss(Yt, tt) * Y.shape[1]
    value.backward()
    return value.item(), Yt.grad.numpy()


def with_ties(loss, Y, target, delta):
    """Put elements exactly on the kinks: d == 0, |d| == delta, margin == 0."""
    Y = np.round(Y * 4) / 4  # dyadic, so the differences below are exact
    if loss in ("mae", "huber", "mse"):
        target = np.round(target * 4) / 4
        target[0, 0] = Y[0, 0]
        if Y.shape[1] > 1:
            target[0, 1] = Y[0, 1] - delta
            target[-1, -1] = Y[-1, -1] + delta
    elif loss == "hinge" and Y.shape[1] > 1:
        j = (target[0] + 1) % Y.shape[1]
        Y[0, j] = Y[0, target[0]] - 1
    return Y, target


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (7, 1), (1, 10), (33, 17), (64, 100)],
    ids=["1x1", "1col", "1row", "odd", "wide"],
)
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_torch(loss, mod, shape, rng):
    torch = pytest.importorskip("torch")
    delta = 0.5
    Y, target = make(rng, loss, shape, np.float64)
    Y, target = with_ties(loss, Y, target, delta)
    want_value, want_dY = torch_loss(torch, loss, Y, target, delta)
    value, dY = run(mod, loss, Y, target, delta)
    scale = term_scale(loss, Y, target, delta)
    assert_allclose(value, want_value, **tolerance(np.float64, scale))
    assert_allclose(dY, want_dY, **tolerance(np.float64, np.abs(want_dY).max()))


@pytest.mark.parametrize("delta", [0.25, 1.0, 3.0])
def test_huber_delta_matches_torch(delta, rng):
    torch = pytest.importorskip("torch")
    Y, T = make(rng, "huber", (40, 3), np.float64)
    Y, T = with_ties("huber", Y, T, delta)
    want_value, want_dY = torch_loss(torch, "huber", Y, T, delta)
    for mod in BACKENDS:
        value, dY = run(mod, "huber", Y, T, delta)
        scale = term_scale("huber", Y, T, delta)
        assert_allclose(value, want_value, **tolerance(np.float64, scale))
        assert_allclose(dY, want_dY, **tolerance(np.float64, delta / Y.size))


# --------------------------------------------------------------------------
# Exact cases: kinks, stability, the worked example


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_kink_conventions(mod, dtype):
    # hinge: a margin of exactly 0 is inactive; margin 1 (tied scores) is active.
    S = np.array([[2.0, 1.0, 0.5], [1.0, 1.0, -5.0]], dtype)
    value, dY = run(mod, "hinge", S, np.array([0, 0]))
    assert value == 0.5
    assert_array_equal(dY, np.array([[0, 0, 0], [-0.5, 0.5, 0]], dtype))
    # mae: sign(0) = 0.
    Y = np.array([[1.5, 2.0, -1.0]], dtype)
    T = np.array([[1.5, 1.0, 0.0]], dtype)
    value, dY = run(mod, "mae", Y, T)
    assert value == pytest.approx(2 / 3, rel=RTOL[dtype])
    assert_allclose(dY, np.array([[0, 1, -1]], dtype) / 3, rtol=RTOL[dtype])
    # huber at |d| == delta: 0.5 delta^2 and gradient d (both branches agree).
    value, dY = run(mod, "huber", Y, T, 1.0)
    assert value == pytest.approx(1 / 3, rel=RTOL[dtype])
    assert_allclose(dY, np.array([[0, 1, -1]], dtype) / 3, rtol=RTOL[dtype])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_huge_logits_are_stable(mod, dtype):
    big = 1e4
    Y = np.array([[big, -big, 0.0], [big, -big, 0.0], [big, -big, 0.0]], dtype)
    y = np.array([0, 1, 2])
    value, dY = run(mod, "softmax_cross_entropy", Y, y)
    # Row losses: ~0, 2e4, 1e4 (exp(-1e4) underflows to 0 in the softmax).
    assert value == pytest.approx(big, rel=RTOL[dtype])
    onehot = np.eye(3, dtype=dtype)[y]
    assert_allclose(dY, (np.array([[1, 0, 0]] * 3, dtype) - onehot) / 3, atol=1e-30)

    T = np.array([[0, 1, 0.5], [1, 0, 0.5], [1, 0, 1]], dtype)
    value, dY = run(mod, "binary_cross_entropy", Y, T)
    # big*(1-t) or big*t, plus log(2) - 0*t at 0.
    want = np.where(Y > 0, Y * (1 - T), np.where(Y < 0, -Y * T, math.log(2)))
    assert value == pytest.approx(want.mean(), rel=RTOL[dtype])
    sigmoid = np.array([1, 0, 0.5], dtype)
    assert_allclose(dY, (sigmoid - T) / 9, atol=1e-30)

    for loss in ("mse", "mae", "huber", "hinge"):
        target = y if loss in LABEL_LOSSES else -Y
        value, dY = run(mod, loss, Y, target)
        assert math.isfinite(value) and np.isfinite(dY).all()


WORKED_SCORES = [[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]
WORKED_LABELS = [0, 1, 2]


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_worked_example_hinge(mod, dtype):
    S = np.array(WORKED_SCORES, dtype)
    value, dY = run(mod, "hinge", S, np.array(WORKED_LABELS))
    # Row margins: (2.9, -3.9) -> 2.9; (-2.6, -1.9) -> 0; (6.3, 6.6) -> 12.9.
    assert round(value, 2) == 5.27
    assert_allclose(value, 15.8 / 3, rtol=RTOL[dtype], atol=1e-12)
    want = np.array([[-1, 1, 0], [0, 0, 0], [1, 1, -2]], dtype) / 3
    assert_allclose(dY, want, rtol=RTOL[dtype])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_worked_example_cross_entropy(mod, dtype):
    S = np.array(WORKED_SCORES, dtype)
    y = np.array(WORKED_LABELS)
    rows = [
        mod.softmax_cross_entropy_forward_backward(S[i : i + 1], y[i : i + 1], None)
        for i in range(3)
    ]
    # Natural log: -log softmax(s)_y = log(sum_j e^{s_j}) - s_y, computed with
    # the math module on the same (possibly float32-rounded) scores.
    exact = [
        math.log(sum(math.exp(s) for s in row)) - row[label]
        for row, label in zip(S.astype(np.float64).tolist(), WORKED_LABELS)
    ]
    assert_allclose(rows, exact, rtol=RTOL[dtype], atol=1e-12)
    # The design's rounded numbers: 2.04, 0.079, 6.156 (6.15648 rounds down).
    assert round(rows[0], 2) == 2.04
    assert round(rows[1], 3) == 0.079
    assert round(rows[2], 3) == 6.156
    value = call(mod, "softmax_cross_entropy", S, y, None)
    assert_allclose(value, sum(exact) / 3, rtol=RTOL[dtype], atol=1e-12)
    assert round(value, 2) == 2.76


def test_float32_gradients_have_no_subnormals():
    # Probabilities down to 1e-38 (logit gaps near 87) divided by the batch
    # size would be subnormal, and stall the backward GEMMs; the float32
    # kernels flush gradient entries below 2^-100 to 0. float64 keeps them.
    Y = np.array([[0.0, -86.0, -60.0, -70.0], [0.0, -80.0, -89.0, 5.0]])
    y = np.array([0, 3])
    T = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    tiny = np.finfo(np.float32).tiny
    for loss, target in (("softmax_cross_entropy", y), ("binary_cross_entropy", T)):
        f = getattr(cy, f"{loss}_forward_backward")
        d32 = np.empty((2, 4), np.float32)
        f(Y.astype(np.float32), target if loss != "binary_cross_entropy" else T.astype(np.float32), d32)
        assert not ((d32 != 0) & (np.abs(d32) < 2.0 ** -100)).any(), d32
        assert not ((d32 != 0) & (np.abs(d32) < tiny)).any()
        d64 = np.empty((2, 4))
        f(Y, target, d64)
        kept = np.abs(d64) < 2.0 ** -100
        assert ((d64 != 0) & kept).any()  # the float64 kernel keeps them
        np.testing.assert_array_equal(d32[kept], 0)
        np.testing.assert_allclose(d32[~kept], d64[~kept], rtol=1e-5, atol=0)

"""Activation kernels: Cython vs NumPy twin, twin vs finite differences, both
vs torch (and worked values of the derivatives at 0)."""

import numpy as np
import pytest
from conftest import tolerance
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import ndtr

from fastnn._kernels import activations as cy
from fastnn._kernels import dense as cy_dense
from fastnn.reference import activations as ref

#: Canonical names with the layer defaults of their parameter.
ALPHA = {
    "identity": 0.0,
    "sigmoid": 0.0,
    "tanh": 0.0,
    "relu": 0.0,
    "leaky_relu": 0.01,
    "elu": 1.0,
    "selu": 0.0,
    "silu": 0.0,
    "gelu": 0.0,
    "gelu_tanh": 0.0,
    "softplus": 0.0,
}
ACTS = list(ALPHA)
#: (name, alpha) with non-default parameters as well.
ACT_PARAMS = [(a, ALPHA[a]) for a in ACTS] + [("leaky_relu", 0.2), ("elu", 0.5)]
SHAPES = [(1, 7), (9, 1), (33, 17), (256, 512), (0, 5)]
SHAPE_IDS = ["1row", "1col", "odd", "large", "empty"]
#: Values where a formula changes branch or saturates.
SPECIALS = [
    0.0,
    -0.0,
    20.0,
    -20.0,
    20.5,
    19.5,
    45.0,
    -45.0,
    1e-7,
    -1e-7,
    100.0,
    -100.0,
    5.0,
    -5.0,
]
BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]


def make_z(rng, shape, dtype, scale=3.0):
    """Normal values with the special points sprinkled in."""
    Z = rng.normal(scale=scale, size=shape)
    flat = Z.reshape(-1)
    k = min(len(SPECIALS), flat.size)
    flat[rng.choice(flat.size, k, replace=False)] = SPECIALS[:k]
    return Z.astype(dtype)


def forward(mod, Z, act, alpha):
    Y = np.empty(Z.shape, Z.dtype)
    mod.activation_forward(Z, act, alpha, Y)
    return Y


def backward(mod, Z, Y, dY, act, alpha):
    dZ = np.empty(dY.shape, dY.dtype)
    mod.activation_backward(Z, Y, dY, act, alpha, dZ)
    return dZ


def assert_same(mod, actual, desired):
    """Bitwise for the kernels; the twin's NumPy reductions may sum in another
    order for another memory layout."""
    if mod is cy:
        assert_array_equal(actual, desired)
    else:
        assert_allclose(actual, desired, rtol=4 * np.finfo(desired.dtype).eps, atol=0)


def test_module_interface():
    assert cy.__all__ == ref.__all__
    assert set(cy.ACTIVATION_CODES) == set(ACTS)
    assert len(set(cy.ACTIVATION_CODES.values())) == len(ACTS)
    assert cy.NEEDS_INPUT == ref.NEEDS_INPUT
    assert ref.NEEDS_INPUT == {"silu", "gelu", "gelu_tanh", "softplus"}
    for name in cy.__all__:
        assert callable(getattr(ref, name))


# --------------------------------------------------------------------------
# Elementwise activations: Cython vs twin.


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("act,alpha", ACT_PARAMS)
def test_activation_matches_twin(act, alpha, shape, dtype, rng):
    Z = make_z(rng, shape, dtype)
    dY = rng.normal(size=shape).astype(dtype)
    Y = forward(cy, Z, act, alpha)
    Y_ref = forward(ref, Z, act, alpha)
    assert_allclose(Y, Y_ref, **tolerance(dtype, 1.0))
    # Both from the same Y, so only the derivative formulas are compared.
    dZ = backward(cy, Z, Y_ref, dY, act, alpha)
    dZ_ref = backward(ref, Z, Y_ref, dY, act, alpha)
    assert_allclose(dZ, dZ_ref, **tolerance(dtype, np.abs(dY).max(initial=0)))


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act", ACTS)
def test_activation_in_place_and_layouts(mod, act, dtype, rng):
    alpha = ALPHA[act]
    Z = make_z(rng, (12, 10), dtype)
    dY = rng.normal(size=Z.shape).astype(dtype)
    Y = forward(mod, Z, act, alpha)
    dZ = backward(mod, Z, Y, dY, act, alpha)
    # Y may be Z, dZ may be dY.
    W = Z.copy()
    mod.activation_forward(W, act, alpha, W)
    assert_array_equal(W, Y)
    G = dY.copy()
    mod.activation_backward(Z, Y, G, act, alpha, G)
    assert_array_equal(G, dZ)
    # Read-only, Fortran-ordered and strided inputs give the same results.
    for layout in (
        lambda A: A.copy(),
        np.asfortranarray,
        lambda A: np.repeat(A, 2, axis=1)[:, ::2],
    ):
        Zl, Yl, dYl = layout(Z), layout(Y), layout(dY)
        for A in (Zl, Yl, dYl):
            A.setflags(write=False)
        assert_array_equal(forward(mod, Zl, act, alpha), Y)
        assert_array_equal(backward(mod, Zl, Yl, dYl, act, alpha), dZ)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act", ACTS)
def test_backward_reads_only_what_it_needs(mod, act, rng):
    Z = make_z(rng, (4, 6), np.float64)
    dY = rng.normal(size=Z.shape)
    Y = forward(mod, Z, act, ALPHA[act])
    dZ = backward(mod, Z, Y, dY, act, ALPHA[act])
    if act == "identity":
        assert_array_equal(backward(mod, None, None, dY, act, 0.0), dY)
    elif act in ref.NEEDS_INPUT:
        assert_array_equal(backward(mod, Z, None, dY, act, 0.0), dZ)
        with pytest.raises(ValueError, match="needs Z"):
            backward(mod, None, Y, dY, act, 0.0)
    else:
        assert_array_equal(backward(mod, None, Y, dY, act, ALPHA[act]), dZ)
        with pytest.raises(ValueError, match="needs Y"):
            backward(mod, Z, None, dY, act, ALPHA[act])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_unknown_activation_raises(mod):
    Z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="activation: unknown 'swish'"):
        mod.activation_forward(Z, "swish", 0.0, Z.copy())


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act", [a for a in ACTS if a != "identity"])
def test_nan_propagates(mod, act):
    Z = np.array([[np.nan, 1.0, -1.0]])
    Y = forward(mod, Z, act, ALPHA[act])
    assert np.isnan(Y[0, 0]) and np.isfinite(Y[0, 1:]).all()


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_stable_at_extremes(mod, dtype):
    # No overflow warnings, no NaN, and the right limits far out.
    Z = np.array([[-1e4, -800.0, 800.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sig = forward(mod, Z, "sigmoid", 0.0)
        sp = forward(mod, Z, "softplus", 0.0)
        silu = forward(mod, Z, "silu", 0.0)
        gelu = forward(mod, Z, "gelu", 0.0)
    assert_array_equal(sig, [[0, 0, 1, 1]])
    assert_array_equal(sp, [[0, 0, 800, 1e4]])
    assert_array_equal(silu, [[0, 0, 800, 1e4]])
    assert_array_equal(gelu, [[0, 0, 800, 1e4]])
    # softplus(-30) = log1p(e^-30) ~ e^-30 to full relative precision
    Z = np.array([[-30.0, -5.0]], dtype=dtype)
    assert_allclose(
        forward(mod, Z, "softplus", 0.0),
        np.log1p(np.exp(Z)),
        rtol=tolerance(dtype)["rtol"],
    )


#: float64 formulas for the float32 accuracy check below.
EXACT = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "selu": lambda z: np.where(z > 0, ref.SELU_SCALE * z, ref.SELU_SCALE_ALPHA * np.expm1(z)),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "softplus": lambda z: np.where(z > 20, z, np.logaddexp(0, z)),
    "gelu": lambda z: z * ndtr(z),
}
#: ulp bounds: 3 where one polynomial and a few roundings make the result;
#: gelu's normal CDF takes a fitted polynomial, an exp and 1 - Q (vecmath.h).
ULPS = {"gelu": 6}


@pytest.mark.parametrize("act", list(EXACT))
def test_float32_kernel_within_a_few_ulp_of_exact(act, rng):
    # The float32 kernels use vecmath.h's exp/expm1/log1p/tanh (so that their
    # loops vectorize); judged in ulps against the same formula in float64 over
    # the whole range, with the saturation and underflow edges.
    z = np.concatenate([
        np.linspace(-110, 95, 200_001), 3 * rng.normal(size=50_000),
        1e-3 * rng.normal(size=20_000), [1e-30, -1e-30, 88.72, 88.73, -87.3, -103.9],
    ]).astype(np.float32)[None, :]
    with np.errstate(over="ignore"):
        want = EXACT[act](z.astype(np.float64))
    got = forward(cy, z, act, 1.0)
    # Subnormal results, or products with a subnormal factor (silu's sigmoid
    # below z = -87, gelu's Phi below z = -13.05), lose digits in any float32
    # formula.
    normal = (np.abs(want) >= np.finfo(np.float32).tiny) & (z > (-13 if act == "gelu" else -87))
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(np.abs(want[normal]).astype(np.float32))
    assert ulps.max() <= ULPS.get(act, 3), z[normal][np.argmax(ulps)]
    # the signs of zero and the limits at infinity
    specials = np.array([[-0.0, np.inf, -np.inf]], np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        assert_array_equal(np.signbit(forward(cy, specials, act, 1.0))[0, 0],
                           np.signbit(EXACT[act](np.float64(-0.0))))
        assert_array_equal(forward(cy, specials, act, 1.0)[0, 1:],
                           EXACT[act](specials[0, 1:].astype(np.float64)).astype(np.float32))


# --------------------------------------------------------------------------
# The twin's derivatives vs central finite differences (float64).


@pytest.mark.parametrize("act,alpha", ACT_PARAMS)
def test_twin_backward_vs_finite_differences(act, alpha, rng):
    # Keep away from the kinks at 0 (and the softplus threshold at 20).
    shape = (6, 25)
    Z = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 5.0, size=shape)
    dY = rng.normal(size=shape)
    h = 1e-6
    numeric = (
        dY
        * (forward(ref, Z + h, act, alpha) - forward(ref, Z - h, act, alpha))
        / (2 * h)
    )
    analytic = backward(ref, Z, forward(ref, Z, act, alpha), dY, act, alpha)
    assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------
# Oracle: torch (float64), including the derivative at exactly 0.


def torch_activation(act, alpha):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return {
        "identity": lambda z: z * 1,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, alpha),
        "elu": lambda z: F.elu(z, alpha),
        "selu": F.selu,
        "silu": F.silu,
        "gelu": F.gelu,
        "gelu_tanh": lambda z: F.gelu(z, approximate="tanh"),
        "softplus": F.softplus,
    }[act]


def torch_forward_backward(act, alpha, Z, dY):
    torch = pytest.importorskip("torch")
    z = torch.tensor(Z, requires_grad=True)
    y = torch_activation(act, alpha)(z)
    (dz,) = torch.autograd.grad(y, z, torch.tensor(dY))
    return y.detach().numpy(), dz.numpy()


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act,alpha", ACT_PARAMS)
def test_activation_vs_torch(mod, act, alpha, rng):
    Z = make_z(rng, (20, 30), np.float64)
    dY = rng.normal(size=Z.shape)
    Y_t, dZ_t = torch_forward_backward(act, alpha, Z, dY)
    Y = forward(mod, Z, act, alpha)
    assert_allclose(Y, Y_t, **tolerance(np.float64, 1.0))
    assert_allclose(
        backward(mod, Z, Y, dY, act, alpha),
        dZ_t,
        **tolerance(np.float64, np.abs(dY).max()),
    )


SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
#: f'(0) as torch defines it (with the default parameters).
DERIVATIVE_AT_0 = {
    "identity": 1.0,
    "sigmoid": 0.25,
    "tanh": 1.0,
    "relu": 0.0,
    "leaky_relu": 0.01,
    "elu": 1.0,
    "selu": SELU_SCALE * SELU_ALPHA,
    "silu": 0.5,
    "gelu": 0.5,
    "gelu_tanh": 0.5,
    "softplus": 0.5,
}


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act", ACTS)
def test_derivative_at_zero(mod, act, dtype):
    alpha = ALPHA[act]
    Z = np.array([[0.0, -0.0]], dtype=dtype)
    dY = np.ones_like(Z)
    Y = forward(mod, Z, act, alpha)
    dZ = backward(mod, Z, Y, dY, act, alpha)
    expected = np.full(Z.shape, DERIVATIVE_AT_0[act])
    assert_allclose(dZ, expected, rtol=tolerance(dtype)["rtol"])
    expected_y = {"softplus": np.log(2.0), "sigmoid": 0.5}.get(act, 0.0)
    assert_allclose(Y, np.full(Z.shape, expected_y), rtol=tolerance(dtype)["rtol"])
    if dtype is np.float64:
        Y_t, dZ_t = torch_forward_backward(act, alpha, Z, dY)
        assert_allclose(dZ, dZ_t, rtol=1e-15, atol=0)
        assert_allclose(Y, Y_t, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------
# The fused bias + activation path (bias_act_forward) through dense_forward.


@pytest.mark.parametrize(
    "n,n_in,n_out",
    [(1, 4, 3), (33, 17, 9), (5000, 3, 1), (2, 5, 3000), (0, 4, 3)],
    ids=["1row", "odd", "1col-many-blocks", "wide", "empty"],
)
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_forward_via_dense(act, n, n_in, n_out, dtype, rng):
    alpha = ALPHA[act]
    X = rng.normal(size=(n, n_in)).astype(dtype)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    b = (3 * rng.normal(size=n_out)).astype(dtype)
    Y = np.empty((n, n_out), dtype)
    Z = np.empty((n, n_out), dtype)
    cy_dense.dense_forward(X, W, b, act, alpha, Y, Z)
    # Z is the pre-activation, Y exactly the activation kernel applied to it.
    assert_allclose(Z, X.astype(np.float64) @ W.T + b, **tolerance(dtype, 3 * n_in + 3))
    assert_array_equal(Y, forward(cy, Z, act, alpha))
    assert_allclose(Y, forward(ref, Z, act, alpha), **tolerance(dtype, 1.0))
    # Without Z the pre-activation is overwritten by Y: same result.
    Y2 = np.full((n, n_out), np.nan, dtype)
    cy_dense.dense_forward(X, W, b, act, alpha, Y2)
    assert_array_equal(Y2, Y)


# --------------------------------------------------------------------------
# Softmax.

TEMPERATURES = [1.0, 0.5, 3.0]


def softmax(mod, X, T):
    Y = np.empty(X.shape, X.dtype)
    mod.softmax_forward(X, T, Y)
    return Y


def softmax_grad(mod, Y, dY, T):
    dX = np.empty(dY.shape, dY.dtype)
    mod.softmax_backward(Y, dY, T, dX)
    return dX


@pytest.mark.parametrize("T", TEMPERATURES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_softmax_matches_twin(shape, T, dtype, rng):
    # Large logits: exp would overflow without the row maximum.
    X = (rng.normal(size=shape) * 40 + 500).astype(dtype)
    dY = rng.normal(size=shape).astype(dtype)
    Y = softmax(cy, X, T)
    Y_ref = softmax(ref, X, T)
    assert np.isfinite(Y).all()
    assert_allclose(Y, Y_ref, **tolerance(dtype, 1.0))
    if shape[0]:
        assert_allclose(Y.sum(axis=1, dtype=np.float64), 1, rtol=10 * RTOL(dtype))
    dX = softmax_grad(cy, Y_ref, dY, T)
    dX_ref = softmax_grad(ref, Y_ref, dY, T)
    assert_allclose(dX, dX_ref, **tolerance(dtype, 2 * np.abs(dY).max(initial=0) / T))


def RTOL(dtype):
    return tolerance(dtype)["rtol"]


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_softmax_in_place_and_layouts(mod, dtype, rng):
    X = rng.normal(size=(7, 12)).astype(dtype)
    dY = rng.normal(size=X.shape).astype(dtype)
    T = 0.7
    Y = softmax(mod, X, T)
    dX = softmax_grad(mod, Y, dY, T)
    A = X.copy()
    mod.softmax_forward(A, T, A)
    assert_array_equal(A, Y)
    G = dY.copy()
    mod.softmax_backward(Y, G, T, G)
    assert_array_equal(G, dX)
    P = Y.copy()
    mod.softmax_backward(P, dY, T, P)
    assert_array_equal(P, dX)
    for layout in (np.asfortranarray, lambda A: np.repeat(A, 2, axis=1)[:, ::2]):
        Xl, Yl, dYl = layout(X), layout(Y), layout(dY)
        for B in (Xl, Yl, dYl):
            B.setflags(write=False)
        assert_same(mod, softmax(mod, Xl, T), Y)
        assert_same(mod, softmax_grad(mod, Yl, dYl, T), dX)


@pytest.mark.parametrize("T", TEMPERATURES)
def test_softmax_twin_vs_finite_differences(T, rng):
    X = rng.normal(size=(3, 5))
    G = rng.normal(size=X.shape)
    Y = softmax(ref, X, T)
    analytic = softmax_grad(ref, Y, G, T)
    numeric = np.empty_like(X)
    h = 1e-6
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        numeric[idx] = (G * (softmax(ref, Xp, T) - softmax(ref, Xm, T))).sum() / (2 * h)
    assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("T", TEMPERATURES)
def test_softmax_vs_torch(mod, T, rng):
    torch = pytest.importorskip("torch")
    X = rng.normal(size=(16, 10)) * 5
    X[0, :3] = 0.0
    dY = rng.normal(size=X.shape)
    x = torch.tensor(X, requires_grad=True)
    y = torch.softmax(x / T, dim=1)
    (dx,) = torch.autograd.grad(y, x, torch.tensor(dY))
    Y = softmax(mod, X, T)
    assert_allclose(Y, y.detach().numpy(), **tolerance(np.float64, 1.0))
    assert_allclose(
        softmax_grad(mod, Y, dY, T),
        dx.numpy(),
        **tolerance(np.float64, 10 * np.abs(dY).max() / T),
    )


# --------------------------------------------------------------------------
# PReLU.


def prelu(mod, X, a):
    Y = np.empty(X.shape, X.dtype)
    mod.prelu_forward(X, a, Y)
    return Y


def prelu_grad(mod, X, a, dY):
    dX = np.empty(dY.shape, dY.dtype)
    da = np.full(a.shape, 7.0, a.dtype)  # garbage: da is written, not accumulated
    mod.prelu_backward(X, a, dY, dX, da)
    return dX, da


def make_prelu(rng, shape, dtype, shared):
    X = make_z(rng, shape, dtype)
    a = rng.uniform(-0.5, 0.8, size=1 if shared else shape[1]).astype(dtype)
    dY = rng.normal(size=shape).astype(dtype)
    return X, a, dY


def da_scale(X, dY, shared):
    terms = np.abs(np.where(X > 0, 0, dY.astype(np.float64) * X))
    sums = terms.sum() if shared else terms.sum(axis=0)
    return float(np.max(sums, initial=0.0))


@pytest.mark.parametrize("shared", [False, True], ids=["per-column", "shared"])
@pytest.mark.parametrize(
    "shape", SHAPES + [(3, 600)], ids=SHAPE_IDS + ["wider-than-block"]
)
def test_prelu_matches_twin(shape, shared, dtype, rng):
    X, a, dY = make_prelu(rng, shape, dtype, shared)
    assert_allclose(prelu(cy, X, a), prelu(ref, X, a), **tolerance(dtype, 1.0))
    dX, da = prelu_grad(cy, X, a, dY)
    dX_ref, da_ref = prelu_grad(ref, X, a, dY)
    assert_allclose(dX, dX_ref, **tolerance(dtype, 1.0))
    assert_allclose(da, da_ref, **tolerance(dtype, da_scale(X, dY, shared)))
    if shape[0] == 0:
        assert_array_equal(da, 0)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("shared", [False, True], ids=["per-column", "shared"])
def test_prelu_in_place_and_layouts(mod, shared, dtype, rng):
    X, a, dY = make_prelu(rng, (9, 11), dtype, shared)
    Y = prelu(mod, X, a)
    dX, da = prelu_grad(mod, X, a, dY)
    B = X.copy()
    mod.prelu_forward(B, a, B)
    assert_array_equal(B, Y)
    G = dY.copy()
    da2 = np.empty_like(a)
    mod.prelu_backward(X, a, G, G, da2)
    assert_array_equal(G, dX)
    assert_array_equal(da2, da)
    for layout in (np.asfortranarray, lambda A: np.repeat(A, 2, axis=-1)[..., ::2]):
        Xl, al, dYl = layout(X), layout(a), layout(dY)
        for C in (Xl, al, dYl):
            C.setflags(write=False)
        assert_array_equal(prelu(mod, Xl, al), Y)
        dXl, dal = prelu_grad(mod, Xl, al, dYl)
        assert_array_equal(dXl, dX)
        assert_same(mod, dal, da)


@pytest.mark.parametrize("shared", [False, True], ids=["per-column", "shared"])
def test_prelu_twin_vs_finite_differences(shared, rng):
    shape = (5, 4)
    X = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 3.0, size=shape)
    a = rng.uniform(-0.5, 0.8, size=1 if shared else shape[1])
    G = rng.normal(size=shape)
    dX, da = prelu_grad(ref, X, a, G)
    h = 1e-6

    def loss(X, a):
        return (G * prelu(ref, X, a)).sum()

    num_dX = np.empty_like(X)
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        num_dX[idx] = (loss(Xp, a) - loss(Xm, a)) / (2 * h)
    num_da = np.empty_like(a)
    for k in range(a.size):
        ap, am = a.copy(), a.copy()
        ap[k] += h
        am[k] -= h
        num_da[k] = (loss(X, ap) - loss(X, am)) / (2 * h)
    assert_allclose(dX, num_dX, rtol=1e-7, atol=1e-9)
    assert_allclose(da, num_da, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("shared", [False, True], ids=["per-column", "shared"])
def test_prelu_vs_torch(mod, shared, rng):
    torch = pytest.importorskip("torch")
    X, a, dY = make_prelu(rng, (20, 6), np.float64, shared)
    X[:, 0] = 0.0  # exactly at the kink: torch takes the x <= 0 branch
    x = torch.tensor(X, requires_grad=True)
    w = torch.tensor(a, requires_grad=True)
    y = torch.nn.functional.prelu(x, w)
    dx, dw = torch.autograd.grad(y, (x, w), torch.tensor(dY))
    assert_allclose(prelu(mod, X, a), y.detach().numpy(), **tolerance(np.float64))
    dX, da = prelu_grad(mod, X, a, dY)
    assert_allclose(dX, dx.numpy(), **tolerance(np.float64))
    assert_allclose(da, dw.numpy(), **tolerance(np.float64, da_scale(X, dY, shared)))


# --------------------------------------------------------------------------
# Maxout.


def maxout(mod, X, pieces):
    n, units = X.shape[0], X.shape[1] // pieces
    Y = np.empty((n, units), X.dtype)
    argmax = np.full((n, units), -1, np.int64)
    mod.maxout_forward(X, pieces, Y, argmax)
    return Y, argmax


def maxout_grad(mod, dY, argmax, pieces):
    dX = np.full((dY.shape[0], dY.shape[1] * pieces), np.nan, dY.dtype)
    mod.maxout_backward(dY, argmax, pieces, dX)
    return dX


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_maxout_worked_example(mod):
    # Ties go to the first maximum; a NaN wins (as numpy.argmax).
    X = np.array([[1.0, 3.0, 3.0, 2.0, -1.0, 0.0, np.nan, 5.0, np.nan]])
    Y, argmax = maxout(mod, X, 3)
    assert_array_equal(Y, [[3.0, 2.0, np.nan]])
    assert_array_equal(argmax, [[1, 0, 0]])
    dX = maxout_grad(mod, np.array([[10.0, 20.0, 30.0]]), argmax, 3)
    assert_array_equal(dX, [[0, 10, 0, 20, 0, 0, 30, 0, 0]])


@pytest.mark.parametrize("pieces", [1, 2, 5])
@pytest.mark.parametrize(
    "n,units",
    [(1, 4), (9, 1), (33, 17), (256, 128), (0, 3)],
    ids=["1row", "1unit", "odd", "large", "empty"],
)
def test_maxout_matches_twin(n, units, pieces, dtype, rng):
    # Small integers: many ties.
    X = rng.integers(-3, 4, size=(n, units * pieces)).astype(dtype)
    X[: n // 2] = rng.normal(size=X[: n // 2].shape)
    Y, argmax = maxout(cy, X, pieces)
    Y_ref, argmax_ref = maxout(ref, X, pieces)
    assert_array_equal(Y, Y_ref)
    assert_array_equal(argmax, argmax_ref)
    assert_array_equal(Y, X.reshape(n, units, pieces).max(axis=2))
    dY = rng.normal(size=(n, units)).astype(dtype)
    assert_array_equal(
        maxout_grad(cy, dY, argmax, pieces), maxout_grad(ref, dY, argmax_ref, pieces)
    )


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_maxout_layouts(mod, dtype, rng):
    X = rng.normal(size=(6, 12)).astype(dtype)
    dY = rng.normal(size=(6, 4)).astype(dtype)
    Y, argmax = maxout(mod, X, 3)
    dX = maxout_grad(mod, dY, argmax, 3)
    for layout in (np.asfortranarray, lambda A: np.repeat(A, 2, axis=1)[:, ::2]):
        Xl, dYl, Al = layout(X), layout(dY), layout(argmax)
        for C in (Xl, dYl, Al):
            C.setflags(write=False)
        Yl, argmax_l = maxout(mod, Xl, 3)
        assert_array_equal(Yl, Y)
        assert_array_equal(argmax_l, argmax)
        assert_array_equal(maxout_grad(mod, dYl, Al, 3), dX)


def test_maxout_twin_vs_finite_differences(rng):
    X = rng.normal(size=(4, 12))  # distinct values: no ties within h
    pieces = 3
    G = rng.normal(size=(4, 4))
    _, argmax = maxout(ref, X, pieces)
    analytic = maxout_grad(ref, G, argmax, pieces)
    numeric = np.empty_like(X)
    h = 1e-6
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        numeric[idx] = (
            G * (maxout(ref, Xp, pieces)[0] - maxout(ref, Xm, pieces)[0])
        ).sum() / (2 * h)
    assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)

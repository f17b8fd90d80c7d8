"""Dense kernels: Cython vs NumPy twin, twin vs finite differences, both vs
torch.nn.Linear + activation."""

import numpy as np
import pytest
from conftest import tolerance
from numpy.testing import assert_allclose, assert_array_equal

from fastnn._kernels import dense as cy
from fastnn.reference import dense as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
#: identity, kinks (relu, leaky_relu), f' from Y (tanh) and from Z (gelu, softplus).
ACTS = {
    "identity": 0.0,
    "relu": 0.0,
    "leaky_relu": 0.1,
    "tanh": 0.0,
    "gelu": 0.0,
    "softplus": 0.0,
}
NEEDS_Z = {"gelu", "softplus"}
SHAPES = [(1, 5, 3), (9, 4, 1), (33, 17, 9), (256, 512, 64), (0, 4, 3)]
SHAPE_IDS = ["1row", "1col", "odd", "large", "empty"]


def make(rng, n, n_in, n_out, dtype):
    X = rng.normal(size=(n, n_in)).astype(dtype)
    W = (rng.normal(size=(n_out, n_in)) / np.sqrt(max(n_in, 1))).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    dY = rng.normal(size=(n, n_out)).astype(dtype)
    return X, W, b, dY


def forward(mod, X, W, b, act, keep_z=True):
    n, n_out = X.shape[0], W.shape[0]
    Y = np.full((n, n_out), np.nan, W.dtype)
    Z = np.full((n, n_out), np.nan, W.dtype) if keep_z else None
    mod.dense_forward(X, W, b, act, ACTS[act], Y, Z)
    return Y, Z


def backward(mod, X, W, Z, Y, dY, act):
    n, n_in, n_out = dY.shape[0], W.shape[1], W.shape[0]
    dZ = dY.copy()
    # Garbage in the outputs: they are written, not accumulated.
    dX = np.full((n, n_in), np.nan, W.dtype)
    dW = np.full((n_out, n_in), np.nan, W.dtype)
    db = np.full(n_out, np.nan, W.dtype)
    mod.dense_backward(X, W, Z, Y, dZ, act, ACTS[act], dX, dW, db)
    return dX, dW, db, dZ


def test_module_interface():
    assert cy.__all__ == ref.__all__ == ["dense_forward", "dense_backward"]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("act", list(ACTS))
def test_dense_matches_twin(act, shape, dtype, rng):
    n, n_in, n_out = shape
    X, W, b, dY = make(rng, n, n_in, n_out, dtype)
    Y, Z = forward(cy, X, W, b, act)
    Y_ref, Z_ref = forward(ref, X, W, b, act)
    # |W x| ~ |x| ~ 1, summed over n_in terms
    tol = tolerance(dtype, 3 * (n_in + 1))
    assert_allclose(Z, Z_ref, **tol)
    assert_allclose(Y, Y_ref, **tol)
    Y2, _ = forward(cy, X, W, b, act, keep_z=False)
    assert_array_equal(Y2, Y)

    # Backward from the same Z and Y, so that only the backward is compared.
    dX, dW, db, dZ = backward(cy, X, W, Z_ref, Y_ref, dY, act)
    dX_r, dW_r, db_r, dZ_r = backward(ref, X, W, Z_ref, Y_ref, dY, act)
    g = np.abs(dZ_r).max(initial=0)
    assert_allclose(dZ, dZ_r, **tolerance(dtype, np.abs(dY).max(initial=0)))
    assert_allclose(db, db_r, **tolerance(dtype, g * n))
    assert_allclose(dW, dW_r, **tolerance(dtype, 5 * g * n))
    assert_allclose(dX, dX_r, **tolerance(dtype, 5 * g * n_out / np.sqrt(max(n_in, 1))))
    if n == 0:
        assert_array_equal(dW, 0)
        assert_array_equal(db, 0)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_dense_layouts_and_read_only(mod, act, dtype, rng):
    X, W, b, dY = make(rng, 12, 7, 5, dtype)
    Y, Z = forward(mod, X, W, b, act)
    grads = backward(mod, X, W, Z, Y, dY, act)
    for layout in (
        lambda A: A.copy(),
        np.asfortranarray,
        lambda A: np.repeat(A, 2, axis=-1)[..., ::2],
    ):
        Xl = layout(X)
        Xl.setflags(write=False)
        for A in (W, b, Z, Y):
            A.setflags(write=False)
        Yl, _ = forward(mod, Xl, W, b, act)
        assert_allclose(Yl, Y, rtol=4 * np.finfo(dtype).eps, atol=0)
        for got, want in zip(backward(mod, Xl, W, Z, Y, dY, act), grads):
            assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)
        for A in (W, b, Z, Y):
            A.setflags(write=True)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_dense_backward_optional_outputs(mod, rng):
    X, W, b, dY = make(rng, 6, 4, 3, np.float64)
    Y, Z = forward(mod, X, W, b, "tanh")
    dX, dW, db, _ = backward(mod, X, W, Z, Y, dY, "tanh")
    for keep in ("dX", "dW", "db"):
        out = {
            "dX": np.empty_like(dX) if keep == "dX" else None,
            "dW": np.empty_like(dW) if keep == "dW" else None,
            "db": np.empty_like(db) if keep == "db" else None,
        }
        mod.dense_backward(X, W, None, Y, dY.copy(), "tanh", 0.0, **out)
        assert_array_equal(out[keep], {"dX": dX, "dW": dW, "db": db}[keep])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_dense_backward_missing_input_raises(mod, rng):
    X, W, b, dY = make(rng, 3, 4, 2, np.float64)
    Y, Z = forward(mod, X, W, b, "gelu")
    dX, dW, db = np.empty_like(X), np.empty_like(W), np.empty_like(b)
    with pytest.raises(ValueError, match="needs Z"):
        mod.dense_backward(X, W, None, Y, dY, "gelu", 0.0, dX, dW, db)
    with pytest.raises(ValueError, match="needs Y"):
        mod.dense_backward(X, W, Z, None, dY, "relu", 0.0, dX, dW, db)
    # identity needs neither
    mod.dense_backward(X, W, None, None, dY.copy(), "identity", 0.0, dX, dW, db)
    assert_allclose(dW, dY.T @ X, rtol=1e-12)


@pytest.mark.parametrize("act", list(ACTS))
def test_twin_backward_vs_finite_differences(act, rng):
    X, W, b, G = make(rng, 4, 5, 3, np.float64)
    Y, Z = forward(ref, X, W, b, act)
    # Keep away from the kinks of relu and leaky_relu at 0.
    assert np.abs(Z).min() > 1e-3
    dX, dW, db, _ = backward(ref, X, W, Z, Y, G, act)

    def loss(X, W, b):
        return (G * forward(ref, X, W, b, act)[0]).sum()

    h = 1e-6
    for arr, analytic in ((X, dX), (W, dW), (b, db)):
        numeric = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            orig = arr[idx]
            arr[idx] = orig + h
            up = loss(X, W, b)
            arr[idx] = orig - h
            down = loss(X, W, b)
            arr[idx] = orig
            numeric[idx] = (up - down) / (2 * h)
        assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("act", ["identity", "gelu", "leaky_relu"])
def test_dense_vs_torch_linear(mod, act, rng):
    torch = pytest.importorskip("torch")
    X, W, b, dY = make(rng, 16, 10, 7, np.float64)
    X[0] = 0.0  # Z = b on the first row; with b[0] = 0 a relu-type kink at 0
    b[0] = 0.0
    layer = torch.nn.Linear(10, 7, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W))
        layer.bias.copy_(torch.tensor(b))
    F = torch.nn.functional
    f = {
        "identity": lambda z: z,
        "gelu": F.gelu,
        "leaky_relu": lambda z: F.leaky_relu(z, ACTS["leaky_relu"]),
    }[act]
    x = torch.tensor(X, requires_grad=True)
    y = f(layer(x))
    dx, dw, db_t = torch.autograd.grad(
        y, (x, layer.weight, layer.bias), torch.tensor(dY)
    )
    Y, Z = forward(mod, X, W, b, act)
    assert_allclose(Y, y.detach().numpy(), **tolerance(np.float64, 30))
    dX, dW, db, _ = backward(mod, X, W, Z, Y, dY, act)
    assert_allclose(dX, dx.numpy(), **tolerance(np.float64, 30))
    assert_allclose(dW, dw.numpy(), **tolerance(np.float64, 50))
    assert_allclose(db, db_t.numpy(), **tolerance(np.float64, 50))

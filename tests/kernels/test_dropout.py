"""Dropout kernels: Cython vs NumPy twin, the mask and the 1/(1-p) scale, p = 0,
the expectation and kept fraction over many draws, backward vs finite
differences, layouts, and bad input."""

import math

import numpy as np
import pytest
from conftest import tolerance
from numpy.testing import assert_allclose, assert_array_equal

from fastnn._kernels import dropout as cy
from fastnn.reference import dropout as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
SHAPES = [(1, 1), (1, 10), (7, 1), (33, 17), (256, 512), (0, 5)]
SHAPE_IDS = ["1x1", "1row", "1col", "odd", "large", "empty"]
PS = [0.0, 0.1, 0.5, 0.9]
#: Sentinel for output memory that must not be written.
GUARD = -777.0


def make(rng, shape, dtype):
    """X ~ N(0, 1) (never exactly 0) and U uniform in [0, 1), drawn as the layer
    draws it: ``rng.random(out=U, dtype=dtype)``."""
    X = rng.normal(size=shape).astype(dtype)
    U = np.empty(shape, dtype)
    rng.random(out=U, dtype=dtype)
    return X, U


def forward(mod, X, U, p):
    """Y written over garbage (every element must be written)."""
    Y = np.full(X.shape, np.nan, X.dtype)
    mod.dropout_forward(X, U, p, Y)
    return Y


def backward(mod, dY, U, p):
    dX = np.full(dY.shape, np.nan, dY.dtype)
    mod.dropout_backward(dY, U, p, dX)
    return dX


def test_module_interface():
    assert cy.__all__ == ref.__all__ == ["dropout_backward", "dropout_forward"]


# --------------------------------------------------------------------------
# Cython kernel vs NumPy twin, and both vs the formula


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_kernel_matches_twin(shape, p, dtype, rng):
    X, U = make(rng, shape, dtype)
    dY = rng.normal(size=shape).astype(dtype)
    Y, Y_r = forward(cy, X, U, p), forward(ref, X, U, p)
    dX, dX_r = backward(cy, dY, U, p), backward(ref, dY, U, p)
    # Elementwise products: a relative tolerance with an atol of the same size.
    assert_allclose(Y, Y_r, **tolerance(dtype))
    assert_allclose(dX, dX_r, **tolerance(dtype))
    # The same units are dropped (X and dY are never exactly 0).
    assert_array_equal(Y == 0, Y_r == 0)
    assert_array_equal(dX == 0, Y == 0)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_forward_is_the_documented_formula(mod, p, dtype, rng):
    """Y = X * (U >= p) / (1 - p): kept units exactly where U >= p (p rounded to
    X's dtype), scaled by 1/(1-p) computed in float64 from the exact X."""
    X, U = make(rng, (64, 33), dtype)
    Y = forward(mod, X, U, p)
    keep = U >= dtype(p)
    assert 0 < keep.sum() < keep.size or p == 0.999
    assert_array_equal(Y[~keep], 0)
    want = X.astype(np.float64)[keep] / (1.0 - p)
    assert_allclose(Y[keep], want, **tolerance(dtype))


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_mask_boundary_u_equal_p_is_kept(mod, dtype):
    p = 0.3
    fp = dtype(p)
    below = np.nextafter(fp, dtype(0))
    U = np.array([[fp, below, 0.0, np.nextafter(dtype(1), dtype(0))]], dtype)
    X = np.array([[2.0, 3.0, 4.0, 5.0]], dtype)
    Y = forward(mod, X, U, p)
    scale = 1.0 / (1.0 - p)
    assert_allclose(Y, [[2 * scale, 0, 0, 5 * scale]], **tolerance(dtype))
    assert Y[0, 1] == 0 and Y[0, 2] == 0


@pytest.mark.parametrize("shape", [(1, 1), (33, 17)], ids=["1x1", "odd"])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_p_zero_is_identity(mod, shape, dtype, rng):
    X, U = make(rng, shape, dtype)
    U.flat[0] = 0  # U >= 0 always: even a draw of exactly 0 is kept
    assert_array_equal(forward(mod, X, U, 0.0), X)
    assert_array_equal(backward(mod, X, U, 0.0), X)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_expectation_and_kept_fraction(mod, p, dtype):
    """Over K fresh masks of N units each (X ~ N(1, 1), fixed):

    - each Y_i = X_i B_i / (1 - p) with B_i ~ Bernoulli(1 - p) independent, so
      E[Y_i] = X_i and Var[Y_i] = X_i^2 p / (1 - p). The grand mean of the
      outputs has mean mean(X) and standard deviation
      sigma = sqrt(mean(X^2) p / (1 - p) / (N K));
    - the kept count is Binomial(N K, 1 - p): the kept fraction has standard
      deviation sqrt(p (1 - p) / (N K)).

    N K = 409600 terms, so both are normal to far better than needed; a 5 sigma
    bound fails by chance with probability < 1e-6 (the seed is fixed anyway).
    A non-inverted dropout (no 1/(1-p)) would miss the mean by p*mean(X) > 100
    sigma.
    """
    rng = np.random.default_rng(2024)
    N, K = 64 * 64, 100
    X = (1 + rng.normal(size=(64, 64))).astype(dtype)
    assert (X != 0).all()
    U = np.empty_like(X)
    total, kept = 0.0, 0
    for _ in range(K):
        rng.random(out=U, dtype=dtype)
        Y = forward(mod, X, U, p)
        total += Y.sum(dtype=np.float64)
        kept += np.count_nonzero(Y)
    X64 = X.astype(np.float64)
    sigma_mean = math.sqrt((X64**2).mean() * p / (1 - p) / (N * K))
    assert abs(total / (N * K) - X64.mean()) < 5 * sigma_mean
    sigma_frac = math.sqrt(p * (1 - p) / (N * K))
    assert abs(kept / (N * K) - (1 - p)) < 5 * sigma_frac


@pytest.mark.parametrize("p", [0.0, 0.25, 0.7])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_backward_matches_finite_differences(mod, p, rng):
    """L(X) = sum(G * dropout(X)) for a fixed mask; dL/dX = dropout_backward(G).

    L is linear in X, so central differences have no truncation error; only
    rounding, about eps * |L| / h ~ 1e-9."""
    X, U = make(rng, (5, 6), np.float64)
    G = rng.normal(size=X.shape)
    dX = backward(mod, G, U, p)
    h = 1e-6
    numeric = np.empty_like(X)
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        numeric[idx] = (
            (G * forward(mod, Xp, U, p)).sum() - (G * forward(mod, Xm, U, p)).sum()
        ) / (2 * h)
    assert_allclose(dX, numeric, rtol=1e-6, atol=1e-9)
    if p > 0:  # the test exercises both dropped and kept units
        assert (dX == 0).any() and (dX != 0).any()


# --------------------------------------------------------------------------
# Layouts: inputs are converted, outputs must be C-contiguous and writable


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_readonly_and_noncontiguous_inputs(mod, dtype, rng):
    p = 0.4
    X, U = make(rng, (33, 34), dtype)
    want = forward(mod, X, U, p)
    want_b = backward(mod, X, U, p)
    layouts = {
        "readonly": lambda A: A.copy(),
        "fortran": np.asfortranarray,
        "strided": lambda A: np.repeat(A, 2, axis=1)[:, ::2],
        "reversed": lambda A: A[::-1].copy()[::-1],
    }
    for name, layout in layouts.items():
        X_l, U_l = layout(X), layout(U)
        X_l.setflags(write=False)
        U_l.setflags(write=False)
        # Elementwise: every layout gives the same numbers bit for bit.
        assert_array_equal(forward(mod, X_l, U_l, p), want, err_msg=name)
        assert_array_equal(backward(mod, X_l, U_l, p), want_b, err_msg=name)
        assert_array_equal(X_l, X)
        assert_array_equal(U_l, U)
    # Mixed: Fortran X with C-ordered U pairs the same elements.
    assert_array_equal(forward(mod, np.asfortranarray(X), U, p), want)


def _bad_outputs(shape, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    readonly = np.zeros(shape, dtype)
    readonly.setflags(write=False)
    return {
        "readonly": readonly,
        "fortran": np.zeros(shape, dtype, order="F"),
        "strided": np.zeros((shape[0], 2 * shape[1]), dtype)[:, ::2],
        "other_dtype": np.zeros(shape, other),
    }


@pytest.mark.parametrize("fn", ["dropout_forward", "dropout_backward"])
def test_kernel_refuses_bad_output(fn, dtype, rng):
    """The output is written in place, so it cannot be converted: a read-only,
    non-C-contiguous or other-dtype output raises and X, U are left alone."""
    X, U = make(rng, (6, 5), dtype)
    X0, U0 = X.copy(), U.copy()
    for name, Y in _bad_outputs(X.shape, dtype).items():
        Y0 = Y.copy()
        with pytest.raises((ValueError, TypeError)):
            getattr(cy, fn)(X, U, 0.5, Y)
        assert_array_equal(Y, Y0, err_msg=name)
    assert_array_equal(X, X0)
    assert_array_equal(U, U0)


@pytest.mark.parametrize(
    "bad",
    ["other_float", "int64", "float16", "1d"],
)
@pytest.mark.parametrize("which", ["X", "U"])
def test_kernel_refuses_input_of_another_dtype_or_ndim(which, bad, dtype, rng):
    """Inputs are converted to C order but never cast: a float64 X for a float32 Y
    is a ValueError or TypeError, not a silent reinterpretation of the bytes."""
    X, U = make(rng, (6, 5), dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    A = X if which == "X" else U
    A = {
        "other_float": A.astype(other),
        "int64": (A * 10).astype(np.int64),
        "float16": A.astype(np.float16),
        "1d": A.ravel(),
    }[bad]
    args = (A, U) if which == "X" else (X, A)
    Y = np.full(X.shape, GUARD, dtype)
    with pytest.raises((ValueError, TypeError)):
        cy.dropout_forward(*args, 0.5, Y)
    assert_array_equal(Y, GUARD)


# --------------------------------------------------------------------------
# Bad input: p out of [0, 1), mismatched shapes. The kernel runs without
# bounds checks, so shapes are compared against guard memory that belongs to
# the same allocation: a missing check shows as a changed guard, not a crash.


def _refusal(call, expected=ValueError):
    """None if ``call()`` raises ``expected``, else what happened instead."""
    try:
        call()
    except expected:
        return None
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        return f"{type(exc).__name__}: {exc}"
    return "returned without error"


BAD_PS = [-0.1, 1.0, 1.5, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_bad_p_raises(mod, dtype, rng):
    """p is a probability in [0, 1) (the docstring's contract). Outside it the
    output is meaningless: p = 1 divides by zero (the kernel then drops every
    unit, the twin raises ZeroDivisionError), p < 0 keeps every unit and shrinks
    it, NaN drops every unit. Each must be a ValueError naming p, raised before
    the output is touched."""
    X, U = make(rng, (4, 5), dtype)
    problems = []
    for fn in ("dropout_forward", "dropout_backward"):
        for p in BAD_PS:
            Y = np.full(X.shape, GUARD, dtype)

            def call(fn=fn, p=p, Y=Y):
                getattr(mod, fn)(X, U, p, Y)

            outcome = _refusal(call)
            if outcome is None and not (Y == GUARD).all():
                outcome = "raised after writing Y"
            if outcome is not None:
                problems.append(f"{fn}(p={p}): {outcome}")
    assert not problems, "bad p not refused:\n" + "\n".join(problems)


def _guarded(rows, cols, dtype, fill):
    """A C-contiguous (rows, cols) view on the first rows of a buffer with one
    more guard row, and that buffer."""
    buf = np.full((rows + 1, cols), GUARD, dtype)
    view = buf[:rows]
    view[...] = fill
    return view, buf


MISMATCHES = ["U_fewer_rows", "Y_fewer_rows", "U_and_Y_fewer_rows", "U_transposed",
              "Y_more_rows", "Y_transposed"]


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_mismatched_shapes_raise(mod, dtype, rng):
    """X, U and Y must have one shape. The Cython wrapper takes the element count
    from X alone, so a smaller U is read past its end and a smaller Y written past
    its end; a same-size U or Y of another shape is silently paired element by
    element. The twin raises ValueError (NumPy broadcasting) in every case."""
    n, d = 4, 5
    problems = []
    for fn in ("dropout_forward", "dropout_backward"):
        for case in MISMATCHES:
            X, U = make(rng, (n, d), dtype)
            Y_buf = None
            Y = np.full((n, d), np.nan, dtype)
            if case in ("U_fewer_rows", "U_and_Y_fewer_rows"):
                U, U_buf = _guarded(n - 1, d, dtype, U[: n - 1])
                U_buf[-1] = 0.99  # would be read as "keep"
            if case in ("Y_fewer_rows", "U_and_Y_fewer_rows"):
                Y, Y_buf = _guarded(n - 1, d, dtype, np.nan)
            if case == "U_transposed":
                U = np.ascontiguousarray(U.T)
            if case == "Y_more_rows":
                Y = np.full((n + 1, d), np.nan, dtype)
            if case == "Y_transposed":
                Y = np.full((d, n), np.nan, dtype)

            def call(fn=fn, X=X, U=U, Y=Y):
                getattr(mod, fn)(X, U, 0.5, Y)

            outcome = _refusal(call)
            if Y_buf is not None and not (Y_buf[-1] == GUARD).all():
                outcome = f"{outcome or 'raised'}, and wrote past the end of Y"
            if outcome is not None:
                problems.append(f"{fn} {case}: {outcome}")
    assert not problems, "mismatched shapes not refused:\n" + "\n".join(problems)

"""Batch-normalization kernels: Cython vs NumPy twin, both vs the documented
formulas, the twin's gradients vs finite differences, both vs
torch.nn.BatchNorm1d (training forward, running statistics, inference, backward),
layouts and mismatched shapes."""

import numpy as np
import pytest
from conftest import tolerance
from numpy.testing import assert_allclose, assert_array_equal

from fastnn._kernels import batchnorm as cy
from fastnn.reference import batchnorm as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
#: Training needs n_samples >= 2 (the unbiased running variance divides by n - 1).
TRAIN_SHAPES = [(2, 1), (2, 10), (7, 1), (33, 17), (256, 512)]
TRAIN_IDS = ["2x1", "2rows", "1col", "odd", "large"]
INFER_SHAPES = [(1, 1), (1, 10), (7, 1), (33, 17), (256, 512)]
INFER_IDS = ["1x1", "1row", "1col", "odd", "large"]
EPS, MOMENTUM = 1e-5, 0.1
GUARD = -777.0


def make(rng, n, d, dtype):
    """Columns with their own offset (up to +-3) and spread (0.5 to 2), so that
    the mean subtraction matters; gamma of both signs; running stats away from
    the batch's."""
    spread = rng.uniform(0.5, 2, size=d)
    X = rng.uniform(-3, 3, size=d) + spread * rng.normal(size=(n, d))
    gamma = rng.uniform(0.5, 1.5, size=d) * rng.choice([-1, 1], size=d)
    beta = rng.normal(size=d)
    running_mean = 0.5 * rng.normal(size=d)
    running_var = rng.uniform(0.5, 2, size=d)
    dY = rng.normal(size=(n, d))
    return [A.astype(dtype) for A in (X, gamma, beta, running_mean, running_var, dY)]


def train(mod, X, gamma, beta, running_mean, running_var, eps=EPS, momentum=MOMENTUM):
    """Outputs written over garbage; the running stats updated on copies."""
    n, d = X.shape
    dtype = gamma.dtype
    Y = np.full((n, d), np.nan, dtype)
    mean = np.full(d, np.nan, dtype)
    invstd = np.full(d, np.nan, dtype)
    rm, rv = running_mean.copy(), running_var.copy()
    mod.batchnorm_forward_train(X, gamma, beta, eps, momentum, Y, mean, invstd, rm, rv)
    return Y, mean, invstd, rm, rv


def infer(mod, X, gamma, beta, running_mean, running_var, eps=EPS):
    Y = np.full(X.shape, np.nan, gamma.dtype)
    mod.batchnorm_forward_infer(X, gamma, beta, running_mean, running_var, eps, Y)
    return Y


def backward(mod, X, dY, gamma, mean, invstd):
    """dX, dgamma, dbeta written over NaN: written, not accumulated."""
    d = X.shape[1]
    dtype = gamma.dtype
    dX = np.full(X.shape, np.nan, dtype)
    dgamma = np.full(d, np.nan, dtype)
    dbeta = np.full(d, np.nan, dtype)
    mod.batchnorm_backward(X, dY, gamma, mean, invstd, dX, dgamma, dbeta)
    return dX, dgamma, dbeta


def dx_scale(X, dY, gamma, mean, invstd):
    """Magnitude of the terms of dX = gamma invstd / n (n dY - sum dY - xhat
    sum(dY xhat)), for the absolute part of a tolerance (the terms cancel)."""
    n = X.shape[0]
    X, dY = X.astype(np.float64), dY.astype(np.float64)
    xhat = (X - mean) * invstd
    terms = (np.abs(dY).max() + np.abs(dY).sum(0) / n
             + np.abs(xhat).max(0) * np.abs(dY * xhat).sum(0) / n)
    return float((np.abs(gamma * invstd) * terms).max())


def infer_scale(X, gamma, beta, running_var):
    """Magnitude of X * gamma / sqrt(running_var) + beta before the cancellation
    with the running mean."""
    return float(np.abs(X).max() * np.abs(gamma / np.sqrt(running_var)).max()
                 + np.abs(beta).max())


def test_module_interface():
    assert cy.__all__ == ref.__all__ == [
        "batchnorm_backward", "batchnorm_forward_infer", "batchnorm_forward_train"
    ]


# --------------------------------------------------------------------------
# Cython kernel vs NumPy twin


@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=TRAIN_IDS)
def test_train_forward_matches_twin(shape, dtype, rng):
    X, gamma, beta, rm, rv, _ = make(rng, *shape, dtype)
    got = train(cy, X, gamma, beta, rm, rv)
    want = train(ref, X, gamma, beta, rm, rv)
    Y, mean, invstd, rm1, rv1 = got
    Y_r, mean_r, invstd_r, rm_r, rv_r = want
    # The column sums of X (up to ~10 per element) set the mean's error; the
    # batch mean is subtracted from X * scale of size |X| |gamma| invstd.
    xmax = float(np.abs(X).max())
    assert_allclose(mean, mean_r, **tolerance(dtype, xmax))
    assert_allclose(invstd, invstd_r, **tolerance(dtype, float(invstd_r.max())))
    y_scale = xmax * float(np.abs(gamma * invstd_r).max())
    assert_allclose(Y, Y_r, **tolerance(dtype, y_scale))
    assert_allclose(rm1, rm_r, **tolerance(dtype, xmax))
    assert_allclose(rv1, rv_r, **tolerance(dtype, float(rv_r.max())))
    for A in got:
        assert A.dtype == dtype and np.isfinite(A).all()


@pytest.mark.parametrize("shape", INFER_SHAPES, ids=INFER_IDS)
def test_infer_forward_matches_twin(shape, dtype, rng):
    X, gamma, beta, rm, rv, _ = make(rng, *shape, dtype)
    Y = infer(cy, X, gamma, beta, rm, rv)
    Y_r = infer(ref, X, gamma, beta, rm, rv)
    scale = infer_scale(X, gamma, beta, rv)
    assert_allclose(Y, Y_r, **tolerance(dtype, scale))
    assert Y.dtype == dtype


@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=TRAIN_IDS)
def test_backward_matches_twin(shape, dtype, rng):
    X, gamma, beta, rm, rv, dY = make(rng, *shape, dtype)
    _, mean, invstd, _, _ = train(ref, X, gamma, beta, rm, rv)
    # Both backwards from the same saved statistics.
    dX, dgamma, dbeta = backward(cy, X, dY, gamma, mean, invstd)
    dX_r, dgamma_r, dbeta_r = backward(ref, X, dY, gamma, mean, invstd)
    n = X.shape[0]
    xhat = (X.astype(np.float64) - mean) * invstd
    assert_allclose(dbeta, dbeta_r, **tolerance(dtype, n * float(np.abs(dY).max())))
    assert_allclose(dgamma, dgamma_r,
                    **tolerance(dtype, n * float(np.abs(dY * xhat).max())))
    assert_allclose(dX, dX_r, **tolerance(dtype, dx_scale(X, dY, gamma, mean, invstd)))
    for A in (dX, dgamma, dbeta):
        assert A.dtype == dtype and np.isfinite(A).all()


def test_float32_statistics_are_accumulated_in_double(rng):
    """100000 rows around 100. The float32 kernel reads float32 X but sums in
    double, so its statistics and outputs are the float64 kernel's (on the same
    values) rounded once to float32: within 2^-24 relative. A float32 running
    sum of a column would be off by ~1e-3, a thousandth of the spread."""
    n, d = 100_000, 4
    X = (100 + rng.normal(size=(n, d))).astype(np.float32)
    gamma, beta = np.ones(d, np.float32), np.zeros(d, np.float32)
    rm, rv = np.zeros(d, np.float32), np.ones(d, np.float32)
    got = train(cy, X, gamma, beta, rm, rv)
    want = train(cy, X.astype(np.float64),
                 *(A.astype(np.float64) for A in (gamma, beta, rm, rv)))
    one_rounding = 2.0**-23  # > 2^-24, the bound of one round-to-nearest
    for name, g, w in zip(("Y", "mean", "invstd", "running_mean", "running_var"),
                          got, want):
        assert_allclose(g, w, rtol=one_rounding, atol=0, err_msg=name)
    mean, invstd = got[1], got[2]
    dY = rng.normal(size=(n, d)).astype(np.float32)
    _, dgamma, dbeta = backward(cy, X, dY, gamma, mean, invstd)
    dY64, X64 = dY.astype(np.float64), X.astype(np.float64)
    assert_allclose(dbeta, dY64.sum(0), rtol=one_rounding, atol=0)
    # dgamma's terms dY * xhat have xhat from float32 X - mean (exact here, the
    # two are within a factor 2) times invstd (one float32 rounding).
    dyx = dY64 * (X64 - mean) * invstd
    assert_allclose(dgamma, dyx.sum(0), rtol=one_rounding,
                    atol=one_rounding * np.abs(dyx).sum(0).max())


# --------------------------------------------------------------------------
# Both backends vs the documented formulas (float64, NumPy's own mean and var)


@pytest.mark.parametrize("momentum", [0.0, 0.1, 0.35, 1.0])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_matches_documented_formulas(mod, eps, momentum, rng):
    X, gamma, beta, rm, rv, dY = make(rng, 33, 6, np.float64)
    Y, mean, invstd, rm1, rv1 = train(mod, X, gamma, beta, rm, rv, eps, momentum)
    mu, var = X.mean(0), X.var(0)  # biased, for normalizing
    # Every compared value and its pre-cancellation terms are below ~10 here.
    tol = tolerance(np.float64, 10.0)
    assert_allclose(mean, mu, **tol)
    assert_allclose(invstd, 1 / np.sqrt(var + eps), **tol)
    assert_allclose(Y, (X - mu) / np.sqrt(var + eps) * gamma + beta, **tol)
    # running = (1 - momentum) running + momentum batch, unbiased variance
    assert_allclose(rm1, (1 - momentum) * rm + momentum * mu, **tol)
    assert_allclose(rv1, (1 - momentum) * rv + momentum * X.var(0, ddof=1), **tol)

    Y_inf = infer(mod, X, gamma, beta, rm1, rv1, eps)
    assert_allclose(Y_inf, (X - rm1) / np.sqrt(rv1 + eps) * gamma + beta, **tol)

    dX, dgamma, dbeta = backward(mod, X, dY, gamma, mean, invstd)
    xhat = (X - mu) / np.sqrt(var + eps)
    n = X.shape[0]
    assert_allclose(dbeta, dY.sum(0), **tol)
    assert_allclose(dgamma, (dY * xhat).sum(0), **tol)
    want = gamma / np.sqrt(var + eps) / n * (
        n * dY - dY.sum(0) - xhat * (dY * xhat).sum(0))
    dx_tol = tolerance(np.float64, dx_scale(X, dY, gamma, mu, invstd))
    assert_allclose(dX, want, **dx_tol)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_output_is_normalized(mod, dtype, rng):
    """With gamma = 1 and beta = 0 the training output has column mean 0 and
    biased variance var / (var + eps)."""
    X, _, _, rm, rv, _ = make(rng, 64, 9, dtype)
    ones, zeros = np.ones(9, dtype), np.zeros(9, dtype)
    Y, _, invstd, _, _ = train(mod, X, ones, zeros, rm, rv)
    Y64, X64 = Y.astype(np.float64), X.astype(np.float64)
    # Per element: the output's rounding to dtype, plus the cancellation in
    # X * invstd - mean * invstd computed in double.
    pre_cancel = float(np.abs(X64).max() * invstd.max())
    err = (float(np.finfo(dtype).eps) / 2 * float(np.abs(Y64).max())
           + 4 * float(np.finfo(np.float64).eps) * pre_cancel)
    assert_allclose(Y64.mean(0), 0, rtol=0, atol=err)
    var = X64.var(0)
    # var(Y + e) - var(Y) <= 2 std(Y) max|e| + max|e|^2, std(Y) <= 1
    assert_allclose(Y64.var(0), var / (var + EPS), rtol=0, atol=3 * err)


# --------------------------------------------------------------------------
# The gradients vs central finite differences (float64)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_backward_matches_finite_differences(mod, rng):
    """L(X, gamma, beta) = sum(G * Y) with Y from the training forward (batch
    statistics, so dX includes the paths through the mean and variance)."""
    X, gamma, beta, rm, rv, G = make(rng, 5, 3, np.float64)

    def loss(X, gamma, beta):
        return float((G * train(mod, X, gamma, beta, rm, rv)[0]).sum())

    _, mean, invstd, _, _ = train(mod, X, gamma, beta, rm, rv)
    dX, dgamma, dbeta = backward(mod, X, G, gamma, mean, invstd)

    h = 1e-6
    params = [X, gamma, beta]
    numeric = [np.empty_like(P) for P in params]
    for k, P in enumerate(params):
        for idx in np.ndindex(P.shape):
            plus = [Q.copy() for Q in params]
            minus = [Q.copy() for Q in params]
            plus[k][idx] += h
            minus[k][idx] -= h
            numeric[k][idx] = (loss(*plus) - loss(*minus)) / (2 * h)
    # Truncation O(h^2) and rounding O(eps |L| / h) ~ 1e-9.
    for name, got, want in zip(("dX", "dgamma", "dbeta"), (dX, dgamma, dbeta), numeric):
        assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=name)
    # dX sums to 0 over the batch (the mean is subtracted): a non-trivial check
    # that the mean path is there.
    assert_allclose(dX.sum(0), 0, atol=1e-12)


# --------------------------------------------------------------------------
# Against torch.nn.BatchNorm1d (float64)


def torch_batchnorm(torch, gamma, beta, rm, rv, eps, momentum):
    bn = torch.nn.BatchNorm1d(gamma.size, eps=eps, momentum=momentum,
                              dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
    return bn


@pytest.mark.parametrize(
    "shape",
    [(2, 1), (2, 10), (7, 1), (33, 17), (64, 100)],
    ids=["2x1", "2rows", "1col", "odd", "wide"],
)
@pytest.mark.parametrize("momentum", [0.1, 0.5])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_matches_torch(mod, momentum, shape, rng):
    torch = pytest.importorskip("torch")
    eps = EPS
    X, gamma, beta, rm, rv, G = make(rng, *shape, np.float64)
    bn = torch_batchnorm(torch, gamma, beta, rm, rv, eps, momentum)

    # Training forward and the running-statistics update.
    bn.train()
    Xt = torch.tensor(X, requires_grad=True)
    Yt = bn(Xt)
    (Yt * torch.from_numpy(G)).sum().backward()
    Y, mean, invstd, rm1, rv1 = train(mod, X, gamma, beta, rm, rv, eps, momentum)
    xmax = float(np.abs(X).max())
    assert_allclose(Y, Yt.detach().numpy(),
                    **tolerance(np.float64, xmax * float(np.abs(gamma * invstd).max())))
    assert_allclose(rm1, bn.running_mean.numpy(), **tolerance(np.float64, xmax))
    assert_allclose(rv1, bn.running_var.numpy(),
                    **tolerance(np.float64, float(bn.running_var.max())))

    # Backward (training mode: through the batch statistics).
    dX, dgamma, dbeta = backward(mod, X, G, gamma, mean, invstd)
    n = shape[0]
    assert_allclose(dbeta, bn.bias.grad.numpy(),
                    **tolerance(np.float64, n * float(np.abs(G).max())))
    xhat = (X - mean) * invstd
    assert_allclose(dgamma, bn.weight.grad.numpy(),
                    **tolerance(np.float64, n * float(np.abs(G * xhat).max())))
    assert_allclose(dX, Xt.grad.numpy(),
                    **tolerance(np.float64, dx_scale(X, G, gamma, mean, invstd)))

    # Inference with the updated running statistics, on other rows.
    bn.eval()
    X2 = make(rng, 5, shape[1], np.float64)[0]
    with torch.no_grad():
        Y2t = bn(torch.tensor(X2)).numpy()
    Y2 = infer(mod, X2, gamma, beta, rm1, rv1, eps)
    scale = infer_scale(X2, gamma, beta, rv1)
    assert_allclose(Y2, Y2t, **tolerance(np.float64, scale))


def test_torch_convention_several_steps(rng):
    """Three training steps then inference, both backends against torch: the
    running statistics compound as torch's do (momentum 0.1, unbiased var)."""
    torch = pytest.importorskip("torch")
    X, gamma, beta, rm, rv, _ = make(rng, 16, 8, np.float64)
    bn = torch_batchnorm(torch, gamma, beta, rm, rv, EPS, MOMENTUM)
    bn.train()
    state = {mod: (rm.copy(), rv.copy()) for mod in BACKENDS}
    for step in range(3):
        Xs = X + step * rng.normal(size=X.shape)
        with torch.no_grad():
            bn(torch.tensor(Xs))
        for mod in BACKENDS:
            state[mod] = train(mod, Xs, gamma, beta, *state[mod])[3:]
    bn.eval()
    with torch.no_grad():
        want = bn(torch.tensor(X)).numpy()
    for mod in BACKENDS:
        rm_k, rv_k = state[mod]
        assert_allclose(rm_k, bn.running_mean.numpy(), **tolerance(np.float64, 10.0))
        assert_allclose(rv_k, bn.running_var.numpy(), **tolerance(np.float64, 10.0))
        assert_allclose(infer(mod, X, gamma, beta, rm_k, rv_k), want,
                        **tolerance(np.float64, 30.0))


# --------------------------------------------------------------------------
# Layouts


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_readonly_and_noncontiguous_inputs(mod, dtype, rng):
    X, gamma, beta, rm, rv, dY = make(rng, 33, 12, dtype)
    want_train = train(mod, X, gamma, beta, rm, rv)
    mean, invstd = want_train[1], want_train[2]
    want_infer = infer(mod, X, gamma, beta, rm, rv)
    want_back = backward(mod, X, dY, gamma, mean, invstd)
    for A in (gamma, beta, rm, rv, mean, invstd):
        A.setflags(write=False)  # read-only parameters and statistics
    layouts = {
        "readonly": lambda A: A.copy(),
        "fortran": np.asfortranarray,
        "strided": lambda A: np.repeat(A, 2, axis=1)[:, ::2],
    }
    for name, layout in layouts.items():
        X_l, dY_l = layout(X), layout(dY)
        X_l.setflags(write=False)
        dY_l.setflags(write=False)
        got = (train(mod, X_l, gamma, beta, rm, rv),
               [infer(mod, X_l, gamma, beta, rm, rv)],
               backward(mod, X_l, dY_l, gamma, mean, invstd))
        want = (want_train, [want_infer], want_back)
        for g_list, w_list in zip(got, want):
            for g, w in zip(g_list, w_list):
                if mod is cy:  # converted to the same C-contiguous data
                    assert_array_equal(g, w, err_msg=name)
                else:  # NumPy may sum strided data in another order
                    assert_allclose(g, w, rtol=8 * float(np.finfo(dtype).eps),
                                    atol=8 * float(np.finfo(dtype).eps), err_msg=name)
        assert_array_equal(X_l, X)
        assert_array_equal(dY_l, dY)


def test_kernel_refuses_bad_parameter_and_output_arrays(dtype, rng):
    """Parameters, statistics and outputs are not copied: non-C-contiguous,
    read-only (outputs) or other-dtype arrays raise, and nothing is written."""
    X, gamma, beta, rm, rv, dY = make(rng, 6, 4, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    readonly = np.full(4, GUARD, dtype)
    readonly.setflags(write=False)
    bad_vectors = {
        "strided": np.full(8, GUARD, dtype)[::2],
        "other dtype": np.full(4, GUARD, other),
        "2d": np.full((4, 1), GUARD, dtype),
    }
    names = ["gamma", "beta", "Y", "mean", "invstd", "running_mean", "running_var"]
    for target in names:
        cases = dict(bad_vectors)
        if target == "Y":
            cases = {"fortran": np.full((6, 4), GUARD, dtype, order="F"),
                     "other dtype": np.full((6, 4), GUARD, other)}
        elif target not in ("gamma", "beta"):
            cases["readonly"] = readonly
        for label, bad in cases.items():
            args = dict(X=X, gamma=gamma, beta=beta, eps=EPS, momentum=MOMENTUM,
                        Y=np.full((6, 4), GUARD, dtype), mean=np.full(4, GUARD, dtype),
                        invstd=np.full(4, GUARD, dtype), running_mean=rm.copy(),
                        running_var=rv.copy())
            args[target] = bad
            with pytest.raises((ValueError, TypeError)):
                cy.batchnorm_forward_train(**args)
            for k in ("Y", "mean", "invstd"):
                if k != target:
                    assert_array_equal(args[k], GUARD, err_msg=f"{target} {label}")
            for k, orig in (("running_mean", rm), ("running_var", rv)):
                if k != target:
                    assert_array_equal(args[k], orig, err_msg=f"{target} {label}")


# --------------------------------------------------------------------------
# Mismatched shapes. The kernels run without bounds checks; the arrays sit at the
# start of larger allocations whose tail is a guard, so a missing check reads or
# writes the guard (seen by the test) instead of crashing the process.


def _short(values, k):
    """The first k entries (rows) of ``values`` as a C-contiguous view on a buffer
    whose remaining entries (rows) are GUARD, and that buffer."""
    buf = np.full(values.shape, GUARD, values.dtype)
    view = buf[:k]
    view[...] = values[:k]
    return view, buf


def _refusal(call):
    """None if ``call()`` raises ValueError, else what happened instead."""
    try:
        call()
    except ValueError:
        return None
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        return f"{type(exc).__name__}: {exc}"
    return "returned without error"


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_mismatched_shapes_raise(mod, dtype, rng):
    """Every vector must have n_features entries and every matrix X's shape. The
    Cython wrappers take n and d from X alone, so a shorter gamma or running_var
    is read past its end and a shorter Y, mean or dgamma written past its end.
    The twin refuses all of these with ValueError (NumPy broadcasting)."""
    n, d = 6, 4
    X, gamma, beta, rm, rv, dY = make(rng, n, d, dtype)
    _, mean, invstd, _, _ = train(ref, X, gamma, beta, rm, rv)
    problems = []

    def check(label, fn, args, guarded):
        outcome = _refusal(lambda: getattr(mod, fn)(**args))
        for key, (view, buf) in guarded.items():
            tail = buf.reshape(-1)[view.size:]
            if (tail != GUARD).any():
                outcome = f"{outcome or 'raised'}, and wrote past the end of {key}"
        if outcome is not None:
            problems.append(f"{fn} {label}: {outcome}")

    def train_args():
        return dict(X=X, gamma=gamma, beta=beta, eps=EPS, momentum=MOMENTUM,
                    Y=np.full((n, d), np.nan, dtype), mean=np.full(d, np.nan, dtype),
                    invstd=np.full(d, np.nan, dtype), running_mean=rm.copy(),
                    running_var=rv.copy())

    for key in ("gamma", "beta", "Y", "mean", "invstd", "running_mean", "running_var"):
        args = train_args()
        short = _short(args[key], args[key].shape[0] - 1)
        args[key] = short[0]
        check(f"{key} one short", "batchnorm_forward_train", args, {key: short})
    args = train_args()
    args["Y"] = np.full((n, d + 1), np.nan, dtype)
    check("Y one column wider", "batchnorm_forward_train", args, {})

    def infer_args():
        return dict(X=X, gamma=gamma, beta=beta, running_mean=rm, running_var=rv,
                    eps=EPS, Y=np.full((n, d), np.nan, dtype))

    for key in ("running_var", "Y"):
        args = infer_args()
        short = _short(np.full_like(args[key], np.nan) if key == "Y" else args[key],
                       args[key].shape[0] - 1)
        args[key] = short[0]
        check(f"{key} one short", "batchnorm_forward_infer", args, {key: short})

    def backward_args():
        return dict(X=X, dY=dY, gamma=gamma, mean=mean, invstd=invstd,
                    dX=np.full((n, d), np.nan, dtype), dgamma=np.full(d, np.nan, dtype),
                    dbeta=np.full(d, np.nan, dtype))

    for key in ("dY", "invstd", "dX", "dgamma"):
        args = backward_args()
        short = _short(args[key], args[key].shape[0] - 1)
        args[key] = short[0]
        check(f"{key} one short", "batchnorm_backward", args, {key: short})
    assert not problems, "mismatched shapes not refused:\n" + "\n".join(problems)

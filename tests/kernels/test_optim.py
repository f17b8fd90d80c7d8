"""Optimizer kernels: Cython vs NumPy twin over several steps, both vs a NumPy
transcription of torch.optim's documented algorithms, both vs torch.optim itself,
and gradient clipping vs torch.nn.utils.clip_grad_norm_."""

import math

import numpy as np
import pytest
from conftest import tolerance
from numpy.testing import assert_allclose, assert_array_equal

from fastnn._kernels import optim as cy
from fastnn.reference import optim as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
OPTIMIZERS = ["adadelta", "adagrad", "adam", "adamw", "nadam", "rmsprop", "sgd"]
TORCH_NAMES = {
    "sgd": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "nadam": "NAdam",
}
#: The in-place state arrays of each kernel, in argument order.
STATE = {
    "sgd": ("momentum_buf",),
    "adagrad": ("state_sum",),
    "rmsprop": ("square_avg", "momentum_buf", "grad_avg"),
    "adadelta": ("square_avg", "acc_delta"),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "nadam": ("exp_avg", "exp_avg_sq"),
}
#: torch.optim's defaults (checked against torch in test_torch_defaults). SGD's lr
#: has defaulted to 1e-3 since torch 2.2; Adagrad's initial_accumulator_value is 0.
TORCH_DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10),
    "rmsprop": dict(
        lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False
    ),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0),
    "adam": dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False
    ),
    "adamw": dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False
    ),
    "nadam": dict(
        lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3
    ),
}
#: fastnn-only hyperparameters and their torch-equivalent values.
EXTRAS = {"adagrad": dict(decay=1.0)}

#: (optimizer, id, overrides of TORCH_DEFAULTS): every option that changes the rule.
CASES = [
    ("sgd", "default", {}),
    ("sgd", "wd", dict(lr=0.1, weight_decay=0.1)),
    ("sgd", "momentum", dict(lr=0.1, momentum=0.9)),
    (
        "sgd",
        "dampening_wd",
        dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05),
    ),
    ("sgd", "nesterov", dict(lr=0.1, momentum=0.9, nesterov=True)),
    (
        "sgd",
        "nesterov_wd",
        dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    ),
    ("adagrad", "default", {}),
    ("adagrad", "lr_decay_wd", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, eps=1e-6)),
    ("adagrad", "leaky", dict(lr=0.1, decay=0.9, weight_decay=0.05)),
    ("rmsprop", "default", {}),
    ("rmsprop", "momentum", dict(momentum=0.9)),
    ("rmsprop", "centered", dict(centered=True)),
    (
        "rmsprop",
        "centered_momentum_wd",
        dict(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.5, centered=True,
             weight_decay=0.1),
    ),
    ("adadelta", "default", {}),
    ("adadelta", "wd", dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1)),
    ("adam", "default", {}),
    ("adam", "amsgrad", dict(amsgrad=True)),
    (
        "adam",
        "amsgrad_wd",
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
    ),
    ("adam", "wd", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1)),
    ("adamw", "default", {}),
    ("adamw", "no_wd", dict(weight_decay=0.0)),
    (
        "adamw",
        "amsgrad_wd",
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
    ),
    ("nadam", "default", {}),
    ("nadam", "no_momentum_decay", dict(momentum_decay=0.0)),
    (
        "nadam",
        "wd_momentum_decay",
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
             momentum_decay=0.1),
    ),
]
CASE_IDS = [f"{name}-{cid}" for name, cid, _ in CASES]
#: Per-step gradient scales: growing then shrinking, so that v_t falls below its
#: running maximum (AMSGrad's max is active) and momentum changes sign.
SCALES = [1.0, 3.0, 0.3, 2.0, 0.1]
STEPS = len(SCALES)
SIZES = [0, 1, 37, 100_003]
SIZE_IDS = ["empty", "1", "odd", "large"]


def test_module_interface():
    assert cy.__all__ == ref.__all__
    assert sorted(ref.__all__) == sorted(
        [f"{name}_update" for name in OPTIMIZERS] + ["clip_grad_norm", "global_norm"]
    )


def hyper(name, overrides):
    """The full hyperparameters of a case: torch's defaults, the fastnn extras."""
    return {**TORCH_DEFAULTS[name], **EXTRAS.get(name, {}), **overrides}


def torch_kwargs(name, hp):
    """``hp`` as torch.optim arguments, or None if it uses a fastnn-only option."""
    extras = EXTRAS.get(name, {})
    if any(hp[k] != v for k, v in extras.items()):
        return None
    return {k: v for k, v in hp.items() if k not in extras}


def make(rng, n, dtype, steps=STEPS):
    """A parameter vector and one gradient per step (some exact zeros)."""
    p0 = rng.normal(size=n).astype(dtype)
    grads = []
    for scale in SCALES[:steps]:
        g = scale * rng.normal(size=n)
        g[5::13] = 0.0
        grads.append(g.astype(dtype))
    return p0, grads


def new_state(name, n, dtype):
    state = {k: np.zeros(n, dtype) for k in STATE[name]}
    if name == "nadam":
        state["mu_product"] = 1.0
    return state


def call(mod, name, grad, hp, t, param, state):
    """One step ``t`` (1-based) of kernel ``name`` from ``mod``, in place."""
    s = state
    if name == "sgd":
        mod.sgd_update(grad, hp["lr"], hp["momentum"], hp["dampening"],
                       hp["nesterov"], hp["weight_decay"], t, param,
                       s["momentum_buf"])
    elif name == "adagrad":
        mod.adagrad_update(grad, hp["lr"], hp["lr_decay"], hp["weight_decay"],
                           hp["eps"], hp["decay"], t, param, s["state_sum"])
    elif name == "rmsprop":
        mod.rmsprop_update(grad, hp["lr"], hp["alpha"], hp["eps"], hp["weight_decay"],
                           hp["momentum"], hp["centered"], param, s["square_avg"],
                           s["momentum_buf"], s["grad_avg"])
    elif name == "adadelta":
        mod.adadelta_update(grad, hp["lr"], hp["rho"], hp["eps"], hp["weight_decay"],
                            param, s["square_avg"], s["acc_delta"])
    elif name in ("adam", "adamw"):
        getattr(mod, f"{name}_update")(
            grad, hp["lr"], hp["betas"][0], hp["betas"][1], hp["eps"],
            hp["weight_decay"], hp["amsgrad"], t, param, s["exp_avg"],
            s["exp_avg_sq"], s["max_exp_avg_sq"])
    elif name == "nadam":
        mu_product = mod.nadam_update(
            grad, hp["lr"], hp["betas"][0], hp["betas"][1], hp["eps"],
            hp["weight_decay"], hp["momentum_decay"], t, s["mu_product"], param,
            s["exp_avg"], s["exp_avg_sq"])
        assert type(mu_product) is float
        s["mu_product"] = mu_product
    else:  # pragma: no cover
        raise AssertionError(name)


def run(mod, name, hp, p0, grads, state=None):
    """The parameter after each step, and the final state."""
    param = p0.copy()
    state = new_state(name, p0.size, p0.dtype) if state is None else state
    trajectory = []
    for t, g in enumerate(grads, 1):
        call(mod, name, g, hp, t, param, state)
        trajectory.append(param.copy())
    return trajectory, state


def assert_trajectories_close(got, want, dtype):
    scale = max((np.abs(w).max(initial=0.0) for w in want), default=0.0)
    for t, (a, b) in enumerate(zip(got, want, strict=True), 1):
        assert_allclose(a, b, **tolerance(dtype, scale), err_msg=f"step {t}")


# --------------------------------------------------------------------------
# Cython kernel vs NumPy twin


@pytest.mark.parametrize("n", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("name, cid, overrides", CASES, ids=CASE_IDS)
def test_kernel_matches_twin(name, cid, overrides, n, dtype, rng):
    hp = hyper(name, overrides)
    p0, grads = make(rng, n, dtype)
    grads_before = [g.copy() for g in grads]
    traj, state = run(cy, name, hp, p0, grads)
    traj_r, state_r = run(ref, name, hp, p0, grads)
    assert all(p.dtype == dtype for p in traj)
    assert_trajectories_close(traj, traj_r, dtype)
    for key in STATE[name]:
        assert state[key].dtype == dtype
        scale = np.abs(state_r[key]).max(initial=0.0)
        assert_allclose(state[key], state_r[key], **tolerance(dtype, scale),
                        err_msg=key)
    if name == "nadam":
        assert state["mu_product"] == pytest.approx(state_r["mu_product"], rel=1e-15)
    # grad is read, never written.
    for g, g0 in zip(grads, grads_before):
        assert_array_equal(g, g0)
    if n:  # the update did something
        assert not np.array_equal(traj[-1], p0)


@pytest.mark.parametrize("name, cid, overrides", CASES, ids=CASE_IDS)
def test_kernel_matches_twin_from_nonzero_state(name, cid, overrides, dtype, rng):
    """Resuming mid-run (step 6 onward, state not zero) agrees too."""
    hp = hyper(name, overrides)
    p0, grads = make(rng, 37, dtype)
    _, state0 = run(ref, name, hp, p0, grads)
    results = []
    for mod in BACKENDS:
        param = p0.copy()
        state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                 for k, v in state0.items()}
        for t, g in enumerate(grads, STEPS + 1):
            call(mod, name, g, hp, t, param, state)
        results.append((param, state))
    (p, s), (p_r, s_r) = results
    assert_allclose(p, p_r, **tolerance(dtype, np.abs(p_r).max()))
    for key in STATE[name]:
        assert_allclose(s[key], s_r[key], **tolerance(dtype, np.abs(s_r[key]).max()))


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_first_step_ignores_the_buffer(mod, nesterov, dtype, rng):
    """At step 1 the buffer is set to g (torch: a fresh clone), whatever it held."""
    hp = hyper("sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=nesterov,
                           weight_decay=0.1))
    p0, grads = make(rng, 37, dtype, steps=1)
    clean, _ = run(mod, "sgd", hp, p0, grads)
    state = {"momentum_buf": np.full(37, np.nan, dtype)}
    dirty, state = run(mod, "sgd", hp, p0, grads, state)
    assert_array_equal(dirty[0], clean[0])
    g = grads[0].astype(np.float64) + 0.1 * p0
    assert_allclose(state["momentum_buf"], g, **tolerance(dtype, np.abs(g).max()))


#: (case, state arrays the case's options leave unused)
UNUSED_STATE = [
    ("sgd", "wd", ("momentum_buf",)),
    ("rmsprop", "default", ("momentum_buf", "grad_avg")),
    ("rmsprop", "momentum", ("grad_avg",)),
    ("rmsprop", "centered", ("momentum_buf",)),
    ("adam", "default", ("max_exp_avg_sq",)),
    ("adamw", "default", ("max_exp_avg_sq",)),
]


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name, cid, unused", UNUSED_STATE,
                         ids=[f"{n}-{c}" for n, c, _ in UNUSED_STATE])
def test_unused_state_is_neither_read_nor_written(mod, name, cid, unused, dtype, rng):
    """fastnn.optimizers.Adam passes exp_avg_sq in the max_exp_avg_sq slot when
    amsgrad is off: the kernel must not touch that slot (or any unused buffer)."""
    hp = hyper(name, next(o for n, c, o in CASES if (n, c) == (name, cid)))
    p0, grads = make(rng, 37, dtype)
    want, want_state = run(mod, name, hp, p0, grads)
    state = new_state(name, 37, dtype)
    for key in unused:
        state[key] = np.full(37, np.nan, dtype)
    got, state = run(mod, name, hp, p0, grads, state)
    for a, b in zip(got, want):
        assert_array_equal(a, b)
    for key in unused:
        assert np.isnan(state[key]).all(), key
    if name in ("adam", "adamw"):  # the optimizer layer's aliasing
        state = new_state(name, 37, dtype)
        state["max_exp_avg_sq"] = state["exp_avg_sq"]
        got, state = run(mod, name, hp, p0, grads, state)
        assert_array_equal(got[-1], want[-1])
        assert_array_equal(state["exp_avg_sq"], want_state["exp_avg_sq"])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name, cid, overrides", CASES, ids=CASE_IDS)
def test_readonly_and_noncontiguous_grad(mod, name, cid, overrides, dtype, rng):
    """grad may be strided or read-only (it is only read); the result is the same
    as from a contiguous writable copy."""
    hp = hyper(name, overrides)
    p0, grads = make(rng, 37, dtype)
    want, want_state = run(mod, name, hp, p0, grads)
    # Every other element of a longer array, then read-only copies.
    strided = []
    for g in grads:
        wide = np.repeat(g, 2)
        wide[1::2] = np.nan  # must never be read
        strided.append(wide[::2])
    readonly = [g.copy() for g in grads]
    for g in readonly:
        g.setflags(write=False)
    for variant in (strided, readonly):
        got, got_state = run(mod, name, hp, p0, variant)
        for a, b in zip(got, want):  # the same values in the same order: bit for bit
            assert_array_equal(a, b)
        for key in STATE[name]:
            assert_array_equal(got_state[key], want_state[key])


def _bad_arrays(n, dtype):
    """(label, array) that a typed ``floating[::1]`` in-place argument must refuse."""
    other = np.float64 if dtype == np.float32 else np.float32
    readonly = np.zeros(n, dtype)
    readonly.setflags(write=False)
    return [
        ("readonly", readonly),
        ("strided", np.zeros(2 * n, dtype)[::2]),
        ("other_dtype", np.zeros(n, other)),
        ("int", np.zeros(n, np.int64)),
        ("2d", np.zeros((n, 1), dtype)),
        ("list", [0.0] * n),
    ]


@pytest.mark.parametrize("name, cid, overrides", CASES, ids=CASE_IDS)
def test_kernel_refuses_bad_param_and_state(name, cid, overrides, dtype, rng):
    """The Cython wrappers take param and state as C-contiguous writable arrays of
    one float dtype; anything else raises before a single element is written."""
    hp = hyper(name, overrides)
    n = 9
    p0, grads = make(rng, n, dtype, steps=1)
    for target in ("param",) + STATE[name]:
        for label, bad in _bad_arrays(n, dtype):
            param = p0.copy()
            state = new_state(name, n, dtype)
            if target == "param":
                param = bad
            else:
                state[target] = bad
            before = {k: np.array(v, copy=True) for k, v in state.items()}
            with pytest.raises((ValueError, TypeError)):
                call(cy, name, grads[0], hp, 1, param, state)
            if target != "param":
                assert_array_equal(param, p0, err_msg=f"{target} {label}")
            for k, v in state.items():
                assert_array_equal(v, before[k], err_msg=f"{target} {label}")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_kernel_refuses_grad_of_another_dtype(name, dtype, rng):
    """grad is converted to C order but not cast: a float64 grad for float32
    parameters (or the reverse) is a TypeError, not a silent reinterpretation."""
    other = np.float64 if dtype == np.float32 else np.float32
    hp = hyper(name, {})
    p0, grads = make(rng, 9, dtype, steps=1)
    param, state = p0.copy(), new_state(name, 9, dtype)
    with pytest.raises(TypeError, match="grad: must be"):
        call(cy, name, grads[0].astype(other), hp, 1, param, state)
    assert_array_equal(param, p0)


# --------------------------------------------------------------------------
# An independent oracle: torch.optim's docstring pseudo-code, transcribed


def oracle_sgd(theta, grads, lr, momentum, dampening, weight_decay, nesterov):
    b = None
    for t, g in enumerate(grads, 1):
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            if t > 1:
                b = momentum * b + (1 - dampening) * g
            else:
                b = g
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        theta = theta - lr * g
        yield theta


def oracle_adagrad(theta, grads, lr, lr_decay, weight_decay, eps, decay):
    # torch: state_sum_t = state_sum_{t-1} + g^2. fastnn's ``decay`` (a leaky
    # accumulator, DESIGN.md) multiplies state_sum_{t-1}; decay = 1 is torch's rule.
    state_sum = np.zeros_like(theta)  # tau (initial accumulator value) = 0
    for t, g in enumerate(grads, 1):
        clr = lr / (1 + (t - 1) * lr_decay)
        if weight_decay != 0:
            g = g + weight_decay * theta
        state_sum = decay * state_sum + g**2
        theta = theta - clr * g / (np.sqrt(state_sum) + eps)
        yield theta


def oracle_rmsprop(theta, grads, lr, alpha, eps, weight_decay, momentum, centered):
    v = np.zeros_like(theta)
    b = np.zeros_like(theta)
    g_ave = np.zeros_like(theta)
    for g in grads:
        if weight_decay != 0:
            g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g**2
        v_tilde = v
        if centered:
            g_ave = g_ave * alpha + (1 - alpha) * g
            v_tilde = v_tilde - g_ave**2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
        yield theta


def oracle_adadelta(theta, grads, lr, rho, eps, weight_decay):
    v = np.zeros_like(theta)
    u = np.zeros_like(theta)
    for g in grads:
        if weight_decay != 0:
            g = g + weight_decay * theta
        v = v * rho + g**2 * (1 - rho)
        delta_x = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = u * rho + delta_x**2 * (1 - rho)
        theta = theta - lr * delta_x
        yield theta


def oracle_adam(theta, grads, lr, betas, eps, weight_decay, amsgrad, decoupled=False):
    beta1, beta2 = betas
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    v_max = np.zeros_like(theta)
    for t, g in enumerate(grads, 1):
        if decoupled:  # AdamW
            theta = theta - lr * weight_decay * theta
        elif weight_decay != 0:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - beta2**t)
        else:
            v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        yield theta


def oracle_adamw(theta, grads, **hp):
    return oracle_adam(theta, grads, decoupled=True, **hp)


def oracle_nadam(theta, grads, lr, betas, eps, weight_decay, momentum_decay):
    beta1, beta2 = betas

    def mu(i):
        return beta1 * (1 - 0.5 * 0.96 ** (i * momentum_decay))

    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, 1):
        if weight_decay != 0:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        prod_t = math.prod(mu(i) for i in range(1, t + 1))
        prod_t1 = math.prod(mu(i) for i in range(1, t + 2))
        m_hat = mu(t + 1) * m / (1 - prod_t1) + (1 - mu(t)) * g / (1 - prod_t)
        v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        yield theta


ORACLES = {
    "sgd": oracle_sgd,
    "adagrad": oracle_adagrad,
    "rmsprop": oracle_rmsprop,
    "adadelta": oracle_adadelta,
    "adam": oracle_adam,
    "adamw": oracle_adamw,
    "nadam": oracle_nadam,
}


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name, cid, overrides", CASES, ids=CASE_IDS)
def test_matches_documented_algorithm(mod, name, cid, overrides, dtype, rng):
    """float64: to double rounding. float32: the oracle runs in float64 on the same
    float32 inputs, so this bounds the float32 kernels' own rounding."""
    hp = hyper(name, overrides)
    p0, grads = make(rng, 37, dtype)
    want = list(ORACLES[name](p0.astype(np.float64),
                              [g.astype(np.float64) for g in grads], **hp))
    got, _ = run(mod, name, hp, p0, grads)
    assert_trajectories_close(got, want, dtype)
    # The steps are not negligible next to the tolerance: a wrong rule would show.
    assert np.abs(want[-1] - p0).max() > 1e-4


def test_amsgrad_and_options_change_the_trajectory(rng):
    """The cases are not redundant: each option moves the parameters differently
    from the defaults (so the comparisons above can tell them apart)."""
    p0, grads = make(rng, 37, np.float64)
    for name, cid, overrides in CASES:
        if cid == "default":
            continue
        base = list(ORACLES[name](p0.copy(), grads, **hyper(name, {})))[-1]
        other = list(ORACLES[name](p0.copy(), grads, **hyper(name, overrides)))[-1]
        # (1e-9 is ~300 times the float64 tolerance on these parameters of order 3)
        assert np.abs(other - base).max() > 1e-9, (name, cid)
    # AMSGrad alone (same lr, betas, eps): the max matters after the big step.
    hp = hyper("adam", {})
    plain = list(ORACLES["adam"](p0.copy(), grads, **hp))
    ams = list(ORACLES["adam"](p0.copy(), grads, **{**hp, "amsgrad": True}))
    assert_array_equal(plain[1], ams[1])  # v grows over the first two steps
    assert np.abs(plain[-1] - ams[-1]).max() > 1e-9


# --------------------------------------------------------------------------
# Against torch.optim (float64; float32 at the float32 tolerance)


def test_torch_defaults():
    torch = pytest.importorskip("torch")
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for name, defaults in TORCH_DEFAULTS.items():
        opt = getattr(torch.optim, TORCH_NAMES[name])([p])
        for key, value in defaults.items():
            assert opt.defaults[key] == value, (name, key)
        if name == "adagrad":
            assert opt.defaults["initial_accumulator_value"] == 0


def torch_trajectory(torch, name, kwargs, p0, grads):
    """torch.optim's parameter after each step. torch keeps scalar state (``step``,
    NAdam's ``mu_product``) in the default dtype; it is float64 here for float64
    parameters, or NAdam's float32 mu_product would cost ~1e-9 relative."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.from_numpy(p0).dtype)
    try:
        p = torch.tensor(p0, requires_grad=True)
        opt = getattr(torch.optim, TORCH_NAMES[name])([p], **kwargs)
        out = []
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
            out.append(p.detach().numpy().copy())
    finally:
        torch.set_default_dtype(default)
    return out


TORCH_CASES = [c for c in CASES if torch_kwargs(c[0], hyper(c[0], c[2])) is not None]
TORCH_CASE_IDS = [i for c, i in zip(CASES, CASE_IDS) if c in TORCH_CASES]


@pytest.mark.parametrize("n", [1, 37], ids=["1", "odd"])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name, cid, overrides", TORCH_CASES, ids=TORCH_CASE_IDS)
def test_matches_torch(name, cid, overrides, mod, n, rng):
    torch = pytest.importorskip("torch")
    hp = hyper(name, overrides)
    p0, grads = make(rng, n, np.float64)
    want = torch_trajectory(torch, name, torch_kwargs(name, hp), p0, grads)
    got, _ = run(mod, name, hp, p0, grads)
    assert_trajectories_close(got, want, np.float64)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name, cid, overrides", TORCH_CASES, ids=TORCH_CASE_IDS)
def test_matches_torch_float32(name, cid, overrides, mod, rng):
    torch = pytest.importorskip("torch")
    hp = hyper(name, overrides)
    p0, grads = make(rng, 1001, np.float32)
    want = torch_trajectory(torch, name, torch_kwargs(name, hp), p0, grads)
    assert want[-1].dtype == np.float32
    got, _ = run(mod, name, hp, p0, grads)
    assert_trajectories_close(got, want, np.float32)


# --------------------------------------------------------------------------
# global_norm and clip_grad_norm


NORM_SIZES = [0, 1, 37, 100_003]


@pytest.mark.parametrize("n", NORM_SIZES, ids=SIZE_IDS)
def test_global_norm_matches_twin(n, dtype, rng):
    g = (3 * rng.normal(size=n)).astype(dtype)
    norm = cy.global_norm(g)
    assert type(norm) is float and type(ref.global_norm(g)) is float
    # Both accumulate in double: they agree to double rounding in either dtype.
    exact = math.sqrt(math.fsum(x * x for x in g.astype(np.float64).tolist()))
    assert_allclose(norm, exact, rtol=1e-12, atol=0)
    assert_allclose(ref.global_norm(g), exact, rtol=1e-12, atol=0)
    # Strided and read-only input.
    wide = np.repeat(g, 2)
    assert_allclose(cy.global_norm(wide[::2]), norm, rtol=1e-15, atol=0)
    g.setflags(write=False)
    assert cy.global_norm(g) == norm


def test_float32_global_norm_is_accumulated_in_double(rng):
    """Many float32 squares of mixed magnitude: a float32 running sum is off by
    ~1e-5 relative, a double one by ~1e-14."""
    g = (rng.normal(size=200_003) * rng.choice([1e-3, 1.0, 30.0], 200_003)).astype(
        np.float32)
    exact = math.sqrt(math.fsum(x * x for x in g.astype(np.float64).tolist()))
    assert_allclose(cy.global_norm(g), exact, rtol=1e-12, atol=0)
    # The error this test is built to catch: a float32 running sum.
    float32_sum = np.cumsum(g * g, dtype=np.float32)[-1]
    assert abs(math.sqrt(float32_sum) - exact) > 1e-9 * exact


#: max_norm relative to the gradient's norm: well below, just below (clipped by
#: eps only), equal, above, zero.
CLIP_CASES = [0.1, 1.0 - 1e-7, 1.0, 2.0, 0.0]
CLIP_IDS = ["clip", "eps_only", "equal", "no_clip", "zero"]


@pytest.mark.parametrize("n", NORM_SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("ratio", CLIP_CASES, ids=CLIP_IDS)
def test_clip_grad_norm_matches_twin(ratio, n, dtype, rng):
    g0 = (3 * rng.normal(size=n)).astype(dtype)
    norm0 = ref.global_norm(g0)
    max_norm = ratio * norm0 if n else ratio
    g, g_r = g0.copy(), g0.copy()
    total = cy.clip_grad_norm(g, max_norm)
    total_r = ref.clip_grad_norm(g_r, max_norm)
    assert type(total) is float
    assert_allclose(total, norm0, rtol=1e-12, atol=0)  # the norm before clipping
    assert_allclose(total_r, norm0, rtol=1e-12, atol=0)
    tol = tolerance(dtype, np.abs(g0).max(initial=0.0))
    assert_allclose(g, g_r, **tol)
    # torch's rule: coef = max_norm / (total + 1e-6), applied when below 1.
    coef = max_norm / (norm0 + 1e-6)
    want = g0.astype(np.float64) * min(coef, 1.0)
    assert_allclose(g, want, **tol)
    if coef >= 1:
        assert_array_equal(g, g0)


def test_clip_grad_norm_refuses_readonly_and_strided(dtype):
    g = np.ones(4, dtype)
    g.setflags(write=False)
    with pytest.raises(ValueError):
        cy.clip_grad_norm(g, 0.5)
    strided = np.ones(8, dtype)
    with pytest.raises(ValueError):
        cy.clip_grad_norm(strided[::2], 0.5)
    assert_array_equal(strided, 1)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_clip_grad_norm_eps_matters_for_small_norms(mod):
    """The 1e-6 sits in the denominator (torch's convention): a gradient of norm
    1e-7 clipped to max_norm 1e-7 is scaled by 1e-7 / 1.1e-6 = 1/11."""
    g = np.array([6e-8, 8e-8])
    total = mod.clip_grad_norm(g, 1e-7)
    assert total == pytest.approx(1e-7, rel=1e-15)
    assert_allclose(g, np.array([6e-8, 8e-8]) / 11, rtol=1e-12)


def torch_clip(torch, pieces, max_norm):
    params = []
    for piece in pieces:
        p = torch.zeros(piece.size, dtype=torch.from_numpy(piece).dtype,
                        requires_grad=True)
        p.grad = torch.tensor(piece)
        params.append(p)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(total), np.concatenate([p.grad.numpy() for p in params])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("ratio", CLIP_CASES, ids=CLIP_IDS)
def test_clip_grad_norm_matches_torch(mod, ratio, dtype, rng):
    """The flat buffer of several tensors: torch clips by the norm of their norms."""
    torch = pytest.importorskip("torch")
    g0 = (3 * rng.normal(size=1000)).astype(dtype)
    max_norm = ratio * ref.global_norm(g0)
    want_total, want = torch_clip(torch, np.split(g0, [10, 400, 401]), max_norm)
    g = g0.copy()
    total = mod.clip_grad_norm(g, max_norm)
    assert_allclose(total, want_total, **tolerance(dtype))
    assert_allclose(g, want, **tolerance(dtype, np.abs(want).max()))


def test_clip_grad_norm_small_norms_match_torch():
    torch = pytest.importorskip("torch")
    for max_norm in (1e-7, 1e-6, 1e-9):
        g0 = np.array([6e-8, 8e-8, 0.0])
        want_total, want = torch_clip(torch, [g0], max_norm)
        for mod in BACKENDS:
            g = g0.copy()
            assert mod.clip_grad_norm(g, max_norm) == pytest.approx(want_total,
                                                                   rel=1e-15)
            assert_allclose(g, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_clip_grad_norm_nonfinite(mod):
    """inf: coef = 0, as torch (finite entries zeroed, inf * 0 = nan). nan: coef
    is nan, every entry becomes nan, as torch."""
    g = np.array([1.0, 2.0, np.inf])
    with np.errstate(invalid="ignore"):
        assert mod.clip_grad_norm(g, 1.0) == np.inf
    assert_array_equal(g, [0.0, 0.0, np.nan])
    g = np.array([1.0, 2.0, np.nan])
    assert math.isnan(mod.clip_grad_norm(g, 1.0))
    assert_array_equal(g, [np.nan, np.nan, np.nan])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_clip_grad_norm_nonfinite_vs_torch(mod):
    """With a nan gradient torch (error_if_nonfinite=False) multiplies every
    gradient by clamp(nan, max=1) = nan; with inf it zeroes the finite entries
    and the inf becomes nan. Both backends do the same."""
    torch = pytest.importorskip("torch")
    for bad in (np.inf, np.nan):
        g = np.array([1.0, 2.0, bad])
        _, want = torch_clip(torch, [g.copy()], 1.0)
        with np.errstate(invalid="ignore"):
            mod.clip_grad_norm(g, 1.0)
        assert_array_equal(g, want)

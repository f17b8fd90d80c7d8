"""The kernel benchmark cases, shared by ``test_kernels.py`` (pytest-benchmark)
and ``run_kernels.py`` (standalone).

A case builds one call of a kernel on one backend: ``case.build(variant)``
returns ``(fn, outputs)``, a zero-argument callable and the arrays it writes.
The variants are ``"cython"`` and ``"numpy"`` (the two halves of
:func:`fastnn.ops.get_ops`) and, for the dense layer, ``"gemm_only"``: the
same three matrix products alone through ``np.matmul`` into preallocated
outputs, the roofline the fused kernel is judged against. Every variant of a
case is built from the same seed, so each backend sees identical float32
inputs; each gets its own copy of any array a call writes.

The results are ratios: ``speedup = numpy_time / cython_time`` and, for
dense, ``x GEMM-only = cython_time / gemm_only_time``.
"""

import functools
import os
import platform
from dataclasses import dataclass, field

import numpy as np

from fastnn.activations import ACTIVATIONS
from fastnn.ops import get_ops

F32 = np.float32
SEED = 20240601
BATCH = 256  # a typical minibatch; the activation cases are BATCH x UNITS
UNITS = 512
N_PARAMS = 1_000_000
BACKENDS = ("cython", "numpy")
GEMM_ONLY = "gemm_only"


@dataclass(frozen=True)
class Aim:
    """A target: ``speedup >= value`` or ``x GEMM-only <= value``."""

    kind: str  # "speedup" or "gemm"
    value: float

    def label(self):
        return f">={self.value:g}x twin" if self.kind == "speedup" else (
            f"<={self.value:g}x GEMM")

    def met(self, speedup, gemm_ratio):
        if self.kind == "speedup":
            return speedup >= self.value
        return gemm_ratio is not None and gemm_ratio <= self.value


@dataclass(frozen=True)
class Case:
    id: str  # pytest id and benchmark group
    kernel: str  # what the table calls it
    shape: str
    make: object = field(repr=False)  # make(ops) -> (fn, outputs)
    roofline: object = field(default=None, repr=False)  # roofline() -> (fn, outputs)
    aim: Aim = None
    inout: bool = False  # the outputs are state the call updates, not overwrites

    @property
    def variants(self):
        return BACKENDS + ((GEMM_ONLY,) if self.roofline is not None else ())

    def build(self, variant):
        if variant == GEMM_ONLY:
            return self.roofline()
        return self.make(get_ops(variant))


def _rng():
    return np.random.default_rng(SEED)


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=F32) * F32(scale)).astype(F32)


# --------------------------------------------------------------------------
# Losses


def _softmax_ce(n, k):
    def make(ops):
        rng = _rng()
        Y = _normal(rng, (n, k), 3.0)
        y = rng.integers(0, k, n)
        dY = np.empty_like(Y)
        f = ops.softmax_cross_entropy_forward_backward
        return (lambda: f(Y, y, dY)), (dY,)

    return make


def _label_loss(name, n, k):
    def make(ops):
        rng = _rng()
        Y = _normal(rng, (n, k), 3.0)
        y = rng.integers(0, k, n)
        dY = np.empty_like(Y)
        f = getattr(ops, f"{name}_forward_backward")
        return (lambda: f(Y, y, dY)), (dY,)

    return make


def _target_loss(name, n, k, binary=False):
    def make(ops):
        rng = _rng()
        Y = _normal(rng, (n, k), 3.0)
        T = (rng.integers(0, 2, (n, k)).astype(F32) if binary
             else _normal(rng, (n, k), 3.0))
        dY = np.empty_like(Y)
        f = getattr(ops, f"{name}_forward_backward")
        if name == "huber":
            return (lambda: f(Y, T, 1.0, dY)), (dY,)
        return (lambda: f(Y, T, dY)), (dY,)

    return make


# --------------------------------------------------------------------------
# Activations: forward then backward, as a layer runs them


def _activation(name, alpha, n=BATCH, d=UNITS):
    def make(ops):
        rng = _rng()
        Z = _normal(rng, (n, d), 2.0)
        dY = _normal(rng, (n, d))
        Y, dZ = np.empty_like(Z), np.empty_like(Z)
        fwd, bwd = ops.activation_forward, ops.activation_backward

        def fn():
            fwd(Z, name, alpha, Y)
            bwd(Z, Y, dY, name, alpha, dZ)

        return fn, (Y, dZ)

    return make


def _softmax(n=BATCH, d=UNITS):
    def make(ops):
        rng = _rng()
        Z = _normal(rng, (n, d), 2.0)
        dY = _normal(rng, (n, d))
        Y, dZ = np.empty_like(Z), np.empty_like(Z)
        fwd, bwd = ops.softmax_forward, ops.softmax_backward

        def fn():
            fwd(Z, 1.0, Y)
            bwd(Y, dY, 1.0, dZ)

        return fn, (Y, dZ)

    return make


def _prelu(n=BATCH, d=UNITS):
    def make(ops):
        rng = _rng()
        Z = _normal(rng, (n, d), 2.0)
        dY = _normal(rng, (n, d))
        a = np.full(d, 0.25, F32)
        Y, dZ, da = np.empty_like(Z), np.empty_like(Z), np.empty_like(a)
        fwd, bwd = ops.prelu_forward, ops.prelu_backward

        def fn():
            fwd(Z, a, Y)
            bwd(Z, a, dY, dZ, da)

        return fn, (Y, dZ, da)

    return make


def _maxout(pieces, n=BATCH, d=UNITS):
    def make(ops):
        rng = _rng()
        Z = _normal(rng, (n, d), 2.0)
        dY = _normal(rng, (n, d // pieces))
        Y = np.empty((n, d // pieces), F32)
        argmax = np.empty((n, d // pieces), np.int64)
        dZ = np.empty_like(Z)
        fwd, bwd = ops.maxout_forward, ops.maxout_backward

        def fn():
            fwd(Z, pieces, Y, argmax)
            bwd(dY, argmax, pieces, dZ)

        return fn, (Y, dZ)

    return make


# --------------------------------------------------------------------------
# Optimizers: one in-place update of N_PARAMS float32 parameters. The step
# number is fixed, so every timed call does the same work.


def _optimizer(name, n=N_PARAMS):
    def make(ops):
        rng = _rng()
        grad = _normal(rng, n, 1e-2)
        param = _normal(rng, n)
        s1, s2, s3 = (np.zeros(n, F32) for _ in range(3))
        if name == "nadam":
            s2 += F32(1e-4)
        f = getattr(ops, f"{name}_update")
        calls = {
            # torch defaults where a default exists
            "adam": lambda: f(grad, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 10, param,
                              s1, s2, s2),
            "adamw": lambda: f(grad, 1e-3, 0.9, 0.999, 1e-8, 1e-2, False, 10, param,
                               s1, s2, s2),
            "nadam": lambda: f(grad, 2e-3, 0.9, 0.999, 1e-8, 0.0, 4e-3, 10, 0.5,
                               param, s1, s2),
            "sgd": lambda: f(grad, 1e-2, 0.9, 0.0, False, 0.0, 10, param, s1),
            "rmsprop": lambda: f(grad, 1e-2, 0.99, 1e-8, 0.0, 0.0, False, param, s1,
                                 s2, s3),
            "adagrad": lambda: f(grad, 1e-2, 0.0, 0.0, 1e-10, 1.0, 10, param, s1),
            "adadelta": lambda: f(grad, 1.0, 0.9, 1e-6, 0.0, param, s1, s2),
        }
        return calls[name], (param, s1, s2)

    return make


# --------------------------------------------------------------------------
# Dense: a hidden relu layer, forward then backward with dX (as a layer past
# the first runs it); Z is not kept for relu, as in fastnn.layers.Dense.


def _dense_arrays(n, n_in, n_out):
    rng = _rng()
    X = _normal(rng, (n, n_in))
    W = _normal(rng, (n_out, n_in), np.sqrt(2.0 / n_in))
    b = _normal(rng, n_out, 0.1)
    dY = _normal(rng, (n, n_out))
    Y = np.empty((n, n_out), F32)
    dX = np.empty((n, n_in), F32)
    dW = np.empty((n_out, n_in), F32)
    db = np.empty(n_out, F32)
    return X, W, b, dY, Y, dX, dW, db


def _dense(n, n_in, n_out):
    def make(ops):
        X, W, b, dY, Y, dX, dW, db = _dense_arrays(n, n_in, n_out)
        fwd, bwd = ops.dense_forward, ops.dense_backward

        def fn():
            fwd(X, W, b, "relu", 0.0, Y)
            # dY is overwritten with dZ = dY * relu'(Z); Y does not change, so
            # the mask is the same on every call and dY settles after the first.
            bwd(X, W, None, Y, dY, "relu", 0.0, dX, dW, db)

        return fn, (Y, dX, dW, db)

    def roofline():
        X, W, _, dY, Y, dX, dW, _ = _dense_arrays(n, n_in, n_out)
        matmul = np.matmul

        def fn():
            matmul(X, W.T, out=Y)  # forward
            matmul(dY, W, out=dX)  # dX
            matmul(dY.T, X, out=dW)  # dW

        return fn, (Y, dX, dW)

    return make, roofline


# --------------------------------------------------------------------------
# Dropout, batch normalization, minibatch gather


def _dropout(p, n=BATCH, d=UNITS):
    def make(ops):
        rng = _rng()
        X = _normal(rng, (n, d))
        U = rng.random((n, d), dtype=F32)
        dY = _normal(rng, (n, d))
        Y, dX = np.empty_like(X), np.empty_like(X)
        fwd, bwd = ops.dropout_forward, ops.dropout_backward

        def fn():
            fwd(X, U, p, Y)
            bwd(dY, U, p, dX)

        return fn, (Y, dX)

    return make


def _batchnorm(n=BATCH, d=UNITS):
    def make(ops):
        rng = _rng()
        X = _normal(rng, (n, d), 2.0) + F32(0.5)
        dY = _normal(rng, (n, d))
        gamma, beta = np.ones(d, F32), np.zeros(d, F32)
        mean, invstd = np.empty(d, F32), np.empty(d, F32)
        running_mean, running_var = np.zeros(d, F32), np.ones(d, F32)
        Y, dX = np.empty_like(X), np.empty_like(X)
        dgamma, dbeta = np.empty(d, F32), np.empty(d, F32)
        fwd, bwd = ops.batchnorm_forward_train, ops.batchnorm_backward

        def fn():
            fwd(X, gamma, beta, 1e-5, 0.1, Y, mean, invstd, running_mean,
                running_var)
            bwd(X, dY, gamma, mean, invstd, dX, dgamma, dbeta)

        return fn, (Y, dX, dgamma, dbeta)

    return make


@functools.cache
def _dataset(n, d):
    """A read-only training set, shared by both backends (it is only read)."""
    X = _rng().random((n, d), dtype=F32)
    X.flags.writeable = False
    return X


def _gather(m, n, d):
    def make(ops):
        X = _dataset(n, d)
        idx = np.random.default_rng(SEED + 1).permutation(n)[:m]
        out = np.empty((m, d), F32)
        f = ops.gather_rows
        return (lambda: f(X, idx, out)), (out,)

    return make


# --------------------------------------------------------------------------
# The cases, in table order


def _cases():
    cases = []
    for k in (10, 1000):
        cases.append(Case(f"softmax_ce-{BATCH}x{k}", "softmax_cross_entropy fwd+bwd",
                          f"{BATCH}x{k}", _softmax_ce(BATCH, k), aim=Aim("speedup", 3)))
    act_aim = Aim("speedup", 2)
    shape = f"{BATCH}x{UNITS}"
    for name, spec in ACTIVATIONS.items():
        cases.append(Case(f"act-{name}", f"{name} fwd+bwd", shape,
                          _activation(name, spec.alpha), aim=act_aim))
    cases.append(Case("act-softmax", "softmax fwd+bwd", shape, _softmax(), aim=act_aim))
    cases.append(Case("act-prelu", "prelu fwd+bwd", shape, _prelu(), aim=act_aim))
    cases.append(Case("act-maxout", "maxout fwd+bwd", f"{shape}, pieces=2",
                      _maxout(2), aim=act_aim))
    n = f"{N_PARAMS:,}"
    cases.append(Case("optim-adam", "adam_update", n, _optimizer("adam"),
                      aim=Aim("speedup", 3), inout=True))
    for name in ("adamw", "nadam", "sgd", "rmsprop", "adagrad", "adadelta"):
        label = "sgd_update (momentum)" if name == "sgd" else f"{name}_update"
        cases.append(Case(f"optim-{name}", label, n, _optimizer(name), inout=True))
    for n_in, n_out in ((512, 512), (784, 256)):
        make, roofline = _dense(BATCH, n_in, n_out)
        cases.append(Case(f"dense-{n_in}x{n_out}", "dense relu fwd+bwd",
                          f"{BATCH}: {n_in}->{n_out}", make, roofline,
                          Aim("gemm", 1.1)))
    cases.append(Case("dropout", "dropout fwd+bwd", f"{shape}, p=0.5", _dropout(0.5)))
    cases.append(Case("batchnorm", "batchnorm train fwd+bwd", shape, _batchnorm()))
    cases.append(Case("gather_rows", "gather_rows", f"{BATCH} of 60000x784",
                      _gather(BATCH, 60000, 784)))
    for name in ("hinge",):
        cases.append(Case(f"loss-{name}", f"{name} fwd+bwd", f"{BATCH}x10",
                          _label_loss(name, BATCH, 10)))
    for name in ("binary_cross_entropy", "mse", "mae", "huber"):
        cases.append(Case(f"loss-{name}", f"{name} fwd+bwd", f"{BATCH}x10",
                          _target_loss(name, BATCH, 10,
                                       binary=name == "binary_cross_entropy")))
    return tuple(cases)


CASES = _cases()


def check_agreement(case, rtol=1e-3, atol=1e-4):
    """Run one call per backend from identical state and compare what it writes
    (for ``case.inout``, how much it changes the state).

    A guard against a benchmark that times a misconfigured call (one that
    writes nothing, or something else), not a correctness test: tests/ checks
    the kernels to the house tolerances.

    Returns
    -------
    problems : list of str
        Empty when the backends agree.
    """
    results = {}
    for backend in BACKENDS:
        fn, outputs = case.build(backend)
        if case.inout:  # compare the updates, which are small next to the state
            before = [out.copy() for out in outputs]
        else:  # a kernel that writes nothing leaves NaN behind
            for out in outputs:
                out[...] = np.nan
        ret = fn()
        after = [out.copy() for out in outputs]
        if case.inout:
            after = [a.astype(np.float64) - b for a, b in zip(after, before,
                                                               strict=True)]
        results[backend] = (ret, after)
    if case.inout:
        atol = 1e-6
    (ret_c, outs_c), (ret_n, outs_n) = results["cython"], results["numpy"]
    problems = []
    if isinstance(ret_n, float) and not np.isclose(ret_c, ret_n, rtol, atol):
        problems.append(f"return value {ret_c!r} != {ret_n!r}")
    for i, (a, b) in enumerate(zip(outs_c, outs_n, strict=True)):
        if not np.allclose(a, b, rtol, atol):
            bad = ~np.isclose(a, b, rtol, atol)
            problems.append(f"output {i}: {int(bad.sum())} of {a.size} differ")
    return problems


# --------------------------------------------------------------------------
# Reporting


def blas_description():
    """Which BLAS libraries are loaded, with their thread counts."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed: BLAS threads not pinned"
    libs = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return "; ".join(
        f"{os.path.basename(os.path.dirname(p.get('filepath', '')))}: "
        f"{p.get('internal_api')} {p.get('version')}, {p.get('num_threads')} threads"
        for p in libs) or "no BLAS loaded"


def machine_description():
    """CPU model, cpu count and Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cpus, Python {platform.python_version()}"


def _us(seconds):
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def ratio_table(times, stats=("min",)):
    """The markdown table of ratios.

    Parameters
    ----------
    times : dict
        ``(case_id, variant) -> {stat: seconds per call}``; cases with no
        cython or numpy time are left out.
    stats : tuple of str
        The statistics to show ratios for; times in µs and the aims use the
        first.

    Returns
    -------
    lines : list of str
    """
    first = stats[0]
    tag = (lambda s: f" ({s})") if len(stats) > 1 else (lambda s: "")
    head = ["kernel", "shape", f"cython µs{tag(first)}", f"numpy µs{tag(first)}"]
    head += [f"speedup{tag(s)}" for s in stats]
    head += [f"x GEMM-only{tag(s)}" for s in stats]
    head += ["aim"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < 2 or i == len(head) - 1 else "---:"
                            for i in range(len(head))) + "|"]
    met, missed = 0, []
    for case in CASES:
        c, n = times.get((case.id, "cython")), times.get((case.id, "numpy"))
        if not c or not n:
            continue
        g = times.get((case.id, GEMM_ONLY))
        speedups = [n[s] / c[s] for s in stats]
        gemm = [c[s] / g[s] if g else None for s in stats]
        row = [case.kernel, case.shape, _us(c[first]), _us(n[first])]
        row += [f"{s:.2f}x" for s in speedups]
        row += ["" if r is None else f"{r:.3f} (GEMM {_us(g[s])} µs)" if s == first
                else f"{r:.3f}" for r, s in zip(gemm, stats, strict=True)]
        if case.aim is None:
            row.append("")
        else:
            ok = case.aim.met(speedups[0], gemm[0])
            row.append(f"{case.aim.label()}: {'met' if ok else 'MISSED'}")
            if ok:
                met += 1
            else:
                missed.append(f"{case.kernel} {case.shape}")
        lines.append("| " + " | ".join(row) + " |")
    total = met + len(missed)
    if total:
        lines.append("")
        lines.append(f"aims met: {met}/{total} (judged on the {first})"
                     + (f"; missed: {', '.join(missed)}" if missed else ""))
    return lines

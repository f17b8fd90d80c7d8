"""Gather kernels: Cython and NumPy twin vs fancy indexing ``X[idx]``, repeated and
permuted indices, layouts, and bad input (indices out of range, wrong outputs).

The Cython kernels run without bounds checks. Bad-input tests therefore put the
arrays inside larger allocations with guard rows around them: a missing check
then reads or writes the guard (which the test sees) instead of crashing the
test process. Indices far out of range are tried in a subprocess."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastnn._kernels import gather as cy
from fastnn.reference import gather as ref

BACKENDS = [cy, ref]
BACKEND_IDS = ["cython", "numpy"]
SHAPES = [(1, 1), (1, 10), (7, 1), (33, 17), (4096, 256), (5, 0)]
SHAPE_IDS = ["1x1", "1row", "1col", "odd", "large", "0col"]
LABEL_DTYPES = [np.int64, np.float32, np.float64]
#: Sentinel for memory that must be neither read into the output nor written.
GUARD = -777


def test_module_interface():
    assert cy.__all__ == ref.__all__ == ["gather_labels", "gather_rows"]


def index_sets(rng, n):
    """Named int64 index arrays into n rows."""
    sets = {
        "identity": np.arange(n),
        "permutation": rng.permutation(n),
        "reversed": np.arange(n)[::-1].copy(),
        "repeats": rng.integers(0, n, size=2 * n + 3),  # longer than X
        "prefix_batch": rng.permutation(n)[: max(1, n // 3)],
        "all_first": np.zeros(5, np.int64),
        "all_last": np.full(3, n - 1),
        "empty": np.zeros(0, np.int64),
    }
    for name, idx in sets.items():
        sets[name] = np.ascontiguousarray(idx, dtype=np.int64)
    return sets


# --------------------------------------------------------------------------
# Both backends vs X[idx]: a copy, so equal bit for bit


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_gather_rows_matches_fancy_indexing(mod, shape, dtype, rng):
    n, d = shape
    X = rng.normal(size=shape).astype(dtype)
    for name, idx in index_sets(rng, n).items():
        out = np.full((idx.size, d), np.nan, dtype)
        mod.gather_rows(X, idx, out)
        assert_array_equal(out, X[idx], err_msg=name)
        assert out.dtype == dtype


@pytest.mark.parametrize("n", [1, 7, 100_000], ids=["1", "7", "large"])
@pytest.mark.parametrize("ydtype", LABEL_DTYPES, ids=["int64", "float32", "float64"])
@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_gather_labels_matches_fancy_indexing(mod, ydtype, n, rng):
    if ydtype == np.int64:
        y = rng.integers(-(2**62), 2**62, size=n)  # beyond float64's exact range
    else:
        y = rng.normal(size=n).astype(ydtype)
    for name, idx in index_sets(rng, n).items():
        out = np.full(idx.size, 123, ydtype)
        mod.gather_labels(y, idx, out)
        assert_array_equal(out, y[idx], err_msg=name)


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_gather_into_the_prefix_of_a_buffer(mod, dtype, rng):
    """The training loop gathers the last, shorter minibatch into buf[:k]; the rows
    after k are left alone."""
    X = rng.normal(size=(10, 4)).astype(dtype)
    y = rng.integers(0, 3, size=10)
    idx = np.array([9, 2, 2], np.int64)
    buf = np.full((5, 4), GUARD, dtype)
    tbuf = np.full(5, GUARD, np.int64)
    mod.gather_rows(X, idx, buf[:3])
    mod.gather_labels(y, idx, tbuf[:3])
    assert_array_equal(buf[:3], X[idx])
    assert_array_equal(buf[3:], GUARD)
    assert_array_equal(tbuf, np.r_[y[idx], GUARD, GUARD])


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_readonly_inputs(mod, dtype, rng):
    X = rng.normal(size=(9, 5)).astype(dtype)
    y = rng.normal(size=9).astype(dtype)
    idx = rng.integers(0, 9, size=12)
    for A in (X, y, idx):
        A.setflags(write=False)
    out, tout = np.empty((12, 5), dtype), np.empty(12, dtype)
    mod.gather_rows(X, idx, out)
    mod.gather_labels(y, idx, tout)
    assert_array_equal(out, X[idx])
    assert_array_equal(tout, y[idx])


def test_kernel_refuses_what_it_would_have_to_copy(dtype, rng):
    """The Cython kernels take C-contiguous X and int64 idx and do not copy them
    (the training loop passes them once per step): anything else is a ValueError
    or TypeError, and the output is not touched."""
    X = rng.normal(size=(6, 4)).astype(dtype)
    idx = np.array([1, 0, 5], np.int64)
    other = np.float64 if dtype == np.float32 else np.float32
    readonly_out = np.full((3, 4), GUARD, dtype)
    readonly_out.setflags(write=False)
    cases = {
        "X fortran": (np.asfortranarray(X), idx, None),
        "X strided": (np.repeat(X, 2, axis=1)[:, ::2], idx, None),
        "X other dtype": (X.astype(other), idx, None),
        "X int": (X.astype(np.int64), idx, None),
        "X 1d": (X.ravel(), idx, None),
        "idx int32": (X, idx.astype(np.int32), None),
        "idx float": (X, idx.astype(np.float64), None),
        "idx strided": (X, np.repeat(idx, 2)[::2], None),
        "idx list": (X, idx.tolist(), None),
        "out readonly": (X, idx, readonly_out),
        "out fortran": (X, idx, np.full((3, 4), GUARD, dtype, order="F")),
        "out other dtype": (X, idx, np.full((3, 4), GUARD, other)),
    }
    for name, (X_c, idx_c, out) in cases.items():
        out = np.full((3, 4), GUARD, dtype) if out is None else out
        with pytest.raises((ValueError, TypeError)):
            cy.gather_rows(X_c, idx_c, out)
        assert_array_equal(out, GUARD, err_msg=name)

    y = rng.integers(0, 5, size=6)
    for name, (y_c, out) in {
        "y int32": (y.astype(np.int32), np.full(3, GUARD, np.int32)),
        "y/out dtypes differ": (y, np.full(3, GUARD, np.float64)),
        "y 2d": (y.reshape(6, 1), np.full((3, 1), GUARD, np.int64)),
        "y strided": (np.repeat(y, 2)[::2], np.full(3, GUARD, np.int64)),
    }.items():
        with pytest.raises((ValueError, TypeError)):
            cy.gather_labels(y_c, idx, out)
        assert_array_equal(out, GUARD, err_msg=name)


# --------------------------------------------------------------------------
# Out-of-range indices and wrong outputs


def _refusal(call, expected):
    """None if ``call()`` raises one of ``expected``, else what happened."""
    try:
        call()
    except expected:
        return None
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        return f"{type(exc).__name__}: {exc}"
    return "returned without error"


def _guarded_rows(values, margin):
    """``values`` (n, d) or (n,) placed between ``margin`` guard rows on each side,
    in one allocation; returns the C-contiguous view. X[-margin] .. X[-1] and
    X[n] .. X[n + margin - 1] are then guard rows."""
    n = values.shape[0]
    buf = np.full((n + 2 * margin,) + values.shape[1:], GUARD, values.dtype)
    view = buf[margin : margin + n]
    view[...] = values
    return view


#: Out-of-range indices into n rows, all within n + 1 rows of X.
BAD_INDICES = {"n": lambda n: n, "n+1": lambda n: n + 1, "-1": lambda n: -1,
               "-n": lambda n: -n, "-n-1": lambda n: -n - 1}


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_out_of_range_index_raises(mod, dtype, rng):
    """idx must lie in [0, n_samples). The kernel must refuse (IndexError or
    ValueError) anything else before writing a single row, never read outside
    X, and never wrap negative indices (NumPy's take does, but a negative row
    number is a caller's bug and the Cython kernel cannot wrap without its
    bounds checks). The nearby guard rows of X hold GUARD, so an unchecked read
    shows in the output."""
    n, d = 6, 3
    problems = []
    for n_rows in (n, 1, 0):  # 0: any index is out of range
        # Every bad index below stays inside the guard rows (|index| <= n + 1).
        margin = n_rows + 2
        X = _guarded_rows(rng.normal(size=(n_rows, d)).astype(dtype), margin)
        y = _guarded_rows(rng.normal(size=n_rows).astype(dtype), margin)
        bads = {f(n_rows) for f in BAD_INDICES.values()}
        if n_rows == 0:
            # NumPy points an empty view at the start of its base, so a negative
            # index would leave the allocation: tried in a subprocess below.
            bads = {b for b in bads if b >= 0}
        for bad in sorted(bads):
            # The bad index comes after a good one: nothing may be half-done.
            idx = np.array([0, bad] if n_rows else [bad], np.int64)
            out = np.full((idx.size, d), np.nan, dtype)
            tout = np.full(idx.size, np.nan, dtype)
            for fn, args, o in (("gather_rows", (X, idx, out), out),
                                ("gather_labels", (y, idx, tout), tout)):
                outcome = _refusal(lambda: getattr(mod, fn)(*args),
                                   (IndexError, ValueError))
                if outcome is not None and (o == GUARD).any():
                    outcome += f" (read the guard: {o.tolist()})"
                elif outcome is None and not np.isnan(o).all():
                    outcome = "raised, but after writing the output"
                if outcome is not None:
                    problems.append(f"{fn} n={n_rows} idx={idx.tolist()}: {outcome}")
    assert not problems, "out-of-range indices not refused:\n" + "\n".join(problems)


FAR_INDEX_SCRIPT = """
import numpy as np
from fastnn._kernels import gather
idx = np.array([{index}], np.int64)
try:
    if "{fn}" == "gather_rows":
        gather.gather_rows(np.zeros((4, 3)), idx, np.zeros((1, 3)))
    else:
        gather.gather_labels(np.zeros(4), idx, np.zeros(1))
except (IndexError, ValueError) as exc:
    print("refused:", type(exc).__name__)
else:
    print("returned without error")
"""


@pytest.mark.parametrize("index", [2**40, -(2**40)], ids=["far", "far_negative"])
@pytest.mark.parametrize("fn", ["gather_rows", "gather_labels"])
def test_far_out_of_range_index_does_not_crash(fn, index):
    """An index far outside X must be refused, not dereferenced: run in a
    subprocess, so an unchecked read (a segfault) fails this test only."""
    script = textwrap.dedent(FAR_INDEX_SCRIPT.format(fn=fn, index=index))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (
        f"{fn}(idx=[{index}]) killed the interpreter (exit code {proc.returncode})"
        f"\n{proc.stderr[-2000:]}"
    )
    assert proc.stdout.startswith("refused:"), proc.stdout + proc.stderr


@pytest.mark.parametrize("mod", BACKENDS, ids=BACKEND_IDS)
def test_wrong_out_shape_raises(mod, dtype, rng):
    """out must have shape (len(idx), n_features) (rows) or (len(idx),) (labels).
    Too small is written past its end (checked against guard memory in the same
    allocation); too large or another row width is silently filled with the
    wrong layout. The twin (np.take) refuses all of these with ValueError."""
    n, d, m = 8, 5, 6
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.normal(size=n).astype(dtype)
    idx = rng.integers(0, n, size=m)
    problems = []

    def flat_guarded(size, shape):
        """A C-contiguous ``shape`` view at the start of a guarded flat buffer."""
        buf = np.full(size, GUARD, dtype)
        view = buf[: int(np.prod(shape))].reshape(shape)
        view[...] = np.nan
        return view, buf

    big = m * (d + 1) + 8
    rows_cases = {
        "fewer rows": flat_guarded(big, (m - 1, d)),
        "more rows": flat_guarded(big, (m + 1, d)),
        "narrower": flat_guarded(big, (m, d - 1)),
        "wider": flat_guarded(big, (m, d + 1)),
        "1-D": flat_guarded(big, (m * d,)),
    }
    for name, (out, buf) in rows_cases.items():
        outcome = _refusal(lambda: mod.gather_rows(X, idx, out),
                           (ValueError, TypeError))
        tail = buf[out.size:]
        if (tail != GUARD).any():
            outcome = f"{outcome or 'raised'}, and wrote past the end of out"
        if outcome is not None:
            problems.append(f"gather_rows out {out.shape} ({name}): {outcome}")

    labels_cases = {
        "shorter": flat_guarded(m + 4, (m - 1,)),
        "longer": flat_guarded(m + 4, (m + 1,)),
        "2-D": flat_guarded(m + 4, (m, 1)),
    }
    for name, (out, buf) in labels_cases.items():
        outcome = _refusal(lambda: mod.gather_labels(y, idx, out),
                           (ValueError, TypeError))
        if (buf[out.size:] != GUARD).any():
            outcome = f"{outcome or 'raised'}, and wrote past the end of out"
        if outcome is not None:
            problems.append(f"gather_labels out {out.shape} ({name}): {outcome}")
    assert not problems, "wrong outputs not refused:\n" + "\n".join(problems)

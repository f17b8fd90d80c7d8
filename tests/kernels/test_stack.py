"""DenseStack, the one-call inference pass behind ``Sequential.predict``: Cython
vs twin, vs the layers' kernels one at a time, and the predict fast path."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from conftest import tolerance

ACT_CHAINS = [["relu", "tanh", "identity"], ["gelu", "sigmoid", "softplus"],
              ["leaky_relu", "elu", "identity"]]


def _stack_layers(acts, dtype, widths=(13, 700, 9, 5), seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out, act in zip(widths, widths[1:], acts):
        W = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype)
        layers.append((W, b, act, 0.1 if act == "leaky_relu" else 1.0))
    return layers


@pytest.mark.parametrize("n", [1, 3, 512, 1300], ids=["1row", "odd", "block", "blocks"])
@pytest.mark.parametrize("acts", ACT_CHAINS, ids=lambda a: "-".join(a))
def test_dense_stack_matches_twin_and_layer_by_layer(acts, n, dtype):
    from fastnn._kernels import stack as cy
    from fastnn.reference import dense
    from fastnn.reference import stack as ref

    layers = _stack_layers(acts, dtype)
    X = np.random.default_rng(1).standard_normal((n, 13)).astype(dtype)
    out_cy = np.full((n, 5), np.nan, dtype)
    out_np = np.full((n, 5), np.nan, dtype)
    assert cy.DenseStack(layers).forward(X, out_cy)
    assert ref.DenseStack(layers).forward(X, out_np)
    H = X
    for W, b, act, alpha in layers:  # the twin's kernels, one layer at a time
        Y = np.empty((n, W.shape[0]), dtype)
        dense.dense_forward(H, W, b, act, alpha, Y)
        H = Y
    np.testing.assert_allclose(out_cy, out_np, **tolerance(dtype, scale=10.0))
    np.testing.assert_allclose(out_np, H, **tolerance(dtype, scale=10.0))


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_dense_stack_declines_what_it_cannot_take(backend):
    from fastnn.ops import get_ops

    stack = get_ops(backend).DenseStack(_stack_layers(ACT_CHAINS[0], np.float32))
    out = np.full((4, 5), 7.0, np.float32)
    X = np.ones((4, 13), np.float32)
    bad = [X.astype(np.float64), X[:, :12], np.asfortranarray(X), X[:0], X.tolist(),
           X[0], np.where(np.arange(13) == 3, np.nan, X), np.where(X > 0, np.inf, X)]
    for Xbad in bad:
        assert stack.forward(Xbad, out) is False
        assert (out == 7.0).all()  # nothing written
    # A non-finite value in a later block of rows is found too (each block is
    # checked just before its GEMMs); what was written is for the caller to drop.
    X = np.ones((1300, 13), np.float32)
    X[1299, 12] = np.inf
    assert stack.forward(X, np.empty((1300, 5), np.float32)) is False


def test_predict_fast_path_equals_generic_path_and_validates():
    model = fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(3)],
                              input_dim=5, seed=0)
    X = np.random.default_rng(0).standard_normal((37, 5)).astype(np.float32)
    fast = model.predict(X)
    generic = model.predict(X, batch_size=8)  # layer by layer
    np.testing.assert_allclose(fast, generic, **tolerance(np.float32, scale=10.0))
    # inputs the stack declines take the validating path: converted or refused
    np.testing.assert_allclose(model.predict(X.astype(np.float64)), fast, rtol=1e-6)
    np.testing.assert_allclose(model.predict(X.tolist()), fast, rtol=1e-6)
    Xnan = X.copy()
    Xnan[3, 2] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN or infinity"):
        model.predict(Xnan)
    with pytest.raises(ValueError, match="expected 5 features"):
        model.predict(X[:, :4])
    with pytest.raises(ValueError, match="reshape a single sample"):
        model.predict(X[0])
    # the stack reads the weights in place: set_weights is seen at once
    weights = model.get_weights()
    model.set_weights([2 * w for w in weights])
    assert not np.allclose(model.predict(X), fast)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict(X), fast)


# -- the packed engine (batches of PACKED_MIN_ROWS rows and more) -------------

#: Widths that put every panel case through the packed kernel: outputs that
#: fill one vector or two, part of one, several panels with a ragged last
#: one, and a single unit; inputs from 1 to 300.
PACKED_WIDTHS = [(64, 32, 10), (1, 1, 1), (300, 17, 40, 3), (7, 100, 8, 33)]
ALL_ACTS = ["relu", "identity", "tanh", "sigmoid", "leaky_relu", "elu", "selu",
            "silu", "gelu", "gelu_tanh", "softplus"]


def _packed_case(widths, dtype, seed):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        act = ALL_ACTS[(seed + i) % len(ALL_ACTS)]
        W = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype)
        layers.append((W, b, act, 0.1 if act in ("leaky_relu", "elu") else 0.0))
    return layers


def _rows_around_threshold():
    from fastnn._kernels.stack import PACKED_MIN_ROWS as m

    return [1, 5, 13, m - 1, m, m + 1, m + 5, 1237]  # tiles whole and ragged, blocks


@pytest.fixture(params=["auto", "packed"])
def engine(request):
    """Batches by the rule, then all through the packed engine."""
    from fastnn._kernels import stack

    before = stack._set_engine(request.param)
    yield request.param
    stack._set_engine(before)


@pytest.mark.parametrize("n", _rows_around_threshold(), ids=lambda n: f"{n}rows")
@pytest.mark.parametrize("widths", PACKED_WIDTHS, ids=lambda w: "-".join(map(str, w)))
def test_packed_engine_matches_twin(widths, n, dtype, engine):
    from fastnn._kernels import stack as cy
    from fastnn.reference import stack as ref

    X = np.random.default_rng(n).standard_normal((n, widths[0])).astype(dtype)
    for seed in range(0, len(ALL_ACTS), 2):  # every activation at every depth
        layers = _packed_case(widths, dtype, seed)
        stack = cy.DenseStack(layers)
        if engine == "packed" and cy.PACKED:
            assert stack.engine(n) == "packed"
        out_cy = np.full((n, widths[-1]), np.nan, dtype)
        out_np = np.full((n, widths[-1]), np.nan, dtype)
        assert stack.forward(X, out_cy)
        assert ref.DenseStack(layers).forward(X, out_np)
        np.testing.assert_allclose(out_cy, out_np, **tolerance(dtype, scale=10.0))


def test_engine_rule_weighs_packing_against_rows():
    from fastnn._kernels import stack as cy

    if not cy.PACKED:
        pytest.skip("no packed engine in this build")
    m = cy.PACKED_MIN_ROWS
    narrow = cy.DenseStack(_packed_case((64, 32, 10), np.float32, 0))
    assert [narrow.engine(n) for n in (1, m - 1, m, 10000)] == [
        "blas", "blas", "packed", "packed"]
    # 784-512-256-10: packing 0.5M weights pays from about 130 rows
    wide = cy.DenseStack(_packed_case((784, 512, 256, 10), np.float32, 0))
    assert [wide.engine(n) for n in (m, 100, 200, 10000)] == [
        "blas", "blas", "packed", "packed"]


@pytest.fixture
def threads():
    """Restores fastnn's thread count after the test."""
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


def test_batch_predict_is_the_same_bits_for_any_thread_count(threads, dtype):
    model = fastnn.Sequential([fastnn.Dense(48, "relu"), fastnn.Dense(20, "tanh"),
                               fastnn.Dense(7)], input_dim=30, seed=0, dtype=dtype)
    X = np.random.default_rng(0).standard_normal((3001, 30)).astype(dtype)
    results = []
    for n in (1, 2, 3, 5):
        fastnn.set_num_threads(n)
        assert fastnn.get_num_threads() == n
        results.append(model.predict(X))
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


@pytest.mark.parametrize("row", [0, 1500, 4999])
def test_batch_predict_finds_a_non_finite_value_in_any_block(threads, row):
    model = fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(3)],
                              input_dim=9, seed=0)
    X = np.ones((5000, 9), np.float32)
    X[row, 4] = np.nan
    fastnn.set_num_threads(2)
    with pytest.raises(ValueError, match="X: contains NaN or infinity"):
        model.predict(X)


def test_set_num_threads_validates(threads):
    for bad in (1.5, True, "2", None):
        with pytest.raises(TypeError, match="n: must be an integer"):
            fastnn.set_num_threads(bad)
    for bad in (0, -1, 257):
        with pytest.raises(ValueError, match="n: must be"):
            fastnn.set_num_threads(bad)
    fastnn.set_num_threads(3)
    assert fastnn.get_num_threads() == 3


FORK_CHILD = """
import os, sys, numpy as np, fastnn
fastnn.set_num_threads(2)
model = fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(4)], input_dim=8,
                          seed=0)
X = np.random.default_rng(0).standard_normal((4000, 8)).astype(np.float32)
before = model.predict(X)  # the pool's threads are running now
pid = os.fork()
if pid == 0:  # the child has no pool threads: its first batch starts its own
    ok = all(np.array_equal(model.predict(X), before) for _ in range(3))
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
assert np.array_equal(model.predict(X), before)
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_batch_predict_works_in_a_forked_child():
    from _child import child_env

    out = subprocess.run([sys.executable, "-c", FORK_CHILD], capture_output=True,
                         text=True, env=child_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_packed_relu_keeps_nan_as_the_blas_engine_does(dtype):
    # Non-finite weights (a diverged model) are not refused: both engines give
    # the NaNs that ReLU(NaN) = NaN propagates, as act_forward does.
    from fastnn._kernels import stack as cy
    from fastnn.reference import stack as ref

    layers = _packed_case((20, 40, 6), dtype, 0)
    layers = [(W.copy(), b, "relu", 0.0) for W, b, _, _ in layers]
    layers[0][0][5, :] = np.nan  # hidden unit 5 is NaN for every row
    layers[0][0][7, 3] = np.inf
    X = np.random.default_rng(2).standard_normal((300, 20)).astype(dtype)
    out_cy = np.empty((300, 6), dtype)
    out_np = np.empty((300, 6), dtype)
    assert cy.DenseStack(layers).forward(X, out_cy)
    assert ref.DenseStack(layers).forward(X, out_np)
    assert np.isnan(out_cy).all() and np.isnan(out_np).all()


def test_batch_predict_while_threads_change_and_stacks_alternate(threads):
    # Stress for the pool: many pool threads on few cores, jobs of two sizes
    # (both big enough for the pool; the large weights are packed by the pool
    # too) from several Python threads, while another thread keeps changing
    # the thread count.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    models = [fastnn.Sequential([fastnn.Dense(200, "relu"), fastnn.Dense(10)],
                                input_dim=300, seed=0),
              fastnn.Sequential([fastnn.Dense(64, "tanh"), fastnn.Dense(3)],
                                input_dim=40, seed=1)]
    inputs = [rng.standard_normal((n, m.input_dim)).astype(np.float32)
              for m, n in zip(models, (700, 2000))]
    expected = [m.predict(X) for m, X in zip(models, inputs)]
    stop = threading.Event()

    def churn():
        k = 0
        while not stop.is_set():
            fastnn.set_num_threads(1 + k % 8)
            k += 1

    def job(i):
        m = i % 2
        return m, models[m].predict(inputs[m])

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(job, range(200)))
    finally:
        stop.set()
        churner.join()
    for m, out in results:
        np.testing.assert_array_equal(out, expected[m])

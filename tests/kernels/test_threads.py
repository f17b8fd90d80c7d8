"""Kernels called from several threads at once equal serial calls."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastnn.ops import get_ops

cy = get_ops("cython")


def _job(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, 40)).astype(np.float32)
    W = rng.standard_normal((30, 40)).astype(np.float32)
    b = rng.standard_normal(30).astype(np.float32)
    y = rng.integers(0, 30, 64)
    Y = np.empty((64, 30), np.float32)
    Z = np.empty((64, 30), np.float32)
    cy.dense_forward(X, W, b, "gelu", 0.0, Y, Z)
    dOut = np.empty_like(Y)
    loss = cy.softmax_cross_entropy_forward_backward(Y, y, dOut)
    dX = np.empty_like(X)
    dW = np.empty_like(W)
    db = np.empty_like(b)
    cy.dense_backward(X, W, Z, Y, dOut, "gelu", 0.0, dX, dW, db)
    p = np.concatenate([W.ravel(), b])
    g = np.concatenate([dW.ravel(), db])
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, 4):
        cy.adam_update(g, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, t, p, m, v, v)
    return loss, dX, p


def test_concurrent_kernels_equal_serial():
    seeds = list(range(16))
    serial = [_job(s) for s in seeds]
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            parallel = list(pool.map(_job, seeds))
        for (l1, dx1, p1), (l2, dx2, p2) in zip(serial, parallel):
            assert l1 == l2
            np.testing.assert_array_equal(dx1, dx2)
            np.testing.assert_array_equal(p1, p2)


def test_concurrent_predict_on_one_model_equals_serial():
    # One model shared by threads: DenseStack.forward's scratch is per call.
    import fastnn

    model = fastnn.Sequential([fastnn.Dense(64, "tanh"), fastnn.Dense(32, "relu"),
                               fastnn.Dense(10)], input_dim=20, seed=0)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((n, 20)).astype(np.float32)
              for n in (1, 7, 600, 1, 33, 1100) * 4]
    serial = [model.predict(X) for X in inputs]
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            parallel = list(pool.map(model.predict, inputs))
        for a, b in zip(serial, parallel):
            np.testing.assert_array_equal(a, b)

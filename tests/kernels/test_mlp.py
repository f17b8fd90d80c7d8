"""The fused step loop (MLPPlan): Cython vs twin, and vs the layer-by-layer loop."""

import numpy as np
import pytest

import fastnn
import fastnn.training
from conftest import tolerance

CASES = [
    ("softmax_cross_entropy", "adam", ["relu", "tanh"]),
    ("hinge", "sgd", ["gelu", "identity"]),
    ("mse", "adamw", ["silu", "elu"]),
    ("binary_cross_entropy", "sgd", ["sigmoid", "leaky_relu"]),
    ("huber", "adam", ["softplus", "selu"]),
    ("mae", "adam", ["gelu_tanh", "relu"]),
]


def _data(loss, dtype, n=101, d=7, k=4):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    if loss in ("softmax_cross_entropy", "hinge"):
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, k)) > 0.5).astype(dtype)
    else:
        y = rng.standard_normal((n, k)).astype(dtype)
    return X.astype(dtype), y


def _optimizer(name):
    if name == "sgd":
        return fastnn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    if name == "adamw":
        return fastnn.AdamW(lr=1e-2, amsgrad=True)
    return fastnn.Adam(lr=1e-2, weight_decay=1e-3)


def _train(loss, opt, acts, dtype, backend, fused, monkeypatch):
    monkeypatch.setattr(fastnn.training, "FUSED", fused)
    X, y = _data(loss, dtype)
    model = fastnn.Sequential([fastnn.Dense(9, acts[0]), fastnn.Dense(6, acts[1]),
                               fastnn.Dense(4)], seed=1, dtype=dtype,
                              backend=backend)
    history = model.fit(X, y, loss=loss, optimizer=_optimizer(opt), epochs=3,
                        batch_size=16, verbose=0, seed=2)
    return model.get_weights(), history.history


@pytest.mark.parametrize("loss, opt, acts", CASES, ids=[c[0] for c in CASES])
def test_fused_kernel_matches_twin_and_layer_loop(loss, opt, acts, dtype,
                                                  monkeypatch):
    fused_cy, hist_cy = _train(loss, opt, acts, dtype, "cython", True, monkeypatch)
    fused_np, hist_np = _train(loss, opt, acts, dtype, "numpy", True, monkeypatch)
    loop_cy, hist_loop = _train(loss, opt, acts, dtype, "cython", False, monkeypatch)
    tol = tolerance(dtype, scale=10.0)
    for a, b, c in zip(fused_cy, fused_np, loop_cy):
        np.testing.assert_allclose(a, b, **tol)
        # Same kernels in the same order: the fused loop is the layer loop.
        np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(hist_cy["loss"], hist_np["loss"], rtol=tol["rtol"])
    assert hist_cy["loss"] == hist_loop["loss"]
    assert hist_cy.get("accuracy") == hist_loop.get("accuracy")


def test_fused_run_stops_on_non_finite_loss():
    X = np.full((40, 3), 1e30, np.float32)
    y = np.zeros(40, np.int64)
    model = fastnn.Sequential([fastnn.Dense(4), fastnn.Dense(2)], input_dim=3,
                              seed=0)
    before = model.get_weights()
    with pytest.raises(fastnn.TrainingDivergedError):
        model.fit(X, y, optimizer=fastnn.SGD(lr=1e30), epochs=2, batch_size=8,
                  verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)

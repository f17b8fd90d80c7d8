"""Transfer learning: reuse a trained model's layers under a new head, frozen,
then fine-tune (the README's recipe, on the shipped digits)."""

import numpy as np
import pytest

import fastnn
from fastnn.datasets import load_digits

linear_model = pytest.importorskip("sklearn.linear_model")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    X, y = X[order], y[order]
    low, high = y < 5, y >= 5
    Xh, yh = X[high], y[high] - 5
    n = len(Xh) // 2
    return (X[low], y[low]), (Xh[:n], yh[:n]), (Xh[n:], yh[n:])


@pytest.fixture(scope="module")
def base(digits):
    (X, y), _, _ = digits
    model = fastnn.Sequential([fastnn.Dense(64, "relu"), fastnn.Dense(5)], seed=0)
    model.fit(X, y, epochs=30, verbose=0, seed=0)
    return model


def test_frozen_layers_under_a_new_head(base, digits):
    _, (Xtr, ytr), (Xte, yte) = digits
    W0, b0 = (base.layers[0].params[k].copy() for k in ("weight", "bias"))
    head = base.layers[-1].params["weight"].copy()

    # l2 = 1/n: the objective of scikit-learn's LogisticRegression(C=1)
    model = fastnn.Sequential(base.layers[:-1] + [fastnn.Dense(5, l2=1 / len(Xtr))],
                              seed=1)
    model.layers[0].trainable = False
    # full batches: the head's problem is convex, and Adam converges on it
    model.fit(Xtr, ytr, epochs=2000, batch_size=len(Xtr), verbose=0, seed=0,
              optimizer=fastnn.Adam(lr=1e-2))

    # the reused layer is a copy: frozen, and the base model is untouched
    assert model.layers[0] is not base.layers[0]
    np.testing.assert_array_equal(model.layers[0].params["weight"], W0)
    np.testing.assert_array_equal(model.layers[0].params["bias"], b0)
    np.testing.assert_array_equal(base.layers[0].params["weight"], W0)
    np.testing.assert_array_equal(base.layers[-1].params["weight"], head)

    # the new head against logistic regression on the same frozen features
    features = fastnn.Sequential(base.layers[:-1])
    reference = linear_model.LogisticRegression(max_iter=5000)
    reference.fit(features.predict(Xtr), ytr)
    ref_acc = reference.score(features.predict(Xte), yte)
    acc = np.mean(model.predict_classes(Xte) == yte)
    assert acc >= ref_acc, (acc, ref_acc)
    # same objective, same optimum: the head is the logistic regression
    np.testing.assert_allclose(model.layers[-1].params["weight"], reference.coef_,
                               atol=0.1)
    assert acc > 0.85

    # unfreeze and fine-tune at a lower rate: the hidden layer now moves
    model.layers[0].trainable = True
    model.fit(Xtr, ytr, epochs=10, verbose=0, seed=0,
              optimizer=fastnn.Adam(lr=3e-4))
    assert not np.array_equal(model.layers[0].params["weight"], W0)
    assert np.mean(model.predict_classes(Xte) == yte) >= acc - 0.02


def test_reused_layers_keep_dtype_width_and_state(tmp_path):
    X = np.random.default_rng(0).standard_normal((64, 6))
    y = np.arange(64) % 3
    base = fastnn.Sequential([fastnn.Dense(8, "tanh"), fastnn.BatchNorm(),
                              fastnn.PReLU(), fastnn.Dense(3)], dtype="float64",
                             seed=0)
    base.fit(X, y, epochs=3, verbose=0)
    model = fastnn.Sequential(base.layers[:-1] + [fastnn.Dense(2)])
    assert model.dtype == np.float64 and model.input_dim == 6
    for old, new in zip(base.layers[:-1], model.layers[:-1]):
        for name, arr in old.get_arrays().items():
            np.testing.assert_array_equal(new.get_arrays()[name], arr)
    assert model.layers[1].num_batches_tracked == base.layers[1].num_batches_tracked
    trunk = fastnn.Sequential(base.layers[:-1])
    np.testing.assert_array_equal(trunk.predict(X), model.layers and
                                  fastnn.Sequential(model.layers[:-1]).predict(X))
    # reused at another input width: refused, naming the layer
    with pytest.raises(ValueError, match=r"layers\[0\]: reuses trained weights "
                       r"for 6 inputs, but gets 5 features"):
        fastnn.Sequential(base.layers[:-1] + [fastnn.Dense(2)], input_dim=5)
    with pytest.raises(ValueError, match=r"layers\[1\]: reuses trained weights "
                       r"for 8 inputs, but gets 4 from the layer before it"):
        fastnn.Sequential([fastnn.Dense(4)] + base.layers[1:], input_dim=6)
    # a layer reused after the first waits for fit to learn the width, and a
    # refused fit keeps its weights for the next try
    model = fastnn.Sequential([fastnn.Dense(8)] + base.layers[1:3] + [
        fastnn.Dense(3)])
    with pytest.raises(ValueError):
        model.fit(X, y + 5, epochs=1, verbose=0)
    assert not model.built
    model.build(6)
    for old, new in zip(base.layers[1:3], model.layers[1:3]):
        for name, arr in old.get_arrays().items():
            np.testing.assert_array_equal(new.get_arrays()[name], arr)

"""The Sequential model: weights, training, evaluation, inference."""

import threading

import numpy as np
import pytest

import fastnn
from fastnn.datasets import load_digits


def _digits_split(seed=0):
    X, y = load_digits()
    X = X / 16.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    test, train = order[:360], order[360:]
    return X[train], y[train], X[test], y[test]


def _small(seed=0, **kw):
    return fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(3)],
                             input_dim=4, seed=seed, **kw)


def test_weights_layout_is_torch_linear():
    model = _small()
    W1, b1, W2, b2 = model.get_weights()
    assert W1.shape == (16, 4) and b1.shape == (16,)
    assert W2.shape == (3, 16) and b2.shape == (3,)
    assert not b1.any() and not b2.any()
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    expected = np.maximum(X @ W1.T + b1, 0) @ W2.T + b2
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-5, atol=1e-6)


def test_set_weights_roundtrip_and_validation():
    model = _small()
    weights = [w + 1 for w in model.get_weights()]
    model.set_weights(weights)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    before = model.get_weights()
    bad = list(weights)
    bad[2] = np.zeros((3, 15))
    with pytest.raises(ValueError, match=r"weights\[2\].*shape"):
        model.set_weights(bad)
    bad = list(weights)
    bad[3] = np.array([0, np.nan, 0])
    with pytest.raises(ValueError, match="NaN"):
        model.set_weights(bad)
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(weights[:3])
    # nothing was half-set
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_digits_default_model_reaches_096():
    Xtr, ytr, Xte, yte = _digits_split()
    model = fastnn.Sequential([fastnn.Dense(64, "relu"), fastnn.Dense(10)], seed=0)
    history = model.fit(Xtr, ytr, epochs=30, batch_size=32, verbose=0, seed=0,
                        validation_split=0.1)
    acc = model.evaluate(Xte, yte)["accuracy"]
    assert acc >= 0.96, acc
    assert set(history.history) >= {"loss", "val_loss", "accuracy", "val_accuracy",
                                     "lr", "time"}
    assert len(history.history["loss"]) == 30
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_same_seed_bit_identical_and_different_seed_differs():
    Xtr, ytr, _, _ = _digits_split()
    Xtr, ytr = Xtr[:400], ytr[:400]

    def run(model_seed, fit_seed):
        model = fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dropout(0.2),
                                   fastnn.Dense(10)], seed=model_seed)
        model.fit(Xtr, ytr, epochs=3, verbose=0, seed=fit_seed)
        return model.get_weights()

    a, b, c = run(1, 2), run(1, 2), run(1, 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_backends_train_to_the_same_weights():
    Xtr, ytr, _, _ = _digits_split()
    Xtr, ytr = Xtr[:300], ytr[:300]
    weights = []
    for backend in ("cython", "numpy"):
        model = fastnn.Sequential(
            [fastnn.Dense(32, "tanh"), fastnn.BatchNorm(), fastnn.Dropout(0.1),
             fastnn.Dense(10)], seed=0, dtype="float64", backend=backend)
        model.fit(Xtr, ytr, epochs=2, verbose=0, seed=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_predict_proba_and_classes():
    Xtr, ytr, Xte, _ = _digits_split()
    model = fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(10)], seed=0)
    model.fit(Xtr[:300], ytr[:300], epochs=2, verbose=0, seed=0)
    proba = model.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    logits = model.predict(Xte)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(proba, expected / expected.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.predict_classes(Xte), logits.argmax(1))


def test_binary_cross_entropy_proba_is_sigmoid():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    model = fastnn.Sequential([fastnn.Dense(8, "tanh"), fastnn.Dense(1)], seed=0)
    model.fit(X, y, loss="binary_cross_entropy", optimizer=fastnn.Adam(lr=1e-2),
              epochs=30, verbose=0, seed=0)
    logits = model.predict(X)
    np.testing.assert_allclose(model.predict_proba(X), 1 / (1 + np.exp(-logits)),
                               rtol=1e-5)
    classes = model.predict_classes(X)
    np.testing.assert_array_equal(classes, (logits[:, 0] > 0).astype(np.int64))
    acc = model.evaluate(X, y)["accuracy"]
    assert acc == pytest.approx(np.mean(classes == y))
    assert acc > 0.9


def test_predict_batches_equal_one_batch():
    model = _small()
    X = np.random.default_rng(0).standard_normal((1000, 4))
    np.testing.assert_array_equal(model.predict(X, batch_size=7),
                                  model.predict(X, batch_size=1000))


def test_concurrent_predict_equals_serial():
    Xtr, ytr, Xte, _ = _digits_split()
    model = fastnn.Sequential([fastnn.Dense(64, "relu"), fastnn.BatchNorm(),
                               fastnn.Dropout(0.3), fastnn.Dense(10)], seed=0)
    model.fit(Xtr[:500], ytr[:500], epochs=2, verbose=0, seed=0)
    serial = model.predict(Xte, batch_size=17)
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(20):
            results[i] = model.predict(Xte, batch_size=17)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, serial)


def test_frozen_layer_is_not_updated():
    Xtr, ytr, _, _ = _digits_split()
    model = fastnn.Sequential([fastnn.Dense(32, "relu", trainable=False),
                               fastnn.Dense(10)], seed=0)
    model.build(64)
    W1 = model.get_weights()[0].copy()
    W2 = model.get_weights()[2].copy()
    model.fit(Xtr[:200], ytr[:200], epochs=2, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], W1)
    assert not np.array_equal(model.get_weights()[2], W2)
    # unfreeze and fine-tune
    model.layers[0].trainable = True
    model.fit(Xtr[:200], ytr[:200], epochs=1, verbose=0)
    assert not np.array_equal(model.get_weights()[0], W1)


def test_evaluate_uses_trained_loss_and_matches_manual():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    y = rng.integers(0, 3, 50)
    model = _small(dtype="float64")
    with pytest.raises(ValueError, match="loss"):
        model.evaluate(X, y)
    model.fit(X, y, epochs=1, verbose=0)
    out = model.predict(X)
    z = out - out.max(1, keepdims=True)
    manual = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(50), y])
    result = model.evaluate(X, y, batch_size=7)
    assert result["loss"] == pytest.approx(manual, rel=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(out.argmax(1) == y))


def test_summary_and_repr():
    model = _small()
    text = model.summary(print_fn=None)
    assert "Dense(16, relu)" in text and "total parameters: 131" in text
    assert "Sequential([Dense(units=16" in repr(model)


def test_regression_with_mse():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    model = fastnn.Sequential([fastnn.Dense(16, "tanh"), fastnn.Dense(1)], seed=0)
    model.fit(X, y, loss="mse", optimizer=fastnn.Adam(lr=1e-2), epochs=60,
              verbose=0, seed=0)
    assert model.evaluate(X, y, metrics=("mse",))["mse"] < 0.05


def test_maxout_and_gaussian_noise_train():
    Xtr, ytr, Xte, yte = _digits_split()
    model = fastnn.Sequential([fastnn.GaussianNoise(0.05), fastnn.Maxout(32, 3),
                               fastnn.Dense(10)], seed=0)
    model.fit(Xtr, ytr, epochs=10, verbose=0, seed=0)
    assert model.evaluate(Xte, yte)["accuracy"] > 0.9


def test_softmax_activation_layer_with_temperature():
    model = fastnn.Sequential([fastnn.Dense(3), fastnn.Activation("softmax",
                                                                  temperature=2.0)],
                              input_dim=4, seed=0, dtype="float64")
    X = np.random.default_rng(0).standard_normal((6, 4))
    W, b = model.get_weights()
    z = (X @ W.T + b) / 2.0
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(model.predict(X), e / e.sum(1, keepdims=True),
                               rtol=1e-12)


def test_batchnorm_skips_a_last_batch_of_one_sample():
    # 33 samples in batches of 32 leave one sample alone, which has no batch
    # variance: the epoch leaves it out (a different one each epoch) instead
    # of writing NaN into running_var.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(33, 4))
    y = np.arange(33) % 2
    model = fastnn.Sequential([fastnn.Dense(8), fastnn.BatchNorm(),
                               fastnn.Activation("relu"), fastnn.Dense(2)])
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2, batch_size=32,
              verbose=0, seed=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.parametrize("n, batch_size, arg", [(1, 8, "X"), (10, 1, "batch_size")])
def test_batchnorm_refuses_single_sample_batches(n, batch_size, arg):
    rng = np.random.default_rng(0)
    model = fastnn.Sequential([fastnn.Dense(8), fastnn.BatchNorm(), fastnn.Dense(2)],
                              input_dim=4, seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match=f"{arg}: BatchNorm needs"):
        model.fit(rng.normal(size=(n, 4)), np.zeros(n, int), loss="cross_entropy",
                  epochs=1, batch_size=batch_size, verbose=0)
    assert model.loss is None  # nothing changed
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)

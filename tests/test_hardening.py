"""Hyperparameters that leave the model's floats are refused at creation or
build, never trained on; raw exceptions from bad input became clear errors."""

import numpy as np
import pytest

import fastnn
from fastnn import diagnostics
from fastnn.initializers import initialize
from fastnn.layers import (
    Activation, BatchNorm, Dense, GaussianNoise, Maxout, PReLU,
)
from fastnn.metrics import MAX_CLASSES, confusion_matrix


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    return X, y


@pytest.mark.parametrize("make, name", [
    (lambda: Dense(3, gain=1e40), "gain"),
    (lambda: Dense(3, init="he_normal", gain=1e39), "gain"),
    (lambda: Maxout(3, init="glorot_uniform"), None),  # control: builds
    (lambda: PReLU(init=1e39), "init"),
    (lambda: PReLU(init=-1e39), "init"),
    (lambda: Activation("softmax", temperature=1e-40), "temperature"),
    (lambda: Activation("leaky_relu", alpha=1e39), "alpha"),
    (lambda: Dense(3, "elu", alpha=1e39), "alpha"),
    (lambda: GaussianNoise(1e39), "std"),
    (lambda: BatchNorm(eps=1e39), "eps"),
])
def test_float32_build_refuses_what_float32_cannot_hold(make, name):
    X, y = _data()
    model = fastnn.Sequential([Dense(4), make(), Dense(3)])
    if name is None:
        model.build(5)
        return
    with pytest.raises(ValueError, match=name):
        model.build(5)
    assert not model.built
    assert all(layer.n_in is None and not layer.params for layer in model.layers)
    with pytest.raises(ValueError, match=name):
        model.fit(X, y, epochs=1, verbose=0)
    assert not model.built
    # The same hyperparameter is within float64's range.
    model64 = fastnn.Sequential([Dense(4), make(), Dense(3)], dtype="float64")
    model64.build(5)
    assert all(np.isfinite(w).all() for w in model64.get_weights())


def test_softmax_temperature_1e_40_predicted_nan_before():
    X, _ = _data()
    with pytest.raises(ValueError, match="temperature"):
        fastnn.Sequential([Dense(3), Activation("softmax", temperature=1e-40)],
                          input_dim=5)
    # The smallest temperature float32 takes still gives probabilities.
    t = 1.0 / float(np.finfo(np.float32).max) * 1.01
    model = fastnn.Sequential([Dense(3), Activation("softmax", temperature=t)],
                              input_dim=5, seed=0)
    P = model.predict(X)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)


def test_initializer_values_beyond_the_dtype_are_refused():
    rng = np.random.default_rng(0)
    for kwargs in ({"value": 1e39}, {"value": -1e39}):
        with pytest.raises(ValueError, match="range"):
            initialize("constant", (2, 3), rng=rng, dtype=np.float32, **kwargs)
        out = initialize("constant", (2, 3), rng=rng, dtype=np.float64, **kwargs)
        np.testing.assert_array_equal(out, kwargs["value"])
    with pytest.raises(ValueError, match="gain"):
        initialize("glorot_uniform", (2, 3), rng=rng, dtype=np.float64,
                   gain=1.7e308)
    with pytest.raises(ValueError, match="gain"):
        initialize("normal", (2, 3), rng=rng, dtype=np.float32, std=1e30,
                   gain=1e30)


def test_a_gain_within_range_draws_as_before():
    # The same numbers as the formula (torch.nn.init's), cast once.
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    out = initialize("he_uniform", (4, 6), rng=rng_a, dtype=np.float32, gain=1e30)
    bound = 1e30 * np.sqrt(3.0 / 6)
    np.testing.assert_array_equal(
        out, rng_b.uniform(-bound, bound, (4, 6)).astype(np.float32))


def test_saved_models_load():
    # What build accepts, save writes and load accepts.
    import os
    import tempfile

    model = fastnn.Sequential([Dense(4, gain=1e30), PReLU(init=1e30),
                               Activation("softmax", temperature=1e-30)],
                              input_dim=5, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.safetensors")
        model.save(path)
        loaded = fastnn.load(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_confusion_matrix_with_a_huge_label_is_a_value_error():
    # OverflowError before (k * k overflowed int64).
    for labels in ([0, 2**40], [0, 2**62], [0, MAX_CLASSES]):
        with pytest.raises(ValueError, match="class indices"):
            confusion_matrix(labels, [0, 1])
        with pytest.raises(ValueError, match="class indices"):
            confusion_matrix([0, 1], labels)
    with pytest.raises(ValueError, match="n_classes"):
        confusion_matrix([0, 1], [0, 1], n_classes=2**40)
    C = confusion_matrix([0, MAX_CLASSES - 1], [0, 1])
    assert C.shape == (MAX_CLASSES, MAX_CLASSES) and C.sum() == 2
    assert C[0, 0] == 1 and C[MAX_CLASSES - 1, 1] == 1


def test_layer_stats_with_1d_X_is_a_value_error():
    # IndexError before, on an unbuilt model.
    model = fastnn.Sequential([Dense(4, "tanh"), Dense(3)])
    with pytest.raises(ValueError, match="X: must be 2-D"):
        diagnostics.layer_stats(model, np.zeros(5), [0])
    assert not model.built


def test_layer_stats_refused_leaves_an_unbuilt_model_unbuilt():
    X, _ = _data()
    model = fastnn.Sequential([Dense(4, "tanh"), Dense(3)])
    with pytest.raises(ValueError, match="y"):
        diagnostics.layer_stats(model, X, np.full(len(X), 5))
    assert not model.built
    assert all(layer.n_in is None for layer in model.layers)
    model.build(7)  # still free to take any width
    rows = diagnostics.layer_stats(model, np.ones((3, 7)), [0, 1, 2])
    assert len(rows) == 2


def test_stratifying_needs_1d_labels():
    # One-hot y was flattened: StratifiedKFold returned indices past the
    # samples, train_val_test_split and cross_validate raised IndexError.
    from fastnn.model_selection import (
        StratifiedKFold, cross_validate, train_val_test_split,
    )

    X = np.zeros((12, 5))
    y = np.eye(3)[np.arange(12) % 3]
    with pytest.raises(ValueError, match="1-D class labels"):
        list(StratifiedKFold(2).split(X, y))
    with pytest.raises(ValueError, match="1-D class labels"):
        train_val_test_split(X, y, stratify=True)
    with pytest.raises(ValueError, match="1-D class labels"):
        cross_validate(lambda: fastnn.Sequential([Dense(3)]), X, y, k=2)
    with pytest.raises(ValueError, match="y: has 11 entries"):
        cross_validate(lambda: fastnn.Sequential([Dense(3)]), X,
                       np.arange(11) % 3, k=2)


def test_a_model_beyond_the_machines_memory_is_refused_before_allocating():
    # 3 * 2**31 * 4 float32 weights (96 GiB, twice with gradients): numpy's
    # lazy allocation succeeded and initialization drove the process into
    # the OOM killer, or raised MemoryError.
    model = fastnn.Sequential([Maxout(3, 2**31)])
    with pytest.raises(ValueError, match="GiB of memory"):
        model.build(4)
    assert not model.built
    with pytest.raises(ValueError, match="GiB of memory"):
        fastnn.Sequential([Dense(2**40)], input_dim=2**20)

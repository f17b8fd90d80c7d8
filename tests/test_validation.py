"""The design's bad-input rules, at every public entry point."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn


def _model(**kw):
    return fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.Dense(3)], input_dim=4,
                             seed=0, **kw)


def _xy(n=20):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, np.nan, 0, 0]]), "NaN"),
    (np.array([[1.0, np.inf, 0, 0]]), "NaN or infinity"),
    (np.zeros((3, 5)), "expected 4 features"),
    (np.zeros(4), "2-D"),
    (np.zeros((0, 4)), "empty"),
    (np.zeros((2, 4, 1)), "2-D"),
    ([["a", "b", "c", "d"]], "real numbers"),
])
def test_bad_X_is_rejected_everywhere(bad, match):
    model = _model()
    _, y = _xy(1)
    for call in (lambda: model.predict(bad), lambda: model.predict_proba(bad),
                 lambda: model.fit(bad, y[: len(bad)] if len(bad) else y, verbose=0),
                 lambda: model.evaluate(bad, y[: len(bad)] if len(bad) else y,
                                        loss="mse" if False else "cross_entropy")):
        with pytest.raises((ValueError, TypeError), match=match):
            call()


@pytest.mark.parametrize("y, match", [
    (np.array([0, 1, 3, 0]), "out of range"),
    (np.array([0, -1, 1, 0]), ">= 0"),
    (np.array([0, 1.5, 1, 0]), "integers"),
    (np.array([0, 1, 1]), "labels but X has 4"),
    (np.array([0, np.nan, 1, 0]), "NaN"),
])
def test_bad_labels(y, match):
    model = _model()
    X, _ = _xy(4)
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.loss is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="nope"), "valid: .*cross_entropy"),
    (dict(optimizer="nope"), "optimizer"),
    (dict(epochs=0), "epochs"),
    (dict(epochs=1.5), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(validation_split=1.0), "validation_split"),
    (dict(validation_split=-0.1), "validation_split"),
    (dict(verbose=5), "verbose"),
    (dict(seed=-1), "seed"),
    (dict(callbacks=[object()]), "callbacks"),
    (dict(lr_schedule="nope"), "schedule"),
    (dict(validation_data=(np.zeros((2, 3)), [0, 1])), "validation_data"),
    (dict(shuffle="yes"), "shuffle"),
])
def test_bad_fit_arguments_change_nothing(kwargs, match):
    model = _model()
    X, y = _xy()
    before = model.get_weights()
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y, verbose=0, **{k: v for k, v in kwargs.items()})
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, match", [
    (lambda: fastnn.Adam(lr=-1), "Invalid learning rate: -1"),
    (lambda: fastnn.Adam(betas=(1.0, 0.9)), "beta"),
    (lambda: fastnn.Adam(eps=-1), "epsilon"),
    (lambda: fastnn.SGD(momentum=-0.1), "momentum"),
    (lambda: fastnn.SGD(nesterov=True), "Nesterov"),
    (lambda: fastnn.RMSProp(alpha=-1), "alpha"),
    (lambda: fastnn.AdaDelta(rho=2), "rho"),
    (lambda: fastnn.AdamW(weight_decay=-1), "weight_decay"),
    (lambda: fastnn.NAdam(momentum_decay=-1), "momentum_decay"),
    (lambda: fastnn.AdaGrad(decay=0), "decay"),
    (lambda: fastnn.Adam(clip_norm=0), "clip_norm"),
    (lambda: fastnn.Dense(0), "units"),
    (lambda: fastnn.Dense(3, activation="nope"), "valid: .*relu"),
    (lambda: fastnn.Dense(3, init="nope"), "init"),
    (lambda: fastnn.Dense(3, l2=-1), "l2"),
    (lambda: fastnn.Dropout(1.0), "p"),
    (lambda: fastnn.GaussianNoise(-1), "std"),
    (lambda: fastnn.BatchNorm(eps=0), "eps"),
    (lambda: fastnn.Maxout(3, 0), "pieces"),
    (lambda: fastnn.Sequential([fastnn.Dense(2)], dtype="float16"), "dtype"),
    (lambda: fastnn.Sequential([fastnn.Dense(2)], backend="gpu"), "backend"),
    (lambda: fastnn.Sequential([]), "layers"),
    (lambda: fastnn.Sequential(["dense"]), r"layers\[0\]"),
])
def test_invalid_hyperparameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_odd_but_valid_input_is_accepted():
    model = _model()
    X, y = _xy(30)
    expected = model.predict(X)
    ro = X.copy()
    ro.setflags(write=False)
    for variant in (np.asfortranarray(X), np.repeat(X, 2, axis=1)[:, ::2], ro,
                    X.tolist(), X.astype(np.float16).astype(np.float64)):
        got = model.predict(variant)
        np.testing.assert_allclose(got, model.predict(np.asarray(variant, float)),
                                   rtol=1e-6)
    np.testing.assert_allclose(model.predict(np.asfortranarray(X)), expected)
    Xi = np.arange(120).reshape(30, 4) % 5
    assert model.predict(Xi).shape == (30, 3)
    model.fit(Xi, y.astype(np.float64), epochs=1, verbose=0)
    model.fit(X.astype(np.float16), list(y), epochs=1, verbose=0)


def test_a_layer_belongs_to_one_model():
    # One unbuilt layer in two models: the second gets a copy, so each model
    # builds its own width and trains its own weights.
    layer = fastnn.Dense(3)
    A = fastnn.Sequential([layer])
    B = fastnn.Sequential([layer])
    assert A.layers[0] is layer and B.layers[0] is not layer
    A.build(5)
    B.build(7)
    X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    y = np.arange(40) % 3
    before = A.predict(X)
    W = A.layers[0].params["weight"]
    np.testing.assert_allclose(before, X @ W.T + A.layers[0].params["bias"],
                               rtol=1e-5, atol=1e-6)
    A.fit(X, y, epochs=2, verbose=0, optimizer=fastnn.SGD(lr=0.1))
    assert not np.allclose(A.predict(X), before)
    assert B.layers[0].params["weight"].shape == (3, 7)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(X=hnp.arrays(
    dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64,
                           np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    elements=None))
def test_fuzz_predict_never_crashes(X):
    model = _model()
    try:
        out = model.predict(X)
    except (ValueError, TypeError):
        return
    assert out.shape == (X.shape[0], 3)
    assert np.isfinite(out).all()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 8), y=st.lists(st.integers(-3, 5), min_size=0, max_size=9),
       batch=st.integers(-1, 10), epochs=st.integers(-1, 2),
       loss=st.sampled_from(["cross_entropy", "hinge", "mse", "bce", "huber", "x"]))
def test_fuzz_fit_never_crashes(n, y, batch, epochs, loss):
    model = _model()
    X = np.random.default_rng(n).standard_normal((n, 4))
    try:
        model.fit(X, np.array(y), loss=loss, batch_size=batch, epochs=epochs,
                  verbose=0)
    except (ValueError, TypeError):
        return
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("layer", [fastnn.Dense, lambda name, alpha: fastnn.Activation(name, alpha=alpha)],
                         ids=["Dense", "Activation"])
def test_activation_parameter_is_checked(layer):
    # The backward kernels take the branch from the sign of the output, which
    # needs leaky_relu's slope >= 0 and elu's alpha > 0.
    make = (lambda name, alpha: layer(4, name, alpha=alpha)) if layer is fastnn.Dense else layer
    with pytest.raises(ValueError, match="alpha: must be >= 0.0, got -0.1"):
        make("leaky_relu", -0.1)
    with pytest.raises(ValueError, match="alpha: must be > 0.0, got 0.0"):
        make("elu", 0.0)
    with pytest.raises(ValueError, match="alpha: relu takes no parameter"):
        make("relu", 0.3)
    with pytest.raises(TypeError, match="alpha: must be a number"):
        make("elu", "1")
    assert make("leaky_relu", 0.0).alpha == 0.0
    assert make("elu", 0.5).alpha == 0.5
    assert make("relu", None).alpha == 0.0

"""The public contract of the training API: signatures, the bad-input rules
(refused calls change nothing), and torch.optim's hyperparameter checks."""

import math

import numpy as np
import pytest

import fastnn
from _torch_helpers import torch_twin


def _xy(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def _state(model, optimizer=None):
    weights = [w.copy() for w in model.get_weights()] if model.built else None
    opt = None
    if optimizer is not None:
        opt = (optimizer.step_count, optimizer.lr,
               None if optimizer.state is None else
               {k: v.copy() for k, v in optimizer.state.items()})
    return model.built, model.input_dim, model.loss, weights, opt


def _assert_same_state(a, b):
    assert a[:3] == b[:3]
    if a[3] is not None:
        for x, y in zip(a[3], b[3]):
            np.testing.assert_array_equal(x, y)
    if a[4] is not None:
        assert a[4][:2] == b[4][:2]
        assert (a[4][2] is None) == (b[4][2] is None)
        for key in a[4][2] or {}:
            np.testing.assert_array_equal(a[4][2][key], b[4][2][key])


# -- a refused first fit leaves the model unbuilt ---------------------------------

@pytest.mark.parametrize("layers, bad, match", [
    (lambda: [fastnn.Dense(8, "relu"), fastnn.Dense(3)],
     dict(y=np.array([0, 1, 5, 0] * 10)), "out of range"),
    (lambda: [fastnn.Dense(8, "relu"), fastnn.Dense(3)],
     dict(validation_split=0.999), "validation_split"),
    (lambda: [fastnn.Dense(8, "relu"), fastnn.Dense(3)],
     dict(validation_data=(np.zeros((2, 4)), [0, 7])), r"validation_data\[1\]"),
    (lambda: [fastnn.Dense(8), fastnn.BatchNorm(), fastnn.Dense(3)],
     dict(batch_size=1), "batch_size"),
])
def test_refused_first_fit_leaves_the_model_unbuilt(layers, bad, match):
    X, y = _xy()
    model = fastnn.Sequential(layers(), seed=1)
    kwargs = dict(bad)
    y_bad = kwargs.pop("y", y)
    with pytest.raises(ValueError, match=match):
        model.fit(X, y_bad, epochs=1, verbose=0, **kwargs)
    assert not model.built and model.input_dim is None and model.loss is None
    assert all(layer.n_in is None and not layer.params for layer in model.layers)
    # Data of another width now fits, exactly as on a model never refused.
    X6, y6 = _xy(d=6)
    model.fit(X6, y6, epochs=2, verbose=0, seed=0)
    fresh = fastnn.Sequential(layers(), seed=1)
    fresh.fit(X6, y6, epochs=2, verbose=0, seed=0)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_refused_fit_keeps_weights_and_optimizer_state():
    X, y = _xy()
    model = fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.Dense(3)],
                              input_dim=4, seed=0)
    opt = fastnn.Adam(lr=0.01)
    model.fit(X, y, optimizer=opt, epochs=2, verbose=0)
    before = _state(model, opt)
    for kwargs in (dict(y=y[:-1]), dict(X=X[:, :3]), dict(callbacks="x"),
                   dict(validation_data=(X, y[:-1])), dict(epochs=0),
                   dict(validation_split=0.999), dict(y=y + 3)):
        kwargs = dict(kwargs)
        with pytest.raises((ValueError, TypeError)):
            model.fit(kwargs.pop("X", X), kwargs.pop("y", y), optimizer=opt,
                      verbose=0, **kwargs)
        _assert_same_state(before, _state(model, opt))


def test_callbacks_must_be_a_list():
    X, y = _xy()
    model = fastnn.Sequential([fastnn.Dense(3)], input_dim=4, seed=0)
    with pytest.raises(TypeError, match="callbacks: must be a list"):
        model.fit(X, y, verbose=0, callbacks=fastnn.EarlyStopping())
    history = model.fit(X, y, epochs=1, verbose=0,
                        callbacks=(fastnn.TerminateOnNaN(),))
    assert len(history.history["loss"]) == 1


def test_metrics_of_a_wrong_type_name_the_argument():
    X, y = _xy()
    model = fastnn.Sequential([fastnn.Dense(3)], input_dim=4, seed=0)
    with pytest.raises(TypeError, match="metrics"):
        model.evaluate(X, y, loss="cross_entropy", metrics=5)


# -- set_weights --------------------------------------------------------------------

def test_set_weights_checks_values_in_the_model_dtype():
    model = fastnn.Sequential([fastnn.Dense(3), fastnn.Dense(2)], input_dim=4,
                              seed=0)
    before = model.get_weights()
    # 1e39 is finite in float64 but beyond float32's largest value (3.4e38).
    too_big = [w.astype(np.float64) for w in before]
    too_big[2] = too_big[2].copy()
    too_big[2][0, 0] = 1e39
    with pytest.raises(ValueError, match=r"weights\[2\]: contains NaN or infinity"):
        model.set_weights(too_big)
    flags = list(before)
    flags[0] = before[0] > 0
    with pytest.raises(TypeError, match=r"weights\[0\]"):
        model.set_weights(flags)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # float64, integer and list input within range is converted.
    converted = [w.astype(np.float64) for w in before]
    converted[1] = np.arange(3)
    converted[3] = [0.5, -0.25]
    model.set_weights(converted)
    got = model.get_weights()
    assert all(w.dtype == np.float32 for w in got)
    np.testing.assert_array_equal(got[1], [0, 1, 2])
    np.testing.assert_array_equal(got[3], [0.5, -0.25])


# -- signatures ---------------------------------------------------------------------

def test_dense_positional_arguments_follow_the_contract():
    # Dense(units, activation=None, init="auto", l1=0, l2=0, trainable=True)
    layer = fastnn.Dense(4, "relu", "he_normal", 0.01, 0.02, False)
    assert (layer.units, layer.activation.name, layer.init) == (4, "relu", "he_normal")
    assert (layer.l1, layer.l2, layer.trainable) == (0.01, 0.02, False)
    assert layer.gain is None
    with pytest.raises(TypeError):
        fastnn.Dense(4, "relu", "auto", 0.0, 0.0, True, 2.0)
    assert fastnn.Dense(4, "leaky_relu", gain=2.0, alpha=0.2).alpha == 0.2


def test_predict_uses_the_one_call_stack_after_an_unbuilt_predict():
    X, y = _xy()
    model = fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.Dense(3)], seed=0)
    with pytest.raises(ValueError, match="not built"):
        model.predict(X)
    model.fit(X, y, epochs=1, verbose=0)
    assert model._dense_stack() is not None
    np.testing.assert_allclose(model.predict(X), model.predict(X, batch_size=7),
                               rtol=1e-5, atol=1e-6)


# -- optimizer hyperparameters: torch.optim's checks and messages --------------------

NAN = float("nan")
TORCH_REFUSES = [
    ("SGD", "SGD", dict(lr=-1)),
    ("SGD", "SGD", dict(momentum=-0.5)),
    ("SGD", "SGD", dict(weight_decay=-1)),
    ("AdaGrad", "Adagrad", dict(lr_decay=NAN)),
    ("AdaGrad", "Adagrad", dict(initial_accumulator_value=-1)),
    ("AdaGrad", "Adagrad", dict(eps=-1)),
    ("RMSProp", "RMSprop", dict(alpha=NAN)),
    ("RMSProp", "RMSprop", dict(momentum=NAN)),
    ("AdaDelta", "Adadelta", dict(rho=NAN)),
    ("Adam", "Adam", dict(betas=(NAN, 0.999))),
    ("Adam", "Adam", dict(betas=(0.9, 1.0))),
    ("AdamW", "AdamW", dict(eps=-1e-8)),
    ("NAdam", "NAdam", dict(momentum_decay=NAN)),
    ("NAdam", "NAdam", dict(betas=(-0.1, 0.999))),
]


@pytest.mark.parametrize("ours, theirs, kwargs", TORCH_REFUSES,
                         ids=[f"{c[0]}-{next(iter(c[2]))}" for c in TORCH_REFUSES])
def test_invalid_hyperparameters_get_torchs_message(ours, theirs, kwargs):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as expected:
        getattr(torch.optim, theirs)([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    with pytest.raises(ValueError) as got:
        getattr(fastnn, ours)(**kwargs)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("make", [
    lambda: fastnn.SGD(momentum=NAN), lambda: fastnn.SGD(momentum=math.inf),
    lambda: fastnn.RMSProp(alpha=math.inf), lambda: fastnn.AdaGrad(lr_decay=math.inf),
    lambda: fastnn.NAdam(momentum_decay=math.inf),
])
def test_non_finite_hyperparameters_are_refused(make):
    with pytest.raises(ValueError, match="Invalid .* value: (nan|inf)"):
        make()


def test_numpy_scalars_and_arrays_are_valid_hyperparameters():
    sgd = fastnn.SGD(lr=np.int64(1), momentum=np.float32(0.5))
    assert (sgd.lr, sgd.momentum) == (1.0, 0.5)
    assert fastnn.RMSProp(alpha=np.float32(0.5)).alpha == 0.5
    assert fastnn.AdaDelta(rho=np.float32(0.5)).rho == 0.5
    assert fastnn.Adam(betas=np.array([0.5, 0.75])).betas == (0.5, 0.75)
    with pytest.raises(TypeError, match="learning rate"):
        fastnn.Adam(lr="0.1")


def test_adagrad_initial_accumulator_value_matches_torch():
    torch = pytest.importorskip("torch")
    X, y = _xy(24, 5)
    model = fastnn.Sequential([fastnn.Dense(7, "tanh"), fastnn.Dense(3)],
                              input_dim=5, dtype="float64", seed=3)
    net = torch_twin(model)
    opt = torch.optim.Adagrad(net.parameters(), lr=0.1, initial_accumulator_value=0.3)
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(X)),
                                          torch.from_numpy(y)).backward()
        opt.step()
    ours = fastnn.AdaGrad(lr=0.1, initial_accumulator_value=0.3)
    model.fit(X, y, optimizer=ours, epochs=4, batch_size=24, shuffle=False,
              verbose=0)
    for a, p in zip(model.get_weights(), net.parameters()):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-10, atol=1e-12)


# -- callbacks and schedules check their arguments up front --------------------------

@pytest.mark.parametrize("make, exc", [
    (lambda: fastnn.EarlyStopping(monitor=5), TypeError),
    (lambda: fastnn.EarlyStopping(monitor=""), ValueError),
    (lambda: fastnn.ModelCheckpoint("m.safetensors", monitor=None), TypeError),
    (lambda: fastnn.ReduceOnPlateau(monitor=["val_loss"]), TypeError),
])
def test_monitor_must_be_a_name(make, exc):
    with pytest.raises(exc, match="monitor"):
        make()


@pytest.mark.parametrize("path, exc", [(None, TypeError), (5, TypeError),
                                       ("", ValueError)])
def test_checkpoint_path_is_checked(path, exc):
    with pytest.raises(exc, match="path"):
        fastnn.ModelCheckpoint(path)


def test_monitor_error_comes_before_training():
    X, y = _xy()
    model = fastnn.Sequential([fastnn.Dense(3)], input_dim=4, seed=0)
    before = model.get_weights()
    with pytest.raises(TypeError, match="monitor"):
        model.fit(X, y, verbose=0,
                  lr_schedule=fastnn.ReduceOnPlateau(monitor=0))
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_optimizer_repr_shows_only_its_arguments():
    X, y = _xy()
    opt = fastnn.NAdam(lr=0.01)
    fastnn.Sequential([fastnn.Dense(3)], input_dim=4, seed=0).fit(
        X, y, optimizer=opt, epochs=1, verbose=0)
    assert repr(opt) == ("NAdam(lr=0.01, clip_norm=None, betas=(0.9, 0.999), "
                         "eps=1e-08, weight_decay=0.0, momentum_decay=0.004)")

"""Hypothesis over the public Python API with adversarial values.

Not collected by the ordinary run (the name does not start with ``test_``):
``tests/test_fuzz_api.py`` runs it in a subprocess, so that a crash of the
interpreter fails that test instead of ending the run. Run it by hand with
``FASTNN_FUZZ_EXAMPLES=500 python -m pytest tests/fuzz_api_cases.py``.

Every call must succeed or raise ValueError or TypeError (``fit`` may also
raise TrainingDivergedError). A refused call must leave the model's weights
and an optimizer's state as they were; a successful ``fit`` leaves finite
weights. Outcomes are tallied into the file named by ``FASTNN_FUZZ_REPORT``.
"""

import atexit
import collections
import inspect
import json
import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import metrics, model_selection
from fastnn.losses import NAMES as LOSS_NAMES
from fastnn.losses import get_loss
from fastnn.optimizers import OPTIMIZERS

EXAMPLES = int(os.environ.get("FASTNN_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("FASTNN_FUZZ_RANDOM") != "1",
                suppress_health_check=list(HealthCheck))
REFUSED = (ValueError, TypeError)
DIVERGED = (*REFUSED, fastnn.TrainingDivergedError)

TALLY = collections.Counter()


@atexit.register
def _write_report():
    path = os.environ.get("FASTNN_FUZZ_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(dict(TALLY), f)


def attempt(label, fn, *args, allowed=REFUSED, **kwargs):
    """Call ``fn``; return (True, result) or (False, the allowed exception).
    Any other exception propagates and fails the example."""
    try:
        result = fn(*args, **kwargs)
    except allowed as exc:
        TALLY[f"{label}: {type(exc).__name__}"] += 1
        return False, exc
    TALLY[f"{label}: ok"] += 1
    return True, result


# -- adversarial values ----------------------------------------------------

class Opaque:
    """An object no API expects."""


SPECIAL = [0, -1, 1, 2, 3, 0.5, -0.5, 1e-300, 5e-324, 1e300, -1e300, 1e39, -1e39,
           1e-40, 2**31, 2**63, -2**63, 10**30, float("nan"), float("inf"),
           float("-inf"), np.float32(np.nan), np.float16(65504), np.int64(2),
           np.uint8(255), np.bool_(True), True, False, None, "", "adam", "relu",
           "x", [], [1, 2], (0.9, 0.999), (1.5, 0.5), {}, Opaque()]

SCALARS = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-2**70, 2**70),
    st.text(max_size=4),
)

DTYPES = ["float32", "float64", "float16", "int64", "int8", "uint8", "bool",
          "object", "complex64", "U3"]


@st.composite
def weird_arrays(draw, shape=None):
    """Arrays of every dtype, odd shapes and layouts, with NaN, inf, huge."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if shape is None or draw(st.booleans()):
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                      max_side=6))
    if dtype.kind == "O":
        elements = st.one_of(st.floats(allow_nan=True), st.none(),
                             st.text(max_size=2))
        arr = np.empty(shape, object)
        flat = arr.reshape(-1)
        for i in range(flat.size):
            flat[i] = draw(elements)
    else:
        elements = None
        if dtype.kind == "f":
            elements = st.floats(width=8 * dtype.itemsize, allow_nan=True,
                                 allow_infinity=True)
        arr = draw(hnp.arrays(dtype, shape, elements=elements))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "readonly"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
    return arr


@st.composite
def near_valid_X(draw, n=12, d=5):
    """Mostly a usable (n, d) X, sometimes spoiled in one way."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n, d))
    how = draw(st.sampled_from(["ok", "ok", "dtype", "weird", "value", "scale",
                                "layout"]))
    if how == "dtype":
        X = X.astype(draw(st.sampled_from(["float16", "float32", "int64", "bool",
                                           "object", "uint8"])))
    elif how == "weird":
        X = draw(weird_arrays((n, d)))
    elif how == "value":
        X[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e300, 1e39, -1e39]))
    elif how == "scale":
        X = X * draw(st.sampled_from([1e-300, 1e30, 1e38, 1e150, 1e300]))
    elif how == "layout":
        X = np.asfortranarray(X) if draw(st.booleans()) else np.repeat(
            X, 2, axis=1)[:, ::2]
        X.setflags(write=False)
    return X


@st.composite
def near_valid_y(draw, n=12, k=3):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.integers(0, k, n)
    how = draw(st.sampled_from(["ok", "ok", "float", "weird", "value", "short",
                                "2d"]))
    if how == "float":
        y = y.astype(draw(st.sampled_from(["float16", "float32", "float64"])))
    elif how == "weird":
        y = draw(weird_arrays((n,)))
    elif how == "value":
        y = y.astype(np.float64)
        y[draw(st.integers(0, n - 1))] = draw(st.sampled_from(
            [-1, k, 10**12, 0.5, np.nan, np.inf, 2**63, -2**63]))
    elif how == "short":
        y = y[:draw(st.integers(0, n - 1))]
    elif how == "2d":
        y = y[:, None] if draw(st.booleans()) else np.eye(k)[y]
    return y


def maybe(strategy, default):
    """The default value most of the time, else an adversarial one."""
    return st.one_of(st.just(default), st.just(default), strategy)


@st.composite
def _kwargs_for(draw, cls, required):
    """Constructor arguments: the defaults (or ``required``), with one or two
    of them replaced by adversarial values."""
    params = [p for p in inspect.signature(cls).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    kwargs = {}
    for p in params:
        default = required.get(p.name, p.default)
        kwargs[p.name] = 1 if default is inspect.Parameter.empty else default
    if params:
        spoiled = draw(st.sets(st.sampled_from([p.name for p in params]),
                               max_size=2))
        for name in sorted(spoiled):
            kwargs[name] = draw(SCALARS)
    return kwargs


def _data(n=12, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def _model(dtype="float32", built=True):
    model = fastnn.Sequential([fastnn.Dense(4, "relu"), fastnn.Dense(3)],
                              dtype=dtype, seed=0)
    if built:
        model.build(5)
    return model


def _snapshot(model):
    return model.get_weights() if model.built else None


def _assert_unchanged(model, before, was_built):
    assert model.built == was_built, "a refused call changed whether it is built"
    if was_built:
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)


def _fit_checked(model, X, y, label="fit", optimizer=None, **kwargs):
    """fit, with the invariants of a refusal and of a success."""
    was_built = model.built
    before = _snapshot(model)
    opt_state = None
    if isinstance(optimizer, fastnn.optimizers.Optimizer):
        opt_state = (optimizer.step_count, {k: v.copy() for k, v in
                                            (optimizer.state or {}).items()})
    if optimizer is not None:
        kwargs["optimizer"] = optimizer
    kwargs.setdefault("verbose", 0)
    ok, out = attempt(label, model.fit, X, y, allowed=DIVERGED, **kwargs)
    if ok or isinstance(out, fastnn.TrainingDivergedError):
        assert all(np.isfinite(w).all() for w in model.get_weights())
    else:
        _assert_unchanged(model, before, was_built)
        if opt_state is not None:
            assert optimizer.step_count == opt_state[0]
            state = optimizer.state or {}
            assert set(state) == set(opt_state[1])
            for k, v in state.items():
                np.testing.assert_array_equal(v, opt_state[1][k])
    return ok


# -- the public entry points -------------------------------------------------

LAYERS = {
    "Dense": (fastnn.Dense, {"units": 3}),
    "Activation": (fastnn.Activation, {"name": "tanh"}),
    "Dropout": (fastnn.Dropout, {}),
    "GaussianNoise": (fastnn.GaussianNoise, {}),
    "BatchNorm": (fastnn.BatchNorm, {}),
    "PReLU": (fastnn.PReLU, {}),
    "Maxout": (fastnn.Maxout, {"units": 3}),
}
ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "leaky_relu", "selu", "gelu",
               "softmax", "identity", "prelu", "silu", "softplus"]


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(LAYERS)),
       dtype=st.sampled_from(["float32", "float64"]))
def test_layer_constructors_then_train(data, name, dtype):
    cls, required = LAYERS[name]
    kwargs = data.draw(_kwargs_for(cls, required))
    if name in ("Dense", "Activation") and data.draw(st.booleans()):
        key = "activation" if name == "Dense" else "name"
        kwargs[key] = data.draw(st.sampled_from(ACTIVATIONS))
    ok, layer = attempt(f"{name}()", cls, **kwargs)
    if not ok:
        return
    size = 1
    for key in ("units", "pieces"):
        if isinstance(kwargs.get(key), int):
            size *= kwargs[key]
    if size > 256:
        return  # a valid but large layer: test_huge_layers_are_refused
    model = fastnn.Sequential([fastnn.Dense(4), layer, fastnn.Dense(3)],
                              dtype=dtype, seed=0)
    X, y = _data()
    if _fit_checked(model, X, y, f"fit with {name}", epochs=2, batch_size=4):
        ok, out = attempt("predict", model.predict, X)
        assert ok and out.shape == (len(X), 3)


@FUZZ
@given(units=st.integers(1, 2**62), pieces=st.integers(1, 2**62),
       n_in=st.integers(1, 2**40))
def test_layers_beyond_memory_are_refused(units, pieces, n_in):
    # Parameters beyond the machine's memory (2**40 of them: 8 TiB with their
    # gradients) are refused before allocation; before, the allocation
    # succeeded lazily and the OOM killer ended the process.
    for layer, size in ((fastnn.Dense(units), units * n_in),
                        (fastnn.Maxout(units, pieces), units * pieces * n_in)):
        if size < 2**40:
            continue
        model = fastnn.Sequential([layer])
        ok, _ = attempt("build beyond memory", model.build, n_in)
        assert not ok and not model.built


@FUZZ
@given(layers=st.one_of(
           st.just("dense"),
           st.lists(st.one_of(st.sampled_from(SPECIAL[:6]),
                              st.builds(lambda: fastnn.Dense(3))), max_size=3),
           SCALARS),
       input_dim=maybe(SCALARS, None), dtype=maybe(SCALARS, "float32"),
       seed=maybe(SCALARS, None), backend=maybe(SCALARS, "cython"))
def test_sequential_construction(layers, input_dim, dtype, seed, backend):
    if layers == "dense":
        layers = [fastnn.Dense(3)]
    if isinstance(input_dim, int) and input_dim > 10**4:
        return  # valid, and big: allocates input_dim * 3 weights
    ok, model = attempt("Sequential()", fastnn.Sequential, layers,
                        input_dim=input_dim, dtype=dtype, seed=seed, backend=backend)
    if ok and model.built:
        X = np.ones((2, model.input_dim))
        ok, out = attempt("predict", model.predict, X)
        assert ok and np.isfinite(out).all()


def _optimizers():
    return st.one_of(
        st.sampled_from(sorted(OPTIMIZERS) + ["ADAM", "adamx", "", None, 3,
                                              Opaque()]),
        st.builds(lambda name, lr: OPTIMIZERS[name](lr=lr),
                  st.sampled_from(sorted(OPTIMIZERS)),
                  st.sampled_from([1e-3, 0.1, 10.0, 1e10, 0.0])),
    )


@FUZZ
@given(X=near_valid_X(), y=near_valid_y(),
       loss=maybe(st.one_of(st.sampled_from(LOSS_NAMES), SCALARS),
                  "softmax_cross_entropy"),
       optimizer=maybe(_optimizers(), "adam"),
       epochs=st.sampled_from([1, 2, 0, -1, 1.5, "2", None, True, np.int64(2),
                               float("nan")]),
       batch_size=maybe(SCALARS, 4), shuffle=maybe(SCALARS, True),
       validation_split=maybe(SCALARS, 0.0), verbose=maybe(SCALARS, 0),
       seed=maybe(SCALARS, None), built=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]))
def test_fit_arguments(X, y, loss, optimizer, epochs, batch_size, shuffle,
                       validation_split, verbose, seed, built, dtype):
    if verbose not in (0, False, None):
        verbose = 0 if isinstance(verbose, int) and 0 < verbose <= 2 else verbose
    model = _model(dtype, built)
    _fit_checked(model, X, y, "fit", optimizer=optimizer, loss=loss,
                 epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                 validation_split=validation_split, verbose=verbose, seed=seed)


@FUZZ
@given(X=near_valid_X(), y=near_valid_y(), Xv=near_valid_X(n=5),
       yv=near_valid_y(n=5), shape=st.sampled_from(["pair", "list", "triple",
                                                    "scalar", "none-pair"]))
def test_fit_validation_data(X, y, Xv, yv, shape):
    validation_data = {"pair": (Xv, yv), "list": [Xv, yv], "triple": (Xv, yv, yv),
                       "scalar": 3, "none-pair": (None, None)}[shape]
    _fit_checked(_model(), X, y, "fit(validation_data)", epochs=1,
                 validation_data=validation_data)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(OPTIMIZERS)))
def test_optimizer_constructors_then_train(data, name):
    cls = OPTIMIZERS[name]
    ok, opt = attempt(f"{name}()", cls, **data.draw(_kwargs_for(cls, {})))
    if not ok:
        return
    X, y = _data()
    model = _model()
    _fit_checked(model, X, y, f"fit with {name}", optimizer=opt, epochs=2,
                 batch_size=4)
    # A second model is refused; the optimizer's state is kept.
    _fit_checked(_model(), X, y, f"refit {name}", optimizer=opt, epochs=1)


SCHEDULES = {
    "StepDecay": (fastnn.StepDecay, {"step_size": 1}),
    "ExponentialDecay": (fastnn.ExponentialDecay, {"gamma": 0.5}),
    "CosineAnnealing": (fastnn.CosineAnnealing, {"T_max": 2}),
    "Warmup": (fastnn.Warmup, {"epochs": 1}),
    "ReduceOnPlateau": (fastnn.ReduceOnPlateau, {}),
}
CALLBACKS = {
    "EarlyStopping": (fastnn.EarlyStopping, {}),
    "TerminateOnNaN": (fastnn.TerminateOnNaN, {}),
    "ModelCheckpoint": (fastnn.ModelCheckpoint, {"path": "PATH"}),
}


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(SCHEDULES)),
       epochs=st.sampled_from([1, 3]), lr=st.sampled_from([1e-3, 1e-300, 1e300]))
def test_schedules_then_train(data, name, epochs, lr):
    cls, required = SCHEDULES[name]
    kwargs = data.draw(_kwargs_for(cls, required))
    if name == "Warmup" and data.draw(st.booleans()):
        kwargs["schedule"] = data.draw(st.sampled_from(
            [fastnn.ExponentialDecay(1e200), fastnn.ReduceOnPlateau("nope"),
             fastnn.StepDecay(1, 0.5)]))
    ok, schedule = attempt(f"{name}()", cls, **kwargs)
    if not ok:
        return
    X, y = _data()
    _fit_checked(_model(), X, y, f"fit with {name}", epochs=epochs,
                 optimizer=fastnn.SGD(lr=lr), lr_schedule=schedule,
                 validation_split=data.draw(st.sampled_from([0.0, 0.25])))


def _inside(tmp, path):
    """A str path turned into a file name inside ``tmp`` (so that the fuzz
    never writes elsewhere); other values are left to be refused."""
    if path == "PATH":
        return os.path.join(tmp, "m{epoch}.safetensors")
    if isinstance(path, str) and path:
        return os.path.join(tmp, "m_" + "".join(
            c if c.isalnum() or c in "{}:._-" else "_" for c in path))
    return path


@FUZZ
@given(data=st.data(), names=st.lists(st.sampled_from(sorted(CALLBACKS)),
                                      min_size=1, max_size=3),
       extra=st.sampled_from([None, "junk", Opaque()]))
def test_callbacks_then_train(data, names, extra):
    callbacks = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            cls, required = CALLBACKS[name]
            kwargs = data.draw(_kwargs_for(cls, required))
            if "path" in kwargs:
                kwargs["path"] = _inside(tmp, kwargs["path"])
            ok, cb = attempt(f"{name}()", cls, **kwargs)
            if ok:
                callbacks.append(cb)
        if extra is not None:
            callbacks.append(extra)
        X, y = _data()
        _fit_checked(_model(), X, y, "fit with callbacks", epochs=2,
                     callbacks=data.draw(st.sampled_from(
                         [callbacks, tuple(callbacks), callbacks[:1]])),
                     validation_split=data.draw(st.sampled_from([0.0, 0.25])))


@FUZZ
@given(X=near_valid_X(), y=near_valid_y(), batch_size=maybe(SCALARS, None),
       loss=maybe(st.one_of(st.sampled_from(LOSS_NAMES), SCALARS), None),
       metrics_=maybe(st.one_of(st.sampled_from(["accuracy", "mse", "mae",
                                                 ("accuracy", "mse")]), SCALARS),
                      ("accuracy",)),
       trained=st.booleans())
def test_inference(X, y, batch_size, loss, metrics_, trained):
    model = _model()
    if trained:
        model.fit(*_data(), epochs=1, verbose=0)
    before = model.get_weights()
    for method in (model.predict, model.predict_proba, model.predict_classes):
        ok, out = attempt(method.__name__, method, X, batch_size=batch_size)
        if ok:
            assert len(out) == len(X)
    attempt("evaluate", model.evaluate, X, y, loss=loss, metrics=metrics_,
            batch_size=batch_size)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    unbuilt = _model(built=False)
    attempt("predict unbuilt", unbuilt.predict, X)
    assert not unbuilt.built


@FUZZ
@given(data=st.data(), how=st.sampled_from(["ok", "array", "count", "type",
                                            "one", "scalar"]))
def test_get_set_weights(data, how):
    model = _model()
    weights = model.get_weights()
    if how == "array":
        i = data.draw(st.integers(0, len(weights) - 1))
        weights[i] = data.draw(st.one_of(weird_arrays(weights[i].shape),
                                         weird_arrays()))
    elif how == "count":
        weights = weights[:data.draw(st.integers(0, len(weights)))] + (
            [weights[0]] if data.draw(st.booleans()) else [])
    elif how == "type":
        weights = data.draw(SCALARS)
    elif how == "one":
        i = data.draw(st.integers(0, len(weights) - 1))
        weights[i] = data.draw(SCALARS)
    elif how == "scalar":
        weights = tuple(w * data.draw(st.sampled_from([1e39, 1e300, -1.0, 0.0]))
                        for w in weights)
    before = model.get_weights()
    ok, _ = attempt("set_weights", model.set_weights, weights)
    if ok:
        assert all(np.isfinite(w).all() for w in model.get_weights())
    else:
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
    attempt("set_weights unbuilt", _model(built=False).set_weights, weights)


LABELS = st.one_of(near_valid_y(), weird_arrays(),
                   st.lists(st.one_of(st.integers(-2**70, 2**70), st.floats()),
                            max_size=5), SCALARS)


@FUZZ
@given(y_true=LABELS, y_pred=LABELS, n_classes=maybe(SCALARS, None),
       scalar=SCALARS, n=SCALARS, delta=maybe(SCALARS, 0.05))
def test_metrics(y_true, y_pred, n_classes, scalar, n, delta):
    attempt("accuracy", metrics.accuracy, y_true, y_pred)
    ok, C = attempt("confusion_matrix", metrics.confusion_matrix, y_true, y_pred,
                    n_classes)
    if ok:
        assert C.sum() == len(np.asarray(y_true))
    attempt("precision_recall_f1", metrics.precision_recall_f1, y_true, y_pred,
            n_classes)
    attempt("hoeffding_t", metrics.hoeffding_t, n, delta)
    attempt("hoeffding_interval", metrics.hoeffding_interval, scalar, n, delta)
    attempt("hoeffding_n", metrics.hoeffding_n, scalar, delta)


@FUZZ
@given(X=st.one_of(near_valid_X(n=12), weird_arrays()), y=LABELS,
       val_size=maybe(SCALARS, 0.25), test_size=maybe(SCALARS, 0.25),
       stratify=maybe(SCALARS, False), seed=maybe(SCALARS, 0),
       k=st.sampled_from([2, 3, 1, 0, 13, 2.0, "2", None]),
       n_jobs=st.sampled_from([1, 2, 0, -1, None]),
       fit_kwargs=st.sampled_from([None, {"epochs": 1}, {"epochs": 0}, [],
                                   {"optimizer": fastnn.Adam()}, {"bogus": 1},
                                   {"callbacks": [fastnn.EarlyStopping("loss")]}]),
       metric=st.sampled_from(["accuracy", "loss", "nope", None]))
def test_model_selection(X, y, val_size, test_size, stratify, seed, k, n_jobs,
                         fit_kwargs, metric):
    attempt("train_val_test_split", model_selection.train_val_test_split, X, y,
            val_size=val_size, test_size=test_size, stratify=stratify, seed=seed)
    for splitter in (model_selection.KFold, model_selection.StratifiedKFold):
        ok, s = attempt(splitter.__name__, splitter, k, True, seed)
        if ok:
            attempt(f"{splitter.__name__}.split",
                    lambda s=s: [len(t) for t, _ in s.split(X, y)])
    attempt("cross_validate", model_selection.cross_validate,
            lambda: fastnn.Sequential([fastnn.Dense(3)], seed=0), X, y, k=k,
            fit_kwargs=fit_kwargs, n_jobs=n_jobs, seed=seed, metric=metric,
            allowed=DIVERGED)


@FUZZ
@given(name=st.one_of(st.sampled_from(LOSS_NAMES), SCALARS),
       y=st.one_of(near_valid_y(), near_valid_X(n=12, d=3)))
def test_losses(name, y):
    ok, spec = attempt("get_loss", get_loss, name)
    if not ok:
        return
    model = _model()
    attempt(f"evaluate {spec.name}", model.evaluate, _data()[0], y, loss=name)
    _fit_checked(model, _data()[0], y, f"fit {spec.name}", loss=name, epochs=1)

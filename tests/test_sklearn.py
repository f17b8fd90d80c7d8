"""fastnn.sklearn against scikit-learn itself: the same numbers, its
estimator checks, and what fastnn adds."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits, make_classification, make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


def _binary():
    return make_classification(240, 10, random_state=0)


def _multilabel():
    return make_multilabel_classification(200, 12, n_classes=4, random_state=0)


def _regression(k=1):
    X, y = make_regression(240, 8, n_targets=k, noise=5, random_state=0)
    return X, y / 100


DATA = {"multiclass": _digits, "binary": _binary, "multilabel": _multilabel,
        "regression": _regression, "multi-output": lambda: _regression(3)}


def _pair(kind):
    if kind in ("regression", "multi-output"):
        return sk.MLPRegressor, MLPRegressor
    return sk.MLPClassifier, MLPClassifier


def _fit_both(kind, **params):
    X, y = DATA[kind]()
    theirs, ours = _pair(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = theirs(**params).fit(X, y)
        b = ours(**params, dtype="float64").fit(X, y)
    return a, b, X


def _assert_same_model(a, b, rtol=1e-6):
    assert b.n_iter_ == a.n_iter_ and b.t_ == a.t_
    for name in ("coefs_", "intercepts_"):
        for x, z in zip(getattr(a, name), getattr(b, name)):
            np.testing.assert_allclose(z, x, rtol=rtol, atol=1e-9)
    if a.loss_curve_ is not None:
        np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=rtol)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(b, name) == getattr(a, name), name


@pytest.mark.parametrize("kind", list(DATA))
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_the_same_numbers_as_scikit_learn(kind, solver, shuffle):
    # 20 iterations, alpha > 0: the same coefs_, intercepts_ and loss_curve_.
    # With shuffle=True too: the batch order comes from the same RandomState.
    a, b, X = _fit_both(kind, hidden_layer_sizes=(16, 8), solver=solver,
                        alpha=1e-3, max_iter=20, random_state=0, shuffle=shuffle,
                        learning_rate_init=0.01, batch_size=32)
    _assert_same_model(a, b)
    np.testing.assert_allclose(b.best_loss_, a.best_loss_, rtol=1e-6)
    np.testing.assert_array_equal(b.predict(X), a.predict(X)) if kind not in (
        "regression", "multi-output") else np.testing.assert_allclose(
        b.predict(X), a.predict(X), rtol=1e-6, atol=1e-9)
    if kind in ("multiclass", "binary", "multilabel"):
        np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X),
                                   rtol=1e-6, atol=1e-12)
        np.testing.assert_array_equal(b.classes_, a.classes_)


@pytest.mark.parametrize("params", [
    dict(solver="sgd", momentum=0.5, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate="invscaling", power_t=0.3,
         learning_rate_init=0.05),
    dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2,
         learning_rate_init=0.05),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2),
    dict(solver="adam", activation="tanh", beta_1=0.8, beta_2=0.99,
         epsilon=1e-6, batch_size="auto"),
    dict(solver="sgd", activation="logistic", tol=1e-1, n_iter_no_change=3),
    dict(solver="adam", activation="identity", alpha=0.5),
])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_the_same_schedules_and_stopping_rules(params, kind):
    params = dict(dict(hidden_layer_sizes=(12,), alpha=1e-3, max_iter=30,
                       random_state=1, learning_rate_init=0.01, batch_size=50),
                  **params)
    a, b, _ = _fit_both(kind, **params)
    _assert_same_model(a, b)
    if params.get("early_stopping"):
        np.testing.assert_allclose(b.validation_scores_, a.validation_scores_,
                                   rtol=1e-6)
        assert b.best_validation_score_ == pytest.approx(a.best_validation_score_,
                                                         rel=1e-6)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_sample_weight_gives_scikit_learns_numbers(kind):
    X, y = DATA[kind]()
    w = np.random.default_rng(0).random(len(y)) * 2
    theirs, ours = _pair(kind)
    params = dict(hidden_layer_sizes=(10,), max_iter=15, random_state=0,
                  learning_rate_init=0.01, alpha=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = theirs(**params).fit(X, y, sample_weight=w)
        b = ours(**params, dtype="float64").fit(X, y, sample_weight=w)
    _assert_same_model(a, b)


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_partial_fit_and_warm_start_follow_scikit_learn(kind):
    X, y = DATA[kind]()
    theirs, ours = _pair(kind)
    params = dict(hidden_layer_sizes=(10,), random_state=0, learning_rate_init=0.01)
    a, b = theirs(**params), ours(**params, dtype="float64")
    extra = {"classes": np.unique(y)} if kind == "multiclass" else {}
    for start in range(0, len(y), 100):
        a.partial_fit(X[start:start + 100], y[start:start + 100], **extra)
        b.partial_fit(X[start:start + 100], y[start:start + 100], **extra)
    _assert_same_model(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.set_params(warm_start=True, max_iter=5).fit(X, y)
        b.set_params(warm_start=True, max_iter=5).fit(X, y)
    _assert_same_model(a, b)


def test_lbfgs_trains_like_scikit_learns():
    # L-BFGS-B over fastnn's loss and gradient: not bit for bit (the line
    # searches see other roundings) but to the same loss and accuracy.
    X, y = _digits()
    a, b, _ = _fit_both("multiclass", hidden_layer_sizes=(16,), solver="lbfgs",
                        max_iter=60, random_state=0, alpha=1e-3)
    assert b.loss_ == pytest.approx(a.loss_, rel=0.05)
    assert b.score(X, y) == pytest.approx(a.score(X, y), abs=0.03)
    assert not hasattr(b, "loss_curve_") and not hasattr(a, "loss_curve_")
    with pytest.raises(AttributeError, match="lbfgs is not stochastic"):
        MLPRegressor(solver="lbfgs").partial_fit(*_regression())


def _expected_float32_failures(estimator):
    # fastnn's default dtype is float32: these checks compare two fits or two
    # predictions to 1e-7 relative, under float32's own rounding (1.2e-7);
    # with dtype="float64" (below) both pass for both estimators.
    if estimator.dtype != "float32":
        return {}
    if isinstance(estimator, MLPClassifier):
        reason = "float32 rounding: weighted and repeated fits agree to 1.2e-7"
        return {"check_sample_weight_equivalence_on_dense_data": reason,
                "check_sample_weight_equivalence_on_sparse_data": reason}
    return {"check_methods_subset_invariance":
            "float32 rounding: a GEMM over a subset of rows rounds differently"}


@parametrize_with_checks(
    [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
     MLPClassifier(max_iter=100, dtype="float64"),
     MLPRegressor(max_iter=100, dtype="float64")],
    expected_failed_checks=_expected_float32_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_sparse_input_trains_the_dense_model():
    from scipy import sparse

    X, y = _digits()
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                  dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**params).fit(sparse.csr_matrix(X), y)
        b = MLPClassifier(**params).fit(X, y)
    for x, z in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(x, z)
    np.testing.assert_array_equal(a.predict_proba(sparse.csc_matrix(X)),
                                  b.predict_proba(X))


def test_pickle_clone_and_params():
    X, y = _digits()
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                        dropout=0.1, batch_norm=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "coefs_")
    assert est.set_params(alpha=0.1).alpha == 0.1


def test_string_labels_and_log_proba():
    X, y = _digits()
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six",
                       "seven", "eight", "nine"])[y]
    params = dict(hidden_layer_sizes=(16,), max_iter=30, random_state=0,
                  learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(**params, dtype="float64").fit(X, labels)
        theirs = sk.MLPClassifier(**params).fit(X, labels)
    np.testing.assert_array_equal(est.classes_, theirs.classes_)
    np.testing.assert_array_equal(est.predict(X), theirs.predict(X))
    assert est.score(X, labels) > 0.9
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)),
                               est.predict_proba(X), rtol=1e-6)


@pytest.mark.parametrize("params, check", [
    (dict(dropout=0.2),
     lambda m: sum(type(la).__name__ == "Dropout" for la in m.layers) == 2),
    (dict(batch_norm=True),
     lambda m: m.layers[1].num_batches_tracked == 30 * 2
     and np.abs(m.layers[1].state["running_mean"]).sum() > 0),
    (dict(activation="gelu"), lambda m: m.layers[0].activation.name == "gelu"),
    (dict(solver="nadam"), lambda m: True),
    (dict(solver=fastnn.RMSProp(lr=1e-2)), lambda m: True),
    (dict(learning_rate=fastnn.CosineAnnealing(T_max=30)), lambda m: True),
])
def test_what_fastnn_adds(params, check):
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(32, 32), max_iter=30,
                            random_state=0, learning_rate_init=0.01,
                            **params).fit(X[:300], y[:300])
    assert est.score(X[300:], y[300:]) > 0.85, params
    assert check(est._model)
    assert est.coefs_[0].dtype == np.float32


def test_the_solver_and_schedule_are_fastnns():
    X, y = _digits()
    opt = fastnn.NAdam(lr=0.01)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, solver=opt,
                        learning_rate=fastnn.StepDecay(step_size=2, gamma=0.5),
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    # a copy of the instance trains (the estimator's parameter is untouched),
    # at the schedule's rate: 0.01, 0.01, 0.005, 0.005
    assert opt.step_count == 0 and est._fastnn_optimizer.step_count == 4 * 2
    assert est._fastnn_optimizer.lr == pytest.approx(0.005)


def test_class_weight_is_sample_weight():
    X, y = _binary()
    w = np.where(y == 1, 3.0, 1.0)
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                  dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(class_weight={0: 1.0, 1: 3.0}, **params).fit(X, y)
        b = MLPClassifier(**params).fit(X, y, sample_weight=w)
    for x, z in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(x, z)


@pytest.mark.parametrize("params, match", [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(solver="newton"), "solver"),
    (dict(activation="swish2"), "activation"),
    (dict(alpha=-1.0), "alpha"),
    (dict(dropout=1.0), "dropout"),
    (dict(dtype="int32"), "dtype"),
    (dict(solver="lbfgs", dropout=0.2), "dropout"),
    (dict(learning_rate="sometimes"), "learning_rate"),
])
def test_bad_parameters_are_refused_at_fit(params, match):
    X, y = _binary()
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)

"""Scale-out on a real Dask cluster (two worker processes on loopback, started
here): searches and cross-validation under joblib's dask backend give the
serial results, and streamed partial_fit over a dask array's blocks gives
the weights of partial_fit over the same blocks in order."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import joblib  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV, RandomizedSearchCV, cross_val_score,
)

import fastnn  # noqa: E402
from fastnn.distributed import partial_fit_blocks  # noqa: E402
from fastnn.model_selection import cross_validate  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn()


def _on_cluster(fn):
    with joblib.parallel_config(backend="dask"):
        return _quiet(fn)


def _search(kind):
    est = MLPClassifier(max_iter=15, random_state=0, learning_rate_init=0.01)
    if kind == "grid":
        return GridSearchCV(est, {"alpha": [1e-4, 1e-1],
                                  "hidden_layer_sizes": [(8,), (24,)]}, cv=3)
    return RandomizedSearchCV(est, {"alpha": [1e-4, 1e-3, 1e-2, 1e-1],
                                    "batch_size": [16, 64]}, n_iter=4, cv=3,
                              random_state=0)


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_searches_on_the_cluster_give_the_serial_result(client, kind):
    X, y = _data()
    serial = _quiet(lambda: _search(kind).fit(X, y))
    with distributed.get_task_stream(client) as stream:
        remote = _on_cluster(lambda: _search(kind).fit(X, y))
    assert remote.best_params_ == serial.best_params_
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    # the fits ran as tasks on the cluster's workers, on both of them
    assert len({task["worker"] for task in stream.data}) == 2


def test_cross_val_score_on_the_cluster(client):
    X, y = _data()
    est = MLPRegressor(hidden_layer_sizes=(8,), max_iter=10, random_state=0,
                       dtype="float64")
    target = y.astype(float)
    serial = _quiet(lambda: cross_val_score(est, X, target, cv=4))
    remote = _on_cluster(lambda: cross_val_score(est, X, target, cv=4))
    np.testing.assert_array_equal(remote, serial)


def test_fastnn_cross_validate_on_the_cluster(client):
    X, y = _data()
    X = X.astype(np.float32)

    def build():
        return fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(10)],
                                 seed=0)

    kwargs = {"epochs": 3, "optimizer": fastnn.Adam(lr=0.01)}
    serial = cross_validate(build, X, y, k=3, fit_kwargs=kwargs, n_jobs=1)
    with joblib.parallel_config(backend="dask"):
        remote = cross_validate(build, X, y, k=3, fit_kwargs=kwargs)
    np.testing.assert_array_equal(remote["scores"], serial["scores"])
    np.testing.assert_array_equal(remote["loss"], serial["loss"])


def _blocks(seed, n=600, d=8, rows=150):
    """A dask array whose blocks are made on the workers, and its labels."""
    X = da.random.RandomState(seed).normal(size=(n, d), chunks=(rows, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


@pytest.mark.parametrize("estimator", [
    MLPClassifier(hidden_layer_sizes=(10,), random_state=0, dtype="float64",
                  learning_rate_init=0.01),
    MLPRegressor(hidden_layer_sizes=(10,), random_state=0, dtype="float64",
                 solver="sgd", learning_rate_init=0.01),
])
def test_streamed_partial_fit_matches_partial_fit_in_order(client, estimator,
                                                           monkeypatch):
    from sklearn.base import clone, is_classifier

    X, y = _blocks(0)
    if not is_classifier(estimator):
        y = y.astype(np.float64)
    classes = np.arange(3) if is_classifier(estimator) else None
    # The oracle: the same blocks, computed here one at a time, in order.
    local = clone(estimator)
    for _ in range(2):
        for i in range(X.numblocks[0]):
            xb, yb = X.blocks[i].compute(), y.blocks[i].compute()
            extra = {"classes": classes} if classes is not None else {}
            local.partial_fit(xb, yb, **extra)
    # The stream: nothing of X or y may come back to the client.
    def no_gather(self, *args, **kwargs):
        raise AssertionError("a block was gathered on the client")

    monkeypatch.setattr(da.Array, "compute", no_gather)
    monkeypatch.setattr(da.Array, "__array__", no_gather)
    streamed = partial_fit_blocks(clone(estimator), X, y, classes=classes,
                                  epochs=2, client=client)
    monkeypatch.undo()
    assert streamed.n_iter_ == local.n_iter_ and streamed.t_ == local.t_
    for a, b in zip(streamed.coefs_ + streamed.intercepts_,
                    local.coefs_ + local.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(streamed.loss_curve_, local.loss_curve_)


def test_streamed_partial_fit_refuses_what_it_cannot_stream():
    X, y = _blocks(1)
    with pytest.raises(TypeError, match="X: must be a 2-D dask"):
        partial_fit_blocks(MLPClassifier(), np.zeros((4, 2)), y)
    with pytest.raises(ValueError, match="y: has"):
        partial_fit_blocks(MLPClassifier(), X, y[:10], classes=[0, 1, 2])
    with pytest.raises(TypeError, match="partial_fit"):
        partial_fit_blocks(fastnn.Sequential([fastnn.Dense(2)]), X, y)

"""cross_validate gives every fold fresh optimizer, schedule and callback
instances: no state passes between folds, for any n_jobs."""

import numpy as np
import pytest

import fastnn
from fastnn.model_selection import StratifiedKFold, cross_validate
from fastnn.schedules import ReduceOnPlateau


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


def _build():
    return fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(3)], seed=1)


CASES = {
    "adam": lambda: {"optimizer": fastnn.Adam(lr=1e-2)},
    "sgd": lambda: {"optimizer": fastnn.SGD(lr=0.05, momentum=0.9)},
    "rmsprop": lambda: {"optimizer": fastnn.RMSProp(lr=1e-3)},
    "callbacks": lambda: {
        "callbacks": [fastnn.EarlyStopping("loss", patience=1)],
        "lr_schedule": ReduceOnPlateau("loss", patience=0, factor=0.5)},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fold_equals_a_standalone_fit_with_fresh_instances(case):
    # The oracle: every fold trained alone, with instances made for it.
    X, y = _data()
    fit_kwargs = dict(CASES[case](), epochs=6)
    result = cross_validate(_build, X, y, k=4, fit_kwargs=fit_kwargs, n_jobs=1)
    expected = []
    for train, test in StratifiedKFold(4, True, 0).split(X, y):
        model = _build()
        model.fit(X[train], y[train], verbose=0, seed=0,
                  **dict(CASES[case](), epochs=6))
        expected.append(model.evaluate(X[test], y[test])["loss"])
    np.testing.assert_array_equal(result["loss"], expected)
    # The instances passed in are left as they were.
    opt = fit_kwargs.get("optimizer")
    if opt is not None:
        assert opt.state is None and opt.step_count == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_scores_do_not_depend_on_n_jobs_or_the_run(case):
    X, y = _data()
    runs = [cross_validate(_build, X, y, k=4, n_jobs=n_jobs,
                           fit_kwargs=dict(CASES[case](), epochs=6))["loss"]
            for n_jobs in (1, 2, 2, 4)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other, runs[0])


def test_an_uncopyable_callback_is_refused_before_any_fold():
    import threading

    class Locked(fastnn.Callback):
        def __init__(self):
            self.lock = threading.Lock()

    built = []

    def build():
        built.append(1)
        return _build()

    X, y = _data()
    with pytest.raises(TypeError, match="callbacks.*cannot be copied"):
        cross_validate(build, X, y, k=2, fit_kwargs={"callbacks": [Locked()]})
    assert not built
    with pytest.raises(TypeError, match="fit_kwargs"):
        cross_validate(build, X, y, k=2, fit_kwargs=[("epochs", 1)])

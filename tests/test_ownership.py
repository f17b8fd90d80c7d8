"""An optimizer belongs to one model; one model trains in one fit at a time.

The cases that crashed the interpreter (SIGSEGV, SIGABRT, double free) run
in a subprocess, so that a crash fails the test instead of ending the run.
"""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn
from fastnn.optimizers import OPTIMIZERS


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    return X, y


def _model(hidden=64, **kw):
    return fastnn.Sequential([fastnn.Dense(hidden, "relu"), fastnn.Dense(3)],
                             seed=0, **kw)


def run_python(code, timeout=120):
    """Run ``PRELUDE`` then ``code`` in a fresh interpreter; return the
    CompletedProcess."""
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


PRELUDE = """
import threading
import numpy as np
import fastnn
from fastnn import Sequential as S, Dense as D
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 5)).astype(np.float32)
y = rng.integers(0, 3, 200)
"""


@pytest.mark.parametrize("make", ["fastnn.Adam()", "fastnn.SGD(momentum=0.9)"])
def test_one_optimizer_on_a_float32_then_a_float64_model_is_refused(make):
    # Crashed the interpreter (free(): invalid size) or diverged before.
    proc = run_python(f"""
        o = {make}
        S([D(64, "relu"), D(3)]).fit(X, y, optimizer=o, verbose=0, epochs=2)
        m = S([D(64, "relu"), D(3)], dtype="float64")
        try:
            m.fit(X, y, optimizer=o, verbose=0, epochs=2)
        except ValueError as exc:
            assert "new instance" in str(exc) and "name string" in str(exc), exc
            assert not m.built
            print("refused")
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "refused"


def test_two_threads_two_models_one_clipping_adam_do_not_crash():
    # A double free in 5 runs out of 5 before: now the second model to bind
    # the optimizer is refused, and the first trains to the end.
    proc = run_python("""
        for run in range(3):
            o = fastnn.Adam(clip_norm=1.0)
            models = [S([D(64, "relu"), D(3)]), S([D(16, "relu"), D(3)])]
            outcome = []
            def fit(m):
                try:
                    m.fit(X, y, optimizer=o, verbose=0, epochs=20)
                    outcome.append("ok")
                except ValueError as exc:
                    assert "another model" in str(exc), exc
                    outcome.append("refused")
            threads = [threading.Thread(target=fit, args=(m,)) for m in models]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(outcome) == ["ok", "refused"], outcome
        print("done")
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "done"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_second_model_is_refused_and_first_keeps_its_state(name):
    X, y = _data()
    opt = OPTIMIZERS[name]()
    first = _model()
    first.fit(X, y, optimizer=opt, epochs=2, verbose=0, seed=0)
    steps = opt.step_count
    state = {k: v.copy() for k, v in opt.state.items()}
    second = _model()
    with pytest.raises(ValueError, match="pass a new instance"):
        second.fit(X, y, optimizer=opt, epochs=1, verbose=0)
    assert not second.built
    assert opt.step_count == steps
    for k, v in opt.state.items():
        np.testing.assert_array_equal(v, state[k])
    # The owner goes on: its second fit continues the state of its first.
    first.fit(X, y, optimizer=opt, epochs=1, verbose=0, seed=0)
    assert opt.step_count == steps + 7


def test_consecutive_fits_equal_one_longer_fit():
    # The state carries over between fits of the owner: Adam's moments and
    # step count make 2 + 1 epochs the same run as 3 epochs.
    X, y = _data()
    a, b = _model(), _model()
    oa, ob = fastnn.Adam(lr=1e-2), fastnn.Adam(lr=1e-2)
    a.fit(X, y, optimizer=oa, epochs=2, verbose=0, shuffle=False)
    a.fit(X, y, optimizer=oa, epochs=1, verbose=0, shuffle=False)
    b.fit(X, y, optimizer=ob, epochs=3, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_refused_fit_leaves_an_unbound_optimizer_free_and_unchanged():
    X, y = _data()
    opt = fastnn.Adam()
    model = _model()
    # Refused late: after the targets and the buffers were checked.
    with pytest.raises(ValueError, match="monitor"):
        model.fit(X, y, optimizer=opt, epochs=1, verbose=0,
                  callbacks=[fastnn.EarlyStopping("val_nothing")])
    assert opt.state is None and opt.step_count == 0
    other = _model(hidden=8)
    other.fit(X, y, optimizer=opt, epochs=1, verbose=0)  # still free
    assert opt.state["exp_avg"].shape == (other.count_params(),)


def test_refused_fit_does_not_zero_the_owners_moments():
    X, y = _data()
    opt = fastnn.SGD(lr=0.1, momentum=0.9)
    model = _model()
    model.fit(X, y, optimizer=opt, epochs=1, verbose=0)
    buf = opt.state["momentum_buffer"].copy()
    assert np.abs(buf).sum() > 0
    with pytest.raises(ValueError, match="y"):
        model.fit(X, np.full(200, 7), optimizer=opt, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        model.fit(X, y, optimizer=opt, epochs=3, verbose=0,
                  lr_schedule=fastnn.schedules.ExponentialDecay(1e200))
    np.testing.assert_array_equal(opt.state["momentum_buffer"], buf)
    assert opt.step_count == 7


def test_fresh_copy_is_unbound_and_stateless():
    X, y = _data()
    opt = fastnn.Adam(lr=3e-3, betas=(0.8, 0.9), amsgrad=True, clip_norm=2.0)
    _model().fit(X, y, optimizer=opt, epochs=1, verbose=0)
    copy = opt.fresh()
    assert copy.get_config() == opt.get_config()
    assert copy.state is None and copy.step_count == 0
    _model().fit(X, y, optimizer=copy, epochs=1, verbose=0)
    assert opt.step_count == 7  # the original is untouched


def test_amsgrad_switched_on_between_fits_relays_out_the_state():
    # Crashed the interpreter before (the fused step loop read a third
    # state array that did not exist).
    proc = run_python("""
        o = fastnn.Adam()
        m = S([D(64, "relu"), D(3)])
        m.fit(X, y, optimizer=o, verbose=0, epochs=2)
        o.amsgrad = True
        m.fit(X, y, optimizer=o, verbose=0, epochs=2)
        assert sorted(o.state) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        o.amsgrad = False
        m.fit(X, y, optimizer=o, verbose=0, epochs=2)
        assert sorted(o.state) == ["exp_avg", "exp_avg_sq"]
        assert np.isfinite(m.get_weights()[0]).all()
        print("done")
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "done"


def test_amsgrad_maximum_starts_from_the_second_moment():
    # The documented re-layout: the moments are kept, and AMSGrad's running
    # maximum starts as a copy of the current second moment.
    X, y = _data()
    model = _model()
    opt = fastnn.Adam()
    model.fit(X, y, optimizer=opt, epochs=1, verbose=0)
    v = opt.state["exp_avg_sq"].copy()
    m = opt.state["exp_avg"]
    opt.amsgrad = True
    opt.bind(model, model._params)
    assert opt.state["exp_avg"] is m
    np.testing.assert_array_equal(opt.state["max_exp_avg_sq"], v)
    assert opt.state["max_exp_avg_sq"] is not opt.state["exp_avg_sq"]


def test_a_layout_change_between_fits_trains_with_the_new_layout():
    # amsgrad switched on between two fits: the second fit's steps keep the
    # running maximum, which then never falls below the second moment.
    X, y = _data()
    model = _model()
    opt = fastnn.Adam(lr=1e-2)
    model.fit(X, y, optimizer=opt, epochs=1, verbose=0)
    opt.amsgrad = True
    model.fit(X, y, optimizer=opt, epochs=2, verbose=0)
    vmax, v = opt.state["max_exp_avg_sq"], opt.state["exp_avg_sq"]
    assert (vmax >= v).all() and (vmax > v).any()
    assert np.isfinite(model._params).all()


def test_fitting_one_model_from_two_threads_raises_busy():
    X, y = _data()
    model = _model()
    inside, release = threading.Event(), threading.Event()

    class Hold(fastnn.Callback):
        def on_epoch_end(self, model, epoch, logs):
            inside.set()
            release.wait(30)

    errors = []

    def first():
        try:
            model.fit(X, y, epochs=1, verbose=0, callbacks=[Hold()])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(30)
    try:
        weights = model.get_weights()
        with pytest.raises(RuntimeError, match="busy"):
            model.fit(X, y, epochs=1, verbose=0)
        for a, b in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(a, b)
    finally:
        release.set()
        thread.join()
    assert not errors
    model.fit(X, y, epochs=1, verbose=0)  # free again


def test_predict_during_a_refused_first_fit_sees_an_unbuilt_model():
    # While fit checks its inputs on a model it built for them, another
    # thread's predict used to see it built, then half-unbuilt (KeyError).
    X, y = _data()
    model = _model()
    seen = []

    class Probe(fastnn.Callback):
        def check_logs(self, keys):
            seen.append(model.built)
            with pytest.raises(ValueError, match="not built"):
                model.predict(X)
            raise ValueError("refused for the test")

    with pytest.raises(ValueError, match="refused for the test"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[Probe()])
    assert seen == [False]
    assert not model.built


def test_predict_racing_refused_fits_raises_only_not_built():
    X, y = _data()
    model = _model()
    bad_y = np.full(len(y), 9)
    stop = threading.Event()
    errors = []

    def predict_loop():
        while not stop.is_set():
            try:
                model.predict(X)
            except ValueError as exc:
                if "not built" not in str(exc):
                    errors.append(exc)
            except Exception as exc:
                errors.append(exc)

    thread = threading.Thread(target=predict_loop)
    thread.start()
    try:
        for _ in range(100):
            with pytest.raises(ValueError, match="y"):
                model.fit(X, bad_y, epochs=1, verbose=0)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]


@pytest.mark.parametrize("make, change", [
    ("fastnn.SGD(lr=0.01)", "o.momentum = 0.9"),
    ("fastnn.SGD(lr=0.01, momentum=0.9)", "o.momentum = 0.0"),
    ("fastnn.RMSProp()", "o.centered = True; o.momentum = 0.5"),
    ("fastnn.RMSProp(centered=True, momentum=0.5)", "o.centered = False"),
    ("fastnn.AdamW(amsgrad=True)", "o.amsgrad = False"),
    ("fastnn.AdaGrad()", "o.initial_accumulator_value = 0.1"),
    ("fastnn.Adam(clip_norm=1.0)", "o.amsgrad = True; o.clip_norm = None"),
])
def test_hyperparameter_changes_between_fits_never_crash(make, change):
    proc = run_python(f"""
        o = {make}
        m = S([D(64, "relu"), D(3)])
        m.fit(X, y, optimizer=o, verbose=0, epochs=2)
        {change}
        m.fit(X, y, optimizer=o, verbose=0, epochs=2)
        assert all(np.isfinite(w).all() for w in m.get_weights())
        print("done")
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "done"


def test_a_pickled_or_copied_optimizer_is_a_new_unbound_instance():
    import copy
    import pickle

    X, y = _data()
    opt = fastnn.Adam()
    _model().fit(X, y, optimizer=opt, epochs=1, verbose=0)
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert clone.step_count == opt.step_count
        np.testing.assert_array_equal(clone.state["exp_avg"], opt.state["exp_avg"])
        other = _model(hidden=8)  # another shape: the copied state is reset
        other.fit(X, y, optimizer=clone, epochs=1, verbose=0)
        assert clone.state["exp_avg"].shape == (other.count_params(),)
        assert clone.step_count == 7  # one epoch from zero, not 7 + 7

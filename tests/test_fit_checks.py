"""Schedules and callbacks: mistakes refused before training, failures
during it leave the last good weights."""

import math

import numpy as np
import pytest

import fastnn
from fastnn.schedules import (
    CosineAnnealing, ExponentialDecay, ReduceOnPlateau, StepDecay, Warmup,
)


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    return X, y


def _model(**kw):
    return fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.Dense(3)],
                             input_dim=5, seed=0, **kw)


def _refused_unchanged(model, X, y, match, **fit_kwargs):
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, verbose=0, **fit_kwargs)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.history is None


@pytest.mark.parametrize("schedule, epochs, bad_epoch", [
    (ExponentialDecay(1e200), 3, 3),      # OverflowError after epoch 1 before
    (ExponentialDecay(1e-200), 3, 3),     # underflows to 0
    (StepDecay(1, 1e300), 4, 3),
    (StepDecay(2, 1e-300), 6, 5),
    (Warmup(2, ExponentialDecay(1e200)), 6, 5),
    (Warmup(2, ExponentialDecay(1e-200)), 6, 5),
])
def test_a_schedule_that_leaves_the_floats_is_refused_up_front(schedule, epochs,
                                                               bad_epoch):
    X, y = _data()
    _refused_unchanged(_model(), X, y, f"lr_schedule: .* epoch {bad_epoch} of",
                       epochs=epochs, lr_schedule=schedule)


def test_schedule_rates_are_checked_from_the_optimizers_lr():
    X, y = _data()
    # 1e-300 * 1e-30 underflows to 0; 1.0 * 1e-150**2 does not.
    _refused_unchanged(_model(), X, y, "epoch 2 of 3", epochs=3,
                       optimizer=fastnn.SGD(lr=1e-300),
                       lr_schedule=ExponentialDecay(1e-30))
    _model().fit(X, y, epochs=3, verbose=0, optimizer=fastnn.SGD(lr=1.0),
                 lr_schedule=ExponentialDecay(1e-150))


@pytest.mark.parametrize("schedule", [
    CosineAnnealing(2),                    # reaches exactly 0: torch's rule
    Warmup(2, start_factor=0.0),           # starts at exactly 0: documented
    StepDecay(2, 0.5), ExponentialDecay(0.9), ReduceOnPlateau(patience=0),
])
def test_legitimate_schedules_still_train(schedule):
    X, y = _data()
    history = _model().fit(X, y, epochs=4, verbose=0, lr_schedule=schedule)
    assert all(math.isfinite(lr) and lr >= 0 for lr in history.history["lr"])


def test_schedule_check_names_the_rates():
    # The check computes the same rates the epochs will use.
    sched = StepDecay(2, 0.5)
    sched.check(0.1, 5, ["loss"])
    assert [sched(e, 0.1) for e in range(5)] == [0.1, 0.1, 0.05, 0.05, 0.025]


@pytest.mark.parametrize("monitor", ["val_los", "accuracy_typo", "loss2"])
def test_reduce_on_plateau_refuses_a_misspelt_monitor_before_training(monitor):
    # It silently watched "loss" before, where EarlyStopping refuses.
    X, y = _data()
    _refused_unchanged(_model(), X, y, "monitor", epochs=2,
                       lr_schedule=ReduceOnPlateau(monitor=monitor))
    with pytest.raises(ValueError, match="monitor"):
        _model().fit(X, y, epochs=2, verbose=0,
                     callbacks=[fastnn.EarlyStopping(monitor=monitor)])
    _refused_unchanged(_model(), X, y, "monitor", epochs=2,
                       lr_schedule=Warmup(1, ReduceOnPlateau(monitor=monitor)))


def test_reduce_on_plateau_reads_the_monitor_or_its_training_twin():
    X, y = _data()
    for monitor in ("val_accuracy", "accuracy", "val_loss", "loss"):
        sched = ReduceOnPlateau(monitor=monitor, mode="max" if "acc" in monitor
                                else "min", patience=0, factor=0.5)
        _model().fit(X, y, epochs=3, verbose=0, lr_schedule=sched)
    with pytest.raises(ValueError, match="monitor"):
        ReduceOnPlateau(monitor="val_acc")(1, 0.1, {"loss": 1.0})


def _overflowing_penalty_model():
    # l2 / 2 * ||W||^2 overflows a double from the start: the logged loss is
    # infinite although the data loss and every weight are finite.
    return fastnn.Sequential([fastnn.Dense(3, l2=1e308, gain=2.0)], input_dim=5,
                             dtype="float64", seed=0)


def test_terminate_on_nan_restores_the_last_good_weights_quietly():
    # Before, TerminateOnNaN's own check ran only for a loss that fit had not
    # seen as divergence: the infinite epoch was recorded and its weights kept.
    X, y = _data()
    model = _overflowing_penalty_model()
    good = model.get_weights()
    history = model.fit(X, y, optimizer=fastnn.SGD(lr=1e-310), epochs=3,
                        verbose=0, callbacks=[fastnn.TerminateOnNaN()])
    assert history.history.get("loss") is None
    for a, b in zip(model.get_weights(), good):
        np.testing.assert_array_equal(a, b)


def test_an_infinite_logged_loss_is_divergence():
    X, y = _data()
    model = _overflowing_penalty_model()
    good = model.get_weights()
    with pytest.raises(fastnn.TrainingDivergedError, match="epoch 1"):
        model.fit(X, y, optimizer=fastnn.SGD(lr=1e-310), epochs=3, verbose=0)
    for a, b in zip(model.get_weights(), good):
        np.testing.assert_array_equal(a, b)


def test_every_callback_hears_of_divergence():
    X, y = _data()
    heard = []

    class Listener(fastnn.Callback):
        def on_divergence(self, model, epoch, logs):
            heard.append((epoch, math.isfinite(logs["loss"])))
            return False

    model = _model()
    with pytest.raises(fastnn.TrainingDivergedError):
        model.fit(X * 1e30, y, optimizer=fastnn.SGD(lr=1e30), epochs=3, verbose=0,
                  callbacks=[Listener()])
    assert heard == [(0, False)]
    heard.clear()
    model.fit(X * 1e30, y, optimizer=fastnn.SGD(lr=1e30), epochs=3, verbose=0,
              callbacks=[Listener(), fastnn.TerminateOnNaN()])
    assert heard == [(0, False)]


def test_a_callback_failing_mid_fit_leaves_the_last_epochs_weights():
    X, y = _data()
    model = _model()
    saved = []

    class Fail(fastnn.Callback):
        def on_epoch_end(self, model, epoch, logs):
            saved.append(model.get_weights())
            if epoch == 1:
                raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        model.fit(X, y, epochs=5, verbose=0, callbacks=[Fail()])
    for a, b in zip(model.get_weights(), saved[-1]):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(model.predict(X)).all()

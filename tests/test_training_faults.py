"""Divergence, Ctrl-C, callbacks and schedules inside fit."""

import os
import signal
import threading

import numpy as np
import pytest

import fastnn


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    return X, y


def _model(**kw):
    return fastnn.Sequential([fastnn.Dense(16, "relu"), fastnn.Dense(3)],
                             input_dim=5, seed=0, **kw)


def test_divergence_raises_and_restores_last_good_weights():
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, verbose=0, seed=0)
    good = model.get_weights()

    class Explode(fastnn.Callback):
        def on_epoch_end(self, model, epoch, logs):
            pass

    with pytest.raises(fastnn.TrainingDivergedError, match="diverged"):
        model.fit(X * 1e30, y, optimizer=fastnn.SGD(lr=1e30), epochs=3, verbose=0)
    for a, b in zip(model.get_weights(), good):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_terminate_on_nan_stops_quietly():
    X, y = _data()
    model = _model()
    good = model.get_weights()
    history = model.fit(X * 1e30, y, optimizer=fastnn.SGD(lr=1e30), epochs=3,
                        verbose=0, callbacks=[fastnn.TerminateOnNaN()])
    assert len(history.history.get("loss", [])) == 0
    for a, b in zip(model.get_weights(), good):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_leaves_a_consistent_model():
    X, y = _data(5000)
    model = _model()
    timer = threading.Timer(0.3, lambda: signal.raise_signal(signal.SIGINT))

    class Slow(fastnn.Callback):
        def on_train_begin(self, model):
            timer.start()

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=10_000, batch_size=8, verbose=0, callbacks=[Slow()])
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    # the model still works and trains
    assert model.predict(X[:3]).shape == (3, 3)
    model.fit(X[:100], y[:100], epochs=1, verbose=0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_early_stopping_restores_best():
    X, y = _data()
    model = _model()
    stopper = fastnn.EarlyStopping(patience=1, restore_best=True)
    history = model.fit(X, y, optimizer=fastnn.SGD(lr=0.5), epochs=200, verbose=0,
                        validation_split=0.3, callbacks=[stopper], seed=0)
    assert len(history.history["loss"]) < 200
    best = min(history.history["val_loss"])
    assert stopper.best == best
    n_val = 60
    assert model.evaluate(X[-n_val:], y[-n_val:])["loss"] == pytest.approx(best)


def test_model_checkpoint_best_only(tmp_path):
    X, y = _data()
    model = _model()
    cb = fastnn.ModelCheckpoint(tmp_path / "best.safetensors", save_best_only=True)
    history = model.fit(X, y, epochs=5, verbose=0, validation_split=0.2,
                        callbacks=[cb], seed=0)
    loaded = fastnn.load(tmp_path / "best.safetensors")
    best = int(np.argmin(history.history["val_loss"]))
    assert loaded.evaluate(X[-40:], y[-40:])["loss"] == pytest.approx(
        history.history["val_loss"][best], rel=1e-5)


def test_lr_schedule_is_recorded():
    X, y = _data()
    model = _model()
    history = model.fit(X, y, optimizer=fastnn.SGD(lr=0.1), epochs=6, verbose=0,
                        lr_schedule=fastnn.StepDecay(step_size=2, gamma=0.5))
    assert history.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025,
                                                   0.025])


def test_verbose_progress_bar_writes(capsys):
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=2, verbose=1)
    captured = capsys.readouterr()
    assert "epoch 2/2" in captured.out + captured.err
    assert "loss" in captured.out + captured.err


@pytest.mark.parametrize("patience, stopped", [(0, 2), (1, 2), (2, 5), (3, 6),
                                               (4, None)])
def test_early_stopping_counts_patience_as_keras_and_lightning(patience, stopped):
    # val_loss improves at epochs 0, 1 and 3, not at 2, 4, 5 and 6. The stop
    # comes once ``patience`` epochs in a row have not improved (0 acts as 1).
    model = _model()
    stopper = fastnn.EarlyStopping(patience=patience, restore_best=False)
    stopper.on_train_begin(model)
    model.stop_training = False
    for epoch, v in enumerate([1.0, 0.9, 0.95, 0.85, 0.96, 0.97, 0.98]):
        stopper.on_epoch_end(model, epoch, {"val_loss": v})
        if model.stop_training:
            break
    assert stopper.stopped_epoch == stopped
    if stopped is not None and stopped < 3:
        assert stopper.best == 0.9 and stopper.best_epoch == 1
    else:
        assert stopper.best == 0.85 and stopper.best_epoch == 3


def test_fit_leaves_an_ignored_ctrl_c_ignored():
    # Where the program ignores SIGINT, fit does not take it over (and so
    # does not start stopping on Ctrl-C), and the setting is as before after.
    X, y = _data()
    seen = []

    class Probe(fastnn.callbacks.Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen.append(signal.getsignal(signal.SIGINT))

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _model().fit(X, y, epochs=2, verbose=0, callbacks=[Probe()])
        assert seen == [signal.SIG_IGN] * 2
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("make, match", [
    (lambda p: fastnn.EarlyStopping(monitor="val_f1"), "monitor: 'val_f1'"),
    (lambda p: fastnn.ModelCheckpoint(p / "m-{val_acc:.3f}.safetensors"),
     "path: .*KeyError: 'val_acc'"),
    (lambda p: fastnn.ModelCheckpoint(p / "m-{}.safetensors"), "path: .*IndexError"),
    (lambda p: fastnn.ModelCheckpoint(p / "m.safetensors", monitor="f1",
                                      save_best_only=True), "monitor: 'f1'"),
])
def test_callback_settings_that_fit_cannot_serve_are_refused_before_training(
        tmp_path, make, match):
    X, y = _data()
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, epochs=2, verbose=0, callbacks=[make(tmp_path)])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == []


def test_callback_placeholders_and_monitors_that_fit_logs_work(tmp_path):
    X, y = _data()
    cb = fastnn.ModelCheckpoint(tmp_path / "m-{epoch}-{val_accuracy:.2f}.safetensors")
    stop = fastnn.EarlyStopping(monitor="val_accuracy", patience=5)
    _model().fit(X, y, epochs=2, verbose=0, validation_split=0.2, callbacks=[cb, stop])
    assert len(cb.saved) == 2 and all(os.path.exists(p) for p in cb.saved)
    # without validation data, val_loss reads loss, and says so
    with pytest.warns(UserWarning, match="watches 'loss' on the training data"):
        _model().fit(X, y, epochs=1, verbose=0,
                     callbacks=[fastnn.EarlyStopping(monitor="val_loss")])

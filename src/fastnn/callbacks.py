"""Training callbacks and the :class:`History` that ``fit`` returns."""

import os

from fastnn._validation import (
    check_bool, check_choice, check_float, check_int, check_name,
)


class History:
    """Per-epoch records of a ``fit``: ``history.history["loss"]``, ``"val_loss"``,
    each metric (``"accuracy"``, ``"val_accuracy"``), ``"lr"`` and ``"time"``
    (seconds)."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


class Callback:
    """Hooks called by ``fit``. Set ``model.stop_training = True`` to stop."""

    def check_logs(self, keys):
        """Called by ``fit`` before anything changes, with the names every
        epoch will log; raise ValueError for a setting they cannot serve."""

    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, model, epoch, logs):
        pass

    def on_divergence(self, model, epoch, logs):
        """Called when epoch ``epoch`` diverged (its loss or weights are NaN
        or infinite), once the last good weights are back in place; return
        True to end ``fit`` quietly instead of raising
        :class:`~fastnn.model.TrainingDivergedError`."""
        return False

    def on_train_end(self, model):
        pass


def _monitored(logs, monitor):
    """The key of ``logs`` that ``monitor`` reads: itself, or for ``val_x``
    without validation data, ``x``."""
    if monitor in logs:
        return monitor
    if monitor.startswith("val_") and monitor[4:] in logs:
        return monitor[4:]
    raise ValueError(
        f"monitor: {monitor!r} is not among the logged values {sorted(logs)}"
    )


def _monitor_value(logs, monitor):
    return logs[_monitored(logs, monitor)]


def _is_better(mode, monitor, value, best, min_delta):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


class EarlyStopping(Callback):
    """Stop once ``monitor`` has gone ``patience`` epochs in a row without
    improving by ``min_delta`` (as Keras and PyTorch Lightning count: with
    ``patience=0`` the first epoch without improvement stops); with
    ``restore_best`` put back the best epoch's weights."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best=True):
        self.monitor = check_name("monitor", monitor)
        self.patience = check_int("patience", patience, 0)
        self.min_delta = check_float("min_delta", min_delta, 0)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.restore_best = check_bool("restore_best", restore_best)

    def check_logs(self, keys):
        _monitored(keys, self.monitor)

    def on_train_begin(self, model):
        self.best = None
        self.best_weights = None
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None

    def on_epoch_end(self, model, epoch, logs):
        value = _monitor_value(logs, self.monitor)
        if self.best is None or _is_better(self.mode, self.monitor, value, self.best,
                                           self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                model.stop_training = True

    def on_train_end(self, model):
        if self.restore_best and self.best_weights is not None:
            model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after each epoch to ``path`` (``{epoch}`` is filled in);
    with ``save_best_only`` only when ``monitor`` improved."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(self.path, str):
            raise TypeError(f"path: must be a file path (str or os.PathLike), "
                            f"got {path!r}")
        if not self.path:
            raise ValueError("path: must not be empty")
        self.monitor = check_name("monitor", monitor)
        self.save_best_only = check_bool("save_best_only", save_best_only)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))

    def check_logs(self, keys):
        if self.save_best_only:
            _monitored(keys, self.monitor)
        try:
            self.path.format(epoch=1, **dict.fromkeys(keys, 0.0))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"path: {self.path!r} cannot be filled in ({type(exc).__name__}: "
                f"{exc}); its placeholders can be {{epoch}} and the logged "
                f"values {sorted(keys)}") from None

    def on_train_begin(self, model):
        self.best = None
        self.saved = []

    def on_epoch_end(self, model, epoch, logs):
        if self.save_best_only:
            value = _monitor_value(logs, self.monitor)
            if self.best is not None and not _is_better(self.mode, self.monitor,
                                                        value, self.best, 0.0):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        model.save(path)
        self.saved.append(path)


class TerminateOnNaN(Callback):
    """Stop training quietly (no error) when the loss becomes NaN or infinite.

    The last good weights (those at the end of the last finite epoch) are
    restored as with any divergence, and ``fit`` returns its history of the
    good epochs.
    """

    def on_divergence(self, model, epoch, logs):
        return True

"""Training callbacks and the :class:`History` that ``fit`` returns."""

import os
import warnings

import numpy as np

from fastnn._validation import (
    check_bool, check_choice, check_float, check_int, check_name,
)


def _caller_level():
    """The ``stacklevel`` that points a warning at the first caller outside
    fastnn (the user's ``fit`` call), for the function that calls this."""
    import sys

    root = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(
        frame.f_code.co_filename).startswith(root + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class History:
    """What a ``fit`` did.

    Attributes
    ----------
    history : dict of str to list
        Per-epoch records: ``"loss"``, ``"val_loss"``, each metric
        (``"accuracy"``, ``"val_accuracy"``), ``"lr"`` and ``"time"`` (seconds).
    epoch : list of int
        The 0-based indices of the epochs recorded.
    params : dict
        ``fit``'s ``epochs`` and ``verbose``.
    stopped_epoch : int or None
        The epoch (1-based, as printed) after which :class:`EarlyStopping`
        stopped training; None when it did not stop it.
    restored_epoch : int or None
        The epoch (1-based) whose weights :class:`EarlyStopping` put back at
        the end (``restore_best``); None when the model keeps the weights
        training ended with.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {"epochs": None, "verbose": 0}
        self.stopped_epoch = None
        self.restored_epoch = None

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
        :class:`~fastnn.training.TrainingDivergedError`."""
        return False

    def on_train_end(self, model):
        pass


def _say(model, line):
    """Print ``line`` beside the epoch lines when ``fit`` runs with verbose > 0;
    return whether it did."""
    history = getattr(model, "history", None)
    if history is None or not history.params.get("verbose"):
        return False
    from tqdm import tqdm

    tqdm.write(line)
    return True


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
    ``restore_best`` put back the best epoch's weights at the end of training.

    The epoch it stopped after and the epoch whose weights it restored are
    recorded in the :class:`History` (``stopped_epoch``, ``restored_epoch``,
    1-based) and, when ``fit`` runs with verbose > 0, printed after the last
    epoch's line. A ``val_*`` monitor without validation data watches the
    training value of the same name (``"val_loss"`` reads ``"loss"``); it says
    so once at the start of training: a printed line with verbose > 0, else a
    ``UserWarning``. Its own ``stopped_epoch`` and ``best_epoch`` attributes
    are 0-based epoch indices.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best=True):
        self.monitor = check_name("monitor", monitor)
        self.patience = check_int("patience", patience, 0)
        self.min_delta = check_float("min_delta", min_delta, 0)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.restore_best = check_bool("restore_best", restore_best)
        self.watched = self.monitor

    def check_logs(self, keys):
        self.watched = _monitored(keys, self.monitor)

    def on_train_begin(self, model):
        self.best = None
        self.best_weights = None
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None
        if self.watched != self.monitor:
            line = (f"EarlyStopping: no validation data, so monitor="
                    f"{self.monitor!r} watches {self.watched!r} on the training "
                    "data; give validation_data or validation_split to stop on "
                    "held-out data")
            if not _say(model, line):
                warnings.warn(line, UserWarning, stacklevel=_caller_level())

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
        history = getattr(model, "history", None)
        if self.stopped_epoch is not None:
            epochs = history.params.get("epochs") if history is not None else None
            of = f" of {epochs}" if epochs else ""
            by = f" by more than {self.min_delta:g}" if self.min_delta else ""
            _say(model, f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1}"
                        f"{of}: {self.watched} has not improved{by} for {self.wait} "
                        f"epoch{'s' if self.wait != 1 else ''}")
            if history is not None:
                history.stopped_epoch = self.stopped_epoch + 1
        if self.restore_best and self.best_weights is not None:
            changed = any(not np.array_equal(now, best) for now, best in
                          zip(model.get_weights(), self.best_weights))
            model.set_weights(self.best_weights)
            if changed:
                _say(model, f"EarlyStopping: restored the weights of epoch "
                            f"{self.best_epoch + 1}, the best ({self.watched} "
                            f"{self.best:.4f})")
                if history is not None:
                    history.restored_epoch = self.best_epoch + 1


class ModelCheckpoint(Callback):
    """Save the model after each epoch to ``path`` (``{epoch}`` is filled in);
    with ``save_best_only`` only when ``monitor`` improved.

    Before training, ``path`` as epoch 1 fills it must pass
    :func:`fastnn.io.check_save_path`: its directory exists and can be written,
    and nothing but a regular file is there (no link, device or directory).
    """

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
            first = self.path.format(epoch=1, **dict.fromkeys(keys, 0.0))
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"path: {self.path!r} cannot be filled in ({type(exc).__name__}: "
                f"{exc}); its placeholders can be {{epoch}} and the logged "
                f"values {sorted(keys)}") from None
        from fastnn.io import check_save_path

        check_save_path(first, "path")

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

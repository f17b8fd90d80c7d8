"""Training: ``fit``'s orchestration, the run of one ``fit`` and its step loop.

:meth:`fastnn.Sequential.fit` calls :func:`fit`. It checks every argument
before anything changes, builds an unbuilt model provisionally, binds the
optimizer, then runs the epochs through the training plan
(:class:`fastnn._kernels.plan.TrainPlan`, or its twin on the NumPy backend),
which runs whole steps of any model in compiled code. It logs each epoch, calls the
callbacks, guards Ctrl-C (the model keeps the last completed step) and
restores the last good weights when training diverges.
"""

import math
import signal
import threading
import time

import numpy as np

from fastnn._validation import (
    check_array, check_bool, check_float, check_int, check_sample_weight,
    check_seed, frame_columns, select_features,
)
from fastnn._kernels._plan_args import steps_per_call
from fastnn.callbacks import Callback, History
from fastnn.losses import get_loss
from fastnn.optimizers import get_optimizer
from fastnn.schedules import get_schedule

#: The ids of the models a ``fit`` is running on, guarded by ``_FIT_LOCK``.
_FITTING = set()
_FIT_LOCK = threading.Lock()


class TrainingDivergedError(FloatingPointError):
    """The loss or the weights became NaN or infinite during ``fit``.

    The model holds the last good weights (those at the end of the last
    finite epoch) when this is raised.
    """


def fit(model, X, y, loss, optimizer, epochs, batch_size, shuffle,
        validation_data, validation_split, callbacks, lr_schedule, verbose, seed,
        sample_weight=None):
    """:meth:`fastnn.Sequential.fit` (see there), one ``fit`` per model at a
    time: a second, concurrent one raises ``RuntimeError``."""
    with _FIT_LOCK:
        if id(model) in _FITTING:
            raise RuntimeError(
                "fit: this model is busy: another thread is fitting it; "
                "one model trains in one fit at a time")
        _FITTING.add(id(model))
    try:
        return _fit(model, X, y, loss, optimizer, epochs, batch_size, shuffle,
                    validation_data, validation_split, callbacks, lr_schedule,
                    verbose, seed, sample_weight)
    finally:
        with _FIT_LOCK:
            _FITTING.discard(id(model))


def _fit(model, X, y, loss, optimizer, epochs, batch_size, shuffle,
         validation_data, validation_split, callbacks, lr_schedule, verbose,
         seed, sample_weight):
    # ---- validate everything before touching state ----
    spec = get_loss(loss)
    X = select_features("X", X, model.feature_names)
    names = frame_columns(X) if model.feature_names is None else None
    X = check_array("X", X, model.dtype,
                    n_features=model.input_dim if model.built else None)
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    shuffle = check_bool("shuffle", shuffle)
    validation_split = check_float("validation_split", validation_split, 0, 1,
                                   high_open=True)
    verbose = check_int("verbose", verbose, 0, 2)
    seed = check_seed(seed)
    sample_weight = check_sample_weight(sample_weight, X.shape[0], model.dtype)
    if callbacks is None:
        callbacks = []
    elif isinstance(callbacks, (list, tuple)):
        callbacks = list(callbacks)
    else:
        raise TypeError("callbacks: must be a list of Callback objects or None, "
                        f"got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}]: expected a Callback, got "
                            f"{type(cb).__name__}")
    optimizer = get_optimizer(optimizer)
    optimizer.check_owner(model)
    schedule = get_schedule(lr_schedule, epochs)
    if validation_data is not None and validation_split:
        raise ValueError("validation_split: give validation_data or "
                         "validation_split, not both")
    # An unbuilt model is built (the labels' range needs the output
    # width) but stays unbuilt, to the world and after a refusal, until
    # every check has passed and the optimizer is bound.
    with model._building(X.shape[1]):
        target, X, X_val, y_val, runner = _fit_inputs(
            model, X, y, spec, validation_data, validation_split, optimizer,
            batch_size, seed, sample_weight)
        # What every epoch will log: callbacks refuse a monitor or a path
        # placeholder that names none of it now, not after an epoch.
        keys = {"loss", "lr", "time"}
        if runner.classify:
            keys.add("accuracy")
        if X_val is not None:
            keys |= {"val_" + k for k in keys & {"loss", "accuracy"}}
        for cb in callbacks:
            cb.check_logs(sorted(keys))
        if schedule is not None:
            schedule.check(optimizer.lr, epochs, sorted(keys))
        optimizer.bind(model, model._params)
    runner.start()
    model.loss = spec.name
    if names is not None:
        model.feature_names = names
    history = History()
    model.history = history
    history.params.update(epochs=epochs, verbose=verbose)
    model.stop_training = False
    base_lr = optimizer.lr
    if schedule is not None:
        schedule.reset()
    for cb in callbacks:
        cb.on_train_begin(model)
    interrupted = []
    previous_handler = None
    # Ctrl-C ends the epoch cleanly; not where Ctrl-C is ignored, or
    # handled outside Python (getsignal gives None: no way to restore it).
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) not in (None, signal.SIG_IGN)):
        def _on_sigint(signum, frame):
            interrupted.append(True)
        previous_handler = signal.signal(signal.SIGINT, _on_sigint)
    logs = None
    try:
        for epoch in range(epochs):
            lr = schedule(epoch, base_lr, logs) if schedule else base_lr
            optimizer.lr = lr
            start = time.perf_counter()
            train_loss, accuracy = runner.epoch(shuffle, verbose, epoch, epochs,
                                                interrupted)
            if interrupted:
                break
            epoch_loss = train_loss + model.penalty()
            if not math.isfinite(epoch_loss) or not np.isfinite(
                model._params
            ).all():
                runner.restore()
                logs = {"loss": epoch_loss}
                # Every callback hears of it; any one may end fit quietly.
                if any([cb.on_divergence(model, epoch, logs)
                        for cb in callbacks]):
                    break
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch + 1}: the loss is "
                    f"{epoch_loss}; the weights of the last good epoch were "
                    "restored. Lower the learning rate or clip gradients "
                    "(clip_norm)."
                )
            logs = {"loss": epoch_loss}
            if accuracy is not None:
                logs["accuracy"] = accuracy
            if X_val is not None:
                val = model.evaluate(X_val, y_val, metrics=("accuracy",)
                                    if accuracy is not None else ())
                logs["val_loss"] = val["loss"]
                if "accuracy" in val:
                    logs["val_accuracy"] = val["accuracy"]
            logs["lr"] = lr
            logs["time"] = time.perf_counter() - start
            history.record(epoch, logs)
            if verbose:
                _print_epoch(epoch, epochs, logs)
            runner.snapshot()
            for cb in callbacks:
                cb.on_epoch_end(model, epoch, logs)
            if model.stop_training:
                break
    except TrainingDivergedError:
        raise
    except BaseException:
        # A failure mid-fit (a callback, memory) leaves the weights of the
        # last completed epoch, not a half-updated step.
        runner.restore()
        raise
    finally:
        optimizer.lr = base_lr
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    for cb in callbacks:
        cb.on_train_end(model)
    if interrupted:
        raise KeyboardInterrupt("fit interrupted; the model holds the weights "
                                "of the last completed step")
    return history


def _fit_inputs(model, X, y, spec, validation_data, validation_split,
                optimizer, batch_size, seed, sample_weight=None):
    """The checks of ``fit`` that need the built model: the targets, the
    validation data and the training buffers. Changes nothing in the model."""
    target = model._check_targets(y, X.shape[0], spec)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(
            validation_data
        ) != 2:
            raise ValueError("validation_data: must be a pair (X_val, y_val)")
        X_val = check_array("validation_data[0]", validation_data[0], model.dtype,
                            n_features=X.shape[1])
        y_val = model._check_targets(validation_data[1], X_val.shape[0], spec,
                                    "validation_data[1]")
    elif validation_split:
        n_val = int(round(X.shape[0] * validation_split))
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(
                f"validation_split: {validation_split} of {X.shape[0]} samples "
                "leaves no validation or no training data"
            )
        X, X_val = X[:-n_val], X[-n_val:]
        target, y_val = target[:-n_val], target[-n_val:]
        if sample_weight is not None:
            sample_weight = sample_weight[:-n_val]
            if not sample_weight.sum() > 0:
                raise ValueError("sample_weight: the weights of the training part "
                                 "(before validation_split) sum to 0")
    else:
        X_val = y_val = None

    runner = _TrainingRun(model, X, target, spec, optimizer, batch_size, seed,
                          sample_weight)
    return target, X, X_val, y_val, runner


def _print_epoch(epoch, epochs, logs):
    from tqdm import tqdm

    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key, value in logs.items():
        if key == "time":
            parts.append(f"{value:.2f}s")
        elif key == "lr":
            parts.append(f"lr {value:.3g}")
        else:
            parts.append(f"{key} {value:.4f}")
    tqdm.write(" - ".join(parts))


class _TrainingRun:
    """The training plan of one ``fit`` call, and its epochs."""

    def __init__(self, model, X, target, spec, optimizer, batch_size, seed,
                 sample_weight=None, penalty="sum", loss_scale=1.0):
        self.model = model
        self.X = X
        self.target = target
        self.spec = spec
        self.sample_weight = sample_weight
        self.penalty = penalty
        self.loss_scale = loss_scale
        self.penalty_total = 0.0
        self.optimizer = optimizer
        self.n = X.shape[0]
        self.bs = bs = min(batch_size, self.n)
        # A batch of one sample has no batch variance (torch refuses it): with
        # a training BatchNorm layer, an epoch leaves out a last batch of one
        # sample, a different sample each epoch when shuffling.
        self.n_used = self.n
        if any(op[0] == "batchnorm" and op[2]["trainable"]
               for op in (layer.plan_op() for layer in model.layers)):
            if self.n == 1:
                raise ValueError("X: BatchNorm needs at least 2 samples to train on, "
                                 "got 1")
            if bs == 1:
                raise ValueError("batch_size: BatchNorm needs batches of at least 2 "
                                 "samples, got 1")
            if self.n % bs == 1:
                self.n_used = self.n - 1
        self.rng = np.random.default_rng(seed)
        # The key of the dropout and noise stream: the seed itself, so that
        # fastnn.reference.random.dropout_mask_philox(seed, epoch, step,
        # layer, p) gives a fit's masks; drawn from the generator without one.
        self.key = (seed if seed is not None
                    else int(self.rng.integers(0, 2**63)))
        self.perm = np.arange(self.n, dtype=np.int64)
        self.classify = spec.targets == "labels" or spec.link == "sigmoid"
        self.plan = None  # made by start(), once the optimizer is bound
        self.good_params = model._params.copy()
        self.good_state = [
            {k: v.copy() for k, v in layer.state.items()} for layer in model.layers
        ]
        self.good_counters = [layer._counters() for layer in model.layers]
        self.epoch_index = 0

    def start(self):
        """Make the plan; called once ``fit``'s checks have passed and the
        optimizer is bound (its state laid out for this model)."""
        model = self.model
        runs = np.array(model._trainable_runs(), np.int64).reshape(-1, 2)
        self.plan = model.ops.TrainPlan(
            self.X, self.target, self.perm,
            [layer.plan_op() for layer in model.layers],
            self.spec.plan_loss() + (self.loss_scale,), self.optimizer.plan_spec(),
            model._params, model._grads, runs, self.bs, self.key % (1 << 128),
            self.sample_weight, self.penalty)
        self.chunk = steps_per_call(self.bs, model._params.size)
        self.counted = [layer for layer in model.layers
                        if "num_batches_tracked" in layer._counters()
                        and layer.trainable]

    def _run(self, epoch, n_steps, bar, interrupted):
        opt = self.optimizer
        total, correct, s = 0.0, 0, 0
        self.penalty_total = 0.0
        while s < n_steps:
            todo = min(self.chunk, n_steps - s)
            loss_sum, hits, done, penalty_sum = self.plan.run(
                s, todo, opt.lr, opt.step_count, epoch)
            self.penalty_total += penalty_sum
            opt.step_count += done
            for layer in self.counted:
                layer.num_batches_tracked += done
            total += loss_sum
            correct += hits
            s += done
            if done < todo:
                return float("nan"), correct, s
            if bar is not None:
                bar.update(done)
                bar.set_postfix(loss=f"{total / min(s * self.bs, self.n):.4f}",
                                refresh=False)
            if interrupted:
                break
        return total, correct, s

    def snapshot(self):
        np.copyto(self.good_params, self.model._params)
        for saved, layer in zip(self.good_state, self.model.layers):
            for k, v in layer.state.items():
                np.copyto(saved[k], v)
        self.good_counters = [layer._counters() for layer in self.model.layers]

    def restore(self):
        np.copyto(self.model._params, self.good_params)
        for saved, layer in zip(self.good_state, self.model.layers):
            for k, v in layer.state.items():
                np.copyto(v, saved[k])
        for counters, layer in zip(self.good_counters, self.model.layers):
            for k, v in counters.items():
                setattr(layer, k, v)
        self.optimizer.reset()

    def epoch(self, shuffle, verbose, epoch, epochs, interrupted):
        if shuffle:
            self.rng.shuffle(self.perm)
        n, bs = self.n_used, self.bs
        n_steps = -(-n // bs)
        bar = None
        if verbose == 1:
            import sys

            from tqdm import tqdm

            # Only on a terminal (disable=None: not when stderr is piped or
            # captured; a Jupyter kernel's stream says it is no terminal but
            # shows bars), drawn at once (delay=0) and then at most 20 times a
            # second; it is erased at the end of the epoch, where the epoch's
            # line takes its place.
            jupyter = type(sys.stderr).__module__.startswith("ipykernel.")
            bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{epochs}",
                       leave=False, unit="step", disable=False if jupyter else None,
                       delay=0, mininterval=0.05)
        try:
            total, correct, done = self._run(epoch, n_steps, bar, interrupted)
            seen = min(done * bs, n)
            if not math.isfinite(total) or interrupted:
                return (total / max(seen, 1) if math.isfinite(total) else total,
                        None)
            if bar is not None:  # an epoch shorter than mininterval shows its end
                bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        if not self.classify:
            return total / n, None
        denom = n * (1 if self.spec.targets == "labels" else self.target.shape[1])
        return total / n, correct / denom

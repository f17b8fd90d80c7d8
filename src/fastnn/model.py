"""The Sequential model: construction, training, evaluation and inference."""

import contextlib
import math
import os
import signal
import threading
import time

import numpy as np

from fastnn._validation import (
    check_array, check_bool, check_choice, check_classes, check_dtype,
    check_feature_names, check_float, check_int, check_labels, check_targets,
    frame_columns, select_features,
)
from fastnn.callbacks import Callback, History
from fastnn.layers import Layer
from fastnn.losses import get_loss, loss_value
from fastnn.ops import BACKENDS, get_ops
from fastnn.optimizers import get_optimizer
from fastnn.schedules import get_schedule

#: Train all-Dense stacks with the fused step loop (``MLPPlan``); tests switch
#: it off to compare against the layer-by-layer loop.
FUSED = True

#: Rows per chunk in predict/evaluate when no batch_size is given.
INFERENCE_BATCH = 4096

#: The ids of the models a ``fit`` is running on, guarded by ``_FIT_LOCK``.
_FITTING = set()
_FIT_LOCK = threading.Lock()


class TrainingDivergedError(FloatingPointError):
    """The loss or the weights became NaN or infinite during ``fit``.

    The model holds the last good weights (those at the end of the last
    finite epoch) when this is raised.
    """


def _check_fits_in_memory(n_params, dtype):
    """Refuse parameters and gradients larger than the machine's memory,
    before allocating them (the allocation could succeed lazily, and the
    process be killed once initialization writes to them)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return
    need = 2 * n_params * np.dtype(dtype).itemsize
    if need > memory:
        raise ValueError(
            f"layers: the model has {n_params} parameters, which with their "
            f"gradients need {need / 2**30:.3g} GiB, more than this machine's "
            f"{memory / 2**30:.3g} GiB of memory")


def _check_seed(seed, name="seed"):
    if seed is None:
        return None
    return check_int(name, seed, 0)


def _reused_width_dtype(layer):
    """``(input width, dtype)`` of a built or carried layer, else Nones."""
    if layer._carried is not None:
        n_in, arrays, _ = layer._carried
    elif layer.n_in is not None:
        n_in, arrays = layer.n_in, layer.get_arrays()
    else:
        return None, None
    return n_in, next((a.dtype for a in arrays.values()), None)


class Sequential:
    """A stack of layers trained end to end.

    Parameters
    ----------
    layers : list of Layer
    input_dim : int or None
        The number of input features. If None, the model is built by the first
        ``fit`` (or ``build``) from the data.
    dtype : {"float32", "float64"} or None
        None means float32, or the dtype of reused trained layers.
    seed : int or None
        Seeds the weight initialization.
    backend : {"cython", "numpy"}
        The compiled kernels, or their NumPy twins.

    All trainable parameters live in one flat buffer (and their gradients in
    another), so an optimizer step is one kernel call.

    A layer belongs to one model. A layer that already belongs to another
    model is copied, with its weights if that model is built, and its
    ``trainable`` flag: ``Sequential(base.layers[:-1] + [Dense(5)])`` reuses a
    trained model's layers under a new head and leaves ``base`` untouched.

    Attributes
    ----------
    classes : ndarray or None
        The class values that output ``i`` stands for, where the model was
        trained on mapped labels (the command line does this); then
        ``predict_classes`` returns these values.
    feature_names : tuple of str or None
        The names of the input columns (a CSV header, or the columns of the
        DataFrame given to the first ``fit``). A DataFrame given to ``fit``,
        ``predict`` or ``evaluate`` is matched to them by name.
    target_name : str or None
        The name of the label or target column, where it had one.
    """

    def __init__(self, layers, input_dim=None, dtype=None, seed=None,
                 backend="cython"):
        if isinstance(layers, Layer):
            layers = [layers]
        if not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError("layers: must be a non-empty list of fastnn layers")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"layers[{i}]: expected a fastnn layer, got {type(layer).__name__}"
                )
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("layers: the same layer object appears twice")
        reused = [_reused_width_dtype(layer) for layer in layers]
        if dtype is None:
            dtype = next((d for _, d in reused if d is not None), "float32")
        self.dtype = check_dtype(dtype)
        self.seed = _check_seed(seed)
        self.backend = check_choice("backend", backend, BACKENDS)
        if input_dim is None:
            input_dim = reused[0][0]
        self.layers = [layer._adopt(self) for layer in layers]
        self.ops = get_ops(backend)
        self.loss = None
        self.input_dim = None
        self.output_dim = None
        self.classes = None
        self.feature_names = None
        self.target_name = None
        self.stop_training = False
        self.history = None
        if input_dim is not None:
            try:
                self.build(input_dim)
            except ValueError:
                self._unbuild()
                raise

    # -- construction ----------------------------------------------------------
    @property
    def built(self):
        # Not while fit builds it provisionally for its checks (_building).
        return self.input_dim is not None and "_provisional" not in self.__dict__

    def build(self, input_dim):
        """Create and initialize every parameter for ``input_dim`` input features.

        Raises ValueError, leaving the model unbuilt, when a hyperparameter
        makes an initial parameter non-finite in the model's dtype (say
        ``Dense(gain=1e40)`` or ``PReLU(init=1e39)`` in float32).
        """
        input_dim = check_int("input_dim", input_dim, 1)
        if self.built:
            if input_dim != self.input_dim:
                raise ValueError(
                    f"input_dim: the model is built for {self.input_dim} features, "
                    f"got {input_dim}"
                )
            return self
        with self._building(input_dim):
            pass
        return self

    @contextlib.contextmanager
    def _building(self, input_dim):
        """Build an unbuilt model for the body's checks, unpublished: ``built``
        stays False (so ``predict`` in another thread refuses rather than see
        a half-built model) until the body succeeds; if it raises, or the
        build is refused, the model is left unbuilt. A built model is left
        as it is."""
        if self.built:
            yield
            return
        self._provisional = True
        try:
            self._build_layers(input_dim)
            self._check_initial_params()
            yield
        except BaseException:
            self._unbuild()
            raise
        finally:
            del self._provisional

    def _check_initial_params(self):
        for i, layer in enumerate(self.layers):
            if not all(np.isfinite(v).all() for v in layer.get_arrays().values()):
                raise ValueError(
                    f"layers[{i}] ({layer!r}): its initial parameters are not "
                    f"finite in {np.dtype(self.dtype).name}; a hyperparameter "
                    "(gain, init, value) is too large for this dtype")

    def _build_layers(self, input_dim):
        width = input_dim
        slots = []
        for i, layer in enumerate(self.layers):
            if layer._carried is not None and layer._carried[0] != width:
                raise ValueError(
                    f"layers[{i}]: reuses trained weights for {layer._carried[0]} "
                    f"inputs, but gets {width} "
                    + ("features" if i == 0 else "from the layer before it"))
            width = layer.build(width, self.dtype)
            for name, shape in layer.param_shapes():
                slots.append((layer, name, shape))
        total = sum(math.prod(shape) for _, _, shape in slots)
        _check_fits_in_memory(total, self.dtype)
        self._params = np.zeros(total, self.dtype)
        self._grads = np.zeros(total, self.dtype)
        self._offsets = {}
        offset = 0
        for layer, name, shape in slots:
            size = math.prod(shape)
            layer.params[name] = self._params[offset:offset + size].reshape(shape)
            layer.grads[name] = self._grads[offset:offset + size].reshape(shape)
            self._offsets.setdefault(id(layer), [offset, offset])[1] = offset + size
            offset += size
        from fastnn.layers import Dense, feeds_init

        for layer, nxt in zip(self.layers, self.layers[1:]):
            if isinstance(layer, Dense):
                layer.feeds = feeds_init(nxt)
        rng = np.random.default_rng(self.seed)
        for layer in self.layers:
            layer.init_params(rng)
            layer.init_state()
            layer._restore_carried()
        self.input_dim = input_dim
        self.output_dim = width
        return self

    def _unbuild(self):
        """Undo :meth:`build`, so that a refused first ``fit`` leaves the model
        as it was: unbuilt, its layers free to be built for any input width."""
        for layer in self.layers:
            layer._carry_again()
            layer.unbuild()
        for name in ("_params", "_grads", "_offsets", "_stack"):
            self.__dict__.pop(name, None)
        self.input_dim = None
        self.output_dim = None

    def _trainable_runs(self):
        runs = []
        for layer in self.layers:
            span = self._offsets.get(id(layer))
            if not layer.trainable or span is None or span[0] == span[1]:
                continue
            if runs and runs[-1][1] == span[0]:
                runs[-1][1] = span[1]
            else:
                runs.append(list(span))
        return [tuple(run) for run in runs]

    def _require_built(self, name):
        if not self.built:
            raise ValueError(
                f"{name}: the model is not built yet; pass input_dim or call fit first"
            )

    # -- weights ------------------------------------------------------------------
    def _weight_slots(self):
        return [(layer, name) for layer in self.layers
                for name in layer.weight_names()]

    def get_weights(self):
        """Copies of every parameter, ``[W1, b1, W2, b2, ...]`` with ``W`` shaped
        (out, in); BatchNorm (weight, bias, running_mean, running_var) and PReLU
        slopes follow their layer in order."""
        self._require_built("get_weights")
        return [layer.get_arrays()[name].copy() for layer, name in self._weight_slots()]

    def set_weights(self, weights):
        """Set every parameter from a list in :meth:`get_weights` order.

        Every array is checked (count, shape, finiteness) before any is set.
        """
        self._require_built("set_weights")
        slots = self._weight_slots()
        if not isinstance(weights, (list, tuple)):
            raise TypeError("weights: must be a list of arrays")
        if len(weights) != len(slots):
            raise ValueError(
                f"weights: expected {len(slots)} arrays, got {len(weights)}"
            )
        checked = []
        for i, ((layer, name), value) in enumerate(zip(slots, weights)):
            target = layer.get_arrays()[name]
            arr = np.asarray(value)
            if arr.dtype.kind not in "iuf":
                raise TypeError(
                    f"weights[{i}]: must hold real numbers, got dtype {arr.dtype}"
                )
            if arr.shape != target.shape:
                raise ValueError(
                    f"weights[{i}] ({type(layer).__name__} {name}): expected shape "
                    f"{target.shape}, got {arr.shape}"
                )
            # Checked after the cast: a float64 value beyond float32's range
            # would otherwise become an infinite weight.
            with np.errstate(over="ignore"):
                arr = arr.astype(target.dtype)
            if not np.isfinite(arr).all():
                raise ValueError(
                    f"weights[{i}]: contains NaN or infinity (as "
                    f"{np.dtype(target.dtype).name})"
                )
            if name == "running_var" and (arr < 0).any():
                raise ValueError(f"weights[{i}]: running_var must be >= 0")
            checked.append((target, arr))
        for target, arr in checked:
            target[...] = arr

    def count_params(self):
        self._require_built("count_params")
        return int(self._params.size)

    # -- what the inputs and outputs mean ----------------------------------------
    @property
    def classes(self):
        return self._classes

    @classes.setter
    def classes(self, value):
        classes = check_classes("classes", value)
        if classes is not None and self.built and self.output_dim not in (
            len(classes), 1 if len(classes) == 2 else -1
        ):
            raise ValueError(f"classes: {len(classes)} classes for a model with "
                             f"{self.output_dim} outputs")
        self._classes = classes

    @property
    def feature_names(self):
        return self._feature_names

    @feature_names.setter
    def feature_names(self, value):
        self._feature_names = check_feature_names(
            "feature_names", value, self.input_dim if self.built else None)

    @property
    def task(self):
        """``"classification"``, ``"regression"``, or None before training.

        A model is a classifier when its loss takes class labels (or gives
        probabilities through a sigmoid), or when it has :attr:`classes`.
        """
        if self.classes is not None:
            return "classification"
        if self.loss is None:
            return None
        spec = get_loss(self.loss)
        if spec.targets == "labels" or spec.link == "sigmoid":
            return "classification"
        return "regression"

    def _require_classifier(self, name):
        if self.task == "regression":
            raise ValueError(
                f"{name}: the model was trained with {self.loss}, a regression "
                "loss; its outputs are predictions, not classes: use predict")

    def class_indices(self, labels, name="y"):
        """The output index of each label in :attr:`classes`."""
        if self.classes is None:
            raise ValueError(f"{name}: the model has no classes to map labels to")
        labels = np.asarray(labels)
        order = np.argsort(self.classes)
        try:
            pos = np.searchsorted(self.classes, labels, sorter=order)
        except TypeError:
            raise TypeError(f"{name}: labels of dtype {labels.dtype} cannot be "
                            f"compared with the classes {self.classes.tolist()}"
                            ) from None
        idx = order[np.minimum(pos, len(order) - 1)]
        unknown = self.classes[idx] != labels
        if np.any(unknown):
            raise ValueError(f"{name}: label(s) {np.unique(labels[unknown])[:5]} "
                             f"are not among the classes {self.classes.tolist()}")
        return idx.astype(np.int64)

    # -- inference -------------------------------------------------------------
    def _check_X(self, X, name="X"):
        self._require_built(name)
        X = select_features(name, X, self.feature_names)
        return check_array(name, X, self.dtype, n_features=self.input_dim)

    def _check_batch_size(self, batch_size, default):
        if batch_size is None:
            return default
        return check_int("batch_size", batch_size, 1)

    def _forward_chunks(self, X, batch_size):
        """Yield (start, stop, output view) over chunks of X, inference mode."""
        n = X.shape[0]
        bs = min(batch_size, n)
        workspaces = [layer.workspace(bs) for layer in self.layers]
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            H = X[start:stop]
            for layer, ws in zip(self.layers, workspaces):
                H = layer.forward(self.ops, H, ws, stop - start, False, None)
            yield start, stop, H

    def _dense_stack(self):
        """The one-call inference pass of an all-Dense model (None otherwise),
        made once; it reads the weights in place, so it stays current."""
        if not self.built:  # not cached: the model may be built later
            return None
        stack = self.__dict__.get("_stack", False)
        if stack is False:
            from fastnn.layers import Dense

            stack = None
            if all(type(la) is Dense for la in self.layers):
                stack = self.ops.DenseStack(
                    [(la.params["weight"], la.params["bias"], la.activation.name,
                      la.alpha) for la in self.layers])
            self._stack = stack
        return stack

    def predict(self, X, batch_size=None):
        """The last layer's raw outputs, shape (n_samples, n_outputs).

        Thread-safe: each call uses its own buffers and never changes the model.
        """
        stack = self._dense_stack()
        if (stack is not None and batch_size is None and type(X) is np.ndarray
                and X.ndim == 2):
            # Fast path: the stack checks X itself (dtype, shape, layout,
            # finiteness) and declines anything that needs converting or an error.
            out = np.empty((len(X), self.output_dim), self.dtype)
            if stack.forward(X, out):
                return out
        X = self._check_X(X)
        batch_size = self._check_batch_size(batch_size, INFERENCE_BATCH)
        out = np.empty((X.shape[0], self.output_dim), self.dtype)
        for start, stop, H in self._forward_chunks(X, batch_size):
            out[start:stop] = H
        return out

    def _link(self, loss_spec=None):
        spec = loss_spec or (get_loss(self.loss) if self.loss else None)
        return spec.link if spec else "identity"

    def predict_proba(self, X, batch_size=None):
        """``predict`` passed through the training loss's link: softmax for
        cross-entropy, sigmoid for binary cross-entropy, identity otherwise.

        Raises ValueError for a regression model.
        """
        self._require_classifier("predict_proba")
        out = self.predict(X, batch_size)
        link = self._link()
        if link == "softmax":
            self.ops.softmax_forward(out, 1.0, out)
        elif link == "sigmoid":
            self.ops.activation_forward(out, "sigmoid", 0.0, out)
        return out

    def predict_classes(self, X, batch_size=None):
        """Class indices: argmax of the outputs, or ``logit > 0`` for a
        single-output binary cross-entropy model (per column for several,
        unless the model has :attr:`classes`).

        With :attr:`classes`, the class values instead of their indices.
        Raises ValueError for a regression model.
        """
        self._require_classifier("predict_classes")
        out = self.predict(X, batch_size)
        if self.loss and get_loss(self.loss).link == "sigmoid" and (
            out.shape[1] == 1 or self.classes is None
        ):
            idx = (out > 0).astype(np.int64)
            if idx.shape[1] > 1:
                return idx
            idx = idx[:, 0]
        else:
            idx = np.argmax(out, axis=1)
        return idx if self.classes is None else self.classes[idx]

    # -- training -----------------------------------------------------------------
    def _check_targets(self, y, n, spec, name="y"):
        if spec.targets == "labels":
            return check_labels(name, y, n, self.output_dim)
        target = check_targets(name, y, n, self.output_dim, self.dtype)
        if spec.name == "binary_cross_entropy" and (
            (target < 0).any() or (target > 1).any()
        ):
            raise ValueError(f"{name}: binary cross-entropy targets must be in [0, 1]")
        return target

    def penalty(self):
        """The layers' l1/l2 regularization, added to the loss."""
        return sum(layer.penalty() for layer in self.layers)

    def evaluate(self, X, y, loss=None, metrics=("accuracy",), batch_size=None):
        """Mean loss (plus regularization) and metrics on ``(X, y)``.

        ``loss=None`` uses the loss the model was trained with. Metrics:
        ``"accuracy"`` (classification losses), ``"mse"``, ``"mae"``.
        """
        X = self._check_X(X)
        if loss is None:
            if self.loss is None:
                raise ValueError("loss: the model has not been trained; pass a loss")
            loss = self.loss
        spec = get_loss(loss)
        target = self._check_targets(y, X.shape[0], spec)
        metrics = _check_metrics(metrics, spec)
        batch_size = self._check_batch_size(batch_size, INFERENCE_BATCH)
        total = 0.0
        correct = 0
        sq = ab = 0.0
        for start, stop, H in self._forward_chunks(X, batch_size):
            t = target[start:stop]
            total += loss_value(self.ops, spec, H, t) * (stop - start)
            if "accuracy" in metrics:
                correct += _count_correct(spec, H, t)
            if "mse" in metrics or "mae" in metrics:
                diff = H - (t if t.ndim == 2 else t[:, None])
                sq += float(np.square(diff, dtype=np.float64).sum())
                ab += float(np.abs(diff).sum(dtype=np.float64))
        n = X.shape[0]
        result = {"loss": total / n + self.penalty()}
        if "accuracy" in metrics:
            result["accuracy"] = correct / (n * (1 if spec.targets == "labels"
                                                 else self.output_dim))
        if "mse" in metrics:
            result["mse"] = sq / (n * self.output_dim)
        if "mae" in metrics:
            result["mae"] = ab / (n * self.output_dim)
        return result

    def _fit_inputs(self, X, y, spec, validation_data, validation_split,
                    optimizer, batch_size, seed):
        """The checks of ``fit`` that need the built model: the targets, the
        validation data and the training buffers. Changes nothing in the model."""
        target = self._check_targets(y, X.shape[0], spec)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(
                validation_data
            ) != 2:
                raise ValueError("validation_data: must be a pair (X_val, y_val)")
            X_val = check_array("validation_data[0]", validation_data[0], self.dtype,
                                n_features=X.shape[1])
            y_val = self._check_targets(validation_data[1], X_val.shape[0], spec,
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
        else:
            X_val = y_val = None

        runner = _TrainingRun(self, X, target, spec, optimizer, batch_size, seed)
        return target, X, X_val, y_val, runner

    def fit(self, X, y, loss="softmax_cross_entropy", optimizer="adam", epochs=10,
            batch_size=32, shuffle=True, validation_data=None, validation_split=0.0,
            callbacks=None, lr_schedule=None, verbose=1, seed=None):
        """Train on ``(X, y)``; return a :class:`~fastnn.callbacks.History`.

        Minibatches are reshuffled every epoch (``seed`` fixes the order and
        any dropout/noise) and gathered into preallocated buffers. Training
        stops with :class:`TrainingDivergedError`, restoring the last good
        weights, if the loss or the weights become non-finite. Ctrl-C stops at
        the end of the current step, leaves a consistent model and re-raises
        ``KeyboardInterrupt``.

        An optimizer instance belongs to the first model it trains (see
        :class:`~fastnn.optimizers.Optimizer`); a name string makes a fresh
        one. One model trains in one ``fit`` at a time: a second, concurrent
        ``fit`` of the same model raises ``RuntimeError``.
        """
        with _FIT_LOCK:
            if id(self) in _FITTING:
                raise RuntimeError(
                    "fit: this model is busy: another thread is fitting it; "
                    "one model trains in one fit at a time")
            _FITTING.add(id(self))
        try:
            return self._fit(X, y, loss, optimizer, epochs, batch_size, shuffle,
                             validation_data, validation_split, callbacks,
                             lr_schedule, verbose, seed)
        finally:
            with _FIT_LOCK:
                _FITTING.discard(id(self))

    def _fit(self, X, y, loss, optimizer, epochs, batch_size, shuffle,
             validation_data, validation_split, callbacks, lr_schedule, verbose,
             seed):
        # ---- validate everything before touching state ----
        spec = get_loss(loss)
        X = select_features("X", X, self.feature_names)
        names = frame_columns(X) if self.feature_names is None else None
        X = check_array("X", X, self.dtype,
                        n_features=self.input_dim if self.built else None)
        epochs = check_int("epochs", epochs, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        shuffle = check_bool("shuffle", shuffle)
        validation_split = check_float("validation_split", validation_split, 0, 1,
                                       high_open=True)
        verbose = check_int("verbose", verbose, 0, 2)
        seed = _check_seed(seed)
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
        optimizer.check_owner(self)
        schedule = get_schedule(lr_schedule, epochs)
        if validation_data is not None and validation_split:
            raise ValueError("validation_split: give validation_data or "
                             "validation_split, not both")
        # An unbuilt model is built (the labels' range needs the output
        # width) but stays unbuilt, to the world and after a refusal, until
        # every check has passed and the optimizer is bound.
        with self._building(X.shape[1]):
            target, X, X_val, y_val, runner = self._fit_inputs(
                X, y, spec, validation_data, validation_split, optimizer,
                batch_size, seed)
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
            optimizer.bind(self, self._params)
        runner.start()
        self.loss = spec.name
        if names is not None:
            self.feature_names = names
        history = History()
        self.history = history
        history.params.update(epochs=epochs, verbose=verbose)
        self.stop_training = False
        base_lr = optimizer.lr
        if schedule is not None:
            schedule.reset()
        for cb in callbacks:
            cb.on_train_begin(self)
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
                epoch_loss = train_loss + self.penalty()
                if not math.isfinite(epoch_loss) or not np.isfinite(
                    self._params
                ).all():
                    runner.restore()
                    logs = {"loss": epoch_loss}
                    # Every callback hears of it; any one may end fit quietly.
                    if any([cb.on_divergence(self, epoch, logs)
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
                    val = self.evaluate(X_val, y_val, metrics=("accuracy",)
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
                    cb.on_epoch_end(self, epoch, logs)
                if self.stop_training:
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
            cb.on_train_end(self)
        if interrupted:
            raise KeyboardInterrupt("fit interrupted; the model holds the weights "
                                    "of the last completed step")
        return history

    # -- persistence / description ----------------------------------------------
    def save(self, path):
        """Write the model to ``path`` as safetensors (atomically)."""
        from fastnn.io import save

        save(self, path)

    def to_onnx(self, path, link=False):
        """Write the inference graph to ``path`` as ONNX (needs the ``onnx``
        extra); ``link=True`` makes it compute ``predict_proba``. See
        :func:`fastnn.interop.to_onnx`."""
        from fastnn.interop import to_onnx

        return to_onnx(self, path, link)

    def get_config(self):
        return {
            "input_dim": self.input_dim,
            "dtype": np.dtype(self.dtype).name,
            "loss": self.loss,
            "classes": None if self.classes is None else self.classes.tolist(),
            "feature_names": (None if self.feature_names is None
                              else list(self.feature_names)),
            "target_name": self.target_name,
            "layers": [{"type": type(layer).__name__, "config": layer.get_config()}
                       for layer in self.layers],
        }

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts."""
        lines = [f"Sequential (dtype={np.dtype(self.dtype).name}, "
                 f"backend={self.backend})",
                 f"{'layer':<28}{'output':>12}{'params':>12}{'trainable':>11}"]
        total = 0
        for layer in self.layers:
            count = sum(math.prod(s) for _, s in layer.param_shapes()) \
                if self.built else 0
            total += count
            out = f"(None, {layer.n_out})" if self.built else "?"
            lines.append(f"{layer.describe():<28}{out:>12}{count:>12}"
                         f"{str(layer.trainable):>11}")
        lines.append(f"total parameters: {total}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        dim = f", input_dim={self.input_dim}" if self.built else ""
        return (f"Sequential([{inner}]{dim}, "
                f"dtype={np.dtype(self.dtype).name!r})")


def _check_metrics(metrics, spec):
    if metrics is None:
        return ()
    if isinstance(metrics, str):
        metrics = (metrics,)
    if not isinstance(metrics, (list, tuple)):
        raise TypeError("metrics: must be a name, a list of names or None, got "
                        f"{type(metrics).__name__}")
    valid = ("accuracy", "mse", "mae")
    for m in metrics:
        check_choice("metrics", m, valid)
    if "accuracy" in metrics and spec.targets != "labels" and spec.link != "sigmoid":
        metrics = tuple(m for m in metrics if m != "accuracy")
    return tuple(metrics)


def _count_correct(spec, H, t):
    if spec.targets == "labels":
        return int(np.count_nonzero(np.argmax(H, axis=1) == t))
    return int(np.count_nonzero((H > 0) == (t > 0.5)))


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
    """The buffers and the step loop of one ``fit`` call."""

    def __init__(self, model, X, target, spec, optimizer, batch_size, seed):
        self.model = model
        self.ops = model.ops
        self.X = X
        self.target = target
        self.spec = spec
        self.optimizer = optimizer
        self.n = X.shape[0]
        self.bs = bs = min(batch_size, self.n)
        # A batch of one sample has no batch variance (torch refuses it): with
        # a BatchNorm layer, an epoch leaves out a last batch of one sample,
        # a different sample each epoch when shuffling.
        from fastnn.layers import BatchNorm

        self.n_used = self.n
        if any(isinstance(layer, BatchNorm) for layer in model.layers):
            if self.n == 1:
                raise ValueError("X: BatchNorm needs at least 2 samples to train on, "
                                 "got 1")
            if bs == 1:
                raise ValueError("batch_size: BatchNorm needs batches of at least 2 "
                                 "samples, got 1")
            if self.n % bs == 1:
                self.n_used = self.n - 1
        self.rng = np.random.default_rng(seed)
        self.perm = np.arange(self.n, dtype=np.int64)
        self.workspaces = [layer.workspace(bs) for layer in model.layers]
        self.Xb = np.empty((bs, X.shape[1]), model.dtype)
        tshape = (bs,) if target.ndim == 1 else (bs, target.shape[1])
        self.tb = np.empty(tshape, target.dtype)
        self.dOut = np.empty((bs, model.output_dim), model.dtype)
        self.classify = spec.targets == "labels" or spec.link == "sigmoid"
        self.pred = np.empty(bs, np.int64)
        self.hit = np.empty(bs, np.bool_)
        self.runs = model._trainable_runs()
        trainable = [i for i, layer in enumerate(model.layers)
                     if layer.trainable and layer.param_shapes()]
        self.first_trainable = trainable[0] if trainable else len(model.layers)
        self.plan = None  # made by start(), once the optimizer is bound
        self.good_params = model._params.copy()
        self.good_state = [
            {k: v.copy() for k, v in layer.state.items()} for layer in model.layers
        ]

    def start(self):
        """Set up the step loop; called once ``fit``'s checks have passed and
        the optimizer is bound (its state laid out for this model)."""
        self.plan = self._fused_plan() if FUSED else None

    def _fused_plan(self):
        """The one-call-per-chunk step loop, for all-Dense trainable stacks
        trained with SGD, Adam or AdamW without clipping or l1/l2."""
        from fastnn.layers import Dense
        from fastnn.optimizers import SGD, Adam, AdamW

        model, opt = self.model, self.optimizer
        layers = model.layers
        if not all(type(la) is Dense and la.trainable and not (la.l1 or la.l2)
                   for la in layers):
            return None
        if type(opt) not in (SGD, Adam, AdamW) or opt.clip_norm is not None:
            return None
        if type(opt) is SGD:
            name = "sgd"
            hyper = (opt.momentum, opt.dampening, float(opt.nesterov),
                     opt.weight_decay)
            state = (opt.state["momentum_buffer"],)
        else:
            name = "adamw" if type(opt) is AdamW else "adam"
            hyper = (opt.betas[0], opt.betas[1], opt.eps, opt.weight_decay,
                     float(opt.amsgrad))
            state = tuple(opt.state[k] for k in opt.state_names if k in opt.state)
        specs = []
        for i, (layer, ws) in enumerate(zip(layers, self.workspaces)):
            specs.append((layer.params["weight"], layer.params["bias"],
                          layer.grads["weight"], layer.grads["bias"],
                          layer.activation.name, layer.alpha, ws.buffers["Y"],
                          ws.buffers["Z"], ws.buffers["dX"] if i > 0 else None))
        n_params = model._params.size
        # Steps per call: about 2e8 flops, so Ctrl-C and the bar stay responsive.
        self.chunk = max(1, int(2e8 // (6 * self.bs * max(n_params, 1))))
        return self.ops.MLPPlan(self.X, self.target, self.perm, specs, self.Xb,
                                self.tb, self.dOut, self.spec.name, 1.0, name,
                                hyper, model._params, model._grads, state)

    def _fused_epoch(self, n_steps, bar, interrupted):
        opt = self.optimizer
        total, correct, s = 0.0, 0, 0
        while s < n_steps:
            todo = min(self.chunk, n_steps - s)
            loss_sum, hits, done = self.plan.run(s, todo, opt.lr, opt.step_count)
            opt.step_count += done
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

    def restore(self):
        np.copyto(self.model._params, self.good_params)
        for saved, layer in zip(self.good_state, self.model.layers):
            for k, v in layer.state.items():
                np.copyto(v, saved[k])
        self.optimizer.reset()

    def _rows(self, buf, k):
        return buf if k == buf.shape[0] else buf[:k]

    def step(self, idx):
        ops, model = self.ops, self.model
        k = idx.shape[0]
        Xb = self._rows(self.Xb, k)
        tb = self._rows(self.tb, k)
        ops.gather_rows(self.X, idx, Xb)
        if tb.ndim == 1:
            ops.gather_labels(self.target, idx, tb)
        else:
            ops.gather_rows(self.target, idx, tb)
        H = Xb
        for layer, ws in zip(model.layers, self.workspaces):
            H = layer.forward(ops, H, ws, k, True, self.rng)
        d = self._rows(self.dOut, k)
        correct = 0
        if self.classify:
            correct = self._correct(H, tb, k)
        loss = loss_value(ops, self.spec, H, tb, d)
        if not math.isfinite(loss):
            return loss, correct
        first = self.first_trainable
        for i in range(len(model.layers) - 1, first - 1, -1):
            d = model.layers[i].backward(ops, d, self.workspaces[i], k, i > first)
        if self.runs:
            self.optimizer.step(ops, model._params, model._grads, self.runs)
        return loss, correct

    def _correct(self, H, tb, k):
        if self.spec.targets == "labels":
            pred = self._rows(self.pred, k)
            np.argmax(H, axis=1, out=pred)
            hit = self._rows(self.hit, k)
            np.equal(pred, tb, out=hit)
            return int(np.count_nonzero(hit))
        return int(np.count_nonzero((H > 0) == (tb > 0.5)))

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
        total = 0.0
        correct = 0
        try:
            if self.plan is not None:
                total, correct, done = self._fused_epoch(n_steps, bar, interrupted)
                seen = min(done * bs, n)
                if not math.isfinite(total) or interrupted:
                    return (total / max(seen, 1) if math.isfinite(total) else total,
                            None)
                if bar is not None:  # an epoch shorter than mininterval shows its end
                    bar.refresh()
                return self._epoch_result(total, correct)
            for s in range(n_steps):
                start = s * bs
                idx = self.perm[start:start + bs]
                loss, c = self.step(idx)
                if not math.isfinite(loss):
                    return loss, None
                total += loss * idx.shape[0]
                correct += c
                if bar is not None:
                    bar.update(1)
                    if s % 10 == 0:
                        bar.set_postfix(loss=f"{total / (start + idx.shape[0]):.4f}",
                                        refresh=False)
                if interrupted:
                    return total / max(start + idx.shape[0], 1), None
            if bar is not None:  # an epoch shorter than mininterval shows its end
                bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)
                bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        return self._epoch_result(total, correct)

    def _epoch_result(self, total, correct):
        n = self.n_used
        if not self.classify:
            return total / n, None
        denom = n * (1 if self.spec.targets == "labels" else self.target.shape[1])
        return total / n, correct / denom

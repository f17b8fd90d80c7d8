"""The Sequential model: construction, weights, inference, evaluation and
persistence. Training lives in :mod:`fastnn.training`."""

import contextlib
import math
import os

import numpy as np

from fastnn._validation import (
    check_array, check_choice, check_classes, check_dtype, check_feature_names,
    check_int, check_labels, check_seed, check_targets, select_features,
)
from fastnn.layers import Layer
from fastnn.losses import get_loss, loss_value
from fastnn.ops import BACKENDS, get_ops

#: Rows per chunk in predict/evaluate when no batch_size is given.
INFERENCE_BATCH = 4096

#: The most threads ``set_num_threads`` takes.
MAX_THREADS = 256


def set_num_threads(n):
    """Use ``n`` threads (the calling one included) for batch ``predict`` of
    an all-Dense model, from the next call on.

    The default is ``FASTNN_NUM_THREADS`` if set, else the CPUs this process
    may run on. The results are the same bits for every ``n``. Training's
    threads are the BLAS's own (``threadpoolctl`` sets them).
    """
    from fastnn._kernels import stack

    stack.set_threads(check_int("n", n, 1, MAX_THREADS))


def get_num_threads():
    """The threads batch ``predict`` uses (see :func:`set_num_threads`)."""
    from fastnn._kernels import stack

    return stack.get_threads()


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
        self.seed = check_seed(seed)
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
        for layer, nxt in zip(self.layers, self.layers[1:]):
            layer.set_next(nxt)
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
            entries = [layer.stack_entry() for layer in self.layers]
            stack = (self.ops.DenseStack(entries)
                     if all(e is not None for e in entries) else None)
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

    def fit(self, X, y, loss="softmax_cross_entropy", optimizer="adam", epochs=10,
            batch_size=32, shuffle=True, validation_data=None, validation_split=0.0,
            callbacks=None, lr_schedule=None, verbose=1, seed=None,
            sample_weight=None):
        """Train on ``(X, y)``; return a :class:`~fastnn.callbacks.History`.

        ``sample_weight`` (one weight >= 0 per sample, or None) makes each
        minibatch's loss the weighted mean of its samples' losses.

        Minibatches are reshuffled every epoch (``seed`` fixes the order and
        any dropout/noise) and gathered into preallocated buffers. Training
        stops with :class:`~fastnn.training.TrainingDivergedError`, restoring
        the last good weights, if the loss or the weights become non-finite.
        Ctrl-C stops at the end of the current step, leaves a consistent model
        and re-raises ``KeyboardInterrupt``.

        An optimizer instance belongs to the first model it trains (see
        :class:`~fastnn.optimizers.Optimizer`); a name string makes a fresh
        one. One model trains in one ``fit`` at a time: a second, concurrent
        ``fit`` of the same model raises ``RuntimeError``. The run itself is
        :func:`fastnn.training.fit`.
        """
        from fastnn.training import fit

        return fit(self, X, y, loss, optimizer, epochs, batch_size, shuffle,
                   validation_data, validation_split, callbacks, lr_schedule,
                   verbose, seed, sample_weight)

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

    def __getstate__(self):
        # A pickle holds the architecture, the arrays and what fit learned
        # about the data, never the kernels' buffers (as save does in memory).
        state = {"config": self.get_config(), "seed": self.seed,
                 "backend": self.backend, "history": self.history,
                 "arrays": None, "counters": None}
        if self.built:
            state["arrays"] = [{k: v.copy() for k, v in layer.get_arrays().items()}
                               for layer in self.layers]
            state["counters"] = [layer._counters() for layer in self.layers]
        return state

    def __setstate__(self, state):
        from fastnn.layers import LAYERS

        config = state["config"]
        layers = [LAYERS[spec["type"]].from_config(dict(spec["config"]))
                  for spec in config["layers"]]
        self.__init__(layers, input_dim=config["input_dim"], dtype=config["dtype"],
                      seed=state["seed"], backend=state["backend"])
        if state["arrays"] is not None:
            for layer, arrays, counters in zip(self.layers, state["arrays"],
                                               state["counters"]):
                for name, target in layer.get_arrays().items():
                    target[...] = arrays[name]
                for name, value in counters.items():
                    setattr(layer, name, value)
        self.loss = config["loss"]
        if config["classes"] is not None:
            self.classes = np.asarray(config["classes"])
        if config["feature_names"] is not None:
            self.feature_names = tuple(config["feature_names"])
        self.target_name = config["target_name"]
        self.history = state["history"]

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

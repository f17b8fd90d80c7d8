"""Layers: the building blocks of :class:`fastnn.Sequential`.

A layer declares its parameter shapes; the model places every trainable
parameter and its gradient in one flat buffer per model and hands each layer
views into it. Per-batch buffers live in a workspace that the model allocates
once per batch size, so a training step allocates no arrays.

Each layer maps to one or two modules of an equivalent torch
``nn.Sequential`` (a ``Dense`` with an activation is ``Linear`` then the
activation), which fixes the tensor names of a saved model.
"""

import weakref

import numpy as np

from fastnn._validation import check_bool, check_float, check_int
from fastnn.activations import PRELU_INIT, check_alpha, get_activation
from fastnn.initializers import INITIALIZERS, initialize


#: Elements per block in ``Dense.penalty``.
PENALTY_BLOCK = 4096


class Workspace:
    """Per-layer buffers for up to ``n`` rows; ``rows(name, k)`` is the first k."""

    def __init__(self, n, **buffers):
        self.n = n
        self.buffers = buffers
        self._views = {}
        self.X = None

    def rows(self, name, k):
        buf = self.buffers[name]
        if buf is None:
            return None
        if k == buf.shape[0]:
            return buf
        key = (name, k)
        view = self._views.get(key)
        if view is None:
            if len(self._views) > 64:
                self._views.clear()
            view = self._views[key] = buf[:k]
        return view


class Layer:
    """Base class. Subclasses set ``n_out`` in :meth:`build`."""

    #: Modules this layer stands for in an equivalent torch ``nn.Sequential``.
    torch_modules = 1

    def __init__(self, trainable=True):
        self.trainable = check_bool("trainable", trainable)
        Layer.unbuild(self)  # no width, dtype, parameters or state yet
        self._owner = None
        self._carried = None

    # -- ownership -----------------------------------------------------------
    def copy(self):
        """A new layer with this one's configuration (``trainable`` included)
        and, if this one is built, its input width and a copy of its weights
        and state, which the model that takes the copy starts from."""
        layer = type(self).from_config(self.get_config())
        if self._carried is not None:
            layer._carried = self._carried
        elif self.n_in is not None:
            layer._carried = (self.n_in, {k: v.copy() for k, v in
                                          self.get_arrays().items()},
                              self._counters())
        return layer

    def _counters(self):
        """Plain-number state kept with the weights (BatchNorm's batch count)."""
        return {}

    def _adopt(self, model):
        """This layer for ``model``: itself if it is free, else a copy.

        A layer belongs to one model. One that already belongs to another
        (live) model, or that was built by one, is copied with its weights,
        so that the two models never share or overwrite each other's arrays.
        """
        owner = self._owner() if self._owner is not None else None
        layer = self if owner is None and self.n_in is None else self.copy()
        layer._owner = weakref.ref(model)
        return layer

    def _restore_carried(self):
        """After :meth:`build`: start from the weights carried by :meth:`copy`."""
        if self._carried is None:
            return
        _, arrays, counters = self._carried
        for name, target in self.get_arrays().items():
            target[...] = arrays[name]
        for name, value in counters.items():
            setattr(self, name, value)
        self._carried = None
        self._was_carried = True

    def _carry_again(self):
        """Before a model unbuilds a layer that started from carried weights:
        carry them again, so that building anew starts from them."""
        if getattr(self, "_was_carried", False) and self.n_in is not None:
            self._carried = (self.n_in, {k: v.copy() for k, v in
                                         self.get_arrays().items()},
                             self._counters())

    # -- construction -----------------------------------------------------
    def build(self, n_in, dtype):
        """Fix the input width and dtype; return the output width.

        Raises ValueError, before changing anything, for a hyperparameter of
        :meth:`dtype_values` that is not finite in ``dtype``.
        """
        for name, value in self.dtype_values().items():
            with np.errstate(over="ignore", divide="ignore"):
                finite = np.isfinite(np.dtype(dtype).type(value))
            if not finite:
                raise ValueError(
                    f"{name}: {value!r} is not finite in {np.dtype(dtype).name}, "
                    f"so {type(self).__name__} would compute NaN or infinity")
        self.n_in = n_in
        self.dtype = dtype
        self.n_out = n_in
        return self.n_out

    def unbuild(self):
        """Undo :meth:`build` and forget the parameters and state."""
        self.n_in = None
        self.n_out = None
        self.dtype = None
        self.params = {}
        self.grads = {}
        self.state = {}

    def dtype_values(self):
        """``{name: value}`` of the hyperparameters the kernels use in the
        model's dtype (checked finite there by :meth:`build`)."""
        return {}

    def param_shapes(self):
        """``[(name, shape), ...]`` of the trainable parameters, in weight order."""
        return []

    def state_shapes(self):
        """``[(name, shape), ...]`` of non-trainable state saved with the model."""
        return []

    def init_params(self, rng):
        """Fill ``self.params`` (views into the model's flat buffer)."""

    def init_state(self):
        """Allocate and reset ``self.state``."""
        self.state = {}

    def weight_names(self):
        """Names of the arrays ``get_weights`` returns for this layer, in order."""
        return [name for name, _ in self.param_shapes()] + [
            name for name, _ in self.state_shapes()
        ]

    def get_arrays(self):
        arrays = dict(self.params)
        arrays.update(self.state)
        return arrays

    # -- computation -------------------------------------------------------
    def workspace(self, n):
        """Buffers for a batch of up to ``n`` rows."""
        return Workspace(n)

    def forward(self, ops, X, ws, k, training, rng):
        """Return the output for the ``k`` rows of ``X`` (a view into ``ws``)."""
        raise NotImplementedError  # pragma: no cover - every layer overrides

    def backward(self, ops, dY, ws, k, need_dX):
        """Gradients into ``self.grads``; return dX (or None if not needed)."""
        raise NotImplementedError  # pragma: no cover - every layer overrides

    def penalty(self):
        """Regularization added to the loss."""
        return 0.0

    def set_next(self, layer):
        """Told by the model which layer follows this one (``"auto"``
        initialization of a linear Dense reads it)."""

    def stack_entry(self):
        """``(W, b, activation, alpha)`` of this layer in the inference pass of
        a Dense stack (``DenseStack``), or None if it is no such layer."""
        return None

    def plan_op(self):
        """This layer described to the training plan: ``(kind, arrays,
        values)``, the kind and names of
        :data:`fastnn._kernels.codes.LAYER_KINDS`."""
        raise NotImplementedError  # pragma: no cover - every layer overrides

    def _plan_params(self, names):
        """The parameters ``names`` and their gradients (None when frozen)."""
        arrays = {name: self.params[name] for name in names}
        for name in names:
            arrays["grad_" + name] = self.grads[name] if self.trainable else None
        return arrays

    # -- description ---------------------------------------------------------
    def get_config(self):
        return {"trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def describe(self):
        return type(self).__name__

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k != "trainable" or not v)
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer: ``Y = f(X @ W.T + b)``, ``W`` shaped (units, n_in).

    Parameters
    ----------
    units : int
    activation : str or None
        A name from :data:`fastnn.activations.NAMES`; None is identity.
    init : str
        ``"auto"`` (by activation, after Glorot & He) or an initializer name.
    l1, l2 : float
        Penalties ``l1 * sum|W|`` and ``l2/2 * sum W^2`` on the weights (not
        the bias), added to the loss.
    trainable : bool
    gain : float or None, keyword-only
        Overrides the initializer's gain.
    alpha : float or None, keyword-only
        The activation's parameter (leaky_relu slope, elu alpha).
    """

    def __init__(self, units, activation=None, init="auto", l1=0.0, l2=0.0,
                 trainable=True, *, gain=None, alpha=None):
        super().__init__(trainable)
        self.units = check_int("units", units, 1)
        self.activation = get_activation(activation)
        if init != "auto" and init not in INITIALIZERS:
            raise ValueError(
                f"init: unknown initializer {init!r}; valid: auto, "
                + ", ".join(INITIALIZERS)
            )
        self.init = init
        self.gain = None if gain is None else check_float("gain", gain, 0,
                                                          low_open=True)
        self.l1 = check_float("l1", l1, 0)
        self.l2 = check_float("l2", l2, 0)
        self.alpha = check_alpha(self.activation, alpha)
        self.torch_modules = 1 if self.activation.name == "identity" else 2
        # (init, gain) of the nonlinearity a linear Dense feeds, if the next
        # layer is one (PReLU or an Activation); set by Sequential.build.
        self.feeds = None

    def build(self, n_in, dtype):
        super().build(n_in, dtype)
        self.n_out = self.units
        return self.n_out

    def unbuild(self):
        super().unbuild()
        self.feeds = None

    def dtype_values(self):
        return {"alpha": self.alpha}

    def param_shapes(self):
        return [("weight", (self.units, self.n_in)), ("bias", (self.units,))]

    def _init_choice(self):
        if self.init == "auto":
            if self.activation.name == "identity" and self.feeds is not None:
                return self.feeds[0], (self.gain or self.feeds[1])
            return self.activation.init, (self.gain or self.activation.gain)
        return self.init, self.gain

    def init_params(self, rng):
        name, gain = self._init_choice()
        self.params["weight"][...] = initialize(
            name, (self.units, self.n_in), rng=rng, dtype=self.dtype, gain=gain
        )
        self.params["bias"][...] = 0

    def _needs_z(self):
        from fastnn.reference.activations import NEEDS_INPUT

        return self.activation.name in NEEDS_INPUT

    def workspace(self, n):
        z = np.empty((n, self.units), self.dtype) if self._needs_z() else None
        # The penalty's gradient term, written here each step, not allocated.
        reg = (np.empty((self.units, self.n_in), self.dtype)
               if self.l1 or self.l2 else None)
        return Workspace(
            n,
            Y=np.empty((n, self.units), self.dtype),
            Z=z,
            dX=np.empty((n, self.n_in), self.dtype),
            reg=reg,
        )

    def forward(self, ops, X, ws, k, training, rng):
        Y = ws.rows("Y", k)
        ops.dense_forward(X, self.params["weight"], self.params["bias"],
                          self.activation.name, self.alpha, Y, ws.rows("Z", k))
        ws.X = X
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        if not (self.trainable or need_dX):
            return None
        dX = ws.rows("dX", k) if need_dX else None
        dW = self.grads["weight"] if self.trainable else None
        db = self.grads["bias"] if self.trainable else None
        ops.dense_backward(ws.X, self.params["weight"], ws.rows("Z", k),
                           ws.rows("Y", k), dY, self.activation.name, self.alpha,
                           dX, dW, db)
        if self.trainable and (self.l1 or self.l2):
            W, reg = self.params["weight"], ws.buffers["reg"]
            if self.l2:  # d/dW 0.5 l2 |W|^2
                np.multiply(W, self.l2, out=reg)
                dW += reg
            if self.l1:  # d/dW l1 |W|_1, with sign(0) = 0
                np.sign(W, out=reg)
                reg *= self.l1
                dW += reg
        return dX

    def penalty(self):
        if not (self.l1 or self.l2):
            return 0.0
        # Over blocks of W, summed in double: no W-sized temporary (nor a
        # float64 cast buffer), and each dot product small enough that BLAS
        # does not wake its threads for it.
        flat = self.params["weight"].reshape(-1)
        total = 0.0
        for start in range(0, flat.size, PENALTY_BLOCK):
            block = flat[start:start + PENALTY_BLOCK]
            if self.l2:
                total += 0.5 * self.l2 * float(np.dot(block, block))
            if self.l1:
                total += self.l1 * float(np.abs(block).sum())
        return total

    def set_next(self, layer):
        self.feeds = feeds_init(layer)

    def stack_entry(self):
        return (self.params["weight"], self.params["bias"], self.activation.name,
                self.alpha)

    def plan_op(self):
        return ("dense", self._plan_params(("weight", "bias")),
                {"activation": self.activation.name, "alpha": self.alpha,
                 "l1": self.l1, "l2": self.l2, "trainable": self.trainable})

    def get_config(self):
        return {"units": self.units, "activation": self.activation.name,
                "init": self.init, "gain": self.gain, "l1": self.l1, "l2": self.l2,
                "alpha": self.alpha, "trainable": self.trainable}

    def describe(self):
        act = self.activation.name
        return f"Dense({self.units}" + (f", {act})" if act != "identity" else ")")


def feeds_init(layer):
    """The (init, gain) that ``"auto"`` uses for a linear Dense before
    ``layer``, or None when ``layer`` applies no nonlinearity of its own."""
    if isinstance(layer, PReLU):
        return PRELU_INIT
    if isinstance(layer, Activation) and layer.activation is not None:
        if layer.activation.name != "identity":
            return layer.activation.init, layer.activation.gain
    return None


class Activation(Layer):
    """An activation as its own layer; ``"softmax"`` takes a ``temperature``."""

    def __init__(self, name, alpha=None, temperature=1.0):
        super().__init__(True)
        if name == "softmax":
            self.activation = None
        else:
            self.activation = get_activation(name)
        self.name = name
        self.temperature = check_float("temperature", temperature, 0,
                                       low_open=True)
        if self.activation is None:  # softmax
            if alpha is not None:
                raise ValueError("alpha: softmax takes no parameter")
            self.alpha = 0.0
        else:
            self.alpha = check_alpha(self.activation, alpha)

    def dtype_values(self):
        if self.activation is None:  # the kernels scale by 1 / temperature
            return {"temperature": self.temperature,
                    "1 / temperature": 1.0 / self.temperature}
        return {"alpha": self.alpha}

    def workspace(self, n):
        return Workspace(n, Y=np.empty((n, self.n_out), self.dtype),
                         dX=np.empty((n, self.n_in), self.dtype))

    def forward(self, ops, X, ws, k, training, rng):
        Y = ws.rows("Y", k)
        if self.activation is None:
            ops.softmax_forward(X, self.temperature, Y)
        else:
            ops.activation_forward(X, self.activation.name, self.alpha, Y)
        ws.X = X
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        if not need_dX:
            return None
        dX = ws.rows("dX", k)
        Y = ws.rows("Y", k)
        if self.activation is None:
            ops.softmax_backward(Y, dY, self.temperature, dX)
        else:
            ops.activation_backward(ws.X, Y, dY, self.activation.name, self.alpha,
                                    dX)
        return dX

    def plan_op(self):
        if self.activation is None:
            return "softmax", {}, {"temperature": self.temperature}
        return "activation", {}, {"activation": self.activation.name,
                                  "alpha": self.alpha}

    def get_config(self):
        config = {"name": self.name}
        if self.name == "softmax":
            config["temperature"] = self.temperature
        else:
            config["alpha"] = self.alpha
        return config

    def describe(self):
        return f"Activation({self.name})"


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``p`` and
    scale the kept ones by ``1/(1-p)``; at inference, the identity."""

    torch_modules = 1

    def __init__(self, p=0.5):
        super().__init__(True)
        self.p = check_float("p", p, 0, 1, high_open=True)

    def workspace(self, n):
        return Workspace(n, U=np.empty((n, self.n_in), self.dtype),
                         Y=np.empty((n, self.n_in), self.dtype),
                         dX=np.empty((n, self.n_in), self.dtype))

    def forward(self, ops, X, ws, k, training, rng):
        ws.active = training and self.p > 0
        if not ws.active:
            return X
        U = ws.rows("U", k)
        rng.random(out=U, dtype=self.dtype)
        Y = ws.rows("Y", k)
        ops.dropout_forward(X, U, self.p, Y)
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        if not need_dX:
            return None
        if not ws.active:
            return dY
        dX = ws.rows("dX", k)
        ops.dropout_backward(dY, ws.rows("U", k), self.p, dX)
        return dX

    def plan_op(self):
        return "dropout", {}, {"p": self.p}

    def get_config(self):
        return {"p": self.p}


class GaussianNoise(Layer):
    """Adds N(0, std^2) noise to its input in training; identity at inference."""

    def __init__(self, std=0.1):
        super().__init__(True)
        self.std = check_float("std", std, 0)

    def dtype_values(self):
        return {"std": self.std}

    def workspace(self, n):
        return Workspace(n, Y=np.empty((n, self.n_in), self.dtype))

    def forward(self, ops, X, ws, k, training, rng):
        if not training or self.std == 0:
            return X
        Y = ws.rows("Y", k)
        rng.standard_normal(out=Y, dtype=self.dtype)
        Y *= self.std
        Y += X
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        return dY if need_dX else None

    def plan_op(self):
        return "noise", {}, {"std": self.std}

    def get_config(self):
        return {"std": self.std}


class BatchNorm(Layer):
    """Batch normalization over the batch, like torch's ``BatchNorm1d``.

    Training normalizes with the batch mean and biased variance and updates
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased
    variance); inference uses the running statistics. A frozen
    (``trainable=False``) BatchNorm always runs in inference mode.
    """

    def __init__(self, momentum=0.1, eps=1e-5, trainable=True):
        super().__init__(trainable)
        self.momentum = check_float("momentum", momentum, 0, 1)
        self.eps = check_float("eps", eps, 0, low_open=True)

    def dtype_values(self):
        return {"eps": self.eps}

    def param_shapes(self):
        return [("weight", (self.n_in,)), ("bias", (self.n_in,))]

    def state_shapes(self):
        return [("running_mean", (self.n_in,)), ("running_var", (self.n_in,))]

    def init_params(self, rng):
        self.params["weight"][...] = 1
        self.params["bias"][...] = 0

    def init_state(self):
        self.state = {"running_mean": np.zeros(self.n_in, self.dtype),
                      "running_var": np.ones(self.n_in, self.dtype)}
        self.num_batches_tracked = 0

    def unbuild(self):
        super().unbuild()
        self.__dict__.pop("num_batches_tracked", None)

    def _counters(self):
        return {"num_batches_tracked": self.num_batches_tracked}

    def workspace(self, n):
        d = self.n_in
        ws = Workspace(n, Y=np.empty((n, d), self.dtype),
                       dX=np.empty((n, d), self.dtype))
        ws.mean = np.empty(d, self.dtype)
        ws.invstd = np.empty(d, self.dtype)
        return ws

    def forward(self, ops, X, ws, k, training, rng):
        Y = ws.rows("Y", k)
        ws.train_mode = training and self.trainable
        if ws.train_mode:
            ops.batchnorm_forward_train(
                X, self.params["weight"], self.params["bias"], self.eps,
                self.momentum, Y, ws.mean, ws.invstd,
                self.state["running_mean"], self.state["running_var"])
            self.num_batches_tracked += 1
        else:
            ops.batchnorm_forward_infer(
                X, self.params["weight"], self.params["bias"],
                self.state["running_mean"], self.state["running_var"], self.eps, Y)
        ws.X = X
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        if not ws.train_mode:
            # Frozen: y = a * x + c with constant a; no parameter gradients.
            if not need_dX:
                return None
            dX = ws.rows("dX", k)
            scale = self.params["weight"] / np.sqrt(self.state["running_var"]
                                                    + self.eps)
            np.multiply(dY, scale, out=dX)
            return dX
        dX = ws.rows("dX", k)
        ops.batchnorm_backward(ws.X, dY, self.params["weight"],
                               ws.mean, ws.invstd,
                               dX, self.grads["weight"], self.grads["bias"])
        return dX if need_dX else None

    def plan_op(self):
        arrays = self._plan_params(("weight", "bias"))
        arrays.update(self.state)
        return ("batchnorm", arrays, {"eps": self.eps, "momentum": self.momentum,
                                      "trainable": self.trainable})

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps,
                "trainable": self.trainable}


class PReLU(Layer):
    """``f(x) = max(0, x) + a * min(0, x)`` with a learnable slope ``a``.

    ``num_parameters=1`` shares one slope (torch's default); ``"all"`` learns
    one per feature.
    """

    def __init__(self, num_parameters=1, init=0.25, trainable=True):
        super().__init__(trainable)
        if num_parameters != "all":
            num_parameters = check_int("num_parameters", num_parameters, 1, 1)
        self.num_parameters = num_parameters
        self.init = check_float("init", init)

    def dtype_values(self):
        return {"init": self.init}

    def _n_slopes(self):
        return self.n_in if self.num_parameters == "all" else 1

    def param_shapes(self):
        return [("weight", (self._n_slopes(),))]

    def init_params(self, rng):
        self.params["weight"][...] = self.init

    def workspace(self, n):
        ws = Workspace(n, Y=np.empty((n, self.n_in), self.dtype),
                       dX=np.empty((n, self.n_in), self.dtype))
        ws.da = np.empty(self._n_slopes(), self.dtype)
        return ws

    def forward(self, ops, X, ws, k, training, rng):
        Y = ws.rows("Y", k)
        ops.prelu_forward(X, self.params["weight"], Y)
        ws.X = X
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        dX = ws.rows("dX", k)
        da = self.grads["weight"] if self.trainable else ws.da
        ops.prelu_backward(ws.X, self.params["weight"], dY, dX, da)
        return dX if need_dX else None

    def plan_op(self):
        return "prelu", self._plan_params(("weight",)), {"trainable": self.trainable}

    def get_config(self):
        return {"num_parameters": self.num_parameters, "init": self.init,
                "trainable": self.trainable}


class Maxout(Layer):
    """Maxout: ``units`` outputs, each the max of ``pieces`` affine pieces.

    Unit ``j`` is the max of rows ``j*pieces ... j*pieces + pieces - 1`` of
    ``X @ W.T + b``, with ``W`` shaped ``(units * pieces, n_in)``.
    """

    def __init__(self, units, pieces=2, init="glorot_uniform", trainable=True):
        super().__init__(trainable)
        self.units = check_int("units", units, 1)
        self.pieces = check_int("pieces", pieces, 1)
        if init not in INITIALIZERS:
            raise ValueError(
                f"init: unknown initializer {init!r}; valid: {', '.join(INITIALIZERS)}"
            )
        self.init = init

    def build(self, n_in, dtype):
        super().build(n_in, dtype)
        self.n_out = self.units
        return self.n_out

    def param_shapes(self):
        m = self.units * self.pieces
        return [("weight", (m, self.n_in)), ("bias", (m,))]

    def init_params(self, rng):
        m = self.units * self.pieces
        self.params["weight"][...] = initialize(self.init, (m, self.n_in), rng=rng,
                                                dtype=self.dtype)
        self.params["bias"][...] = 0

    def workspace(self, n):
        m = self.units * self.pieces
        return Workspace(n, Z=np.empty((n, m), self.dtype),
                         Y=np.empty((n, self.units), self.dtype),
                         argmax=np.empty((n, self.units), np.int64),
                         dZ=np.empty((n, m), self.dtype),
                         dX=np.empty((n, self.n_in), self.dtype))

    def forward(self, ops, X, ws, k, training, rng):
        Z = ws.rows("Z", k)
        Y = ws.rows("Y", k)
        ops.dense_forward(X, self.params["weight"], self.params["bias"],
                          "identity", 0.0, Z)
        ops.maxout_forward(Z, self.pieces, Y, ws.rows("argmax", k))
        ws.X = X
        return Y

    def backward(self, ops, dY, ws, k, need_dX):
        if not (self.trainable or need_dX):
            return None
        dZ = ws.rows("dZ", k)
        ops.maxout_backward(dY, ws.rows("argmax", k), self.pieces, dZ)
        dX = ws.rows("dX", k) if need_dX else None
        dW = self.grads["weight"] if self.trainable else None
        db = self.grads["bias"] if self.trainable else None
        ops.dense_backward(ws.X, self.params["weight"], None, None, dZ,
                           "identity", 0.0, dX, dW, db)
        return dX

    def plan_op(self):
        return ("maxout", self._plan_params(("weight", "bias")),
                {"pieces": self.pieces, "trainable": self.trainable})

    def get_config(self):
        return {"units": self.units, "pieces": self.pieces, "init": self.init,
                "trainable": self.trainable}


LAYERS = {cls.__name__: cls for cls in
          (Dense, Activation, Dropout, GaussianNoise, BatchNorm, PReLU, Maxout)}

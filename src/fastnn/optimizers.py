"""Optimizers with torch.optim's argument names, defaults and update rules.

Each optimizer updates the model's flat parameter buffer in place with one
kernel call per contiguous run of trainable parameters (one call in all when
every layer is trainable). The update rules are in the kernels
(:mod:`fastnn._kernels.optim`) and their NumPy twins.
"""

import copy
import math
import numbers
import threading
import weakref

import numpy as np

from fastnn._validation import check_bool, check_choice, check_float


def _check_hyper(value, label, ok):
    """A finite real hyperparameter for which ``ok(value)`` holds, as ``float``.

    The messages are torch.optim's: ``ValueError("Invalid learning rate: -1")``;
    a value that is not a real number is a ``TypeError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid {label}: {value!r} (must be a real number)")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"Invalid {label}: {value}")
    return float(value)


def _check_lr(lr):
    return _check_hyper(lr, "learning rate", lambda v: v >= 0)


def _check_eps(eps):
    return _check_hyper(eps, "epsilon value", lambda v: v >= 0)


def _check_wd(weight_decay):
    return _check_hyper(weight_decay, "weight_decay value", lambda v: v >= 0)


def _check_nonnegative(name, value):
    return _check_hyper(value, f"{name} value", lambda v: v >= 0)


def _check_betas(betas):
    if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r} (need two numbers)")
    return tuple(_check_hyper(b, f"beta parameter at index {i}",
                              lambda v: 0.0 <= v < 1.0)
                 for i, b in enumerate(betas))


#: Guards the binding of an optimizer to its model across threads.
_BIND_LOCK = threading.Lock()


class Optimizer:
    """Base class: validated hyperparameters, lazily allocated state.

    ``clip_norm``, if given, rescales the gradients before each step so that
    their global L2 norm is at most ``clip_norm`` (torch's
    ``clip_grad_norm_``).

    **An optimizer instance belongs to the first model it trains.** The
    first ``fit`` that passes all its checks binds the instance to its
    model; its state (moments, step count) then carries over from one
    ``fit`` of that model to the next. Passing the instance to ``fit`` of
    another model raises ``ValueError``: pass a new instance, or a name
    string such as ``"adam"``, which makes a fresh optimizer for each
    ``fit``. This is Keras's rule (an optimizer is built for one set of
    variables), and torch's, which binds an optimizer to the parameters it
    was given. A ``fit`` refused by its checks leaves the optimizer
    untouched. :meth:`fresh` gives an unbound copy without state (as
    :func:`fastnn.model_selection.cross_validate` does for each fold).

    Changing a hyperparameter between two ``fit`` calls of the same model
    is allowed. When it changes the state's layout (Adam's ``amsgrad``), the
    next ``fit`` re-lays the state out: arrays still needed are kept, a new
    one starts as on the first step (zeros; AMSGrad's running maximum starts
    from the current second moment ``exp_avg_sq``), and one no longer needed
    is dropped.
    """

    #: Names of the state arrays, each shaped like the flat parameter buffer.
    state_names = ()

    def __init__(self, lr, clip_norm=None):
        self.lr = _check_lr(lr)
        self.clip_norm = (None if clip_norm is None else
                          check_float("clip_norm", clip_norm, 0, low_open=True))
        self.step_count = 0
        self.state = None
        self._owner = None

    def _layout(self):
        """The state arrays the current hyperparameters need, in order."""
        return self.state_names

    def _new_state(self, name, params):
        """A fresh state array ``name`` shaped like ``params``."""
        return np.zeros_like(params)

    def _allocate(self, params):
        """Lay the state out for ``params``: keep the arrays that still fit,
        create the missing ones, drop the ones no longer needed."""
        old = self.state or {}
        if any(v.shape != params.shape or v.dtype != params.dtype
               for v in old.values()):
            self.reset()
            old = {}
        self.state = {}
        for name in self._layout():
            self.state[name] = (old[name] if name in old
                                else self._new_state(name, params))

    def reset(self):
        """Forget all state (moments, step count)."""
        self.step_count = 0
        self.state = None

    def fresh(self):
        """A copy with the same hyperparameters, no state, bound to no model."""
        clone = copy.copy(self)
        clone.__dict__ = {k: copy.deepcopy(v) for k, v in vars(self).items()
                          if k not in ("state", "_owner")}
        clone._owner = None
        clone.reset()
        return clone

    def __getstate__(self):
        # A pickled or deep-copied optimizer is a new instance: bound to no
        # model (the binding is a weak reference, which does not pickle).
        state = dict(vars(self))
        state["_owner"] = None
        return state

    def check_owner(self, model):
        """Raise ValueError if this instance belongs to a model other than
        ``model``."""
        owner = self._owner
        if owner is not None and owner() is not model:
            raise ValueError(
                f"optimizer: this {type(self).__name__} instance already trains "
                "another model, and an optimizer's state belongs to one model; "
                f"pass a new instance ({type(self).__name__}(...)) or a name "
                f"string ({type(self).__name__.lower()!r}) to fit")

    def bind(self, model, params):
        """Make ``model`` this instance's owner (refusing another's) and lay
        the state out for its flat parameter buffer ``params``."""
        with _BIND_LOCK:
            self.check_owner(model)
            self._owner = weakref.ref(model)
        self._allocate(params)

    def step(self, ops, params, grads, runs):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        ops : the kernel backend
        params, grads : ndarray of shape (n_params,)
        runs : list of (start, stop)
            The contiguous trainable ranges of the flat buffers.
        """
        if self.state is None or set(self.state) != set(self._layout()) or any(
            v.shape != params.shape for v in self.state.values()
        ):
            self._allocate(params)
        self.step_count += 1
        if self.clip_norm is not None:
            if len(runs) == 1:
                s, e = runs[0]
                ops.clip_grad_norm(grads[s:e], self.clip_norm)
            else:
                total = math.sqrt(sum(ops.global_norm(grads[s:e]) ** 2
                                      for s, e in runs))
                coef = self.clip_norm / (total + 1e-6)
                if not coef >= 1:  # NaN norm: NaN everywhere, as torch
                    for s, e in runs:
                        grads[s:e] *= coef
        for s, e in runs:
            self._update(ops, grads[s:e], params[s:e],
                         {k: v[s:e] for k, v in self.state.items()})

    def _update(self, ops, grad, param, state):
        raise NotImplementedError  # pragma: no cover - every optimizer overrides

    def get_config(self):
        config = {k: v for k, v in vars(self).items()
                  if k not in ("state", "step_count") and not k.startswith("_")}
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD).

    ``g = grad + weight_decay * p``; with momentum,
    ``buf = momentum * buf + (1 - dampening) * g`` (``buf = g`` on the first
    step) and ``g = g + momentum * buf`` (nesterov) or ``g = buf``;
    ``p -= lr * g``.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.momentum = _check_nonnegative("momentum", momentum)
        self.dampening = check_float("dampening", dampening)
        self.weight_decay = _check_wd(weight_decay)
        self.nesterov = check_bool("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, ops, grad, param, state):
        ops.sgd_update(grad, self.lr, self.momentum, self.dampening, self.nesterov,
                       self.weight_decay, self.step_count, param,
                       state["momentum_buffer"])


class AdaGrad(Optimizer):
    """AdaGrad (torch.optim.Adagrad), plus ``decay`` for a leaky accumulator.

    ``clr = lr / (1 + (t - 1) * lr_decay)``; ``g = grad + weight_decay * p``;
    ``sum = decay * sum + g^2``; ``p -= clr * g / (sqrt(sum) + eps)``, with
    ``sum`` starting at ``initial_accumulator_value``. ``decay=1`` is torch's
    rule.
    """

    state_names = ("sum",)

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, decay=1.0,
                 clip_norm=None):
        super().__init__(lr, clip_norm)
        self.lr_decay = _check_nonnegative("lr_decay", lr_decay)
        self.weight_decay = _check_wd(weight_decay)
        self.initial_accumulator_value = _check_nonnegative(
            "initial_accumulator_value", initial_accumulator_value)
        self.eps = _check_eps(eps)
        self.decay = check_float("decay", decay, 0, 1, low_open=True)

    def _new_state(self, name, params):
        return np.full_like(params, self.initial_accumulator_value)

    def _update(self, ops, grad, param, state):
        ops.adagrad_update(grad, self.lr, self.lr_decay, self.weight_decay, self.eps,
                           self.decay, self.step_count, param, state["sum"])


class RMSProp(Optimizer):
    """RMSProp (torch.optim.RMSprop): ``v = alpha v + (1 - alpha) g^2``;
    ``p -= lr * g / (sqrt(v) + eps)`` (centered: ``v - mean(g)^2``), with
    optional momentum on the scaled step."""

    state_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, centered=False, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.alpha = _check_nonnegative("alpha", alpha)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)
        self.momentum = _check_nonnegative("momentum", momentum)
        self.centered = check_bool("centered", centered)

    def _update(self, ops, grad, param, state):
        ops.rmsprop_update(grad, self.lr, self.alpha, self.eps, self.weight_decay,
                           self.momentum, self.centered, param, state["square_avg"],
                           state["momentum_buffer"], state["grad_avg"])


class AdaDelta(Optimizer):
    """AdaDelta (torch.optim.Adadelta): ``v = rho v + (1 - rho) g^2``;
    ``d = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho u + (1 - rho) d^2``;
    ``p -= lr * d``."""

    state_names = ("square_avg", "acc_delta")

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.rho = _check_hyper(rho, "rho value", lambda v: 0.0 <= v <= 1.0)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)

    def _update(self, ops, grad, param, state):
        ops.adadelta_update(grad, self.lr, self.rho, self.eps, self.weight_decay,
                            param, state["square_avg"], state["acc_delta"])


class Adam(Optimizer):
    """Adam (torch.optim.Adam), coupled weight decay, optional AMSGrad.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _kernel = "adam_update"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.betas = _check_betas(betas)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)
        self.amsgrad = check_bool("amsgrad", amsgrad)

    def _layout(self):
        return self.state_names if self.amsgrad else self.state_names[:2]

    def _new_state(self, name, params):
        if name == "max_exp_avg_sq" and self.state and "exp_avg_sq" in self.state:
            return self.state["exp_avg_sq"].copy()
        return np.zeros_like(params)

    def _update(self, ops, grad, param, state):
        getattr(ops, self._kernel)(
            grad, self.lr, self.betas[0], self.betas[1], self.eps,
            self.weight_decay, self.amsgrad, self.step_count, param,
            state["exp_avg"], state["exp_avg_sq"],
            state.get("max_exp_avg_sq", state["exp_avg_sq"]))


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): ``p *= 1 - lr * weight_decay`` (decoupled),
    then the Adam step without coupled decay."""

    _kernel = "adamw_update"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, clip_norm=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, clip_norm)


class NAdam(Optimizer):
    """NAdam (torch.optim.NAdam) with ``momentum_decay``:
    ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``; Nesterov-corrected Adam step."""

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.betas = _check_betas(betas)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)
        self.momentum_decay = _check_nonnegative("momentum_decay", momentum_decay)
        self._mu_product = 1.0

    def reset(self):
        super().reset()
        self._mu_product = 1.0

    def step(self, ops, params, grads, runs):
        self._mu_start = self._mu_product
        super().step(ops, params, grads, runs)

    def _update(self, ops, grad, param, state):
        # Every run starts from the same mu_product; all return the same next one.
        self._mu_product = ops.nadam_update(
            grad, self.lr, self.betas[0], self.betas[1], self.eps,
            self.weight_decay, self.momentum_decay, self.step_count,
            self._mu_start, param, state["exp_avg"], state["exp_avg_sq"])


OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSProp,
              "adadelta": AdaDelta, "adam": Adam, "adamw": AdamW, "nadam": NAdam}


def get_optimizer(optimizer, **kwargs):
    """An optimizer instance from a name (``"adam"``) or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer.lower(), OPTIMIZERS)
        return OPTIMIZERS[optimizer.lower()](**kwargs)
    raise TypeError(
        f"optimizer: must be a name ({', '.join(OPTIMIZERS)}) or an Optimizer, "
        f"got {type(optimizer).__name__}"
    )

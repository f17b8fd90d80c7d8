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
    r"""Base class of the optimizers: hyperparameters, state, gradient clipping.

    Every optimizer keeps one step count ``t`` (``step_count``), shared by
    all parameters, and state arrays shaped like the model's flat parameter
    buffer, allocated before the first step. Each step is::

        t <- t + 1
        if clip_norm is not None:
            n_t <- sqrt(sum of g_t^2 over all trainable parameters)
            if not clip_norm / (n_t + 1e-6) >= 1:
                g_t <- g_t * clip_norm / (n_t + 1e-6)
        the subclass's update of p from g_t

    The clipping is torch's ``clip_grad_norm_(params, clip_norm)`` over all
    trainable parameters together: ``n_t`` is accumulated in float64; a
    NaN norm makes every gradient NaN and an infinite one multiplies them
    by 0, as in torch. The
    subclasses' algorithms write this as ``g_t <- clip(g_t)``.

    Against ``torch.optim``, fastnn has no ``maximize``, ``foreach``,
    ``fused``, ``capturable`` or ``differentiable`` and no parameter groups;
    the update rules and defaults are torch's, except where a subclass says
    otherwise.

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

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together so
        that their L2 norm is at most ``clip_norm``, as above.

    References
    ----------
    .. [1] R. Pascanu, T. Mikolov and Y. Bengio, "On the difficulty of
       training recurrent neural networks", ICML 2013 (gradient norm
       clipping).
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

    def plan_spec(self):
        """This optimizer described to the training plan (``TrainPlan``): its
        name, hyperparameters by name (:data:`fastnn._kernels.codes.OPTIMIZERS`
        gives the order), state arrays, scalar state and ``clip_norm``. The
        plan updates the state in place; the caller counts the steps."""
        return {"name": self.plan_name, "hyper": self.plan_hyper(),
                "state": dict(self.state), "scalars": None,
                "clip_norm": self.clip_norm}

    def plan_hyper(self):
        """The hyperparameters of the update, by the plan's names."""
        raise NotImplementedError  # pragma: no cover - every optimizer overrides

    def get_config(self):
        config = {k: v for k, v in vars(self).items()
                  if k not in ("state", "step_count") and not k.startswith("_")}
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional (Nesterov) momentum.

    The update is torch.optim.SGD's. Algorithm, per step ``t = 1, 2, ...``
    (``t`` counts the steps since construction or :meth:`reset`)::

        input:  lr, momentum mu, dampening tau, weight_decay lambda,
                nesterov, parameters p_0, gradients g_t
        state:  momentum_buffer b (zeros)

        g_t <- clip(g_t)
        g_t <- g_t + lambda * p_{t-1}
        if mu != 0:
            if t = 1:  b_t <- g_t
            else:      b_t <- mu * b_{t-1} + (1 - tau) * g_t
            if nesterov:  g_t <- g_t + mu * b_t
            else:         g_t <- b_t
        p_t <- p_{t-1} - lr * g_t

    Unlike torch, which starts the buffer with a copy of ``g`` whenever it
    has none, fastnn starts it at step 1 only: if ``momentum`` is switched
    on after step 1, its buffer starts at zero, so its first step uses
    ``b_t = (1 - tau) * g_t``.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, >= 0.
    momentum : float, default 0.0
        Momentum factor ``mu``, >= 0; 0 is plain SGD.
    dampening : float, default 0.0
        Dampening ``tau`` of the gradient's share in the momentum buffer.
    weight_decay : float, default 0.0
        L2 penalty ``lambda``, >= 0, added to the gradient (coupled).
    nesterov : bool, default False
        Nesterov momentum (Sutskever et al.'s form); needs
        ``momentum > 0`` and ``dampening == 0``.
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the
       importance of initialization and momentum in deep learning",
       ICML 2013 (Nesterov momentum).
    """

    plan_name = "sgd"
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

    def plan_hyper(self):
        return {"momentum": self.momentum, "dampening": self.dampening,
                "nesterov": float(self.nesterov), "weight_decay": self.weight_decay,
                "velocity": 0.0}


class AdaGrad(Optimizer):
    r"""AdaGrad: per-coordinate step sizes from the sum of squared gradients.

    torch.optim.Adagrad's update, plus ``decay``, which fastnn adds: an
    accumulator that forgets. Algorithm, per step ``t = 1, 2, ...``::

        input:  lr, lr_decay eta, weight_decay lambda, eps,
                initial_accumulator_value s_0, decay rho,
                parameters p_0, gradients g_t
        state:  sum s (filled with s_0)

        g_t <- clip(g_t)
        g_t <- g_t + lambda * p_{t-1}
        clr <- lr / (1 + (t - 1) * eta)
        s_t <- rho * s_{t-1} + g_t^2
        p_t <- p_{t-1} - clr * g_t / (sqrt(s_t) + eps)

    ``eps`` is added after the square root. The default ``decay=1.0`` is
    torch's rule exactly; torch has no ``decay``, and with ``decay < 1``
    the update differs from torch's (it is not RMSProp either: ``g_t^2``
    keeps weight 1).

    Parameters
    ----------
    lr : float, default 1e-2
        Learning rate, >= 0.
    lr_decay : float, default 0.0
        Learning-rate decay ``eta``, >= 0: step ``t`` uses
        ``lr / (1 + (t - 1) * lr_decay)``.
    weight_decay : float, default 0.0
        L2 penalty ``lambda``, >= 0, added to the gradient (coupled).
    initial_accumulator_value : float, default 0.0
        Starting value ``s_0``, >= 0, of every entry of the sum.
    eps : float, default 1e-10
        Added to ``sqrt(s_t)`` in the denominator, >= 0.
    decay : float, default 1.0
        Factor ``rho`` in (0, 1] on the old sum at each step (not in torch;
        1 is torch's rule).
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] J. Duchi, E. Hazan and Y. Singer, "Adaptive Subgradient Methods
       for Online Learning and Stochastic Optimization", JMLR 12,
       2121-2159, 2011.
    """

    plan_name = "adagrad"
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

    def plan_hyper(self):
        return {"lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "eps": self.eps, "decay": self.decay}


class RMSProp(Optimizer):
    r"""RMSProp: divide the gradient by a running root mean square.

    The update is torch.optim.RMSprop's. Algorithm, per step
    ``t = 1, 2, ...``::

        input:  lr, alpha, eps, weight_decay lambda, momentum mu,
                centered, parameters p_0, gradients g_t
        state:  square_avg v, grad_avg a, momentum_buffer b (zeros)

        g_t <- clip(g_t)
        g_t <- g_t + lambda * p_{t-1}
        v_t <- alpha * v_{t-1} + (1 - alpha) * g_t^2
        if centered:
            a_t <- a_{t-1} + (1 - alpha) * (g_t - a_{t-1})
            d_t <- sqrt(v_t - a_t^2) + eps
        else:
            d_t <- sqrt(v_t) + eps
        if mu > 0:
            b_t <- mu * b_{t-1} + g_t / d_t
            p_t <- p_{t-1} - lr * b_t
        else:
            p_t <- p_{t-1} - lr * g_t / d_t

    ``eps`` is added after the square root. ``v`` and ``a`` carry no bias
    correction.

    Parameters
    ----------
    lr : float, default 1e-2
        Learning rate, >= 0.
    alpha : float, default 0.99
        Smoothing constant of the running averages, >= 0.
    eps : float, default 1e-8
        Added to the root mean square in the denominator, >= 0.
    weight_decay : float, default 0.0
        L2 penalty ``lambda``, >= 0, added to the gradient (coupled).
    momentum : float, default 0.0
        Momentum factor ``mu``, >= 0, on the scaled step ``g_t / d_t``.
    centered : bool, default False
        Divide by an estimate of the gradient's variance,
        ``v_t - a_t^2``, instead of its raw second moment.
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] T. Tieleman and G. Hinton, "Lecture 6e - rmsprop: Divide the
       gradient by a running average of its recent magnitude", COURSERA:
       Neural Networks for Machine Learning, 2012.
    .. [2] A. Graves, "Generating Sequences With Recurrent Neural
       Networks", arXiv:1308.0850, 2013 (the centered variant).
    """

    plan_name = "rmsprop"
    state_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, centered=False, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.alpha = _check_nonnegative("alpha", alpha)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)
        self.momentum = _check_nonnegative("momentum", momentum)
        self.centered = check_bool("centered", centered)

    def plan_hyper(self):
        return {"alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": float(self.centered)}


class AdaDelta(Optimizer):
    r"""AdaDelta: steps scaled by running averages of squared steps and gradients.

    The update is torch.optim.Adadelta's. Algorithm, per step
    ``t = 1, 2, ...``::

        input:  lr, rho, eps, weight_decay lambda,
                parameters p_0, gradients g_t
        state:  square_avg v, acc_delta u (zeros)

        g_t <- clip(g_t)
        g_t <- g_t + lambda * p_{t-1}
        v_t <- rho * v_{t-1} + (1 - rho) * g_t^2
        D_t <- sqrt(u_{t-1} + eps) / sqrt(v_t + eps) * g_t
        u_t <- rho * u_{t-1} + (1 - rho) * D_t^2
        p_t <- p_{t-1} - lr * D_t

    ``eps`` sits inside both square roots.

    Parameters
    ----------
    lr : float, default 1.0
        Learning rate, >= 0, scaling ``D_t``.
    rho : float, default 0.9
        Decay of the running averages, in [0, 1].
    eps : float, default 1e-6
        Added inside both square roots, >= 0.
    weight_decay : float, default 0.0
        L2 penalty ``lambda``, >= 0, added to the gradient (coupled).
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method",
       arXiv:1212.5701, 2012.
    """

    plan_name = "adadelta"
    state_names = ("square_avg", "acc_delta")

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.rho = _check_hyper(rho, "rho value", lambda v: 0.0 <= v <= 1.0)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)

    def plan_hyper(self):
        return {"rho": self.rho, "eps": self.eps, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    r"""Adam: adaptive moment estimation, with optional AMSGrad.

    The update is torch.optim.Adam's (with ``decoupled_weight_decay=False``;
    for decoupled decay use :class:`AdamW`). Algorithm, per step
    ``t = 1, 2, ...``::

        input:  lr, betas (beta1, beta2), eps, weight_decay lambda,
                amsgrad, parameters p_0, gradients g_t
        state:  exp_avg m, exp_avg_sq v (zeros);
                max_exp_avg_sq v_max (with amsgrad; zeros)

        g_t <- clip(g_t)
        g_t <- g_t + lambda * p_{t-1}
        m_t <- m_{t-1} + (1 - beta1) * (g_t - m_{t-1})
        v_t <- beta2 * v_{t-1} + (1 - beta2) * g_t^2
        if amsgrad:
            v_max_t <- max(v_max_{t-1}, v_t)
            v_hat <- v_max_t
        else:
            v_hat <- v_t
        p_t <- p_{t-1} - lr / (1 - beta1^t) * m_t
                         / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

    ``m_t`` is ``beta1 * m_{t-1} + (1 - beta1) * g_t``, computed as torch's
    ``lerp``. ``eps`` is added after the bias correction of ``sqrt(v_hat)``,
    as in the paper's Algorithm 1 (not its faster variant, which adds
    ``eps`` to the uncorrected ``sqrt(v_t)``). If ``amsgrad`` is switched
    on after some steps, ``v_max`` starts from the current ``v``.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : tuple of float, default (0.9, 0.999)
        ``(beta1, beta2)``, each in [0, 1): decay of the first and second
        moment estimates.
    eps : float, default 1e-8
        Added to the bias-corrected ``sqrt(v_hat)`` in the denominator,
        >= 0.
    weight_decay : float, default 0.0
        L2 penalty ``lambda``, >= 0, added to the gradient (coupled).
    amsgrad : bool, default False
        Use the running maximum of ``v`` (AMSGrad).
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: A Method for Stochastic
       Optimization", ICLR 2015, arXiv:1412.6980.
    .. [2] S. J. Reddi, S. Kale and S. Kumar, "On the Convergence of Adam
       and Beyond", ICLR 2018 (AMSGrad).
    """

    plan_name = "adam"
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

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

    def plan_hyper(self):
        return {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": float(self.amsgrad),
                "eps_uncorrected": 0.0}


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay.

    The update is torch.optim.AdamW's. Algorithm, per step
    ``t = 1, 2, ...``::

        input:  lr, betas (beta1, beta2), eps, weight_decay lambda,
                amsgrad, parameters p_0, gradients g_t
        state:  exp_avg m, exp_avg_sq v (zeros);
                max_exp_avg_sq v_max (with amsgrad; zeros)

        g_t <- clip(g_t)
        p_{t-1} <- p_{t-1} * (1 - lr * lambda)
        m_t <- m_{t-1} + (1 - beta1) * (g_t - m_{t-1})
        v_t <- beta2 * v_{t-1} + (1 - beta2) * g_t^2
        if amsgrad:
            v_max_t <- max(v_max_{t-1}, v_t)
            v_hat <- v_max_t
        else:
            v_hat <- v_t
        p_t <- p_{t-1} - lr / (1 - beta1^t) * m_t
                         / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

    The decay multiplies the parameters before the Adam step and never
    enters ``m`` or ``v``; it is scaled by ``lr`` (torch's form; the paper
    scales it by the schedule multiplier only). Otherwise as :class:`Adam`.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : tuple of float, default (0.9, 0.999)
        ``(beta1, beta2)``, each in [0, 1): decay of the first and second
        moment estimates.
    eps : float, default 1e-8
        Added to the bias-corrected ``sqrt(v_hat)`` in the denominator,
        >= 0.
    weight_decay : float, default 1e-2
        Decoupled decay ``lambda``, >= 0: ``p *= 1 - lr * weight_decay``
        at each step.
    amsgrad : bool, default False
        Use the running maximum of ``v`` (AMSGrad).
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] I. Loshchilov and F. Hutter, "Decoupled Weight Decay
       Regularization", ICLR 2019, arXiv:1711.05101.
    .. [2] D. P. Kingma and J. Ba, "Adam: A Method for Stochastic
       Optimization", ICLR 2015, arXiv:1412.6980.
    """

    plan_name = "adamw"


    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, clip_norm=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, clip_norm)


class NAdam(Optimizer):
    r"""NAdam: Adam with Nesterov momentum and a warming momentum schedule.

    The update is torch.optim.NAdam's (with
    ``decoupled_weight_decay=False``, which fastnn does not offer).
    Algorithm, per step ``t = 1, 2, ...``::

        input:  lr, betas (beta1, beta2), eps, weight_decay lambda,
                momentum_decay psi, parameters p_0, gradients g_t
        state:  exp_avg m, exp_avg_sq v (zeros); mu_product pi_0 = 1

        g_t <- clip(g_t)
        g_t <- g_t + lambda * p_{t-1}
        mu_t     <- beta1 * (1 - 0.5 * 0.96^(t * psi))
        mu_{t+1} <- beta1 * (1 - 0.5 * 0.96^((t + 1) * psi))
        pi_t <- pi_{t-1} * mu_t
        m_t <- m_{t-1} + (1 - beta1) * (g_t - m_{t-1})
        v_t <- beta2 * v_{t-1} + (1 - beta2) * g_t^2
        d_t <- sqrt(v_t / (1 - beta2^t)) + eps
        p_t <- p_{t-1} - lr * (1 - mu_t) / (1 - pi_t) * g_t / d_t
                       - lr * mu_{t+1} / (1 - pi_t * mu_{t+1}) * m_t / d_t

    ``eps`` is added after the square root of the bias-corrected ``v``.
    ``pi_t`` is kept as a float64 number. torch keeps it as a scalar
    tensor of its default dtype: with the float64 default the two agree to
    float64 rounding; with torch's float32 default, torch's ``pi_t``
    carries float32 rounding.

    Parameters
    ----------
    lr : float, default 2e-3
        Learning rate, >= 0.
    betas : tuple of float, default (0.9, 0.999)
        ``(beta1, beta2)``, each in [0, 1): decay of the first and second
        moment estimates.
    eps : float, default 1e-8
        Added to ``sqrt(v_t / (1 - beta2^t))`` in the denominator,
        >= 0.
    weight_decay : float, default 0.0
        L2 penalty ``lambda``, >= 0, added to the gradient (coupled).
    momentum_decay : float, default 4e-3
        ``psi``, >= 0: the momentum schedule's decay, in ``mu_t`` above.
    clip_norm : float or None, default None
        If given (> 0), global-norm gradient clipping before the update:
        the gradients of all trainable parameters are rescaled together to
        an L2 norm of at most ``clip_norm`` (see :class:`Optimizer`).

    References
    ----------
    .. [1] T. Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016
       workshop.
    """

    plan_name = "nadam"
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.betas = _check_betas(betas)
        self.eps = _check_eps(eps)
        self.weight_decay = _check_wd(weight_decay)
        self.momentum_decay = _check_nonnegative("momentum_decay", momentum_decay)
        # mu_product, the running product of the momentum coefficients; the
        # plan updates it in place.
        self._scalars = np.ones(1)

    def reset(self):
        super().reset()
        self._scalars = np.ones(1)

    def plan_hyper(self):
        return {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                "weight_decay": self.weight_decay,
                "momentum_decay": self.momentum_decay}

    def plan_spec(self):
        spec = super().plan_spec()
        spec["scalars"] = self._scalars
        return spec


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

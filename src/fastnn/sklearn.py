"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor``.

A drop-in for :mod:`sklearn.neural_network`'s estimators of the same names:
the same constructor parameters (names, defaults and meaning), the same
fitted attributes, and with ``dtype="float64"`` the same numbers, trained by
fastnn's compiled step loop::

    from fastnn.sklearn import MLPClassifier   # instead of sklearn.neural_network

To give scikit-learn's numbers, fastnn trains scikit-learn's objective: its
initialization (Glorot-uniform bounds drawn from the ``random_state`` in its
order), its L2 term (``alpha / 2 |W|^2`` over the batch's weight sum), its
losses (softmax or logistic log-loss, half squared error), its SGD (the
velocity carries the learning rate) and Adam (``epsilon`` on the
uncorrected root), its batch order (the same ``shuffle`` of the same
``RandomState``) and its stopping rule. ``solver="lbfgs"`` runs SciPy's
L-BFGS-B over fastnn's loss and gradient, as scikit-learn does.

Beyond scikit-learn: ``dropout`` and ``batch_norm``; every fastnn activation,
every fastnn optimizer (by name or instance) as ``solver``, and fastnn's
schedules as ``learning_rate``; ``dtype`` (float32 by default, for speed);
``class_weight``.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d, compute_sample_weight
from sklearn.utils import shuffle as shuffle_indices
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call, type_of_target, unique_labels,
)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import (
    _check_sample_weight, check_is_fitted, validate_data,
)

import fastnn
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from fastnn.losses import get_loss
from fastnn.optimizers import SGD, Adam, Optimizer, get_optimizer
from fastnn.schedules import Schedule
from fastnn.training import TrainingDivergedError, _TrainingRun

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn's (fastnn's own pass through).
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
                "relu": "relu"}
_STOCHASTIC = ("sgd", "adam")


class _VelocitySGD(SGD):
    """scikit-learn's SGD: ``v = momentum v - lr g; p += v`` (with Nesterov,
    ``p += momentum v - lr g``): the velocity carries the learning rate."""

    def plan_hyper(self):
        return dict(super().plan_hyper(), velocity=1.0)


class _UncorrectedEpsAdam(Adam):
    """scikit-learn's Adam: ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) m /
    (sqrt(v) + eps)``, epsilon on the uncorrected root."""

    def plan_hyper(self):
        return dict(super().plan_hyper(), eps_uncorrected=1.0)


def _check_param(name, value, ok, what):
    if not ok(value):
        raise ValueError(f"{name}: must be {what}, got {value!r}")
    return value


def _dense(X, dtype):
    """X as a C-contiguous array of ``dtype``; a sparse matrix is made dense
    (fastnn's kernels work on dense rows, as its GEMMs do)."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=np.dtype(dtype))


def _real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network,
    the stochastic and L-BFGS solvers, the stopping rule."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dropout=0.0,
                 batch_norm=False, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.dtype = dtype

    # -- parameters ---------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _check_params(self):
        """Every parameter checked before anything changes (scikit-learn's
        ``_parameter_constraints`` give the same errors: ValueError)."""
        if self.activation not in _ACTIVATIONS:
            from fastnn.activations import NAMES

            if self.activation not in NAMES:
                raise ValueError(f"activation: unknown {self.activation!r}; valid: "
                                 f"{', '.join(sorted(set(_ACTIVATIONS) | set(NAMES)))}")
        solver = self.solver
        if not isinstance(solver, Optimizer):
            from fastnn.optimizers import OPTIMIZERS

            if solver not in ("sgd", "adam", "lbfgs") and solver not in OPTIMIZERS:
                raise ValueError(f"solver: unknown {solver!r}; valid: lbfgs, "
                                 f"{', '.join(OPTIMIZERS)}, or a fastnn optimizer")
        _check_param("alpha", self.alpha, lambda v: _real(v) and v >= 0, ">= 0")
        if self.batch_size != "auto":
            _check_param("batch_size", self.batch_size,
                         lambda v: isinstance(v, numbers.Integral)
                         and not isinstance(v, bool) and v >= 1, "'auto' or >= 1")
        if not isinstance(self.learning_rate, Schedule):
            _check_param("learning_rate", self.learning_rate,
                         lambda v: v in ("constant", "invscaling", "adaptive"),
                         "'constant', 'invscaling', 'adaptive' or a fastnn schedule")
        for name in ("learning_rate_init", "tol", "epsilon"):
            _check_param(name, getattr(self, name), lambda v: _real(v) and v > 0,
                         "> 0")
        _check_param("power_t", self.power_t, _real, "a real number")
        for name in ("max_iter", "n_iter_no_change", "max_fun"):
            _check_param(name, getattr(self, name),
                         lambda v: isinstance(v, numbers.Integral)
                         and not isinstance(v, bool) and v >= 1, ">= 1")
        _check_param("momentum", self.momentum, lambda v: _real(v) and 0 <= v <= 1,
                     "in [0, 1]")
        _check_param("validation_fraction", self.validation_fraction,
                     lambda v: _real(v) and 0 < v < 1, "in (0, 1)")
        for name in ("beta_1", "beta_2"):
            _check_param(name, getattr(self, name),
                         lambda v: _real(v) and 0 <= v < 1, "in [0, 1)")
        _check_param("dropout", self.dropout, lambda v: _real(v) and 0 <= v < 1,
                     "in [0, 1)")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping",
                     "batch_norm"):
            _check_param(name, getattr(self, name),
                         lambda v: isinstance(v, (bool, np.bool_)), "a bool")
        _check_param("dtype", self.dtype, lambda v: np.dtype(v) in (
            np.dtype(np.float32), np.dtype(np.float64)), "float32 or float64")
        if self.solver == "lbfgs" and self.dropout:
            raise ValueError("dropout: the lbfgs solver needs a deterministic "
                             "objective; use solver='adam' or 'sgd' with dropout")

    # -- the network ----------------------------------------------------------------
    def _activation_name(self):
        return _ACTIVATIONS.get(self.activation, self.activation)

    def _build(self, n_features):
        """The network, with scikit-learn's initialization drawn from
        ``self._random_state``: for each layer its (n_in, n_out) weights,
        then its intercepts, uniform in +- sqrt(factor / (n_in + n_out))."""
        act = self._activation_name()
        layers = []
        for units in self._hidden_sizes():
            if self.batch_norm:
                layers += [Dense(units), BatchNorm(), Activation(act)]
            else:
                layers.append(Dense(units, act))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(self.n_outputs_))
        model = fastnn.Sequential(layers, input_dim=n_features, dtype=self.dtype)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for layer in model.layers:
            if isinstance(layer, Dense):
                fan_out, fan_in = layer.params["weight"].shape
                bound = np.sqrt(factor / (fan_in + fan_out))
                coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
                intercept = self._random_state.uniform(-bound, bound, fan_out)
                layer.params["weight"][...] = coef.T
                layer.params["bias"][...] = intercept
        return model

    def _dense_layers(self):
        return [la for la in self._model.layers if isinstance(la, Dense)]

    def _publish(self):
        """The fitted attributes scikit-learn has, from the network."""
        dense = self._dense_layers()
        self.coefs_ = [la.params["weight"].T.copy() for la in dense]
        self.intercepts_ = [la.params["bias"].copy() for la in dense]
        self.n_layers_ = len(dense) + 1

    # -- the solver ---------------------------------------------------------------
    def _optimizer(self):
        solver = self.solver
        if isinstance(solver, Optimizer):
            return solver.fresh()
        if solver == "sgd":
            return _VelocitySGD(lr=self.learning_rate_init, momentum=self.momentum,
                                nesterov=bool(self.nesterovs_momentum
                                              and self.momentum > 0))
        if solver == "adam":
            return _UncorrectedEpsAdam(lr=self.learning_rate_init,
                                       betas=(self.beta_1, self.beta_2),
                                       eps=self.epsilon)
        return get_optimizer(solver, lr=self.learning_rate_init)

    def _stream_seed(self):
        """The key of the dropout stream: ``random_state`` when it is an int,
        else drawn apart from it (scikit-learn's draws stay its own)."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(np.random.default_rng().integers(2**63))

    def _run(self, X, target, sample_weight, batch):
        """A training run of the network over ``X``: the compiled plan with
        scikit-learn's objective (the penalty per sample)."""
        for layer in self._dense_layers():
            layer.l2 = float(self.alpha)
        run = _TrainingRun(self._model, X, target, get_loss(self._loss_name),
                           self._fastnn_optimizer, batch, self._stream_seed(),
                           sample_weight, penalty="sample",
                           loss_scale=self._loss_scale)
        self._fastnn_optimizer.bind(self._model, self._model._params)
        run.start()
        return run

    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._check_params()
        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        target = self._encode(y, X.dtype)
        sample_weight = self._sample_weight(X, y, sample_weight, incremental)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self.n_outputs_ = self._n_outputs(y)
            self._model = self._build(X.shape[1])
            self.n_iter_ = 0
            self.t_ = 0
        if first_pass and self.solver != "lbfgs":
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, target, sample_weight)
        else:
            self._fit_stochastic(X, y, target, sample_weight, incremental)
        self._publish()
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The "
                             "input data may contain large values and need to be "
                             "preprocessed.")
        return self

    def _sample_weight(self, X, y, sample_weight, incremental):
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.dtype(self.dtype),
                                    ensure_non_negative=True)

    def _fit_stochastic(self, X, y, target, sample_weight, incremental):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not incremental or not hasattr(self, "_fastnn_optimizer"):
            self._fastnn_optimizer = self._optimizer()
            self._lr = self._base_lr = self._fastnn_optimizer.lr
        stopping = self.early_stopping
        X_val = y_val = w_val = None
        if stopping:
            # scikit-learn's split: of its binarized targets, stratified for
            # a single output of a classifier, from the same RandomState.
            Y = self._split_target(y)
            stratify = Y if (isinstance(self, ClassifierMixin)
                             and self.n_outputs_ == 1) else None
            pieces = [X, target, Y] + ([sample_weight] if sample_weight is not None
                                       else [])
            split = train_test_split(*pieces, random_state=self._random_state,
                                     test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, target, _, _, Y_val = split[:6]
            y_val = self._unsplit_target(Y_val)
            if sample_weight is not None:
                sample_weight, w_val = split[6], split[7]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your "
                                 "dataset.")
        n = X.shape[0]
        batch = min(200, n) if self.batch_size == "auto" else self.batch_size
        if batch > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample "
                          "size. It is going to be clipped")
        batch = int(np.clip(batch, 1, n))
        run = self._run(X, target, sample_weight, batch)
        order = np.arange(n)
        schedule = (self.learning_rate if isinstance(self.learning_rate, Schedule)
                    else None)
        if schedule is not None:
            schedule.check(self._base_lr, self.max_iter, ["loss"])
            schedule.reset()
        logs = None
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if schedule is not None:
                self._lr = schedule(self.n_iter_, self._base_lr, logs)
            self._fastnn_optimizer.lr = self._lr
            if self.shuffle:
                order = shuffle_indices(order, random_state=self._random_state)
            run.perm[...] = order
            data_loss, _ = run.epoch(False, 0, self.n_iter_, self.max_iter, [])
            if not np.isfinite(data_loss):
                run.restore()
                raise TrainingDivergedError(
                    f"training diverged in iteration {self.n_iter_ + 1}: the loss "
                    "is not finite; lower learning_rate_init")
            run.snapshot()
            self.n_iter_ += 1
            self.loss_ = data_loss / self._loss_divisor + run.penalty_total / n
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            logs = {"loss": self.loss_}
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            self._update_no_improvement_count(stopping, X_val, y_val, w_val)
            if self.learning_rate == "invscaling" and self.solver == "sgd":
                self._lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            if self._no_improvement_count > self.n_iter_no_change:
                if stopping:
                    msg = ("Validation score did not improve more than tol=%f for "
                           "%d consecutive epochs." % (self.tol,
                                                        self.n_iter_no_change))
                else:
                    msg = ("Training loss did not improve more than tol=%f for %d "
                           "consecutive epochs." % (self.tol, self.n_iter_no_change))
                if self._trigger_stopping(msg):
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached "
                              "and the optimization hasn't converged yet."
                              % self.max_iter, ConvergenceWarning)
        if stopping:
            self._model._params[...] = self._best_params
            for layer, state in zip(self._model.layers, self._best_state):
                for k, v in state.items():
                    layer.state[k][...] = v

    def _trigger_stopping(self, msg):
        if self.learning_rate != "adaptive" or self.solver != "sgd":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._lr /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._lr)
        return False

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, w_val):
        if early_stopping:
            score = self._score(X_val, y_val, w_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._model._params.copy()
                self._best_state = [{k: v.copy() for k, v in la.state.items()}
                                    for la in self._model.layers]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, X, target, sample_weight):
        """SciPy's L-BFGS-B over the full-batch loss and gradient, which one
        step of the plan with no update computes."""
        from scipy.optimize import minimize

        model = self._model
        n = X.shape[0]
        for layer in self._dense_layers():
            layer.l2 = float(self.alpha)
        optimizer = SGD(lr=0.0)
        optimizer.bind(model, model._params)
        # One full-batch step that updates nothing (no trainable runs).
        plan = model.ops.TrainPlan(
            X, target, np.arange(n, dtype=np.int64),
            [la.plan_op() for la in model.layers],
            get_loss(self._loss_name).plan_loss() + (self._loss_scale,),
            optimizer.plan_spec(), model._params, model._grads,
            np.empty((0, 2), np.int64), n, 0, sample_weight, "sample")
        calls = [0]

        def loss_and_grad(x):
            model._params[...] = x
            loss_sum, _, done, penalty = plan.run(0, 1, 0.0, 0, calls[0])
            calls[0] += 1
            if done < 1:
                return np.inf, np.zeros_like(x, dtype=np.float64)
            value = (loss_sum + penalty) / n
            return value, model._grads.astype(np.float64)

        iprint = 1 if self.verbose else -1
        result = minimize(loss_and_grad, model._params.astype(np.float64),
                          method="L-BFGS-B", jac=True,
                          options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                   "gtol": self.tol, **({"iprint": iprint}
                                                        if iprint > 0 else {})})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        model._params[...] = result.x
        loss_sum, _, _, penalty = plan.run(0, 1, 0.0, 0, calls[0])
        self.loss_ = loss_sum / self._loss_divisor / n + penalty / n

    # -- prediction -------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, and made dense
        return tags

    def _forward(self, X):
        """The network's raw outputs, in X's float dtype (as scikit-learn's)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"],
                          dtype=(np.float64, np.float32))
        out = self._model.predict(_dense(X, self.dtype))
        return out.astype(X.dtype, copy=False)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, scikit-learn's ``MLPClassifier`` on
    fastnn's engine.

    Parameters are scikit-learn's, with the same names, defaults and meaning
    (see :class:`sklearn.neural_network.MLPClassifier`), plus:

    dropout : float, default 0.0
        A Dropout layer of this rate after each hidden layer.
    batch_norm : bool, default False
        Each hidden layer as Dense, BatchNorm, then its activation.
    dtype : {"float32", "float64"}, default "float32"
        The network's dtype; "float64" gives scikit-learn's numbers.
    class_weight : dict, "balanced" or None, default None
        Weights of the classes, multiplied into the sample weights.

    ``activation`` also takes any fastnn activation; ``solver`` any fastnn
    optimizer (a name such as "nadam", or an instance, whose learning rate
    ``learning_rate_init`` does not override); ``learning_rate`` a fastnn
    schedule. ``solver="lbfgs"`` is SciPy's L-BFGS-B over the full-batch
    loss, as in scikit-learn.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dropout=0.0,
                 batch_norm=False, dtype="float32", class_weight=None):
        own = ("class_weight",)
        params = dict(locals())
        for name in ("self", "__class__", "own", *own):
            params.pop(name)
        super().__init__(**params)
        self.class_weight = class_weight

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True,
                             accept_sparse=["csr", "csc"],
                             dtype=(np.float64, np.float32), reset=reset)
        X = _dense(X, self.dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has "
                                 f"{classes}.")
        return X, y

    def _n_outputs(self, y):
        return self._label_binarizer.transform(y[:1]).shape[1]

    def _encode(self, y, dtype):
        """Targets for the plan: class indices for softmax (multiclass), else
        the binarized labels; sets the loss, its scale and the output link."""
        Y = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
            self._loss_name, self._loss_scale, self._loss_divisor = (
                "softmax_cross_entropy", 1.0, 1.0)
            return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.int64)
        self.out_activation_ = "logistic"
        # scikit-learn's log-loss sums its outputs' mean losses.
        self._loss_name, self._loss_scale, self._loss_divisor = (
            "binary_cross_entropy", float(Y.shape[1]), 1.0)
        return np.ascontiguousarray(Y, dtype=dtype)

    def _split_target(self, y):
        return self._label_binarizer.transform(y).astype(bool)

    def _unsplit_target(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _sample_weight(self, X, y, sample_weight, incremental):
        w = super()._sample_weight(X, y, sample_weight, incremental)
        if self.class_weight is None:
            return w
        if incremental and self.class_weight == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for "
                             "partial_fit: pass a dict of class weights")
        if np.ndim(y) == 2:
            raise ValueError("class_weight: not supported for multi-label y")
        cw = compute_sample_weight(self.class_weight, y).astype(np.dtype(self.dtype))
        return cw if w is None else w * cw

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (see scikit-learn)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` is required on the first call."""
        if self.solver not in _STOCHASTIC and not isinstance(self.solver, Optimizer):
            from fastnn.optimizers import OPTIMIZERS

            if self.solver not in OPTIMIZERS:
                raise AttributeError("partial_fit is only available for stochastic "
                                     f"optimizers. {self.solver} is not stochastic.")
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _score(self, X, y, sample_weight=None):
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def predict(self, X):
        """The predicted classes."""
        check_is_fitted(self)
        return self._label_binarizer.inverse_transform(self._proba_raw(X))

    def _proba_raw(self, X):
        """The output layer's probabilities (its softmax or logistic)."""
        from scipy.special import expit, softmax

        out = self._forward(X)
        return softmax(out, axis=1) if self.out_activation_ == "softmax" else expit(out)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        check_is_fitted(self)
        p = self._proba_raw(X)
        if self.n_outputs_ == 1 and self._label_binarizer.y_type_ != "multilabel-indicator":
            return np.hstack([1 - p, p])
        return p

    def predict_log_proba(self, X):
        """The log of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor, scikit-learn's ``MLPRegressor`` on
    fastnn's engine: half squared error, identity output. Parameters as
    :class:`MLPClassifier` (without ``class_weight``); ``loss`` is
    "squared_error" only."""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,),
                 activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dropout=0.0,
                 batch_norm=False, dtype="float32"):
        own = ("loss",)
        params = dict(locals())
        for name in ("self", "__class__", "own", *own):
            params.pop(name)
        super().__init__(**params)
        self.loss = loss

    def _check_params(self):
        if self.loss != "squared_error":
            raise ValueError(f"loss: must be 'squared_error', got {self.loss!r} "
                             "(fastnn has no Poisson loss)")
        super()._check_params()

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             accept_sparse=["csr", "csc"],
                             dtype=(np.float64, np.float32), reset=reset)
        X = _dense(X, self.dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _n_outputs(self, y):
        return 1 if y.ndim == 1 else y.shape[1]

    def _split_target(self, y):
        return np.asarray(y).reshape(len(y), -1)

    def _unsplit_target(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _encode(self, y, dtype):
        """Targets (n, k); half squared error summed over the outputs (its
        gradient is scikit-learn's), reported as their mean."""
        Y = np.asarray(y, dtype=dtype).reshape(len(y), -1)
        self.out_activation_ = "identity"
        k = Y.shape[1]
        self._loss_name, self._loss_scale, self._loss_divisor = ("mse", k / 2.0,
                                                                 float(k))
        return np.ascontiguousarray(Y)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (see scikit-learn)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic "
                                 "optimizers. lbfgs is not stochastic.")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _score(self, X, y, sample_weight=None):
        return r2_score(y, self.predict(X), sample_weight=sample_weight)

    def predict(self, X):
        """The predicted values: shape (n_samples,), or (n_samples, n_outputs)."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


"""Splits and cross-validation.

``cross_validate`` runs its folds through joblib: in threads by default
(the kernels release the GIL, so the folds train in parallel on one
machine), and on a Dask cluster under ``joblib.parallel_config(backend=
"dask")``, as scikit-learn's search tools over :mod:`fastnn.sklearn`
estimators do (see :mod:`fastnn.distributed`).
"""

import copy
import math

import numpy as np

from fastnn._validation import check_bool, check_float, check_int


def _check_seed(seed):
    return None if seed is None else check_int("seed", seed, 0)


def _n_samples(X, name="X"):
    if np.ndim(X) == 0:
        raise TypeError(f"{name}: must be an array with one entry per sample, "
                        f"got {X!r}")
    n = len(X)
    if n == 0:
        raise ValueError(f"{name}: is empty")
    return n


def _class_members(y, rng):
    """Per class, its sample indices: in random order, or in index order when
    ``rng`` is None."""
    y = np.asarray(y)
    if y.ndim != 1:  # np.unique would flatten it: indices past the samples
        raise ValueError(f"y: stratifying needs 1-D class labels, got shape "
                         f"{y.shape}")
    classes, inverse = np.unique(y, return_inverse=True)
    members = []
    for c in range(len(classes)):
        idx = np.flatnonzero(inverse == c)
        if rng is not None:
            rng.shuffle(idx)
        members.append(idx)
    return members


def _apportion(total, quotas, capacity, rng):
    """Integers summing to ``total``, each within one of its ``quotas`` entry
    (largest remainders first, ties in random order) and at most its
    ``capacity`` entry."""
    counts = np.minimum(np.floor(quotas).astype(np.int64), capacity)
    order = np.lexsort((rng.permutation(len(quotas)), np.floor(quotas) - quotas))
    short = total - int(counts.sum())
    while short > 0:  # a second round only when capacities bind
        for c in order:
            if short and counts[c] < capacity[c]:
                counts[c] += 1
                short -= 1
    return counts


def train_val_test_split(X, y, val_size=0.1, test_size=0.2, stratify=False,
                         seed=None):
    """Shuffle and split into train, validation and test parts.

    Returns ``X_train, X_val, X_test, y_train, y_val, y_test``. With
    ``stratify=True`` each part keeps the class proportions of ``y``.
    """
    n = _n_samples(X)
    if _n_samples(y, "y") != n:
        raise ValueError(f"y: has {len(y)} entries but X has {n} samples")
    val_size = check_float("val_size", val_size, 0, 1, high_open=True)
    test_size = check_float("test_size", test_size, 0, 1, high_open=True)
    stratify = check_bool("stratify", stratify)
    n_test = int(math.floor(n * test_size + 0.5)) if test_size else 0
    n_val = int(math.floor(n * val_size + 0.5)) if val_size else 0
    if (test_size and n_test == 0) or (val_size and n_val == 0):
        raise ValueError("test_size/val_size: too small for "
                         f"{n} samples (a part would be empty)")
    if n_test + n_val >= n:
        raise ValueError(f"val_size + test_size: leave no training data of {n}")
    rng = np.random.default_rng(_check_seed(seed))
    if stratify:
        # Per class, test and validation counts near its share of n_test and
        # n_val, summing to exactly those: the parts have the sizes asked for.
        members = _class_members(y, rng)
        sizes = np.array([len(idx) for idx in members])
        k_test = _apportion(n_test, sizes * test_size, sizes, rng)
        k_val = _apportion(n_val, sizes * val_size, sizes - k_test, rng)
        parts = ([], [], [])
        for idx, kt, kv in zip(members, k_test, k_val):
            parts[0].append(idx[:kt])
            parts[1].append(idx[kt:kt + kv])
            parts[2].append(idx[kt + kv:])
        test_idx, val_idx, train_idx = (rng.permutation(np.concatenate(p))
                                        for p in parts)
    else:
        order = rng.permutation(n)
        test_idx, val_idx, train_idx = (order[:n_test], order[n_test:n_test + n_val],
                                        order[n_test + n_val:])
    X = np.asarray(X)
    y = np.asarray(y)
    return (X[train_idx], X[val_idx], X[test_idx],
            y[train_idx], y[val_idx], y[test_idx])


class KFold:
    """K folds of (train, test) index arrays; ``shuffle`` with ``seed``."""

    def __init__(self, n_splits=5, shuffle=True, seed=None):
        self.n_splits = check_int("n_splits", n_splits, 2)
        self.shuffle = check_bool("shuffle", shuffle)
        self.seed = _check_seed(seed)

    def _folds(self, n, y):
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [order[bounds[i]:bounds[i + 1]] for i in range(self.n_splits)]

    def split(self, X, y=None):
        n = _n_samples(X)
        if self.n_splits > n:
            raise ValueError(f"n_splits: {self.n_splits} folds need at least as many "
                             f"samples, got {n}")
        folds = self._folds(n, y)
        for i, test in enumerate(folds):
            train = np.concatenate([f for j, f in enumerate(folds) if j != i])
            yield np.sort(train), np.sort(test)

    def get_n_splits(self, X=None, y=None):
        return self.n_splits


class StratifiedKFold(KFold):
    """K folds that keep each class's proportion in every fold."""

    def _folds(self, n, y):
        if y is None:
            raise ValueError("y: StratifiedKFold needs the class labels")
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(f"y: has {len(y)} entries but X has {n} samples")
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < self.n_splits:
            raise ValueError(f"y: the smallest class has {counts.min()} members, "
                             f"fewer than n_splits={self.n_splits}")
        rng = np.random.default_rng(self.seed) if self.shuffle else None
        # Deal each class's members round-robin across the folds, continuing
        # the count from class to class so fold sizes differ by at most one.
        order = np.concatenate(_class_members(y, rng))
        return [order[i::self.n_splits] for i in range(self.n_splits)]


def cross_validate(build_model, X, y, k=5, fit_kwargs=None, n_jobs=None,
                   stratified=True, seed=0, metric="accuracy"):
    """Train ``build_model()`` on k folds, in ``n_jobs`` threads (or on the
    workers of joblib's active backend, a Dask cluster say).

    Parameters
    ----------
    build_model : callable
        Returns a fresh, unfitted model for each fold.
    X, y : array-like
    k : int
    fit_kwargs : dict or None
        Passed to ``model.fit``; ``verbose`` defaults to 0. Each fold gets its
        own fresh copy of an ``optimizer`` instance (same hyperparameters, no
        state: see :meth:`fastnn.optimizers.Optimizer.fresh`) and of the
        ``lr_schedule`` and ``callbacks`` instances, so that no state passes
        between folds and the scores do not depend on ``n_jobs``.
    n_jobs : int or None
        Threads; the kernels release the GIL so folds run in parallel. None
        is 1, or what the active ``joblib.parallel_config`` says (under its
        dask backend, every worker of the cluster). ``build_model`` and the
        fit arguments then travel to the workers: a function or lambda,
        pickled with cloudpickle.
    stratified : bool
        Use :class:`StratifiedKFold` (classification) or :class:`KFold`.
    seed : int
        Fixes the folds, and the shuffling in ``fit`` unless ``fit_kwargs``
        has a ``seed`` of its own.
    metric : str
        The key of ``model.evaluate`` reported per fold (``"accuracy"`` or
        ``"loss"``).

    Returns
    -------
    dict
        ``"scores"`` (per fold), ``"mean"``, ``"std"``, ``"loss"`` (per fold).
    """
    if not callable(build_model):
        raise TypeError("build_model: must be a callable returning a fresh model")
    k = check_int("k", k, 2)
    if n_jobs is not None:
        n_jobs = check_int("n_jobs", n_jobs, 1)
    if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
        raise TypeError(f"fit_kwargs: must be a dict or None, got "
                        f"{type(fit_kwargs).__name__}")
    fit_kwargs = dict(fit_kwargs or {})
    _fold_kwargs(fit_kwargs)  # refuse what cannot be copied, before any fold
    fit_kwargs.setdefault("verbose", 0)
    fit_kwargs.setdefault("seed", seed)
    X = np.asarray(X)
    y = np.asarray(y)
    if _n_samples(y, "y") != _n_samples(X):
        raise ValueError(f"y: has {len(y)} entries but X has {len(X)} samples")
    splitter = (StratifiedKFold if stratified else KFold)(k, True, seed)
    folds = list(splitter.split(X, y))

    from joblib import Parallel, delayed

    results = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_run_fold)(build_model, X, y, train, test, fit_kwargs, metric)
        for train, test in folds)
    scores = np.array([r[0] for r in results])
    return {"scores": scores, "mean": float(scores.mean()), "std": float(scores.std()),
            "loss": np.array([r[1] for r in results])}


def _run_fold(build_model, X, y, train, test, fit_kwargs, metric):
    """One fold: a fresh model trained on ``train``, evaluated on ``test``."""
    model = build_model()
    model.fit(X[train], y[train], **_fold_kwargs(fit_kwargs))
    result = model.evaluate(X[test], y[test])
    if metric not in result:
        raise ValueError(f"metric: {metric!r} is not among {sorted(result)}")
    return result[metric], result["loss"]


def _fold_kwargs(fit_kwargs):
    """``fit_kwargs`` for one fold: its own fresh optimizer, schedule and
    callback instances (names, None and other values are shared)."""
    from fastnn.optimizers import Optimizer

    kwargs = dict(fit_kwargs)
    optimizer = kwargs.get("optimizer")
    if isinstance(optimizer, Optimizer):
        kwargs["optimizer"] = optimizer.fresh()
    for key in ("lr_schedule", "callbacks"):
        value = kwargs.get(key)
        if value is None or isinstance(value, str):
            continue
        try:
            kwargs[key] = copy.deepcopy(value)
        except Exception as exc:
            raise TypeError(
                f"fit_kwargs[{key!r}]: cross_validate gives each fold its own "
                f"copy, and this one cannot be copied ({type(exc).__name__}: "
                f"{exc})") from None
    return kwargs

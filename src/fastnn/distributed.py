"""Training on a Dask cluster: data larger than one machine's memory.

:func:`partial_fit_blocks` streams ``partial_fit`` of a :mod:`fastnn.sklearn`
estimator over the row blocks of a ``dask.array``. Each step is a task that
takes the model and one block, so the scheduler runs it on the worker that
holds the block and moves only the model (its weights and optimizer state)
from block to block; the blocks are never gathered on the client.

Searches and cross-validation need no helper: scikit-learn's
``GridSearchCV``, ``RandomizedSearchCV`` and ``cross_val_score`` over fastnn
estimators, and :func:`fastnn.model_selection.cross_validate`, run on the
cluster under joblib's dask backend::

    from dask.distributed import Client
    import joblib

    client = Client("tcp://scheduler-host:8786")   # or Client() for a local one
    with joblib.parallel_config(backend="dask"):
        search.fit(X, y)

Needs the ``distributed`` extra (``pip install fastnn-core[distributed]``).
"""

import copy

import numpy as np

__all__ = ["partial_fit_blocks"]


def _partial_fit_block(model, X, y, w, kwargs):
    """One step of the stream, run where the block lies: a copy of the model
    (a task must not change its input) trained on the block."""
    model = copy.deepcopy(model)
    if w is not None:
        kwargs = dict(kwargs, sample_weight=w)
    return model.partial_fit(X, y, **kwargs)


def _rows_like(name, a, X):
    """``a`` (a dask or NumPy array) as a dask array with X's row blocks."""
    import dask.array as da

    if not isinstance(a, da.Array):
        a = da.from_array(np.asarray(a), chunks=(X.chunks[0],) + tuple(
            (s,) for s in np.shape(a)[1:]))
    if a.shape[0] != X.shape[0]:
        raise ValueError(f"{name}: has {a.shape[0]} rows but X has {X.shape[0]}")
    if a.ndim > 2:
        raise ValueError(f"{name}: must be 1-D or 2-D, got {a.ndim} dimensions")
    chunks = (X.chunks[0],) + ((a.shape[1],) if a.ndim == 2 else ())
    return a.rechunk(chunks)


def partial_fit_blocks(estimator, X, y, *, classes=None, sample_weight=None,
                       epochs=1, client=None):
    """``estimator.partial_fit`` over the row blocks of ``X`` and ``y``, in
    order, each block on the worker that holds it.

    Parameters
    ----------
    estimator : fastnn.sklearn.MLPClassifier or MLPRegressor
        Trained further from where it stands; updated in place and returned,
        as ``partial_fit`` does.
    X : dask.array.Array of shape (n_samples, n_features)
        Its row blocks are the steps (columns are joined into one block).
    y, sample_weight : dask or NumPy arrays with one row per sample
        Rechunked to X's row blocks.
    classes : array-like or None
        A classifier's classes; if None and the estimator has none yet, the
        distinct labels of ``y`` are computed on the cluster (only they come
        back to the client).
    epochs : int
        Passes over the blocks.
    client : dask.distributed.Client or None
        Where to run; None uses the default scheduler (the current client,
        if one is connected).

    Returns
    -------
    estimator
    """
    import dask
    import dask.array as da

    from fastnn._validation import check_int

    if not hasattr(estimator, "partial_fit"):
        raise TypeError("estimator: must have partial_fit (a fastnn.sklearn "
                        f"estimator), got {type(estimator).__name__}")
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError("X: must be a 2-D dask.array.Array, got "
                        f"{type(X).__name__}")
    epochs = check_int("epochs", epochs, 1)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    y = _rows_like("y", y, X)
    w = None if sample_weight is None else _rows_like("sample_weight",
                                                      sample_weight, X)
    kwargs = {}
    from sklearn.base import is_classifier

    if is_classifier(estimator):
        if classes is None and not hasattr(estimator, "classes_"):
            if y.ndim == 2:  # multi-label: the columns are the classes
                classes = np.arange(y.shape[1])
            else:
                classes = (client.compute(da.unique(y)).result() if client
                           else da.unique(y).compute())
        if classes is not None:
            kwargs["classes"] = np.asarray(classes)
    xs = X.to_delayed().ravel()
    ys = y.to_delayed().ravel()
    ws = [None] * len(xs) if w is None else list(w.to_delayed().ravel())
    model = dask.delayed(estimator, traverse=False)
    step = dask.delayed(_partial_fit_block, pure=True)
    for _ in range(epochs):
        for xb, yb, wb in zip(xs, ys, ws):
            model = step(model, xb, yb, wb, kwargs)
    trained = client.compute(model).result() if client else model.compute()
    estimator.__dict__.update(trained.__dict__)
    return estimator

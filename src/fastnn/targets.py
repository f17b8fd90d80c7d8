"""From a user's label column to what a loss trains on, and back.

``Sequential.fit`` takes class indices ``0..K-1`` (for the label losses) or
real targets. Label-oriented interfaces (the command line) use this module to
decide between classification and regression, to map any labels to class
indices, and to shape the targets for the chosen loss.
"""

import numpy as np

from fastnn.losses import get_loss

#: ``task="auto"``: a numeric target with more distinct values than this is
#: taken for regression.
REGRESSION_MIN_DISTINCT = 20

TASKS = ("auto", "classification", "regression")

#: Default loss per task.
DEFAULT_LOSS = {"classification": "softmax_cross_entropy", "regression": "mse"}


def _numeric(y):
    return y.dtype.kind in "biuf"


def infer_task(y, task="auto"):
    """``(task, reason)``: ``task`` as given, or decided from ``y`` for "auto".

    Auto picks regression for a numeric target with more than
    :data:`REGRESSION_MIN_DISTINCT` distinct values (or several columns), and
    classification otherwise; ``reason`` says why, in a few words.
    """
    y = np.asarray(y)
    if task not in TASKS:
        raise ValueError(f"task: must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "regression" and not _numeric(y):
        raise ValueError("task: regression needs numeric targets; the labels "
                         f"are {y.dtype} (for example {y.ravel()[0]!r})")
    if task != "auto":
        return task, "as asked"
    if y.ndim == 2 and y.shape[1] > 1:
        if not _numeric(y):
            raise ValueError(f"labels: must be one column, got shape {y.shape}")
        return "regression", f"{y.shape[1]} target columns"
    if not _numeric(y):
        return "classification", "the labels are not numbers"
    distinct = np.unique(y).size
    if distinct > REGRESSION_MIN_DISTINCT:
        return "regression", f"{distinct} distinct numeric values"
    return "classification", f"{distinct} distinct values"


def encode_labels(y, name="labels"):
    """``(classes, indices)``: the sorted distinct labels and each label's index.

    Whole-number float labels become integers, so that they print as ``3``
    rather than ``3.0``. Fewer than two classes is refused.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name}: must be one column of labels, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name}: is empty")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError(f"{name}: contains NaN or infinity")
        if np.array_equal(y, np.round(y)) and np.abs(y).max() < 2**53:
            y = y.astype(np.int64)
    elif y.dtype.kind not in "biuU":
        raise TypeError(f"{name}: labels must be numbers, text or booleans, got "
                        f"dtype {y.dtype}")
    classes, indices = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{name}: every training label is {classes[0].item()!r}; "
                         "classification needs at least two classes")
    return classes, indices.astype(np.int64)


def class_targets(indices, n_classes, loss):
    """``(targets, n_outputs)`` for training ``loss`` on class ``indices``.

    Label losses (cross-entropy, hinge) take the indices and one output per
    class. Binary cross-entropy takes one 0/1 output for two classes and
    one-hot rows otherwise; mse, mae and huber take one-hot rows.
    """
    spec = get_loss(loss)
    if spec.targets == "labels":
        return indices, n_classes
    if spec.link == "sigmoid" and n_classes == 2:
        return indices.astype(np.float64)[:, None], 1
    return np.eye(n_classes)[indices], n_classes


def check_task_loss(task, loss):
    """Refuse a loss that cannot serve ``task``; return its canonical name."""
    spec = get_loss(loss)
    if task == "regression" and not (spec.targets == "values"
                                      and spec.link == "identity"):
        raise ValueError(f"loss: {loss} is a classification loss; for regression "
                         "use mse, mae or huber")
    return spec.name


def regression_targets(y, name="targets"):
    """Numeric targets as a float64 array of shape (n, n_outputs)."""
    y = np.asarray(y)
    if not _numeric(y):
        raise TypeError(f"{name}: regression needs numbers, got dtype {y.dtype}")
    y = y.astype(np.float64).reshape(len(y), -1)
    if not np.isfinite(y).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return y

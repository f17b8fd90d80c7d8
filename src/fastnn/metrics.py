"""Classification metrics, and Hoeffding bounds for honest test accuracy.

For ``n`` independent test samples, Hoeffding's inequality gives
``P(|acc - true_acc| > t) <= 2 exp(-2 n t^2) = delta``, so
``t = sqrt(ln(2/delta) / (2n))``.
"""

import math

import numpy as np

from fastnn._validation import check_float, check_int


def _labels(name, y):
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name}: must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty")
    if arr.dtype.kind not in "biu":
        # inf equals its own rounding: check finiteness before that test
        if not (arr.dtype.kind == "f" and np.isfinite(arr).all()
                and np.array_equal(arr, np.round(arr))):
            raise ValueError(f"{name}: class labels must be integers")
    if arr.min() < 0:
        raise ValueError(f"{name}: class labels must be >= 0")
    if arr.dtype.kind in "fu" and float(arr.max()) >= 2.0**63:
        raise ValueError(f"{name}: class labels must be < 2**63, got {arr.max()}")
    return arr.astype(np.int64)


def _pair(y_true, y_pred):
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_pred: has {p.size} labels but y_true has {t.size}")
    return t, p


def accuracy(y_true, y_pred):
    """Fraction of ``y_pred`` equal to ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


#: The most classes :func:`confusion_matrix` makes a matrix for (10^8 cells).
MAX_CLASSES = 10_000


def confusion_matrix(y_true, y_pred, n_classes=None):
    """``C[i, j]`` = number of samples of class ``i`` predicted as ``j``.

    Labels are class indices ``0 .. k-1``, with ``k`` at most
    :data:`MAX_CLASSES`; map other labels to indices first (say with
    ``np.unique(y, return_inverse=True)``).
    """
    t, p = _pair(y_true, y_pred)
    top = int(max(t.max(), p.max()))
    if top >= MAX_CLASSES:
        raise ValueError(
            f"y_true/y_pred: labels go up to {top}, and a confusion matrix has "
            f"one row per class index 0..{top}; at most {MAX_CLASSES} classes are "
            "supported (map labels to class indices first)")
    k = top + 1
    if n_classes is not None:
        n_classes = check_int("n_classes", n_classes, 1, MAX_CLASSES)
        if k > n_classes:
            raise ValueError(f"n_classes: labels go up to {k - 1}")
        k = n_classes
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def precision_recall_f1(y_true, y_pred, n_classes=None):
    """Per-class precision, recall, F1 and support (0 where undefined)."""
    C = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(C)
    predicted = C.sum(axis=0)
    support = C.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1,
            "support": support.astype(np.int64)}


def hoeffding_t(n, delta=0.05):
    """``t = sqrt(ln(2 / delta) / (2 n))``: the half-width of the interval."""
    n = check_int("n", n, 1)
    delta = check_float("delta", delta, 0, 1, low_open=True, high_open=True)
    return math.sqrt(math.log(2.0 / delta) / (2.0 * n))


def hoeffding_interval(acc, n, delta=0.05):
    """``(max(0, acc - t), min(1, acc + t))``, holding with probability at least
    ``1 - delta`` over the draw of ``n`` test samples."""
    acc = check_float("acc", acc, 0, 1)
    t = hoeffding_t(n, delta)
    return max(0.0, acc - t), min(1.0, acc + t)


def hoeffding_n(t, delta=0.05):
    """Test samples needed for half-width ``t``: ``ceil(ln(2/delta) / (2 t^2))``."""
    t = check_float("t", t, 0, 1, low_open=True)
    delta = check_float("delta", delta, 0, 1, low_open=True, high_open=True)
    denominator = 2.0 * t * t  # 0.0 once t * t underflows
    n = math.log(2.0 / delta) / denominator if denominator else math.inf
    if not math.isfinite(n):
        raise ValueError(f"t: {t} is too small: the sample size overflows a float")
    return int(math.ceil(n))


def regression_scores(y_true, y_pred):
    """Mean squared error, mean absolute error and R², as a dict.

    ``r2`` is ``1 - sum((y - p)^2) / sum((y - mean(y))^2)`` per output,
    averaged over outputs (scikit-learn's ``r2_score``; a constant target
    scores 1.0 when predicted exactly and 0.0 otherwise).
    """
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    t = t.reshape(len(t), -1)
    p = p.reshape(len(p), -1)
    if t.shape != p.shape or t.shape[0] == 0:
        raise ValueError(f"y_pred: shape {p.shape} does not match y_true {t.shape}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true, y_pred: contain NaN or infinity")
    err = p - t
    ss_res = np.square(err).sum(axis=0)
    ss_tot = np.square(t - t.mean(axis=0)).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot,
                      np.where(ss_res == 0, 1.0, 0.0))
    return {"mse": float(np.square(err).mean()), "mae": float(np.abs(err).mean()),
            "r2": float(r2.mean())}

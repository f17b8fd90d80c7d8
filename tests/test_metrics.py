"""Classification metrics against scikit-learn; Hoeffding bounds by hand.

fastnn.metrics has accuracy, confusion_matrix, per-class precision / recall /
F1 / support, and the Hoeffding helpers. The averaged scores are derived here
from the per-class ones and checked against scikit-learn's averages.
"""

import math

import numpy as np
import pytest

from fastnn.metrics import (
    accuracy, confusion_matrix, hoeffding_interval, hoeffding_n, hoeffding_t,
    precision_recall_f1,
)

skm = pytest.importorskip("sklearn.metrics")


def _labels(n, k, seed, skill=0.6):
    """True labels and predictions that are right with probability ``skill``."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < skill, y_true, rng.integers(0, k, n))
    return y_true, y_pred


CASES = [(1, 1), (1, 3), (2, 2), (7, 3), (50, 2), (100, 5), (1000, 10),
         (5000, 37)]


# -- accuracy ------------------------------------------------------------------------

@pytest.mark.parametrize("n, k", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_accuracy_matches_sklearn(n, k, seed):
    y_true, y_pred = _labels(n, k, seed)
    got = accuracy(y_true, y_pred)
    assert isinstance(got, float)
    assert got == skm.accuracy_score(y_true, y_pred)


def test_accuracy_by_hand_and_input_forms():
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == 0.75
    assert accuracy(np.array([3, 1], np.uint8), np.array([3, 1], np.int16)) == 1.0
    assert accuracy([0.0, 1.0, 2.0], [0, 1, 1]) == pytest.approx(2 / 3, rel=1e-15)
    assert accuracy(np.array([True, False]), [1, 1]) == 0.5
    y = np.arange(20)[::2]  # strided
    assert accuracy(y, y.copy()) == 1.0


# -- confusion matrix ------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn, n=1
@pytest.mark.parametrize("n, k", CASES)
def test_confusion_matrix_matches_sklearn(n, k):
    y_true, y_pred = _labels(n, k, 3)
    C = confusion_matrix(y_true, y_pred)
    size = int(max(y_true.max(), y_pred.max())) + 1
    np.testing.assert_array_equal(
        C, skm.confusion_matrix(y_true, y_pred, labels=np.arange(size)))
    assert C.sum() == n and np.issubdtype(C.dtype, np.integer)


def test_confusion_matrix_by_hand_rows_true_columns_predicted():
    C = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(C, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_confusion_matrix_n_classes_pads_absent_classes():
    y_true, y_pred = [0, 2, 2], [0, 0, 2]
    C = confusion_matrix(y_true, y_pred, n_classes=5)
    np.testing.assert_array_equal(
        C, skm.confusion_matrix(y_true, y_pred, labels=np.arange(5)))
    assert C.shape == (5, 5)
    with pytest.raises(ValueError, match=r"^n_classes:"):
        confusion_matrix(y_true, y_pred, n_classes=2)
    with pytest.raises(ValueError, match=r"^n_classes:"):
        confusion_matrix(y_true, y_pred, n_classes=0)
    with pytest.raises(TypeError, match=r"^n_classes:"):
        confusion_matrix(y_true, y_pred, n_classes=3.0)


# -- precision, recall, F1 -------------------------------------------------------------

@pytest.mark.parametrize("n, k", CASES)
@pytest.mark.parametrize("skill", [0.0, 0.6, 1.0])
def test_per_class_scores_match_sklearn(n, k, skill):
    y_true, y_pred = _labels(n, k, 4, skill)
    size = int(max(y_true.max(), y_pred.max())) + 1
    got = precision_recall_f1(y_true, y_pred)
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(size), average=None, zero_division=0)
    np.testing.assert_allclose(got["precision"], p, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["recall"], r, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["f1"], f, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(got["support"], s)
    assert got["support"].dtype == np.int64


@pytest.mark.parametrize("n, k", [(100, 5), (1000, 10), (37, 4)])
def test_averages_from_per_class_scores_match_sklearn(n, k):
    y_true, y_pred = _labels(n, k, 5)
    labels = np.arange(k)
    got = precision_recall_f1(y_true, y_pred, n_classes=k)
    support = got["support"]
    for key, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                    ("f1", skm.f1_score)):
        assert got[key].mean() == pytest.approx(
            fn(y_true, y_pred, labels=labels, average="macro", zero_division=0),
            rel=1e-12)
        assert np.average(got[key], weights=support) == pytest.approx(
            fn(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
            rel=1e-12)
        # micro-averaged precision, recall and F1 are all the accuracy
        tp = np.diag(confusion_matrix(y_true, y_pred, n_classes=k)).sum()
        assert tp / n == pytest.approx(
            fn(y_true, y_pred, labels=labels, average="micro", zero_division=0),
            rel=1e-12)


def test_binary_positive_class_matches_sklearn():
    y_true, y_pred = _labels(300, 2, 6, 0.7)
    got = precision_recall_f1(y_true, y_pred)
    assert got["precision"][1] == pytest.approx(skm.precision_score(y_true, y_pred),
                                                rel=1e-12)
    assert got["recall"][1] == pytest.approx(skm.recall_score(y_true, y_pred),
                                             rel=1e-12)
    assert got["f1"][1] == pytest.approx(skm.f1_score(y_true, y_pred), rel=1e-12)


def test_scores_by_hand_with_undefined_classes():
    # class 1 is never predicted (precision 0/0), class 3 never occurs (recall
    # 0/0) and class 2 is absent from both: all 0, as sklearn's zero_division=0
    got = precision_recall_f1([0, 0, 1, 0], [0, 3, 0, 0], n_classes=4)
    np.testing.assert_allclose(got["precision"], [2 / 3, 0, 0, 0], rtol=1e-15)
    np.testing.assert_allclose(got["recall"], [2 / 3, 0, 0, 0], rtol=1e-15)
    np.testing.assert_allclose(got["f1"], [2 / 3, 0, 0, 0], rtol=1e-15)
    np.testing.assert_array_equal(got["support"], [3, 1, 0, 0])
    assert all(np.isfinite(got[key]).all() for key in ("precision", "recall", "f1"))


# -- bad input --------------------------------------------------------------------

BAD = [
    ([[0, 1], [1, 0]], "must be 1-D"),
    ([], "is empty"),
    ([0, 1.5], "must be integers"),
    ([0, np.nan], "must be integers"),
    ([0, np.inf], "must be integers"),
    ([0, 1e30], "must be < 2\\*\\*63"),
    (np.array([0, 2**64 - 1], np.uint64), "must be < 2\\*\\*63"),
    ([0, -1], ">= 0"),
    (["a", "b"], "must be integers"),
]


@pytest.mark.parametrize("fn", [accuracy, confusion_matrix, precision_recall_f1])
@pytest.mark.parametrize("bad, message", BAD)
def test_bad_labels_raise_value_error_naming_the_argument(fn, bad, message):
    with pytest.raises(ValueError, match=rf"^y_true: .*{message}"):
        fn(bad, [0, 1])
    with pytest.raises(ValueError, match=rf"^y_pred: .*{message}"):
        fn([0, 1], bad)


@pytest.mark.parametrize("fn", [accuracy, confusion_matrix, precision_recall_f1])
def test_mismatched_lengths_raise_value_error(fn):
    with pytest.raises(ValueError, match=r"^y_pred: has 2 labels but y_true has 3"):
        fn([0, 1, 1], [0, 1])


# -- Hoeffding ------------------------------------------------------------------------

def test_hoeffding_t_worked_by_hand():
    # ln(2/0.05) = ln 40 = 3.6888794541139363; / (2 * 1000) = 0.00184443972705697;
    # sqrt = 0.0429469408346737562
    assert hoeffding_t(1000, 0.05) == pytest.approx(0.0429469408346737562, rel=1e-14)
    assert hoeffding_t(1000) == hoeffding_t(1000, 0.05)  # delta defaults to 0.05
    # ln 20 = 2.9957322735539909; / 200 = 0.0149786613677700; sqrt:
    assert hoeffding_t(100, 0.1) == pytest.approx(0.1223873415340408273, rel=1e-14)
    # ln(2/0.5) = ln 4 = 1.3862943611198906; / 2 = 0.6931471805599453; sqrt:
    assert hoeffding_t(1, 0.5) == pytest.approx(0.8325546111576977, rel=1e-14)


@pytest.mark.parametrize("n", [1, 7, 100, 1797, 10**6])
@pytest.mark.parametrize("delta", [1e-9, 0.01, 0.05, 0.5, 0.99])
def test_hoeffding_t_inverts_the_tail_bound(n, delta):
    # P(|acc - true_acc| > t) <= 2 exp(-2 n t^2) = delta
    t = hoeffding_t(n, delta)
    assert 2 * math.exp(-2 * n * t * t) == pytest.approx(delta, rel=1e-12)


def test_hoeffding_interval_holds_in_simulation():
    # draw 20000 test sets of n = 500 from a classifier of true accuracy 0.8:
    # the interval misses the truth in at most a delta fraction of them
    rng = np.random.default_rng(0)
    n, delta, true_acc = 500, 0.05, 0.8
    accs = rng.binomial(n, true_acc, size=20000) / n
    t = hoeffding_t(n, delta)
    assert np.mean(np.abs(accs - true_acc) > t) <= delta
    misses = 0
    for acc in accs[:2000]:
        lo, hi = hoeffding_interval(float(acc), n, delta)
        misses += not (lo <= true_acc <= hi)
    assert misses <= delta * 2000


def test_hoeffding_interval_by_hand_and_clipped_to_0_1():
    t = 0.0429469408346737562
    lo, hi = hoeffding_interval(0.9, 1000, 0.05)
    assert lo == pytest.approx(0.9 - t, rel=1e-14)
    assert hi == pytest.approx(0.9 + t, rel=1e-14)
    assert hoeffding_interval(0.99, 1000) == (pytest.approx(0.99 - t, rel=1e-14), 1.0)
    assert hoeffding_interval(0.01, 1000) == (0.0, pytest.approx(0.01 + t, rel=1e-14))
    assert hoeffding_interval(1.0, 1) == (0.0, 1.0)
    assert hoeffding_interval(0, 10**6, 0.5) == (0.0, pytest.approx(
        math.sqrt(math.log(4) / 2e6), rel=1e-14))


def test_hoeffding_n_worked_by_hand():
    # ln 40 / (2 * 0.05^2) = 737.7758908...: 738 samples
    assert hoeffding_n(0.05, 0.05) == 738
    assert hoeffding_n(0.05) == 738
    # ln 200 / (2 * 0.01^2) = 26491.586...: 26492
    assert hoeffding_n(0.01, 0.01) == 26492
    # ln 4 / 2 = 0.693...: 1 sample for t = 1
    assert hoeffding_n(1.0, 0.5) == 1


def test_hoeffding_n_is_the_smallest_sufficient_n():
    rng = np.random.default_rng(1)
    for t, delta in zip(rng.uniform(1e-3, 1, 3000), rng.uniform(1e-6, 0.999, 3000)):
        n = hoeffding_n(float(t), float(delta))
        assert hoeffding_t(n, float(delta)) <= t
        if n > 1:
            assert hoeffding_t(n - 1, float(delta)) > t


@pytest.mark.parametrize("call, arg", [
    (lambda: hoeffding_t(0), "n"),
    (lambda: hoeffding_t(-5), "n"),
    (lambda: hoeffding_t(100, 0.0), "delta"),
    (lambda: hoeffding_t(100, 1.0), "delta"),
    (lambda: hoeffding_t(100, -0.1), "delta"),
    (lambda: hoeffding_t(100, math.nan), "delta"),
    (lambda: hoeffding_interval(1.1, 100), "acc"),
    (lambda: hoeffding_interval(-0.1, 100), "acc"),
    (lambda: hoeffding_interval(math.nan, 100), "acc"),
    (lambda: hoeffding_interval(0.5, 0), "n"),
    (lambda: hoeffding_interval(0.5, 100, 1.5), "delta"),
    (lambda: hoeffding_n(0.0), "t"),
    (lambda: hoeffding_n(-0.1), "t"),
    (lambda: hoeffding_n(1.5), "t"),
    (lambda: hoeffding_n(0.1, 0.0), "delta"),
    (lambda: hoeffding_n(0.1, 2.0), "delta"),
    (lambda: hoeffding_n(1e-160), "t"),  # ln 40 / (2 t^2) overflows a float
    (lambda: hoeffding_n(1e-300), "t"),  # t^2 underflows to 0
])
def test_hoeffding_bad_arguments_raise_value_error(call, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        call()


@pytest.mark.parametrize("call, arg", [
    (lambda: hoeffding_t(100.0), "n"),
    (lambda: hoeffding_t(True), "n"),
    (lambda: hoeffding_interval("0.9", 100), "acc"),
    (lambda: hoeffding_n(None), "t"),
])
def test_hoeffding_wrong_types_raise_type_error(call, arg):
    with pytest.raises(TypeError, match=rf"^{arg}:"):
        call()

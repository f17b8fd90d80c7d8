"""CSV reading rules, label mapping and task choice (fastnn.data, fastnn.targets)."""

import numpy as np
import pytest

from fastnn.data import load_data, load_features, read_csv, write_table
from fastnn.targets import (
    REGRESSION_MIN_DISTINCT, class_targets, encode_labels, infer_task,
)


def write(tmp_path, text, name="d.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_header_when_no_cell_of_the_first_row_is_a_number(tmp_path):
    d = read_csv(write(tmp_path, "a,b,label\n1,2,x\n3,4,y\n"))
    assert d.feature_names == ("a", "b") and d.label_name == "label"
    np.testing.assert_array_equal(d.X, [[1, 2], [3, 4]])
    assert d.y.tolist() == ["x", "y"]
    d = read_csv(write(tmp_path, "1,2,0\n3,4,1\n"))
    assert d.feature_names is None and d.X.shape == (2, 2)
    np.testing.assert_array_equal(d.y, [0.0, 1.0])


def test_a_typo_in_the_first_row_is_an_error_not_a_header(tmp_path):
    rows = "\n".join(f"{i},{i + 1},{i % 2}" for i in range(60))
    path = write(tmp_path, "1x,2,0\n" + rows + "\n")
    with pytest.raises(ValueError, match=r"line 1, column 0: '1x' is not a "
                       r"number; if the first row is a header, pass --header"):
        read_csv(path)
    assert read_csv(write(tmp_path, rows + "\n")).X.shape == (60, 2)


def test_header_override(tmp_path):
    path = write(tmp_path, "10,20,30\n1,2,0\n3,4,1\n")
    d = read_csv(path, header=True)
    assert d.feature_names == ("10", "20") and d.X.shape == (2, 2)
    assert read_csv(path, header=False).X.shape == (3, 2)
    with pytest.raises(ValueError, match="line 1, column 0: 'a' is not a number$"):
        read_csv(write(tmp_path, "a,b,c\n1,2,0\n"), header=False)


def test_byte_order_mark_is_dropped(tmp_path):
    path = write(tmp_path, "\ufeffa,b,label\n1,2,0\n3,4,1\n")
    d = read_csv(path)
    assert d.feature_names == ("a", "b") and len(d.X) == 2
    d = read_csv(write(tmp_path, "\ufeff1,2,0\n3,4,1\n", "n.csv"))
    assert d.feature_names is None and len(d.X) == 2


def test_pandas_index_column_is_refused_with_a_hint(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    df.to_csv(tmp_path / "i.csv")
    with pytest.raises(ValueError, match="index=False"):
        read_csv(str(tmp_path / "i.csv"))
    df.to_csv(tmp_path / "ok.csv", index=False)
    assert read_csv(str(tmp_path / "ok.csv")).feature_names == ("a",)


@pytest.mark.parametrize("text, message", [
    ("a,,label\n1,2,0\n", "column 1 has no name"),
    ("a,a,label\n1,2,0\n", "appears twice"),
    ("a,b,label\n1,2,0\n3,4\n", "line 3 has 2 cells"),
    ("a,b,label\n1,,0\n", "line 2, b: is empty"),
    ("a,b,label\n1,2,\n", "the label .label. is empty"),
    ("a,b,label\n", "no data rows"),
    ("\n\n", "is empty"),
])
def test_malformed_csv(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_csv(write(tmp_path, text))


def test_delimiters_and_quotes(tmp_path):
    for text in ('a;b;label\n1;2;"x y"\n', "a\tb\tlabel\n1\t2\tx y\n",
                 'a,b,label\n1,2,"x y"\n'):
        d = read_csv(write(tmp_path, text))
        assert d.feature_names == ("a", "b") and d.y.tolist() == ["x y"]
    assert read_csv(write(tmp_path, "1 2 0\n3 4 1\n")).X.shape == (2, 2)


def test_load_features_matches_columns_by_name(tmp_path):
    path = write(tmp_path, "c,label,a,b\n3,x,1,2\n6,y,4,5\n")
    X = load_features(path, ("a", "b", "c"), ignore=("label",))
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['d'\]"):
        load_features(path, ("a", "d"), ignore=("label",))
    with pytest.raises(ValueError, match=r"has column\(s\) \['c'\]"):
        load_features(path, ("a", "b"), ignore=("label",))
    X = load_features(path, ("a", "b"), label_column="label", ignore=("c",))
    np.testing.assert_array_equal(X, [[1, 2], [4, 5]])
    # without names: every column but the dropped ones, in file order
    X = load_features(write(tmp_path, "3,1,2\n6,4,5\n", "n.csv"), ("a", "b", "c"))
    np.testing.assert_array_equal(X, [[3, 1, 2], [6, 4, 5]])


def test_load_data_npz_and_digits(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((4, 2)), y=np.array(["a", "b"] * 2))
    d = load_data(str(tmp_path / "d.npz"))
    assert d.X.shape == (4, 2) and d.y.tolist() == ["a", "b", "a", "b"]
    assert load_data("digits").X.shape == (1797, 64)


def test_write_table_quotes_and_header(tmp_path):
    out = tmp_path / "o.csv"
    write_table(str(out), np.array(["a,b", "c"]), ["label"])
    assert out.read_text() == 'label\n"a,b"\nc\n'
    write_table(str(out), np.array([[0.5, 0.25]]), ["x", "y"])
    assert out.read_text() == "x,y\n0.5,0.25\n"


@pytest.mark.parametrize("labels, classes, indices", [
    (["b", "a", "b"], ["a", "b"], [1, 0, 1]),
    ([1.0, 2.0, 1.0], [1, 2], [0, 1, 0]),
    ([-1, 1, 1], [-1, 1], [0, 1, 1]),
    ([0, 100, 10], [0, 10, 100], [0, 2, 1]),
    ([True, False], [False, True], [1, 0]),
    ([0.5, 1.5], [0.5, 1.5], [0, 1]),
])
def test_encode_labels(labels, classes, indices):
    got_classes, got = encode_labels(np.array(labels))
    assert got_classes.tolist() == classes
    assert got.tolist() == indices
    assert np.array(labels)[0] == got_classes[got[0]]


def test_a_single_class_is_refused():
    with pytest.raises(ValueError, match="every training label is 1"):
        encode_labels(np.ones(10))


def test_infer_task():
    assert infer_task(np.arange(10) % 3)[0] == "classification"
    many = np.arange(REGRESSION_MIN_DISTINCT + 1, dtype=float)
    assert infer_task(many) == ("regression", "21 distinct numeric values")
    assert infer_task(np.array(["a", "b"]))[0] == "classification"
    assert infer_task(many, "classification")[0] == "classification"
    with pytest.raises(ValueError, match="regression needs numeric"):
        infer_task(np.array(["a", "b"]), "regression")


def test_class_targets_per_loss():
    idx = np.array([0, 2, 1])
    t, k = class_targets(idx, 3, "cross_entropy")
    assert k == 3 and t is idx
    t, k = class_targets(idx, 3, "mse")
    np.testing.assert_array_equal(t, np.eye(3)[idx])
    t, k = class_targets(np.array([0, 1]), 2, "binary_cross_entropy")
    assert k == 1 and t.tolist() == [[0.0], [1.0]]

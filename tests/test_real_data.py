"""Users' own data through the command line and the model: any labels,
regression, feature names. Each CLI case runs ``fastnn`` in a subprocess."""

import csv
import subprocess
import sys

import numpy as np
import pytest

import fastnn

pd = pytest.importorskip("pandas")
datasets = pytest.importorskip("sklearn.datasets")


def fastnn_cmd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastnn.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def ok(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def read_out(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def summary(out, key):
    return next(ln for ln in out.splitlines() if ln.strip().startswith(key))


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diabetes")
    frame = datasets.load_diabetes(as_frame=True).frame
    frame.to_csv(tmp / "diabetes.csv", index=False)
    out = ok(fastnn_cmd("train", "--data", "diabetes.csv", "--label-column",
                        "target", "--hidden", "16", "--epochs", "200",
                        "--early-stopping", "10", "--quiet", "--save", "m.st",
                        cwd=tmp))
    return tmp, frame, out


def test_regression_is_picked_and_reported(diabetes):
    _, _, out = diabetes
    assert "task: regression (auto: 214 distinct numeric values in 'target'" in out
    assert "classes" not in summary(out, "data:")
    r2 = float(summary(out, "test MSE / MAE / R2").split("/")[-1])
    assert r2 > 0.3, out  # a linear model reaches about 0.45 on diabetes
    assert "test Hoeffding interval" in out and "unbounded" in out
    stop = summary(out, "early stopping")  # --quiet prints no epoch lines
    stopped, restored = (int(w.strip(",")) for w in stop.split() if w[0].isdigit())
    assert stopped == restored + 10


def test_predict_writes_regression_outputs(diabetes):
    tmp, frame, _ = diabetes
    ok(fastnn_cmd("predict", "m.st", "diabetes.csv", "--out", "p.csv", cwd=tmp))
    header, rows = read_out(tmp / "p.csv")
    assert header == ["target"]
    pred = np.array([float(r[0]) for r in rows])
    assert len(pred) == len(frame) and len(np.unique(pred)) > 100
    model = fastnn.load(tmp / "m.st")
    assert model.task == "regression" and model.target_name == "target"
    expected = model.predict(frame[list(model.feature_names)].to_numpy())[:, 0]
    np.testing.assert_allclose(pred, expected, rtol=1e-6)
    # the outputs are in the target's units: scikit-learn's R2 of them
    from sklearn.metrics import r2_score

    assert r2_score(frame["target"], pred) > 0.3
    proc = fastnn_cmd("predict", "m.st", "diabetes.csv", "--proba", cwd=tmp)
    assert proc.returncode == 2 and "regression" in proc.stderr
    for method in (model.predict_classes, model.predict_proba):
        with pytest.raises(ValueError, match="regression loss"):
            method(frame[list(model.feature_names)])


def test_predict_matches_columns_by_name(diabetes):
    tmp, frame, _ = diabetes
    ok(fastnn_cmd("predict", "m.st", "diabetes.csv", "--out", "a.npy", cwd=tmp))
    shuffled = frame[list(reversed(frame.columns))]
    shuffled.to_csv(tmp / "reordered.csv", index=False)
    ok(fastnn_cmd("predict", "m.st", "reordered.csv", "--out", "b.npy", cwd=tmp))
    np.testing.assert_array_equal(np.load(tmp / "a.npy"), np.load(tmp / "b.npy"))
    frame.drop(columns=["bmi", "target"]).to_csv(tmp / "missing.csv", index=False)
    proc = fastnn_cmd("predict", "m.st", "missing.csv", cwd=tmp)
    assert proc.returncode == 2 and "['bmi']" in proc.stderr
    frame.assign(id=1).to_csv(tmp / "extra.csv", index=False)
    proc = fastnn_cmd("predict", "m.st", "extra.csv", cwd=tmp)
    assert proc.returncode == 2 and "['id']" in proc.stderr
    ok(fastnn_cmd("predict", "m.st", "extra.csv", "--label-column", "id",
                  "--out", "c.npy", cwd=tmp))
    np.testing.assert_array_equal(np.load(tmp / "a.npy"), np.load(tmp / "c.npy"))
    frame.to_csv(tmp / "indexed.csv")
    for command in (["predict", "m.st", "indexed.csv"],
                    ["train", "--data", "indexed.csv", "--label-column", "target"]):
        proc = fastnn_cmd(*command, cwd=tmp)
        assert proc.returncode == 2 and "index=False" in proc.stderr


@pytest.mark.parametrize("labels", [
    ["cat", "dog", "eel"], [1, 2], [-1, 1], [0, 10, 100], ["True", "False"],
])
def test_any_labels_round_trip(tmp_path, labels):
    rng = np.random.default_rng(0)
    k = len(labels)
    centers = np.arange(k)[:, None] * np.array([3.0, -2.0, 1.0])
    idx = np.arange(240) % k
    X = centers[idx] + rng.standard_normal((240, 3)) * 0.3
    frame = pd.DataFrame(X, columns=["u", "v", "w"])
    frame["kind"] = np.array(labels, dtype=object)[idx]
    frame.to_csv(tmp_path / "d.csv", index=False)
    out = ok(fastnn_cmd("train", "--data", "d.csv", "--epochs", "60", "--quiet",
                        "--lr", "0.01", "--hidden", "16", "--save", "m.st",
                        cwd=tmp_path))
    assert f"{k} classes" in summary(out, "data:")
    assert float(summary(out, "test accuracy").split()[-1]) > 0.95
    ok(fastnn_cmd("predict", "m.st", "d.csv", "--out", "p.csv", cwd=tmp_path))
    header, rows = read_out(tmp_path / "p.csv")
    assert header == ["kind"]
    text = [str(v) for v in frame["kind"]]
    assert np.mean([r[0] == t for r, t in zip(rows, text)]) > 0.95
    ok(fastnn_cmd("predict", "m.st", "d.csv", "--proba", "--out", "q.csv",
                  cwd=tmp_path))
    header, rows = read_out(tmp_path / "q.csv")
    assert sorted(header) == sorted(str(v) for v in labels)
    proba = np.array(rows, dtype=float)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert np.mean(np.array(header)[proba.argmax(1)] == text) > 0.95
    model = fastnn.load(tmp_path / "m.st")
    assert model.classes.tolist() == sorted(np.array(labels).tolist())
    if labels[0] == "cat":  # diagnose maps the labels through the model's classes
        assert "act mean" in ok(fastnn_cmd("diagnose", "--model", "m.st", "--data",
                                           "d.csv", cwd=tmp_path))


def test_binary_cross_entropy_gives_two_probability_columns(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 2))
    frame = pd.DataFrame(X, columns=["a", "b"])
    frame["y"] = np.where(X[:, 0] > 0, "yes", "no")
    frame.to_csv(tmp_path / "d.csv", index=False)
    ok(fastnn_cmd("train", "--data", "d.csv", "--loss", "bce", "--epochs", "60",
                  "--lr", "0.01", "--quiet", "--save", "m.st", cwd=tmp_path))
    model = fastnn.load(tmp_path / "m.st")
    assert model.output_dim == 1 and model.classes.tolist() == ["no", "yes"]
    ok(fastnn_cmd("predict", "m.st", "d.csv", "--proba", "--out", "q.csv",
                  cwd=tmp_path))
    header, rows = read_out(tmp_path / "q.csv")
    p = np.array(rows, float)
    assert header == ["no", "yes"]
    np.testing.assert_allclose(p[:, 1], model.predict_proba(X)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    assert (model.predict_classes(X) == frame["y"]).mean() > 0.95


@pytest.mark.parametrize("args, message", [
    (["--task", "regression"], "regression needs numeric"),
    (["--loss", "hinge", "--task", "regression"], "classification loss"),
])
def test_task_and_loss_mistakes(tmp_path, args, message):
    label = "x" if "hinge" not in args else "1.5"
    (tmp_path / "d.csv").write_text(f"a,label\n1,{label}\n2,2\n3,3\n4,4\n")
    proc = fastnn_cmd("train", "--data", "d.csv", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr


def test_single_class_and_header_rules_through_the_cli(tmp_path):
    rows = [f"{i},{i * 2 % 7},1" for i in range(60)]
    (tmp_path / "one.csv").write_text("\n".join(rows) + "\n")
    proc = fastnn_cmd("train", "--data", "one.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "at least two classes" in proc.stderr
    # a typo in row 1 is reported, not taken as a header
    rows = [f"{i},{i * 2 % 7},{i % 2}" for i in range(60)]
    (tmp_path / "typo.csv").write_text("\n".join(["0,O,0"] + rows[1:]) + "\n")
    proc = fastnn_cmd("train", "--data", "typo.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "line 1" in proc.stderr
    # a byte-order mark does not turn the first data row into a header
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode())
    ok(fastnn_cmd("train", "--data", "bom.csv", "--epochs", "1", "--quiet",
                  "--save", "m.st", cwd=tmp_path))
    ok(fastnn_cmd("predict", "m.st", "bom.csv", "--label-column", "-1",
                  "--out", "p.csv", cwd=tmp_path))
    assert len(read_out(tmp_path / "p.csv")[1]) == 60
    proc = fastnn_cmd("predict", "m.st", "bom.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "--label-column" in proc.stderr


def test_sequential_fit_explains_label_mapping():
    X = np.zeros((4, 2), np.float32)
    model = fastnn.Sequential([fastnn.Dense(2)])
    for y in (["a", "b", "a", "b"], [1, 2, 1, 2], [-1, 1, -1, 1]):
        with pytest.raises((TypeError, ValueError), match="np.unique"):
            model.fit(X, y, epochs=1, verbose=0)
        assert not model.built


def test_dataframe_columns_are_stored_and_matched(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((50, 3)), columns=["a", "b", "c"])
    y = (frame["a"] > 0).astype(int).to_numpy()
    model = fastnn.Sequential([fastnn.Dense(2)], seed=0)
    model.fit(frame, y, epochs=2, verbose=0)
    assert model.feature_names == ("a", "b", "c")
    expected = model.predict(frame.to_numpy())
    np.testing.assert_array_equal(model.predict(frame[["c", "a", "b"]]), expected)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['b'\]"):
        model.predict(frame[["a", "c"]])
    with pytest.raises(ValueError, match=r"has column\(s\) \['d'\]"):
        model.predict(frame.assign(d=1.0))
    model.save(tmp_path / "m.st")
    loaded = fastnn.load(tmp_path / "m.st")
    assert loaded.feature_names == ("a", "b", "c")
    np.testing.assert_array_equal(loaded.predict(frame[["b", "c", "a"]]), expected)


def test_classes_are_saved_and_mapped(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2)).astype(np.float32)
    model = fastnn.Sequential([fastnn.Dense(3)], seed=0)
    model.fit(X, np.arange(30) % 3, epochs=1, verbose=0)
    idx = model.predict_classes(X)
    model.classes = ["x", "y", "z"]
    assert model.predict_classes(X).tolist() == np.array(["x", "y", "z"])[idx].tolist()
    assert model.class_indices(["z", "x"]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="not among the classes"):
        model.class_indices(["w"])
    with pytest.raises(ValueError, match="2 classes for a model with 3 outputs"):
        model.classes = ["x", "y"]
    model.save(tmp_path / "m.st")
    assert fastnn.load(tmp_path / "m.st").classes.tolist() == ["x", "y", "z"]

"""The fastnn command, run in subprocesses on shipped data."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest


def fastnn_cmd(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "fastnn.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    proc = fastnn_cmd("train", "--quiet", "--save", str(tmp / "model.safetensors"),
                      cwd=tmp)
    return proc, tmp


def test_train_defaults_reach_095_and_save(trained):
    proc, tmp = trained
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("test accuracy"))
    assert float(line.split()[-1]) >= 0.95, out
    assert "Hoeffding" in out and "samples/s" in out and "time per epoch" in out
    assert (tmp / "model.safetensors").exists()
    # The interval's half-width is the formula's, also where [0, 1] clips it.
    line = next(ln for ln in out.splitlines() if "Hoeffding interval" in ln)
    n = int(line.split("n=")[1].split(",")[0])
    t = float(line.split("t=")[1].rstrip(")"))
    assert t == pytest.approx(math.sqrt(math.log(2 / 0.05) / (2 * n)), abs=5e-5)
    acc = float(next(ln for ln in out.splitlines()
                     if ln.strip().startswith("test accuracy")).split()[-1])
    low, high = (float(v) for v in line.split("[")[1].split("]")[0].split(","))
    assert low == pytest.approx(max(0.0, acc - t), abs=2e-4)
    assert high == pytest.approx(min(1.0, acc + t), abs=2e-4)


def test_predict_loads_the_trained_model(trained, tmp_path):
    _, tmp = trained
    from fastnn.datasets import load_digits

    X, y = load_digits()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "pred.csv"
    proc = fastnn_cmd("predict", str(tmp / "model.safetensors"),
                      str(tmp_path / "d.npz"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().splitlines()[0] == "prediction"
    pred = np.loadtxt(out, dtype=np.int64, skiprows=1)
    assert pred.shape == (1797,)
    assert np.mean(pred == y) > 0.95
    proc = fastnn_cmd("predict", str(tmp / "model.safetensors"),
                      str(tmp_path / "d.npz"), "--proba", "--out",
                      str(tmp_path / "p.npy"))
    assert proc.returncode == 0, proc.stderr
    proba = np.load(tmp_path / "p.npy")
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)


def test_train_on_csv_with_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = (X[:, 0] > 0).astype(int)
    table = np.column_stack([X, y])
    path = tmp_path / "data.csv"
    np.savetxt(path, table, delimiter=",", header="a,b,c,d,label", comments="",
               fmt=["%.6f"] * 4 + ["%d"])
    proc = fastnn_cmd("train", "--data", str(path), "--label-column", "label",
                      "--epochs", "5", "--hidden", "16", "--quiet",
                      "--schedule", "cosine", "--batchnorm", "--dropout", "0.1",
                      "--early-stopping", "3", "--save", str(tmp_path / "m.st"),
                      "--plot", str(tmp_path / "curves.png"))
    assert proc.returncode == 0, proc.stderr
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "missing.npz"], "no such file"),
    (["train", "--hidden", "12,x"], "sizes"),
    (["train", "--optimizer", "nope"], "invalid choice"),
    (["train", "--epochs", "0"], "epochs"),
    (["train", "--lr", "-1"], "learning rate"),
    (["train", "--val-split", "1.5"], "val_size"),
    (["predict", "missing.safetensors", "x.npy"], "no such file"),
    (["train", "--lr", "0"], "learning rate"),
    (["train", "--hidden", "128,,64"], "sizes"),
    (["train", "--save", "nodir/m.safetensors"], "no such directory"),
    (["train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "1", "--quiet"],
     "diverged"),
])
def test_bad_input_exits_with_one_line(args, message, tmp_path):
    proc = fastnn_cmd(*args, cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_csv_column_and_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,x,1\n5,6,1\n")
    proc = fastnn_cmd("train", "--data", str(path), cwd=tmp_path)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "line 3, b: 'x' is not a number" in proc.stderr
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    proc = fastnn_cmd("train", "--data", str(path), "--label-column", "nope",
                      cwd=tmp_path)
    assert proc.returncode != 0 and "nope" in proc.stderr
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    proc = fastnn_cmd("predict", str(garbage), str(path), cwd=tmp_path)
    assert proc.returncode != 0 and "not a loadable" in proc.stderr


def test_bad_data_files_exit_with_one_line(tmp_path):
    (tmp_path / "header.csv").write_text("a,b,label\n")
    X = np.ones((10, 2))
    X[3, 1] = np.inf
    np.save(tmp_path / "Xinf.npy", X)
    np.save(tmp_path / "Xtext.npy", np.full((10, 2), "a"))
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    for data, message in [("header.csv", "no data rows"),
                          ("Xinf.npy,y.npy", "NaN or infinity"),
                          ("Xtext.npy,y.npy", "real numbers")]:
        proc = fastnn_cmd("train", "--data", data, "--epochs", "1", cwd=tmp_path)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr


def test_predict_drops_the_label_column(trained, tmp_path):
    _, tmp = trained
    from fastnn.datasets import load_digits

    X, y = load_digits()
    X, y = X[:50], y[:50]
    header = ",".join([f"p{i}" for i in range(32)] + ["label"]
                      + [f"p{i}" for i in range(32, 64)])
    np.savetxt(tmp_path / "d.csv", np.column_stack([X[:, :32], y, X[:, 32:]]),
               delimiter=",", header=header, comments="", fmt="%g")
    np.save(tmp_path / "X.npy", X)
    model = str(tmp / "model.safetensors")
    proc = fastnn_cmd("predict", model, "d.csv", "--label-column", "label",
                      "--out", "from_csv.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = fastnn_cmd("predict", model, "X.npy", "--out", "from_npy.npy",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "from_csv.npy"),
                                  np.load(tmp_path / "from_npy.npy"))


def test_closed_stdout_is_not_an_error():
    # as in `fastnn info | head -1`: the reader is gone before the output
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "fastnn.cli", "info"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=600)
    finally:
        os.close(write_end)
    assert proc.stderr == ""


def test_info_lists_kernels():
    proc = fastnn_cmd("info")
    assert proc.returncode == 0, proc.stderr
    assert "dense" in proc.stdout and "float32" in proc.stdout
    # The BLAS the kernels call (SciPy's), with its version and threads; the
    # test extras include threadpoolctl, which finds it.
    import scipy

    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BLAS for")
                and "the kernels" in ln)
    assert "threads" in line
    assert scipy.__file__ and os.path.exists(line.rsplit("; ", 1)[1])
    # Which build the kernels are: CI's release wheel must be the portable
    # one (it sets FASTNN_EXPECT_BUILD), a source build the native one.
    from fastnn._kernels import BUILD, LEVEL

    assert f"kernels built for: {BUILD}" in proc.stdout
    assert f"instruction-set level in use: {LEVEL} " in proc.stdout
    expect = os.environ.get("FASTNN_EXPECT_BUILD")
    assert BUILD.removeprefix("debug, ").startswith(
        expect or ("native", "portable"))


def test_diagnose_runs_small():
    proc = fastnn_cmd("diagnose", "--depth", "4", "--width", "50", "--samples", "64")
    assert proc.returncode == 0, proc.stderr
    for name in ("tanh N(0, 0.01)", "tanh N(0, 1)", "tanh Glorot", "relu He"):
        assert name in proc.stdout

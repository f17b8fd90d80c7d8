"""Where a model file may be written: checked before any work, nothing but a
regular file ever replaced, the same rule for save, --save and ModelCheckpoint."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.callbacks import ModelCheckpoint
from fastnn.io import check_save_path

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file types")


@pytest.fixture
def model():
    return fastnn.Sequential([fastnn.Dense(3)], seed=0).build(4)


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _link(tmp_path):
    target = tmp_path / "target.safetensors"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.safetensors"
    link.symlink_to(target.name)
    return link


@posix_only
@pytest.mark.parametrize("make, match", [
    (_link, "is a symbolic link"),
    (_fifo, "not a regular file"),
    (lambda tmp: tmp, "is a directory"),
])
def test_save_refuses_non_regular_targets_and_leaves_them_alone(tmp_path, model,
                                                               make, match):
    path = make(tmp_path)
    before = {p.name: (os.lstat(p).st_mode, p.is_symlink()) for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=f"path: .*{match}"):
        model.save(path)
    after = {p.name: (os.lstat(p).st_mode, p.is_symlink()) for p in tmp_path.iterdir()}
    assert after == before  # nothing replaced, no temporary file left
    if (tmp_path / "target.safetensors").exists():
        assert (tmp_path / "target.safetensors").read_bytes() == b"keep me"


@posix_only
def test_dev_null_is_refused_and_stays_a_device(model):
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    with pytest.raises(ValueError, match="/dev/null is not a regular file"):
        model.save("/dev/null")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_a_symlink_to_a_directory_that_exists_is_followed(tmp_path, model):
    """Only the last component is never a link; directories above it may be."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to("real")
    model.save(tmp_path / "alias" / "m.safetensors")
    assert (tmp_path / "real" / "m.safetensors").is_file()


def test_a_regular_file_is_replaced(tmp_path, model):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")
    model.save(path)
    np.testing.assert_array_equal(fastnn.load(path).get_weights()[0],
                                  model.get_weights()[0])


@pytest.mark.parametrize("path, match", [
    ("", "must not be empty"),
    ("missing/m.safetensors", "no such directory: .*missing"),
    ("sub/", "names a directory"),
    ("a\0b", "NUL"),
    ("/proc/m.safetensors", "in /proc, a pseudo file system"),
    ("/proc/self/m.safetensors", "in /proc"),
    ("/sys/m.safetensors", "in /sys"),
])
def test_paths_that_cannot_hold_a_model_are_refused(tmp_path, monkeypatch, model,
                                                    path, match):
    if path.startswith(("/proc", "/sys")) and not os.path.isdir(os.path.dirname(path)):
        pytest.skip("no such pseudo file system here")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match=match):
        check_save_path(path, "--save")
    with pytest.raises(ValueError, match=match):
        model.save(path)


def test_the_target_is_checked_again_just_before_the_rename(tmp_path, model,
                                                            monkeypatch):
    """A link that appears while the file is written is not replaced."""
    from fastnn import io

    path = tmp_path / "m.safetensors"
    real_fsync = os.fsync

    def fsync_then_race(fd):
        real_fsync(fd)
        if not path.exists():
            path.symlink_to("elsewhere")

    monkeypatch.setattr(io.os, "fsync", fsync_then_race)
    with pytest.raises(ValueError, match="symbolic link"):
        model.save(path)
    assert path.is_symlink()
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# -- ModelCheckpoint -----------------------------------------------------------------


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)


@pytest.mark.parametrize("path, match", [
    ("missing/m{epoch}.safetensors", "no such directory"),
    ("m{epoch.foo}.safetensors", "AttributeError"),
    ("m{epoch[0]}.safetensors", "TypeError"),
    ("m{loss.real.x}.safetensors", "AttributeError"),
    ("/dev/null", "not a regular file"),
])
def test_checkpoint_paths_are_refused_before_the_first_epoch(tmp_path, monkeypatch,
                                                             model, path, match):
    monkeypatch.chdir(tmp_path)
    X, y = _data()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path)])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_checkpoint_into_a_symlink_is_refused(tmp_path, model):
    X, y = _data()
    link = _link(tmp_path)
    with pytest.raises(ValueError, match="symbolic link"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(link)])
    assert link.is_symlink()


def test_checkpoint_still_saves_each_epoch(tmp_path, model):
    X, y = _data()
    cb = ModelCheckpoint(str(tmp_path / "m{epoch}-{loss:.3f}.safetensors"))
    model.fit(X, y, epochs=2, verbose=0, callbacks=[cb])
    assert len(cb.saved) == 2 and all(os.path.isfile(p) for p in cb.saved)


# -- the command line --------------------------------------------------------------


def _fastnn(*args, cwd):
    from _child import child_env

    env = child_env()
    return subprocess.run([sys.executable, "-m", "fastnn.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env,
                          check=False)


@pytest.mark.parametrize("option, value, match", [
    ("--save", "missing/m.safetensors", "--save: no such directory"),
    ("--save", "", "--save: must not be empty"),
    ("--save", "/dev/null", "--save: /dev/null is not a regular file"),
    ("--save", "/proc/m.safetensors", "--save: /proc/m.safetensors is in /proc"),
    ("--save", "link", "--save: link is a symbolic link"),
    ("--plot", "missing/p.png", "--plot: no such directory"),
])
def test_train_refuses_output_paths_before_training(tmp_path, option, value, match):
    if value.startswith("/proc") and not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    if option == "--plot":
        pytest.importorskip("matplotlib")
    (tmp_path / "target").write_bytes(b"keep")
    os.symlink("target", tmp_path / "link")
    proc = _fastnn("train", "--epochs", "1", option, value, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fastnn train: error: {match}")
    assert "Traceback" not in proc.stderr and proc.stdout == ""  # no epoch ran
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "target").read_bytes() == b"keep"


@pytest.mark.parametrize("value, match", [
    ("missing/p.csv", "--out: no such directory"),
    ("/dev/null", "--out: /dev/null is not a regular file"),
    ("link", "--out: link is a symbolic link"),
    ("p.txt", "--out: unsupported extension '.txt'"),
])
def test_predict_refuses_output_paths_before_loading(tmp_path, value, match):
    (tmp_path / "target").write_bytes(b"keep")
    os.symlink("target", tmp_path / "link")
    # no model file at all: the --out check comes first
    proc = _fastnn("predict", "missing.safetensors", "missing.csv", "--out", value,
                   cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fastnn predict: error: {match}")
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "target").read_bytes() == b"keep"


@pytest.mark.parametrize("name", ["p.csv", "p.npy"])
def test_predict_out_replaces_a_file_whole(tmp_path, model, name):
    X, _ = _data()
    model.save(str(tmp_path / "m.safetensors"))
    np.save(tmp_path / "X.npy", X)
    (tmp_path / name).write_bytes(b"old contents, longer than nothing")
    proc = _fastnn("predict", "m.safetensors", "X.npy", "--out", name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = model.predict(X)  # an untrained model: its raw outputs
    if name.endswith(".npy"):
        np.testing.assert_array_equal(np.load(tmp_path / name), expected)
    else:
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == 1 + len(X)
        got = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
        np.testing.assert_allclose(got, expected, rtol=1e-7)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fastnn-")] == []


def test_diagnose_refuses_a_plot_path_before_running(tmp_path):
    pytest.importorskip("matplotlib")
    proc = _fastnn("diagnose", "--plot", "missing/h.png", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "fastnn diagnose: error: --plot: no such directory")
    assert proc.stdout == ""

"""Saving and loading: safetensors, atomic, and clear errors on damaged files."""

import json
import os

import numpy as np
import pytest

import fastnn


def _trained(tmp_path=None):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6)).astype(np.float32)
    y = rng.integers(0, 3, 120)
    model = fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.BatchNorm(),
                               fastnn.PReLU(), fastnn.Dense(3)], seed=0)
    model.fit(X, y, epochs=2, verbose=0, seed=0)
    return model, X


def test_save_load_identical_predictions(tmp_path):
    model, X = _trained()
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = fastnn.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.loss == "softmax_cross_entropy"
    assert loaded.dtype == np.float32
    assert [type(la).__name__ for la in loaded.layers] == [
        "Dense", "BatchNorm", "PReLU", "Dense"]
    assert loaded.layers[1].num_batches_tracked == model.layers[1].num_batches_tracked


def test_tensor_names_follow_torch_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file

    model, X = _trained()
    path = tmp_path / "m.safetensors"
    model.save(path)
    tensors = load_file(str(path))
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(),
                              torch.nn.BatchNorm1d(8), torch.nn.PReLU(),
                              torch.nn.Linear(8, 3))
    assert set(tensors) == set(net.state_dict())
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    net.eval()
    out = net(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(out, model.predict(X), rtol=1e-4, atol=1e-5)


def test_metadata_holds_architecture(tmp_path):
    from safetensors import safe_open

    model, _ = _trained()
    path = tmp_path / "m.safetensors"
    model.save(path)
    with safe_open(str(path), framework="numpy") as f:
        header = json.loads(f.metadata()["fastnn"])
    assert header["dtype"] == "float32" and header["loss"] == "softmax_cross_entropy"
    assert header["fastnn_version"] == fastnn.__version__
    assert header["layers"][0]["type"] == "Dense"


def test_save_is_atomic(tmp_path, monkeypatch):
    model, X = _trained()
    path = tmp_path / "m.safetensors"
    model.save(path)
    original = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _saved_bytes(tmp_path):
    model, _ = _trained()
    path = tmp_path / "m.safetensors"
    model.save(path)
    return path, path.read_bytes()


def test_truncated_file(tmp_path):
    path, data = _saved_bytes(tmp_path)
    for cut in (4, 20, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a loadable fastnn model"):
            fastnn.load(path)


def test_corrupted_header(tmp_path):
    path, data = _saved_bytes(tmp_path)
    path.write_bytes(data[:8] + b"\xff" * 16 + data[24:])
    with pytest.raises(ValueError, match="not a loadable fastnn model"):
        fastnn.load(path)


def test_garbage_and_empty_files(tmp_path):
    path = tmp_path / "g.safetensors"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match="not a loadable"):
        fastnn.load(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="not a loadable"):
        fastnn.load(path)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.safetensors")


def test_foreign_safetensors_file(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"weight": np.zeros((2, 2), np.float32)}, str(path))
    with pytest.raises(ValueError, match="no fastnn header"):
        fastnn.load(path)


def _rewrite_header(path, tmp_path, change):
    """A copy of the model file at ``path`` changed by ``change(header,
    tensors)``, with a checksum that matches (if it keeps one), so that only
    the change can be refused."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        header = json.loads(f.metadata()["fastnn"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header, tensors = change(header, tensors)
    if "sha256" in header:
        header["sha256"] = fastnn.io._checksum(header, tensors)
    out = tmp_path / "changed.safetensors"
    save_file(tensors, str(out), metadata={"fastnn": json.dumps(header)})
    return out


def test_future_version_is_refused(tmp_path):
    path, _ = _saved_bytes(tmp_path)

    def future(header, tensors):
        header["format_version"] = 99
        return header, tensors

    with pytest.raises(ValueError, match="newer fastnn"):
        fastnn.load(_rewrite_header(path, tmp_path, future))


def test_tensor_shape_mismatch_and_nan_are_refused(tmp_path):
    path, _ = _saved_bytes(tmp_path)

    def reshape(header, tensors):
        tensors["0.weight"] = np.zeros((8, 5), np.float32)
        return header, tensors

    with pytest.raises(ValueError, match="0.weight"):
        fastnn.load(_rewrite_header(path, tmp_path, reshape))

    def nan(header, tensors):
        tensors["0.bias"] = np.full(8, np.nan, np.float32)
        return header, tensors

    with pytest.raises(ValueError, match="NaN"):
        fastnn.load(_rewrite_header(path, tmp_path, nan))

    def unknown_layer(header, tensors):
        header["layers"][0]["type"] = "Evil"
        return header, tensors

    with pytest.raises(ValueError, match="architecture"):
        fastnn.load(_rewrite_header(path, tmp_path, unknown_layer))


def test_saved_file_gets_the_permissions_of_a_new_file(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    model, _ = _trained()
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "m.safetensors")
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(old)
    mode = (tmp_path / "m.safetensors").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644


def test_flipped_bits_in_the_data_or_header_are_refused(tmp_path):
    path, data = _saved_bytes(tmp_path)
    header_len = int.from_bytes(data[:8], "little")
    # The lowest bit of the file's last byte, in the data region: every value
    # stays valid (finite, in range), so only a checksum can tell.
    damaged = data[:-1] + bytes([data[-1] ^ 0x01])
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match="corrupted"):
        fastnn.load(path)
    # l2 0.0 -> 8.0 in the JSON header: one bit ('0' is 0x30, '8' is 0x38).
    at = data.index(b'\\"l2\\": 0.0')
    assert at < 8 + header_len
    digit = at + len(b'\\"l2\\": ')
    damaged = data[:digit] + b"8" + data[digit + 1:]
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match="corrupted"):
        fastnn.load(path)


def test_a_file_must_carry_its_checksum(tmp_path):
    path, data = _saved_bytes(tmp_path)

    def drop(header, tensors):
        del header["sha256"]
        return header, tensors

    with pytest.raises(ValueError, match="no valid checksum"):
        fastnn.load(_rewrite_header(path, tmp_path, drop))


def _set_units(header, tensors):
    header["layers"][0]["config"]["units"] = 10**12  # 24 TB of float32
    return header, tensors


def _set_tensor(name, value):
    def change(header, tensors):
        tensors[name] = value
        return header, tensors
    return change


def _set_version(version):
    def change(header, tensors):
        header["format_version"] = version
        return header, tensors
    return change


@pytest.mark.parametrize("damage, match", [
    # a huge architecture is refused before anything is allocated for it
    (_set_units, r"0.weight is F32\[8, 6\], expected F32\[1000000000000, 6\]"),
    (_set_tensor("2.running_var", -np.ones(8, np.float32)), "2.running_var"),
    *[(_set_tensor("2.num_batches_tracked", v), "2.num_batches_tracked")
      for v in (np.array([1, 2]), np.array(-3), np.array(2.5), np.array(np.nan))],
    *[(_set_version(v), "format version") for v in (True, "1", 0, None)],
], ids=["huge", "negative-running-var", "nbt-vector", "nbt-negative",
        "nbt-fraction", "nbt-nan", "version-bool", "version-str", "version-0",
        "version-none"])
def test_inconsistent_contents_are_refused(tmp_path, damage, match):
    path, _ = _saved_bytes(tmp_path)
    with pytest.raises(ValueError, match=match):
        fastnn.load(_rewrite_header(path, tmp_path, damage))


def test_path_of_a_wrong_type_names_the_argument(tmp_path):
    model, _ = _trained()
    with pytest.raises(TypeError, match="path"):
        fastnn.load(123)
    with pytest.raises(TypeError, match="path"):
        model.save(None)

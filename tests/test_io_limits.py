"""Model files within bounds: checksum required, header and tensor table checked
before any tensor is read, JSON bounded, and save refusing what load refuses."""

import json
import os
import tracemalloc

import numpy as np
import pytest
from _file_mutants import join, nested, split

import fastnn
from fastnn import io


@pytest.fixture
def saved(tmp_path):
    """``(path, bytes, model)`` of a small saved model with every kind of tensor."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 6)).astype(np.float32)
    model = fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.BatchNorm(),
                               fastnn.PReLU(), fastnn.Dense(3)], seed=0)
    model.fit(X, rng.integers(0, 3, 60), epochs=1, verbose=0, seed=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    return path, path.read_bytes(), model


def _rewrite(path, data, outer=None, inner=None, raw=None, resum=False):
    """Write ``data`` with its safetensors header changed by ``outer(header)``
    and its fastnn header by ``inner(header)``; ``resum`` recomputes the
    checksum so that only the change itself can be refused."""
    header, region = split(data)
    if inner is not None:
        fastnn_header = json.loads(header["__metadata__"]["fastnn"])
        inner(fastnn_header)
        if resum:
            from safetensors.numpy import load

            tensors = load(data)
            fastnn_header["sha256"] = io._checksum(fastnn_header, tensors)
        header["__metadata__"]["fastnn"] = json.dumps(fastnn_header)
    if outer is not None:
        outer(header)
    path.write_bytes(join(header, region, raw))
    return path


def _refused(path, match):
    with pytest.raises(ValueError, match=match) as info:
        fastnn.load(path)
    assert "not a loadable fastnn model" in str(info.value)
    assert "\n" not in str(info.value)


# -- the checksum ------------------------------------------------------------------


def test_without_its_checksum_a_flipped_weight_bit_is_refused(saved):
    path, data, _ = saved

    def drop(header):
        del header["sha256"]

    _rewrite(path, data, inner=drop)
    _refused(path, "no valid checksum")
    # Dropping the checksum and flipping the lowest bit of the last weight
    # (still a finite number) used to load a different model silently.
    flipped = path.read_bytes()
    path.write_bytes(flipped[:-1] + bytes([flipped[-1] ^ 1]))
    _refused(path, "no valid checksum")


@pytest.mark.parametrize("value", ["", "0" * 63, "G" * 64, 5, None, ["x"]])
def test_a_malformed_checksum_is_refused(saved, value):
    path, data, _ = saved

    def change(header):
        header["sha256"] = value

    _refused(_rewrite(path, data, inner=change), "no valid checksum")


def test_a_file_in_the_first_layout_loads(saved, tmp_path):
    """Files written by safetensors' own writer with the checksum of the first
    release (a scalar counter hashed as shape [1]) load unchanged."""
    from safetensors.numpy import load, save_file

    _, data, model = saved
    header = json.loads(split(data)[0]["__metadata__"]["fastnn"])
    tensors = load(data)
    assert tensors["2.num_batches_tracked"].shape == ()
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={"fastnn": json.dumps(header)})
    loaded = fastnn.load(old)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.layers[1].num_batches_tracked == model.layers[1].num_batches_tracked


# -- nothing read before everything is checked -------------------------------------


def _peak_during_load(path):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            fastnn.load(path)
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


def test_a_huge_tensor_claimed_by_a_tiny_file_is_refused_without_allocating(
        tmp_path):
    """The architecture and the table agree on a 1.5 GB weight, and the
    checksum is right: only the file's size tells, and it is checked first."""
    from safetensors.numpy import load

    path = tmp_path / "m.safetensors"
    fastnn.Sequential([fastnn.Dense(3)], seed=0).build(6).save(path)
    header, region = split(path.read_bytes())
    n_in = 125_000_000  # 0.weight would be 3 x 125M float32: 1.5 GB
    inner = json.loads(header["__metadata__"]["fastnn"])
    inner["input_dim"] = n_in
    inner["sha256"] = io._checksum(inner, load(path.read_bytes()))
    claim = {"__metadata__": {"fastnn": json.dumps(inner)},
             "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
             "0.weight": {"dtype": "F32", "shape": [3, n_in],
                          "data_offsets": [12, 12 + 12 * n_in]}}
    path.write_bytes(join(claim, region))
    peak, message = _peak_during_load(path)
    assert "do not tile its 84 bytes of tensor data" in message
    assert peak < 2 << 20, peak


def test_a_junk_tensor_in_a_real_file_is_never_read(saved, tmp_path):
    """A 40 MB tensor the architecture does not have: refused from the header
    alone (it was read whole, twice over, before)."""
    from safetensors.numpy import load, save_file

    _, data, _ = saved
    tensors = load(data)
    tensors["junk"] = np.zeros(10_000_000, np.float32)
    junk = tmp_path / "junk.safetensors"
    save_file(tensors, str(junk), metadata=split(data)[0]["__metadata__"])
    peak, message = _peak_during_load(junk)
    assert "unexpected ['junk']" in message
    assert peak < 2 << 20, peak


def test_a_tensor_with_the_wrong_byte_range_is_refused(saved):
    path, data, _ = saved

    def shift(header):
        begin, end = header["0.bias"]["data_offsets"]
        header["0.bias"]["data_offsets"] = [begin, end + 4]

    _rewrite(path, data, outer=shift)
    _refused(path, "0.bias spans 36 bytes, its shape needs 32")

    def overlap(header):
        header["0.bias"]["data_offsets"] = header["0.weight"]["data_offsets"][:1] * 2
        header["0.bias"]["data_offsets"][1] += 32

    _rewrite(path, data, outer=overlap)
    _refused(path, "do not tile")
    path.write_bytes(data + b"\0" * 8)  # bytes appended after the last tensor
    _refused(path, "do not tile")


@pytest.mark.parametrize("length", [0, 7, 2**63, 2**64 - 1, io.MAX_HEADER_BYTES + 1])
def test_a_bad_header_length_is_refused(saved, length):
    path, data, _ = saved
    path.write_bytes(length.to_bytes(8, "little") + data[8:])
    _refused(path, "header")


# -- bounded JSON ---------------------------------------------------------------------


def _with_extra_key(path, data, text, where, resum=False):
    """Add the key ``"x"`` holding the JSON ``text`` to the safetensors header
    (``where="outer"``; it is read as a tensor entry), or to the fastnn header,
    where unknown keys are allowed; ``resum`` recomputes the checksum (for a
    ``text`` that Python's own json can parse)."""
    from safetensors.numpy import load

    header, region = split(data)
    if where == "outer":
        raw = json.dumps(header)[:-1] + ', "x": ' + text + "}"
        path.write_bytes(join(None, region, raw))
        return path
    inner = json.loads(header["__metadata__"]["fastnn"])
    if resum:
        inner["x"] = json.loads(text)
        inner["sha256"] = io._checksum(inner, load(data))
        header["__metadata__"]["fastnn"] = json.dumps(inner)
    else:
        header["__metadata__"]["fastnn"] = json.dumps(inner)[:-1] + ', "x": ' \
            + text + "}"
    path.write_bytes(join(header, region))
    return path


def test_json_nesting_is_bounded(saved):
    path, data, model = saved
    limit = io.MAX_JSON_DEPTH
    # The header is an object, so its key's value may nest limit - 1 deep.
    loaded = fastnn.load(_with_extra_key(path, data, nested(limit - 1), "fastnn",
                                         resum=True))
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    for where in ("fastnn", "outer"):
        _refused(_with_extra_key(path, data, nested(limit), where),
                 f"nests {limit + 1} lists or objects deep, more than the {limit}")
        # deep enough to exhaust Python's recursion: a RecursionError before
        _refused(_with_extra_key(path, data, nested(50_000), where),
                 "nests 50001 lists")
    # Brackets inside strings do not count, escaped quotes included.
    text = json.dumps('\\"[[[[' * 1000)
    fastnn.load(_with_extra_key(path, data, text, "fastnn", resum=True))


@pytest.mark.parametrize("where", ["outer", "fastnn"])
def test_json_containers_are_bounded(saved, where):
    path, data, _ = saved
    many = "[" + ",".join(["[]"] * io.MAX_JSON_CONTAINERS) + "]"
    _refused(_with_extra_key(path, data, many, where),
             f"more than the {io.MAX_JSON_CONTAINERS} allowed")


@pytest.mark.parametrize("text, match", [
    ("NaN", "NaN, which is not a JSON number"),
    ("-Infinity", "not a JSON number"),
    ("1e400", "too large for a float"),
    ("9" * 5000, "digits"),
    ('{"a": 1, "a": 2}', "the key 'a' twice"),
    ('"an unterminated string', "header is not valid"),
])
def test_odd_json_values_are_refused(saved, text, match):
    path, data, _ = saved
    _refused(_with_extra_key(path, data, text, "outer"), match)


def test_the_header_size_is_bounded(saved, monkeypatch):
    path, data, model = saved
    monkeypatch.setattr(io, "MAX_HEADER_BYTES", 4096)
    _refused(_with_extra_key(path, data, json.dumps("x" * 5000), "outer"),
             "more than the 4096 allowed")
    # What load would refuse, save refuses: a model whose header is too long.
    monkeypatch.setattr(io, "MAX_HEADER_BYTES", 512)
    with pytest.raises(ValueError, match="cannot be saved.*512 allowed"):
        model.save(path)


def test_the_tensor_count_is_bounded(saved):
    path, data, _ = saved

    def many(header):
        for i in range(io.MAX_TENSORS + 1):
            header[f"t{i}"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}

    _rewrite(path, data, outer=many)
    count = len(split(data)[0]) - 1 + io.MAX_TENSORS + 1
    _refused(path, f"{count} tensors, more than the {io.MAX_TENSORS} allowed")


# -- what save writes, load accepts -------------------------------------------------


def _unchanged_after_refused_save(model, path, match):
    before = path.read_bytes()
    with pytest.raises(ValueError, match=match):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_refuses_a_model_load_would_refuse(tmp_path):
    path = tmp_path / "m.safetensors"
    fastnn.Sequential([fastnn.Dense(3)], seed=0).build(4).save(path)
    # as Dense(3, gain=1e40) made it in float32
    huge = fastnn.Sequential([fastnn.Dense(3)], seed=0).build(4)
    huge.layers[0].params["weight"][1, 2] = np.inf
    _unchanged_after_refused_save(huge, path,
                                  "cannot be saved.*0.weight contains NaN")

    bn = fastnn.Sequential([fastnn.BatchNorm()], seed=0).build(4)
    bn.layers[0].state["running_var"][1] = -1
    _unchanged_after_refused_save(bn, path, "cannot be saved.*0.running_var")
    bn.layers[0].state["running_var"][1] = 1
    bn.layers[0].num_batches_tracked = -1
    _unchanged_after_refused_save(bn, path, "cannot be saved.*num_batches_tracked")
    bn.layers[0].num_batches_tracked = 2**63
    _unchanged_after_refused_save(bn, path, "cannot be saved.*num_batches_tracked")
    bn.layers[0].num_batches_tracked = 7
    bn.save(path)
    assert fastnn.load(path).layers[0].num_batches_tracked == 7


def test_save_and_load_share_the_tensor_checks(monkeypatch, saved):
    """One function judges tensor values for both: a stricter rule there
    shows in save and in load alike."""
    path, _, model = saved

    def no_negative_weights(name, key, arr):
        return f"{name} negative" if key == "weight" and (arr < 0).any() else None

    monkeypatch.setattr(io, "_value_problem", no_negative_weights)
    with pytest.raises(ValueError, match="cannot be saved.*0.weight negative"):
        model.save(path)
    _refused(path, "0.weight negative")


def test_a_directory_a_fifo_or_a_nul_is_refused_by_load(tmp_path):
    with pytest.raises(ValueError, match="is not a loadable fastnn model: it is"):
        fastnn.load(tmp_path)
    if hasattr(os, "mkfifo"):  # opened without blocking, then refused
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ValueError, match="not a regular file"):
            fastnn.load(tmp_path / "fifo")
    with pytest.raises(ValueError, match="path: must not contain a NUL"):
        fastnn.load("m\0.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        fastnn.load(tmp_path / "missing" / "m.safetensors")

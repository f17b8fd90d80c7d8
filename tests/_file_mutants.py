"""Mutants of saved model files, and the subprocess that loads them.

``mutants(data, rng, n)`` derives ``n`` damaged copies of a model file's bytes:
byte and bit flips, truncations, insertions, deletions, a changed header length,
and edits of the safetensors header (shapes, dtypes, offsets, tensor names,
nesting, huge numbers) and of the fastnn header inside it (without recomputing
its checksum). Run as a script, ``python _file_mutants.py MANIFEST`` loads each
mutant of the manifest and prints one JSON line per mutant with its outcome:

- ``refused``: ``fastnn.load`` raised ValueError or FileNotFoundError;
- ``equal``: it loaded a model equal to the original (architecture, loss,
  dtype, every weight and counter bit for bit);
- anything else (another exception type, a different model) is a finding.

The loads run under an address-space limit of the interpreter's size plus
``FASTNN_FUZZ_HEADROOM_MB`` (default 256), so a load that allocates much more
than a file of a few KB can hold fails with MemoryError and counts as a finding.
A crash ends the process early, which the caller sees as missing lines.
"""

import json
import sys

import numpy as np

# -- file surgery --------------------------------------------------------------


def split(data):
    """``(header dict, data region)`` of a well-formed safetensors file."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, region, raw=None):
    """A safetensors file of ``header`` (or the raw JSON text ``raw``) and
    ``region``, padded to 8 bytes as safetensors does."""
    text = (raw if raw is not None else json.dumps(header)).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + region


def nested(depth):
    return "[" * depth + "]" * depth


def _choice(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _tensor_names(header):
    return sorted(k for k in header if k != "__metadata__")


def _edit_entry(header, rng):
    name = _choice(rng, _tensor_names(header))
    entry = header[name]
    shape, (begin, end) = entry["shape"], entry["data_offsets"]
    field = _choice(rng, ["shape", "dtype", "data_offsets", "extra", "drop",
                          "rename", "type"])
    if field == "shape":
        entry["shape"] = _choice(rng, [
            [], [0], [10**12, 6], [-1] + shape[1:], [1.5], ["8"], [True] * 2,
            shape[::-1], [1] + shape, shape[:-1], shape * 2, [2**63] + shape,
            [10**40], None, {"0": 1},
            [int(rng.integers(0, 20)) for _ in shape]])
    elif field == "dtype":
        entry["dtype"] = _choice(rng, ["F16", "BF16", "F64", "F32", "I64", "I32",
                                       "U8", "BOOL", "F8_E4M3", "x", 3, None,
                                       "f32"])
    elif field == "data_offsets":
        delta = int(rng.integers(-9, 10)) or 1
        entry["data_offsets"] = _choice(rng, [
            [begin + delta, end + delta], [begin, end + delta], [end, begin],
            [0, end - begin], [begin, 10**18], [-8, end], [begin], [begin, end, 0],
            "0", [begin, 2**64], [1.0 * begin, end], [begin, end + 1600000000]])
    elif field == "extra":
        entry["extra"] = 1
    elif field == "drop":
        del header[name]
    elif field == "rename":
        header[name + "x"] = header.pop(name)
    else:
        header[name] = _choice(rng, [[], "x", 0, None, [1, 2, 3]])
    return header, None


def _edit_outer(header, rng):
    end = max(e["data_offsets"][1] for k, e in header.items() if k != "__metadata__")
    kind = _choice(rng, ["junk", "nest", "no_meta", "meta_type", "no_fastnn",
                         "meta_extra", "dup", "many", "top_list", "huge_number"])
    raw = None
    if kind == "junk":  # a 1.6 GB tensor that the file does not hold
        header["junk"] = {"dtype": "F32", "shape": [400_000_000],
                          "data_offsets": [end, end + 1_600_000_000]}
    elif kind == "nest":
        raw = json.dumps(header)[:-1] + ', "x": ' + nested(
            _choice(rng, [64, 1000, 100_000])) + "}"
    elif kind == "no_meta":
        del header["__metadata__"]
    elif kind == "meta_type":
        header["__metadata__"] = _choice(rng, [[], "x", {"fastnn": 1},
                                               {"fastnn": None}])
    elif kind == "no_fastnn":
        header["__metadata__"] = {"other": "1"}
    elif kind == "meta_extra":
        header["__metadata__"]["other"] = "x"
    elif kind == "dup":  # a second entry for a tensor name, differing
        name = _choice(rng, _tensor_names(header))
        entry = dict(header[name], shape=[1])
        raw = json.dumps(header)[:-1] + f", {json.dumps(name)}: " + json.dumps(
            entry) + "}"
    elif kind == "many":
        for i in range(_choice(rng, [50, 20_000])):
            header[f"t{i}"] = {"dtype": "F32", "shape": [0],
                               "data_offsets": [end, end]}
    elif kind == "top_list":
        raw = json.dumps(list(header))
    else:
        raw = json.dumps(header).replace(
            '"data_offsets": [0,', '"data_offsets": [' + "9" * 5000 + ",", 1)
    return header, raw


def _edit_fastnn(header, rng):
    meta = header["__metadata__"]
    inner = json.loads(meta["fastnn"])
    kind = _choice(rng, ["no_sha", "sha", "version", "dtype", "units", "layers",
                         "loss", "input_dim", "extra", "nest", "number", "type",
                         "config"])
    raw = None
    if kind == "no_sha":
        del inner["sha256"]
    elif kind == "sha":
        inner["sha256"] = _choice(rng, ["0" * 64, "", 5, None, inner["sha256"][:-1]])
    elif kind == "version":
        inner["format_version"] = _choice(rng, [0, 2, True, "1", None, 1.0, -1])
    elif kind == "dtype":
        inner["dtype"] = _choice(rng, ["float64", "float32", "float16", "int64",
                                       "object", 3])
    elif kind == "units":
        inner["layers"][0]["config"]["units"] = _choice(
            rng, [0, 1, 10**12, -5, 2.5, "8", True, 10**30])
    elif kind == "layers":
        inner["layers"] = _choice(rng, [[], None, {}, inner["layers"][:-1],
                                        inner["layers"] * 2, inner["layers"][::-1]])
    elif kind == "loss":
        inner["loss"] = _choice(rng, ["evil", None, 3, "mse", ["mse"]])
    elif kind == "input_dim":
        inner["input_dim"] = _choice(rng, [0, -1, 10**20, None, 2.0,
                                           inner["input_dim"] + 1])
    elif kind == "extra":
        inner["classes"] = ["a", "b", "c"]
    elif kind == "nest":
        inner["deep"] = "@"
        raw = json.dumps(inner).replace('"@"', nested(_choice(rng, [64, 100_000])))
    elif kind == "number":
        value = _choice(rng, ["1e400", "9" * 5000, "-0", "NaN", "Infinity",
                              "1e-400"])
        raw = json.dumps(inner).replace(f'"input_dim": {inner["input_dim"]}',
                                        f'"input_dim": {value}', 1)
    elif kind == "type":
        inner["layers"][0]["type"] = _choice(rng, ["Evil", "Layer", "Workspace",
                                                   None, ["Dense"], "__class__"])
    else:
        cfg = inner["layers"][0]["config"]
        cfg[_choice(rng, ["bogus", "units", "trainable", "activation"])] = _choice(
            rng, [None, [1], {"a": 1}, "relu", 1e308, -1e308])
    meta["fastnn"] = raw if raw is not None else json.dumps(inner)
    return header, None


def _header_edit(data, rng):
    header, region = split(data)
    edit = _choice(rng, [_edit_entry, _edit_entry, _edit_outer, _edit_fastnn,
                         _edit_fastnn])
    header, raw = edit(header, rng)
    return edit.__name__, join(header, region, raw)


def _unsummed(data, rng):
    """No checksum, and one flipped low bit of a weight: still a finite number,
    so only the checksum could tell."""
    header, region = split(data)
    inner = json.loads(header["__metadata__"]["fastnn"])
    del inner["sha256"]
    header["__metadata__"]["fastnn"] = json.dumps(inner)
    region = bytearray(region)
    region[int(rng.integers(len(region)))] ^= 1
    return join(header, bytes(region))


def mutate(data, rng):
    """``(kind, mutant bytes)``: one random mutation of a model file."""
    n = len(data)
    head = int.from_bytes(data[:8], "little") + 8
    kind = _choice(rng, ["flip", "bit", "flip_header", "flips", "truncate",
                         "insert", "delete", "append", "length", "unsummed",
                         "header", "header", "header"])
    out = bytearray(data)
    if kind == "flip":
        out[int(rng.integers(n))] ^= int(rng.integers(1, 256))
    elif kind == "bit":
        out[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
    elif kind == "flip_header":
        out[int(rng.integers(8, head))] ^= int(rng.integers(1, 256))
    elif kind == "flips":
        for _ in range(int(rng.integers(2, 9))):
            out[int(rng.integers(n))] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        del out[int(rng.integers(n)):]
    elif kind == "insert":
        at = int(rng.integers(n + 1))
        out[at:at] = rng.integers(0, 256, int(rng.integers(1, 17))).astype(
            np.uint8).tobytes()
    elif kind == "delete":
        at = int(rng.integers(n))
        del out[at:at + int(rng.integers(1, 17))]
    elif kind == "append":
        out += rng.integers(0, 256, int(rng.integers(1, 65))).astype(
            np.uint8).tobytes()
    elif kind == "length":
        value = _choice(rng, [0, 1, head - 9, head - 7, n - 8, n, 2**63 - 1,
                              2**64 - 1, 100_000_000, int(rng.integers(2**32))])
        out[:8] = value.to_bytes(8, "little")
    elif kind == "unsummed":
        out = _unsummed(data, rng)
    else:
        kind, out = _header_edit(data, rng)
    return kind, bytes(out)


# -- the loading side (run in a subprocess) --------------------------------------


def _same_model(a, b):
    if a.get_config() != b.get_config() or a.dtype != b.dtype:
        return False
    wa, wb = a.get_weights(), b.get_weights()
    if len(wa) != len(wb):
        return False
    for x, y in zip(wa, wb):
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            return False
    counts = [getattr(la, "num_batches_tracked", None) for la in a.layers]
    return counts == [getattr(lb, "num_batches_tracked", None) for lb in b.layers]


def _limit_memory():
    import os
    import resource

    headroom = int(os.environ.get("FASTNN_FUZZ_HEADROOM_MB", "256")) << 20
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom, resource.RLIM_INFINITY))


def main(manifest):
    import fastnn

    with open(manifest) as fh:
        cases = json.load(fh)
    originals = {path: fastnn.load(path) for path in {c["original"] for c in cases}}
    if sys.platform.startswith("linux"):
        _limit_memory()
    for case in cases:
        try:
            model = fastnn.load(case["mutant"])
        except (ValueError, FileNotFoundError) as exc:
            outcome, detail = "refused", str(exc)
        except BaseException as exc:  # noqa: BLE001 - every other type is a finding
            outcome, detail = f"raised {type(exc).__name__}", str(exc)[:300]
        else:
            same = _same_model(model, originals[case["original"]])
            outcome, detail = ("equal", "") if same else ("different model", "")
        print(json.dumps({"id": case["id"], "outcome": outcome,
                          "detail": detail[:300]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

"""Mutation fuzzing of model files: every damaged file is refused with a
ValueError, or loads to exactly the original model; nothing crashes.

The mutants are loaded in subprocesses (a batch per process), so a crash or a
hang counts as a failure. See ``_file_mutants.py`` for the mutations.
"""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from _file_mutants import mutate

import fastnn
from _child import child_env

HERE = os.path.dirname(os.path.abspath(__file__))


def _models():
    """Saved models covering every layer with tensors, both dtypes."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    y = rng.integers(0, 3, 64)
    specs = [
        ("float32", [fastnn.Dense(8, "relu"), fastnn.BatchNorm(), fastnn.PReLU(),
                     fastnn.Dropout(0.2), fastnn.Dense(3)]),
        ("float64", [fastnn.Maxout(6, pieces=3), fastnn.Dropout(0.1),
                     fastnn.Dense(4, "tanh", l2=0.01), fastnn.BatchNorm(),
                     fastnn.Dense(3)]),
        ("float32", [fastnn.Dense(3)]),
    ]
    models = []
    for dtype, layers in specs:
        model = fastnn.Sequential(layers, dtype=dtype, seed=0)
        model.fit(X.astype(dtype), y, epochs=2, verbose=0, seed=0)
        models.append(model)
    return models


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    paths = []
    for i, model in enumerate(_models()):
        path = folder / f"model{i}.safetensors"
        model.save(path)
        paths.append(str(path))
    return paths


def run_mutants(originals, folder, n, seed, batch=250, timeout=300):
    """Load ``n`` mutants in subprocesses; return ``[(kind, outcome, detail)]``
    and fail on a crash, a hang or a lost line."""
    rng = np.random.default_rng(seed)
    cases, kinds = [], {}
    for i in range(n):
        original = originals[i % len(originals)]
        with open(original, "rb") as fh:
            kind, data = mutate(fh.read(), rng)
        path = os.path.join(folder, f"mutant{i}.safetensors")
        with open(path, "wb") as fh:
            fh.write(data)
        cases.append({"id": i, "mutant": path, "original": original})
        kinds[i] = kind
    env = child_env()
    results = []
    for start in range(0, n, batch):
        chunk = cases[start:start + batch]
        manifest = os.path.join(folder, f"batch{start}.json")
        with open(manifest, "w") as fh:
            json.dump(chunk, fh)
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "_file_mutants.py"), manifest],
            capture_output=True, text=True, timeout=timeout, env=env, check=False)
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert proc.returncode == 0 and len(lines) == len(chunk), (
            f"the loader died (exit {proc.returncode}) after {len(lines)} of "
            f"{len(chunk)} mutants; next: {chunk[len(lines)]['id']} "
            f"({kinds[chunk[len(lines)]['id']]}); stderr: {proc.stderr[-2000:]}")
        results += [(kinds[r["id"]], r["outcome"], r["detail"]) for r in lines]
    return results


def check(results):
    bad = [r for r in results if r[1] not in ("refused", "equal")]
    tally = collections.Counter(outcome for _, outcome, _ in results)
    print(f"{len(results)} mutants: {dict(tally)}")
    assert not bad, f"{len(bad)} findings, e.g. {bad[:5]}"
    assert all("\n" not in detail for _, _, detail in results)
    return tally


def test_mutants_are_refused_or_load_unchanged(originals, tmp_path):
    tally = check(run_mutants(originals, tmp_path, 300, seed=1))
    assert tally["refused"] > 250  # the mutations do damage, most of them


@pytest.mark.slow
def test_many_mutants(originals, tmp_path):
    check(run_mutants(originals, tmp_path, 4000, seed=2, batch=1000))


def _cli_mutants(original, folder):
    """Named mutants of one model file: one of each way a file goes wrong."""
    from _file_mutants import join, nested, split

    with open(original, "rb") as fh:
        data = fh.read()
    header, region = split(data)
    inner = json.loads(header["__metadata__"]["fastnn"])
    deep = dict(header, __metadata__={"fastnn": json.dumps(inner)[:-1]
                                      + ', "x": ' + nested(100_000) + "}"})
    unsummed = dict(inner)
    del unsummed["sha256"]
    junk = dict(header, junk={"dtype": "F32", "shape": [400_000_000],
                              "data_offsets": [len(region), len(region) + 1_600_000_000]})
    mutants = {
        "nested": join(deep, region),
        "truncated": data[:len(data) // 2],
        "no-checksum": join(dict(header, __metadata__={
            "fastnn": json.dumps(unsummed)}), region),
        "junk-tensor": join(junk, region),
        "flipped-weight": data[:-1] + bytes([data[-1] ^ 1]),
        "header-length": (2**64 - 1).to_bytes(8, "little") + data[8:],
        "empty": b"",
        "foreign": b"PK\x03\x04" + os.urandom(200),
    }
    paths = {}
    for name, content in mutants.items():
        paths[name] = os.path.join(folder, f"{name}.safetensors")
        with open(paths[name], "wb") as fh:
            fh.write(content)
    return paths


def _cli(*args):
    env = child_env()
    return subprocess.run([sys.executable, "-m", "fastnn.cli", *args],
                          capture_output=True, text=True, timeout=300, env=env,
                          check=False)


def _check_cli_refuses(originals, tmp_path, names):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, X=rng.standard_normal((20, 5)), y=rng.integers(0, 3, 20))
    paths = _cli_mutants(originals[0], tmp_path)
    for name in names:
        for command in (["predict", paths[name], str(data)],
                        ["diagnose", "--model", paths[name], "--data", str(data)]):
            proc = _cli(*command)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2, (name, command[0], proc.stderr[-2000:])
            assert len(lines) == 1 and "Traceback" not in proc.stderr, (name, lines)
            assert lines[0].startswith(f"fastnn {command[0]}: error: path: "), lines
            assert proc.stdout == ""


def test_cli_refuses_damaged_models_in_one_line(originals, tmp_path):
    _check_cli_refuses(originals, tmp_path, ["nested", "no-checksum"])


@pytest.mark.slow
def test_cli_refuses_every_kind_of_damaged_model(originals, tmp_path):
    _check_cli_refuses(originals, tmp_path, ["truncated", "junk-tensor",
                                             "flipped-weight", "header-length",
                                             "empty", "foreign"])

"""The ``fastnn bench`` runner: it runs, reports every implementation and the
inference section, writes JSON, and refuses bad options. Timings are never
asserted, only that they were measured."""

import importlib.util
import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

from fastnn import bench, bench_variants
from fastnn.cli import main as cli_main


def test_tiny_run_reports_every_implementation_and_inference(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--configs", "tiny", "--no-compare", "--json", str(path)]) == 0
    res = json.loads(path.read_text())["tiny"]
    n, sizes, batch = bench.CONFIGS["tiny"]
    assert res["steps"] == math.ceil(n / batch)
    rows = res["results"]
    for impl in ("fastnn", "fastnn-numpy", "roofline"):
        assert len(rows[impl]["epochs"]) == 3, impl
        assert rows[impl]["seconds_per_epoch"] == np.median(rows[impl]["epochs"])
        assert rows[impl]["seconds_per_epoch"] > 0
        assert math.isfinite(rows[impl]["ratio_to_roofline"])
    assert rows["roofline"]["ratio_to_roofline"] == 1.0
    for impl in ("torch", "torch-fused", "sklearn"):
        assert rows[impl] == {"skipped": "comparisons off (--no-compare)"}
    pred = res["predict"]
    assert set(pred) == set(bench.PREDICT_IMPLEMENTATIONS)
    assert pred["torch"] == {"skipped": "comparisons off (--no-compare)"}
    for impl in ("fastnn", "fastnn-numpy", "gemms", "numpy-textbook"):
        assert pred[impl]["rows"] == n, impl
        assert pred[impl]["batch"] > 0
        assert math.isfinite(pred[impl]["batch_ratio_to_gemms"])
        if impl == "gemms":
            assert pred[impl]["one_sample"] is None
        else:
            assert pred[impl]["one_sample"] > 0
    out = capsys.readouterr().out
    assert "x roofline" in out and "1797 rows" in out and "1 sample" in out
    assert "BLAS for " in out


def test_rounds_pool_every_implementations_epochs(tmp_path):
    path = tmp_path / "bench.json"
    assert bench.main(["--configs", "tiny", "--no-compare", "--rounds", "2",
                       "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["tiny"]["results"]
    for impl in ("fastnn", "fastnn-numpy", "roofline"):
        assert len(rows[impl]["epochs"]) == 6, impl  # 3 timed epochs x 2 rounds
        assert rows[impl]["seconds_per_epoch"] == np.median(rows[impl]["epochs"])


@pytest.mark.parametrize("argv, match", [
    (["--configs", "huge"], "configs: unknown"),
    (["--configs", "tiny", "--epochs", "2"], "epochs: the median needs"),
    (["--configs", "tiny", "--rounds", "0"], "rounds: must be >= 1"),
])
def test_bad_options_are_refused(argv, match):
    with pytest.raises(ValueError, match=match):
        bench.main(argv)


def test_unknown_worker_is_refused():
    with pytest.raises(ValueError, match="impl: unknown"):
        bench.worker("nope", "tiny", 3)


def test_variants_table_reports_every_variant_for_fastnn_and_torch(tmp_path, capsys):
    path = tmp_path / "variants.json"
    assert cli_main(["bench", "--variants", "--configs", "tiny", "--rows", "96",
                     "--epochs", "1", "--rounds", "1", "--threads", "1",
                     "--json", str(path)]) == 0
    res = json.loads(path.read_text())["tiny"]
    assert (res["n_samples"], res["layers"], res["batch"]) == (96, [64, 32, 10], 32)
    rows = res["rows"]
    assert list(rows) == [v.label for v in bench_variants.VARIANTS]
    impls = ["fastnn"] + (["torch"] if importlib.util.find_spec("torch") else [])
    assert res["skipped"] == ({} if len(impls) == 2 else {"torch": "not installed"})
    for label, row in rows.items():
        for impl in impls:
            r = row[impl]
            assert len(r["epochs"]) == 3, (label, impl)  # 3 turns x 1 epoch
            assert r["seconds_per_epoch"] == min(r["epochs"]) > 0
            assert math.isfinite(r["ratio"]) and r["ratio"] > 0, (label, impl)
    assert rows["plain Dense + Adam"]["fastnn"]["ratio"] == 1.0
    out = capsys.readouterr().out
    assert "CPU: " in out and "build: fastnn " in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0] == "| variant | tiny | PyTorch on tiny |"
    assert [line.split(" | ")[0][2:] for line in table[1:]] == list(rows)


@pytest.mark.parametrize("argv, match", [
    (["--configs", "huge"], "configs: unknown"),
    (["--rounds", "0"], "rounds: must be >= 1"),
    (["--threads", "0"], "threads: must be >= 1"),
])
def test_variants_bad_options_are_refused(argv, match):
    with pytest.raises(ValueError, match=match):
        bench_variants.main(argv)


def test_variants_worker_refuses_unknown_implementation():
    with pytest.raises(ValueError, match="impl: unknown"):
        bench_variants.worker("nope", (96, [64, 32, 10], 32), 1, 1)


def test_threads_without_variants_is_refused(capsys):
    assert cli_main(["bench", "--threads", "1"]) != 0
    assert "threads: only with --variants or --inference" in capsys.readouterr().err
    assert cli_main(["bench", "--variants", "--inference"]) != 0
    assert "not both" in capsys.readouterr().err
    assert cli_main(["bench", "--inference", "--epochs", "3"]) != 0
    assert "epochs: not with --inference" in capsys.readouterr().err


def test_inference_table_has_every_config_and_runtime(capsys):
    from fastnn.bench_inference import CONFIGS

    assert cli_main(["bench", "--inference", "--quick", "--rows", "64",
                     "--threads", "1"]) == 0
    out = capsys.readouterr().out
    table = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")]
    header = [c.strip("| ") for c in table[0]]
    runtimes = ["fastnn predict"] + [
        name for name, module in (("onnxruntime", "onnxruntime"),
                                  ("torch inference_mode", "torch"))
        if importlib.util.find_spec(module)] + ["NumPy textbook"]
    assert [h for h in header[2:] if not h.startswith("fastnn / ")] == [
        next(h for h in header if h.startswith(r)) for r in runtimes]
    assert len(table) == 1 + len(CONFIGS)
    for row, (sizes, n) in zip(table[1:], CONFIGS):
        assert row[0] == "| " + "-".join(map(str, sizes)) and int(row[1]) == min(n, 64)
        for cell in row[2:2 + len(runtimes)]:
            value, unit = cell.strip("*| ").split()
            assert float(value) > 0 and unit in ("us", "ms")


def test_cpu_name_agrees_with_lscpu():
    lscpu = shutil.which("lscpu")
    if lscpu is None:
        pytest.skip("no lscpu to compare with")
    out = subprocess.run([lscpu], capture_output=True, text=True, check=True,
                         env={**os.environ, "LC_ALL": "C"}).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "Model name" not in fields:
        pytest.skip("lscpu names no model")
    name = bench_variants.cpu_name()
    assert name.startswith(fields["Model name"])
    if "CPU family" in fields and "Model" in fields:
        assert f"family {fields['CPU family']}, model {fields['Model']}" in name

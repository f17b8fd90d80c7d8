"""The ``fastnn bench`` runner: it runs, reports every implementation and the
inference section, writes JSON, and refuses bad options. Timings are never
asserted, only that they were measured."""

import json
import math

import numpy as np
import pytest

from fastnn import bench


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

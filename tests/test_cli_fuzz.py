"""Random, mostly damaged CSV files through ``fastnn train`` and ``predict``,
in a subprocess (see ``_csv_fuzz.py``): every run exits 0, or 2 with one line."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def fuzz(n, seed, tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(HERE, "_csv_fuzz.py"),
                           str(n), str(seed), str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["cases"] == n
    assert report["findings"] == []


def test_bad_csvs_through_the_cli(tmp_path):
    fuzz(300, 1, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_bad_csvs_through_the_cli_longer(tmp_path, seed):
    fuzz(3000, seed, tmp_path)

"""Runs the hypothesis fuzzing of the public API (tests/fuzz_api_cases.py) in
a subprocess, so that a crash of the interpreter (a segfault, an abort) fails
this test instead of ending the run.

The default budget is a few seconds; the slow case runs a larger, randomized
one (new examples each run).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("fuzz_api_cases.py")
#: The fuzz process's address space: a case that allocates without bound
#: fails with MemoryError instead of driving the machine into the OOM killer.
ADDRESS_SPACE = 8 << 30


def _limit_memory():
    try:
        import resource
    except ImportError:  # pragma: no cover - not a POSIX system
        return
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_fuzz(tmp_path, examples, randomized, timeout):
    report = tmp_path / "fuzz-report.json"
    env = dict(os.environ, FASTNN_FUZZ_EXAMPLES=str(examples),
               FASTNN_FUZZ_REPORT=str(report),
               FASTNN_FUZZ_RANDOM="1" if randomized else "0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider",
         "-W", "ignore::RuntimeWarning", "-x"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
        preexec_fn=_limit_memory if os.name == "posix" else None)
    assert proc.returncode == 0, (
        f"the fuzz run ended with return code {proc.returncode} (negative: "
        f"killed by signal {-proc.returncode})\n{proc.stdout[-6000:]}"
        f"\n{proc.stderr[-3000:]}")
    tally = json.loads(report.read_text())
    # Every entry point was reached, and most inputs got past the checks.
    assert sum(tally.values()) > 20 * examples
    assert sum(v for k, v in tally.items() if k.endswith(": ok")) > 2 * examples
    return tally


def test_public_api_fuzz_bounded(tmp_path):
    run_fuzz(tmp_path, examples=20, randomized=False, timeout=300)


@pytest.mark.slow
def test_public_api_fuzz_longer(tmp_path):
    run_fuzz(tmp_path, examples=150, randomized=True, timeout=600)

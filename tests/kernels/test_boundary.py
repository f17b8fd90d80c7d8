"""Every function ``get_ops`` exports refuses bad input, on both backends alike.

The cases (``_boundary_cases.py``) run in subprocesses, a batch at a time, so
that a crash (a segfault, an abort from a corrupted heap) is reported as a
failure of its case instead of killing the test run; after a crash the batch
resumes from the next case.
"""

import json
import os
import subprocess
import sys
from collections import defaultdict

import _boundary_cases as table
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _env():
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
    parts = [HERE, src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def run_isolated(backend, ids, dtypes=("float32", "float64"), script=None):
    """{case@dtype: outcome} for the cases, run in subprocesses. The outcome is
    an exception's type name, ``ok``, or ``crash (exit code)``."""
    results = {}
    todo = list(ids)
    while todo:
        code = script or (f"import _boundary_cases as t; t.run_cases("
                          f"{backend!r}, {todo!r}, {tuple(dtypes)!r})")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, env=_env(), timeout=600)
        started = None
        for line in proc.stdout.splitlines():
            words = line.split()
            if words[:1] == ["START"]:
                started = words[1]
            elif words[:1] == ["DONE"]:
                results[words[1]] = words[2]
                started = None
        if proc.returncode == 0:
            break
        if started is None:  # died outside any case
            raise AssertionError(f"runner failed ({proc.returncode}): "
                                 f"{proc.stderr[-2000:]}")
        results[started] = f"crash({proc.returncode})"
        case_id = started.split("@")[0]
        # resume after the crashed case (its other dtypes too)
        todo = todo[todo.index(case_id) + 1:]
    return results


CASES = table.cases()
BY_KERNEL = defaultdict(list)
for _id, _kernel, _exc in CASES:
    BY_KERNEL[_kernel].append((_id, _exc))


@pytest.fixture(scope="module")
def outcomes():
    """Both backends' outcome of every case, one subprocess batch per backend."""
    ids = [c[0] for c in CASES]
    return {backend: run_isolated(backend, ids) for backend in ("cython", "numpy")}


@pytest.mark.parametrize("kernel", sorted(BY_KERNEL))
def test_bad_input_is_refused_alike(kernel, outcomes):
    """Each case raises its expected exception on both backends, for both
    dtypes: no crash, no silent success, no other exception type."""
    problems = []
    for case_id, expected in BY_KERNEL[kernel]:
        for dtype in ("float32", "float64"):
            key = f"{case_id}@{dtype}"
            got = {b: outcomes[b].get(key, "missing") for b in outcomes}
            if any(g != expected for g in got.values()):
                problems.append(f"{key}: expected {expected}, got {json.dumps(got)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kernel", sorted(BY_KERNEL))
@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_valid_call_still_runs(kernel, backend, dtype):
    """The unchanged call of every case passes the checks (so that each case
    fails for the one thing it changes)."""
    import numpy as np

    import fastnn

    table.valid_call(kernel, np.dtype(dtype).type)(fastnn.get_ops(backend))

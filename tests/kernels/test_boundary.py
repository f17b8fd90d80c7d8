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
    """The environment of a runner: this folder on the path, and the fastnn
    that these tests imported (the installed one), not the source tree."""
    import fastnn

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    parts = [HERE, root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                            if p]
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


def _fuzz(examples, seed):
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c",
         f"import sys, _boundary_fuzz as f; sys.exit(f.main({examples}, {seed}))"],
        capture_output=True, text=True, env=_env(), timeout=900)
    last = [line for line in proc.stdout.splitlines() if line.startswith("EXAMPLE")]
    if proc.returncode < 0:
        raise AssertionError(f"crashed (signal {-proc.returncode}) in the example: "
                             f"{last[-1] if last else '?'}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(last) >= examples // 2  # the fuzzer did run


def test_fuzz_kernels():
    """Hypothesis over every exported kernel (random None, lists, shapes,
    dtypes, layouts and index values), in a subprocess: no crash, and both
    backends return or raise the same TypeError or ValueError. A bounded
    budget; the slow test below runs a longer one."""
    _fuzz(300, 0)


@pytest.mark.slow
def test_fuzz_kernels_longer():
    _fuzz(4000, 1)


MEMORY_SCRIPT = r"""
import resource
import numpy as np
import fastnn

ops = fastnn.get_ops("cython")
d = 1 << 23  # the kernels' scratch: 8 or 16 bytes per column, 64 MB and more
f = np.float32
X, Y = np.ones((2, d), f), np.full((2, d), np.nan, f)
vec = [np.ones(d, f) for _ in range(4)]
out = [np.full(d, np.nan, f) for _ in range(4)]
W, dY = np.ones((d, 1), f), np.ones((1, d), f)
dW, db = np.full((d, 1), np.nan, f), np.full(d, np.nan, f)
dX = np.full((1, 1), np.nan, f)
flags = np.empty(2 * d, bool)  # the check below allocates nothing under the limit


def untouched(*arrays):
    for a in arrays:
        view = flags[:a.size]
        np.isnan(a.reshape(-1), out=view)
        if not view.all():
            return False
    return True


ops.dense_backward(np.ones((1, 1), f), np.ones((3, 1), f), None, None,
                   np.ones((1, 3), f), "identity", 0.0, np.empty((1, 1), f),
                   np.empty((3, 1), f), np.empty(3, f))  # BLAS warmed up

with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + (16 << 20), resource.RLIM_INFINITY))

calls = {
    "dense_backward": lambda: ops.dense_backward(np.ones((1, 1), f), W, None, None,
                                                 dY, "identity", 0.0, dX, dW, db),
    "batchnorm_forward_train": lambda: ops.batchnorm_forward_train(
        X, vec[0], vec[1], 1e-5, 0.1, Y, out[0], out[1], out[2], out[3]),
    "batchnorm_forward_infer": lambda: ops.batchnorm_forward_infer(
        X, vec[0], vec[1], vec[2], vec[3], 1e-5, Y),
    "batchnorm_backward": lambda: ops.batchnorm_backward(
        X, X, vec[0], vec[1], vec[2], Y, out[0], out[1]),
}
for name, call in calls.items():
    try:
        call()
        print(name, "returned")
    except MemoryError:
        print(name, "MemoryError",
              "untouched" if untouched(Y, dW, dX, db, *out) else "written")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, /proc")
def test_allocation_failure_is_a_memory_error():
    """Under an address-space limit that leaves no room for a kernel's scratch
    memory, the kernels that allocate (dense_backward's db, batchnorm) raise
    MemoryError and write none of their outputs (they used to return early,
    silently leaving them unwritten)."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    for name in ("dense_backward", "batchnorm_forward_train",
                 "batchnorm_forward_infer", "batchnorm_backward"):
        assert f"{name} MemoryError untouched" in lines, proc.stdout


def test_table_covers_every_exported_function():
    """A function that ``get_ops`` exports and the table does not know is a
    function whose bad input nobody tries."""
    import fastnn

    exported = set(vars(fastnn.get_ops("cython"))) - {"name"}
    assert exported == set(table.KERNELS) | {"TrainPlan", "DenseStack"}

"""pytest-benchmark setup for the kernel suite: BLAS thread pinning, and a
terminal summary of numpy_twin / cython ratios (and dense / GEMM-only).

The suite lives outside ``testpaths`` (pyproject.toml lists only ``tests``),
so ``python -m pytest`` and ``python -m pytest tests`` never collect it; run it
with ``python -m pytest benchmarks --benchmark-only``.
"""

import pytest
from kernel_cases import blas_description, machine_description, ratio_table

_TIMES = pytest.StashKey[dict]()
_THREADS = pytest.StashKey[int]()
_BLAS = pytest.StashKey[str]()


def pytest_addoption(parser):
    parser.addoption("--blas-threads", type=int, default=1,
                     help="BLAS threads for both backends in benchmarks/ (default 1)")


def pytest_configure(config):
    config.stash[_TIMES] = {}


@pytest.fixture(scope="session", autouse=True)
def pinned_blas_threads(request):
    """Pin every loaded BLAS (NumPy's and the kernels' scipy one) to the same
    thread count for the whole session."""
    from threadpoolctl import threadpool_limits

    from fastnn.ops import get_ops

    get_ops("cython"), get_ops("numpy")  # load both BLAS libraries first
    threads = request.config.getoption("--blas-threads")
    if threads < 1:
        raise pytest.UsageError("--blas-threads must be >= 1")
    with threadpool_limits(limits=threads, user_api="blas"):
        request.config.stash[_THREADS] = threads
        request.config.stash[_BLAS] = blas_description()
        yield threads


@pytest.fixture
def record_time(request):
    """record_time(case_id, variant, benchmark): keep min and median per call."""
    times = request.config.stash[_TIMES]

    def record(case_id, variant, benchmark):
        meta = getattr(benchmark, "stats", None)
        stats = getattr(meta, "stats", None)
        if stats is not None and stats.data:
            times[case_id, variant] = {"min": stats.min, "median": stats.median}

    return record


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, config):
    times = config.stash.get(_TIMES, {})
    if not times:
        return
    tr = terminalreporter
    tr.section("fastnn kernels: numpy twin / cython (float32)")
    tr.write_line(f"BLAS threads: {config.stash.get(_THREADS, '?')} for both backends; "
                  f"{config.stash.get(_BLAS, '')}")
    tr.write_line(machine_description())
    tr.write_line("speedup = numpy_time / cython_time; x GEMM-only = cython dense / "
                  "(X@W.T, dY@W, dY.T@X via np.matmul into preallocated outputs)")
    tr.write_line("")
    for line in ratio_table(times, stats=("min", "median")):
        tr.write_line(line)

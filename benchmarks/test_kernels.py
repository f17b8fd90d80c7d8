"""Kernel benchmarks: each Cython kernel and its NumPy twin on the same float32
inputs in the same run, side by side in one benchmark group per case; the
dense cases add the GEMM-only roofline to their group.

    python -m pytest benchmarks --benchmark-only

The cases are defined in ``kernel_cases.py``; ``conftest.py`` prints the
ratio table at the end.
"""

import pytest
from kernel_cases import CASES, check_agreement

PARAMS = [pytest.param(case, variant, id=f"{case.id}-{variant}")
          for case in CASES for variant in case.variants]


@pytest.mark.parametrize(("case", "variant"), PARAMS)
def test_kernel(benchmark, record_time, case, variant):
    fn, _ = case.build(variant)
    benchmark.group = case.id
    benchmark.extra_info.update(kernel=case.kernel, shape=case.shape)
    benchmark(fn)
    record_time(case.id, variant, benchmark)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_backends_agree(case):
    """Each benchmark times the same work on both backends."""
    assert check_agreement(case) == []

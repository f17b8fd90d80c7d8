"""Shared fixtures: dtypes, tolerances and the two backends."""

import os

import numpy as np
import pytest

#: Kernel-vs-twin tolerances from the house style.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def tolerance(dtype, scale=1.0):
    """rtol/atol for comparing two computations of the same values in ``dtype``.

    ``scale`` is the magnitude of the compared values times the number of
    terms summed into each, so that near-zero entries of a long sum are judged
    by an absolute bound of the same relative size.
    """
    dtype = np.dtype(dtype).type
    rtol = RTOL[dtype]
    return {"rtol": rtol, "atol": rtol * scale}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Under CI the hypothesis tests draw the same examples on every run
# (derandomize), so that a landing does not depend on luck; locally they draw
# new ones each run, which is how the fuzzers find new cases.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    settings.load_profile("ci")


def pytest_configure(config):
    # pyproject.toml registers it too; this serves runs from outside the tree
    config.addinivalue_line("markers", "slow: heavier cases, still run in CI")

"""The kernels are compiled extensions of the installed package."""

import importlib
import importlib.machinery
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn
from fastnn._kernels import KERNEL_MODULES
from fastnn.ops import get_ops

SOURCE_TREE = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("name", ("_blas",) + KERNEL_MODULES)
def test_kernel_modules_are_compiled_and_installed(name):
    module = importlib.import_module(f"fastnn._kernels.{name}")
    path = Path(module.__file__).resolve()
    assert any(str(path).endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    package = Path(fastnn.__file__).resolve().parent / "_kernels"
    from fastnn._kernels import LEVEL

    # the build of the level in use: a portable build's v3 or v4 sits in _v3, _v4
    assert path.parent == (package if LEVEL in ("baseline", "native")
                           or name == "_blas"
                           else package / f"_{LEVEL}")
    assert SOURCE_TREE not in path.parents, (
        f"{path} is imported from the source tree; install the package "
        "(pip install .) and run the tests against it")


def test_both_backends_expose_the_same_kernels():
    cy, ref = get_ops("cython"), get_ops("numpy")
    names = set(vars(cy)) - {"name"}
    assert names == set(vars(ref)) - {"name"}
    assert len(names) > 30
    for name in names:
        assert callable(getattr(cy, name))
        # the twins are plain Python, the kernels are compiled
        twin, kernel = getattr(ref, name), getattr(cy, name)
        if inspect.isclass(twin):  # TrainPlan: a cdef class against a Python class
            assert inspect.isclass(kernel)
            assert twin.__module__.startswith("fastnn.reference.")
            compiled = sys.modules[kernel.__module__].__file__
            assert compiled.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
        else:
            assert inspect.isfunction(twin)
            assert not inspect.isfunction(kernel)


def test_get_ops_rejects_unknown_backend():
    with pytest.raises(ValueError, match="cython, numpy"):
        get_ops("cuda")


def test_import_without_compiled_modules_explains(tmp_path):
    package = Path(fastnn.__file__).resolve().parent
    copy = tmp_path / "fastnn"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns(
        *[f"*{s}" for s in importlib.machinery.EXTENSION_SUFFIXES], "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", "import fastnn"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "compiled kernels are not built" in proc.stderr
    assert "pip install" in proc.stderr


_SCIPY_BLAS_CHECK = """
import sys, numpy as np
{before}
import fastnn
print("scipy.linalg" in sys.modules)
X = np.arange(12, dtype=np.{dtype}).reshape(4, 3)
model = fastnn.Sequential([fastnn.Dense(2)], input_dim=3, dtype="{dtype}", seed=0)
W, b = model.get_weights()
np.testing.assert_allclose(model.predict(X), X @ W.T + b, rtol=1e-5)
import scipy.linalg.cython_blas, scipy.linalg.blas as blas
np.testing.assert_allclose(blas.dgemm(1.0, X, X.T), X @ X.T)
print("ok")
"""


@pytest.mark.parametrize("before", ["", "import scipy.linalg"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_import_takes_scipys_blas_without_scipy_linalg(before, dtype):
    # import fastnn leaves the scipy.linalg package unimported (its BLAS comes
    # from the cython_blas extension alone), and the GEMMs are right whether
    # or not scipy.linalg was imported first, and after it is imported.
    from _child import child_env

    code = _SCIPY_BLAS_CHECK.format(before=before, dtype=dtype)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=child_env(), check=True).stdout.split()
    assert out == [str(bool(before)), "ok"]

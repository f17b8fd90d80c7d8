"""Compiled Cython kernels (the fast tier).

Each module here has a pure-NumPy twin of the same name in
:mod:`fastnn.reference`; :func:`fastnn.ops.get_ops` chooses between them.
"""

try:
    from fastnn._kernels import _blas
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "fastnn's compiled kernels are not built, so fastnn cannot be imported "
        f"({exc}). Install a wheel with `pip install fastnn-core`, or build from a "
        "checkout with `pip install .` (this needs a C compiler). If you are "
        "running from the source tree, build in place first: "
        "`python setup.py build_ext --inplace`."
    ) from exc

#: What the kernels were built for (setup.py's FASTNN_ARCH): "native
#: (-march=native)" or "portable (...)".
BUILD = _blas.BUILD

KERNEL_MODULES = (
    "dense",
    "activations",
    "losses",
    "optim",
    "dropout",
    "batchnorm",
    "gather",
    "plan",
    "stack",
    "random",
)

"""The backend facade: one kernel interface, two implementations.

``get_ops("cython")`` returns the compiled kernels and ``get_ops("numpy")``
their pure-NumPy twins. Both expose the same functions with the same
signatures, gathered from the ``__all__`` of each kernel module.
"""

import importlib
import os
from types import SimpleNamespace

from fastnn._kernels import KERNEL_MODULES

BACKENDS = ("cython", "numpy")
_PACKAGES = {"cython": "fastnn._kernels", "numpy": "fastnn.reference"}
_cache = {}


def get_ops(backend="cython"):
    """Return the kernel namespace of a backend.

    Parameters
    ----------
    backend : {"cython", "numpy"}

    Returns
    -------
    ops : SimpleNamespace
        One attribute per kernel function, plus ``name``.

    Raises
    ------
    ValueError
        If ``backend`` is not a known name.
    """
    if isinstance(backend, SimpleNamespace):
        return backend
    if backend not in BACKENDS:
        raise ValueError(
            f"backend: unknown backend {backend!r}; valid: {', '.join(BACKENDS)}"
        )
    ops = _cache.get(backend)
    if ops is None:
        functions = {}
        for module_name in KERNEL_MODULES:
            module = importlib.import_module(f"{_PACKAGES[backend]}.{module_name}")
            for name in module.__all__:
                functions[name] = getattr(module, name)
        ops = _cache[backend] = SimpleNamespace(name=backend, **functions)
    return ops


def blas_report():
    """Lines describing each BLAS library loaded (after loading SciPy's, the
    one the compiled kernels call through ``scipy.linalg.cython_blas``): who
    uses it, version, kernel type, threads and file. Needs threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["BLAS: install threadpoolctl to see the BLAS libraries and their "
                "threads"]
    import scipy.linalg.cython_blas  # noqa: F401  (loads the kernels' BLAS)

    libs = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    lines = []
    for lib in libs:
        # Wheels keep each package's own copy beside it (scipy.libs, numpy.libs);
        # a single library is shared by both.
        folder = os.path.basename(os.path.dirname(lib.get("filepath", "")))
        user = ("NumPy and the kernels" if len(libs) == 1
                else "the kernels (via SciPy)" if folder.startswith("scipy")
                else "NumPy" if folder.startswith("numpy") else "another package")
        lines.append(f"BLAS for {user}: {lib.get('internal_api')} "
                     f"{lib.get('version')}, {lib.get('architecture')} kernels, "
                     f"{lib.get('num_threads')} threads "
                     f"({lib.get('threading_layer')}); {lib.get('filepath')}")
    return lines

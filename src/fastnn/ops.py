"""The backend facade: one kernel interface, two implementations.

``get_ops("cython")`` returns the compiled kernels and ``get_ops("numpy")``
their pure-NumPy twins. Both expose the same functions with the same
signatures, gathered from the ``__all__`` of each kernel module.
"""

import importlib
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

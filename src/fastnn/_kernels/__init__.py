"""Compiled Cython kernels (the fast tier).

Each module here has a pure-NumPy twin of the same name in
:mod:`fastnn.reference`; :func:`fastnn.ops.get_ops` chooses between them.

A portable build (the wheels) holds the kernel modules three times: for the
x86-64 baseline (here), x86-64-v3 (AVX2, FMA; in ``_v3``) and x86-64-v4
(AVX-512; in ``_v4``). On import, ``fastnn._kernels.<module>`` becomes the
build of the best level the CPU supports (:data:`LEVEL`), as NumPy chooses
its SIMD code at import. The environment variable ``FASTNN_CPU_LEVEL``
(``baseline``, ``v3`` or ``v4``) forces a lower level, for tests and bug
reports. All levels compute the same bits (no FMA contraction at any level),
except batch ``predict``: v3 and v4 run it through the packed inference
kernel (``stack``, which uses FMA), the same bits on both, and the baseline
through the BLAS.
A native build (``pip install .``) has one level, ``"native"``: its own
machine's.
"""

import importlib
import importlib.util
import os
import sys
import warnings

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

#: The instruction-set levels, lowest first.
LEVELS = ("baseline", "v3", "v4")


def _built_levels():
    """The levels this installation holds (a portable build: all three; a
    native build: "native")."""
    if not BUILD.removeprefix("debug, ").startswith("portable"):
        return ("native",)
    return ("baseline",) + tuple(
        level for level in LEVELS[1:]
        if importlib.util.find_spec(f"fastnn._kernels._{level}.plan") is not None)


def _choose_level():
    """The best built level the CPU supports, or the lower one that
    ``FASTNN_CPU_LEVEL`` asks for."""
    cpu = _blas.cpu_level()
    usable = [lv for lv in BUILT_LEVELS
              if lv == "native" or LEVELS.index(lv) <= LEVELS.index(cpu)]
    forced = os.environ.get("FASTNN_CPU_LEVEL", "").strip()
    if forced:
        if forced not in LEVELS + ("native",):
            warnings.warn(f"FASTNN_CPU_LEVEL: unknown level {forced!r} (valid: "
                          f"{', '.join(LEVELS)}); using {usable[-1]}",
                          RuntimeWarning, stacklevel=3)
        elif forced not in usable:
            warnings.warn(f"FASTNN_CPU_LEVEL: level {forced!r} is not usable here "
                          f"(built: {', '.join(BUILT_LEVELS)}; this CPU: {cpu}); "
                          f"using {usable[-1]}", RuntimeWarning, stacklevel=3)
        else:
            return forced
    return usable[-1]


#: The levels built into this installation, and the one in use.
BUILT_LEVELS = _built_levels()
LEVEL = _choose_level()

if LEVEL not in ("baseline", "native"):
    for _name in KERNEL_MODULES:
        _module = importlib.import_module(f"fastnn._kernels._{LEVEL}.{_name}")
        sys.modules[f"{__name__}.{_name}"] = _module
        globals()[_name] = _module
    del _name, _module

"""Build the Cython kernels.

Compiler directives are set here, once, for every kernel module. Set
``FASTNN_CYTHON_DEBUG=1`` to build with bounds, wraparound and initialization
checks on.
"""

import os
import sys
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTNN_CYTHON_DEBUG", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    # Nothing here reads errno or the floating-point exception flags, so gcc
    # may vectorize sqrt (-fno-math-errno) and turn branches that select
    # between two computed values into vector blends (-fno-trapping-math).
    compile_args = (["-O0", "-g"] if DEBUG
                    else ["-O3", "-fno-math-errno", "-fno-trapping-math"])

# Development only: FASTNN_KERNELS=dense,losses builds just those modules.
only = {m for m in os.environ.get("FASTNN_KERNELS", "").split(",") if m}

extensions = [
    Extension(
        "fastnn._kernels." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=compile_args,
    )
    for path in sorted(glob(os.path.join("src", "fastnn", "_kernels", "*.pyx")))
    if not only or os.path.basename(path)[:-4] in only | {"_blas"}
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        # Separate C files per mode, so switching FASTNN_CYTHON_DEBUG rebuilds.
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython"),
        nthreads=int(os.environ.get("FASTNN_BUILD_JOBS", "0")),
    ),
)

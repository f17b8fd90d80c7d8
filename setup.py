"""Build the Cython kernels.

Compiler directives are set here, once, for every kernel module. Set
``FASTNN_CYTHON_DEBUG=1`` to build with bounds, wraparound and initialization
checks on, and ``FASTNN_ARCH=portable`` to build for any machine of the
platform rather than this one.
"""

import os
import platform
import re
import sys
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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

# Instruction set: a build from source targets the machine it runs on
# (FASTNN_ARCH=native, the default on x86-64), so that the elementwise loops
# use its full vector width (AVX2/AVX-512: about 2.4x SSE2 on the activations).
# Wheels for other machines are built with FASTNN_ARCH=portable (the
# cibuildwheel config does this). Contraction into FMA stays off either way, so
# both builds compute bit-identical element math.
ARCH = os.environ.get("FASTNN_ARCH", "native")
if ARCH not in ("native", "portable"):
    sys.exit(f"FASTNN_ARCH must be 'native' or 'portable', not {ARCH!r}")

if sys.platform == "win32":
    compile_args = ["/O2", "/fp:precise"]
else:
    # Nothing here reads errno or the floating-point exception flags, so gcc
    # may vectorize sqrt (-fno-math-errno) and turn branches that select
    # between two computed values into vector blends (-fno-trapping-math).
    compile_args = (["-O0", "-g"] if DEBUG
                    else ["-O3", "-fno-math-errno", "-fno-trapping-math"])
    compile_args.append("-ffp-contract=off")
    if ARCH == "native" and platform.machine().lower() in ("x86_64", "amd64"):
        # gcc defaults to 256-bit vectors even where AVX-512 is present
        compile_args += ["-march=native", "-mprefer-vector-width=512"]

# The stack's inference threads (pool.h) are POSIX threads.
link_args = [] if sys.platform == "win32" else ["-pthread"]
if link_args:
    compile_args.append("-pthread")

# What the build targets, compiled into the kernels (fastnn._kernels.BUILD),
# for `fastnn info` and the benchmarks' headers.
BUILD = ("debug, " if DEBUG else "") + (
    "native (-march=native)" if "-march=native" in compile_args
    else "portable (the platform's baseline instruction set)")

KERNELS = os.path.join("src", "fastnn", "_kernels")

# Development only: FASTNN_KERNELS=dense,losses builds just those modules.
only = {m for m in os.environ.get("FASTNN_KERNELS", "").split(",") if m}

def _extension(name, path, extra=()):
    return Extension(
        name, [path],
        include_dirs=[KERNELS, np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("FASTNN_BUILD", '"%s"' % BUILD)],
        depends=glob(os.path.join(KERNELS, "*.h")),
        extra_compile_args=compile_args + list(extra),
        extra_link_args=link_args,
    )


extensions = [
    _extension("fastnn._kernels." + os.path.splitext(os.path.basename(path))[0],
               path)
    for path in sorted(glob(os.path.join(KERNELS, "*.pyx")))
    if not only or os.path.basename(path)[:-4] in only | {"_blas", "_checks"}
]

# Instruction-set levels of a portable build on x86-64: the kernel modules are
# built again for x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), as the
# packages fastnn._kernels._v3 and ._v4, and fastnn._kernels picks the best
# one the CPU supports when it is imported (fastnn._kernels.LEVEL). Each level
# is a copy of the sources whose cimports name its own package; _blas and
# _checks (no element loops) are shared. FMA contraction stays off at every
# level, so all compute the same bits.
LEVEL_FLAGS = {"v3": ["-march=x86-64-v3"],
               "v4": ["-march=x86-64-v4", "-mprefer-vector-width=512"]}
LEVELED = ("activations", "batchnorm", "dense", "dropout", "gather", "losses",
           "optim", "plan", "random", "stack")
LEVEL_SOURCES = os.path.join("build", "levels")


def _write_if_changed(path, text):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _level_sources(level):
    """The level's copy of the leveled .pyx and .pxd files, its cimports and
    imports of leveled modules renamed; returns the .pyx paths."""
    folder = os.path.join(LEVEL_SOURCES, "fastnn", "_kernels", "_" + level)
    os.makedirs(folder, exist_ok=True)
    for package in (os.path.join(LEVEL_SOURCES, "fastnn"),
                    os.path.join(LEVEL_SOURCES, "fastnn", "_kernels"), folder):
        _write_if_changed(os.path.join(package, "__init__.pxd"), "")
    rename = re.compile(r"\bfastnn\._kernels\.(%s)\b" % "|".join(LEVELED))
    sources = []
    for path in sorted(glob(os.path.join(KERNELS, "*.pyx"))
                       + glob(os.path.join(KERNELS, "*.pxd"))):
        stem, ext = os.path.splitext(os.path.basename(path))
        if stem not in LEVELED:
            continue
        with open(path, encoding="utf-8") as fh:
            text = rename.sub(r"fastnn._kernels._%s.\1" % level, fh.read())
        target = os.path.join(folder, stem + ext)
        _write_if_changed(target, text)
        if ext == ".pyx":
            sources.append(target)
    return sources


if (ARCH == "portable" and not only and sys.platform != "win32"
        and platform.machine().lower() in ("x86_64", "amd64")):
    for level, flags in LEVEL_FLAGS.items():
        extensions += [
            _extension(f"fastnn._kernels._{level}." + os.path.basename(path)[:-4],
                       path, flags)
            for path in _level_sources(level)]

# Build jobs: FASTNN_BUILD_JOBS, else one per core. Cythonizing in a process
# pool re-imports this file on Windows, so there it stays serial.
JOBS = int(os.environ.get("FASTNN_BUILD_JOBS", "0")) or os.cpu_count() or 1


class ParallelBuildExt(build_ext):
    """Compile the kernel modules in parallel, ``JOBS`` at a time, unless
    ``build_ext -j N`` says otherwise."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = JOBS


setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        # Separate C files per mode, so switching FASTNN_CYTHON_DEBUG rebuilds.
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython"),
        include_path=["src", LEVEL_SOURCES],
        nthreads=0 if sys.platform == "win32" or JOBS == 1 else JOBS,
    ),
)

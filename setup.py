"""Build the Cython extension minipg._kernels.

All compiler directives live here, in one place. Set MINIPG_DEBUG_KERNELS=1 to rebuild with
bounds checking and wraparound on (a debug run: slower, but an out-of-range index raises
IndexError instead of reading stray memory):

    MINIPG_DEBUG_KERNELS=1 pip install -e . --no-build-isolation --force-reinstall

OpenMP is used when the compiler supports it (the loop over blocks of environments at large N
runs on several threads); without it Cython's prange compiles to the same loop run serially.
"""
import os
import sys
import tempfile
import subprocess

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MINIPG_DEBUG_KERNELS", "") not in ("", "0")


def compiler_has_openmp() -> bool:
    """Try to compile and link a tiny OpenMP program; False on any failure."""
    if sys.platform == "darwin" or os.environ.get("MINIPG_NO_OPENMP", "") not in ("", "0"):
        return False
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            result = subprocess.run([cc, "-fopenmp", src, "-o", os.path.join(tmp, "omp")],
                                    capture_output=True)
        except OSError:
            return False
        return result.returncode == 0


openmp = compiler_has_openmp()
compile_args = ["-O3"] if not DEBUG else ["-O0", "-g"]
link_args = []
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
}

extension = Extension(
    "minipg._kernels",
    sources=["ext/_kernels.pyx"],
    include_dirs=[np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives=directives,
    ),
)

"""Build the Cython extension minipg._kernels.

All compiler directives live here, in one place. Set MINIPG_DEBUG_KERNELS=1 to rebuild with
bounds checking and wraparound on (a debug run: slower, but an out-of-range index raises
IndexError instead of reading stray memory):

    MINIPG_DEBUG_KERNELS=1 pip install -e . --no-build-isolation --force-reinstall

OpenMP is used when the compiler supports it (the loop over blocks of environments at large N
runs on several threads); without it Cython's prange compiles to the same loop run serially.

Two builds of the same kernels. `minipg._kernels` is compiled for the baseline of the machine's
architecture (on x86-64: SSE2, two doubles or four floats per instruction), so it runs on any CPU
of that architecture. On x86-64, `minipg._kernels_avx2` (ext/_kernels_avx2.pyx, which includes
_kernels.pyx) is the same source compiled with AVX2 and FMA: twice as many elements per
instruction. minipg.core.returns uses it when the CPU can run it, checked at import (NumPy dispatches
its own loops the same way). Set MINIPG_NO_AVX2=1 to build the baseline only.

`minipg._update_kernels` (ext/_update_kernels.pyx: Adam's step, the reward scaler's, an MLP's
passes, a Categorical's log-softmax and sampling, PPO's loss) is built without FMA contraction,
against NumPy's headers (it calls NumPy's own inner loops): its results are NumPy's bit for bit.
It is built twice too, for the baseline and (`minipg._update_kernels_avx2`, with the AVX2 build
above) with AVX2 but still without FMA: the same numbers, wider loops.
"""
import os
import platform
import sys
import tempfile
import subprocess

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def env_flag(name) -> bool:
    """True when the environment variable is set to anything but "" or "0"."""
    return os.environ.get(name, "") not in ("", "0")


DEBUG = env_flag("MINIPG_DEBUG_KERNELS")


def compiler_builds(code, flags) -> bool:
    """Compile and link this C program with these flags; False on any failure."""
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            result = subprocess.run([cc, *flags, src, "-o", os.path.join(tmp, "probe")],
                                    capture_output=True)
        except OSError:
            return False
        return result.returncode == 0


def compiler_has_openmp() -> bool:
    """Try to compile and link a tiny OpenMP program."""
    if sys.platform == "darwin" or env_flag("MINIPG_NO_OPENMP"):
        return False
    return compiler_builds("#include <omp.h>\n"
                           "int main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n",
                           ["-fopenmp"])


AVX2_FLAGS = ["-mavx2", "-mfma"]
build_avx2 = (platform.machine().lower() in ("x86_64", "amd64")
              and sys.platform != "win32"
              and not env_flag("MINIPG_NO_AVX2")
              and compiler_builds("int main(void){return 0;}\n", AVX2_FLAGS))
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



def kernels_extension(name, extra_flags=()):
    return Extension(
        f"minipg.{name}",
        sources=[f"ext/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + list(extra_flags),
        extra_link_args=link_args,
    )


# The update's kernels reproduce NumPy's results bit for bit: no fused multiply-adds (one
# rounding where NumPy rounds twice). -fno-math-errno: sqrt need not set errno (its value is
# unchanged), which lets the compiler vectorise it.
EXACT_FLAGS = ["-ffp-contract=off", "-fno-math-errno"]
extensions = [kernels_extension("_kernels"),
              kernels_extension("_update_kernels", EXACT_FLAGS)]
if build_avx2:
    extensions.append(kernels_extension("_kernels_avx2", AVX2_FLAGS))
    # AVX2 without FMA (no -mfma): wider loops, the same roundings
    extensions.append(kernels_extension("_update_kernels_avx2", ["-mavx2", *EXACT_FLAGS]))

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
    ),
)

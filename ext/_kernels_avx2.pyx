"""The kernels of _kernels.pyx, compiled a second time with AVX2 and FMA (see setup.py).

Nothing here but the include: one source, two builds. minipg.returns uses this module when the
CPU can run it (minipg._kernels.cpu_has_avx2()); read ext/_kernels.pyx for the code.
"""
include "_kernels.pyx"

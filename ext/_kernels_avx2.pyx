# The kernels of _kernels.pyx, compiled a second time with AVX2 and FMA (see setup.py). Nothing
# here but the include: one source, two builds. minipg.returns picks this module when the CPU
# can run it.
include "_kernels.pyx"

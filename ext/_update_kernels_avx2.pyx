"""The kernels of _update_kernels.pyx, compiled a second time with AVX2 (see setup.py).

Nothing here but the include: one source, two builds. Twice as many elements per instruction
in the loops (Adam's step, tanh's derivative, the bias additions), and still no fused
multiply-add (-ffp-contract=off): every operation rounds as before, so the results are the
baseline build's bit for bit. minipg.core.returns uses this module when it uses the AVX2 build
of the return kernels (the CPU runs AVX2); read ext/_update_kernels.pyx for the code.
"""
include "_update_kernels.pyx"

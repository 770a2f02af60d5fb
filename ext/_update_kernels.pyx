"""Compiled kernels for the training step, each bit for bit the NumPy lines it replaces, in
one file per module whose lines they run (included at the end):

    _update_optim.pxi        adam_step: Adam.step_reference (minipg/core/optim.py)
    _update_nn.pxi           mlp_forward, mlp_backward: MLP's NumPy lines (minipg/core/nn.py)
    _update_categorical.pxi  a Categorical's log-softmax, sampling, log_prob, entropy and
                             param_grads (minipg/core/distributions.py)
    _update_ppo.pxi          PPO's clipped surrogate, approx_kl, clip fraction
                             (minipg/algos/ppo.py)
    _update_collect.pxi      the reward scaler's step (minipg/core/normalize.py) and the
                             collector's episode bookkeeping (minipg/envs/rollout.py)

This file holds what they share: NumPy's loops and how to call them, NumPy's pairwise sum,
and the small checks and elementwise helpers.

Each does in one call what its reference does in several NumPy calls: the same IEEE
operations, on the same dtype, in the same order, so the results are bit for bit the
reference's (the tests compare them with array_equal). Three things keep them so. setup.py
compiles this module without FMA contraction (-ffp-contract=off; a fused multiply-add rounds
once where NumPy rounds twice) and without -ffast-math. Each scalar is rounded to the dtype
NumPy would compute in: NumPy 2 treats a Python float as "weak" (it takes the array's dtype:
float32 for a float32 array) and a numpy.float64 scalar as float64 (the float32 array is
promoted, the result rounded back when stored), and the kernels follow the reference line by
line on that. And what is not one exactly rounded operation -- a matrix product, tanh, exp,
log -- is not recomputed here at all: the kernels call NumPy's own inner loops for it (below).

Shapes and dtypes are checked here (ValueError), before any loop runs: the loops trust them.
"""
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport malloc, free
from cython cimport floating
cimport numpy as cnp
from numpy cimport npy_intp, PyUFuncGenericFunction
import numpy as np

cnp.import_array()
cnp.import_ufunc()


# --------------------------------------------------------------------------------------------
# NumPy's own loops, called from here. A network's forward and backward pass, and a
# Categorical's log-softmax and sampling, are a dozen NumPy calls each on small arrays, where
# NumPy's per-call work (parsing the arguments, choosing a loop, allocating, broadcasting a bias
# row by row) costs as much as the arithmetic. The kernels do that work once: they call the
# very inner loops NumPy would run (its matmul loop, which calls the same BLAS routine with the
# same arguments, its SIMD tanh, exp, expm1 and log, and its maximum for relu), with the
# strides NumPy would pass, and do the exactly rounded steps (adding a bias, subtracting,
# dividing) in plain loops. So their results are NumPy's bit for bit, including tanh and exp,
# whose SIMD approximations differ from the C library's in the last bit. The tests compare them
# with array_equal, which is also what would catch a NumPy whose loop table no longer holds the
# loops its ufuncs run.
# --------------------------------------------------------------------------------------------


cdef struct Loop:
    PyUFuncGenericFunction function
    void* data


cdef Loop _find_loop(object ufunc, int typenum) except *:
    """NumPy's inner loop of ufunc for arguments all of one type (NPY_FLOAT or NPY_DOUBLE)."""
    cdef cnp.ufunc u = <cnp.ufunc?>ufunc
    cdef int i, j
    cdef bint match
    cdef Loop loop
    for i in range(u.ntypes):
        match = True
        for j in range(u.nargs):
            if u.types[i * u.nargs + j] != typenum:
                match = False
        if match:
            loop.function = u.functions[i]
            loop.data = u.data[i]
            return loop
    raise ImportError(f"numpy.{ufunc.__name__} has no loop for type number {typenum} in its "
                      f"loop table (numpy {np.__version__}); MINIPG_PURE_NUMPY=1 runs minipg "
                      "without its compiled kernels")


# index 0: float32, 1: float64
cdef Loop MATMUL[2]
cdef Loop TANH[2]
cdef Loop MAXIMUM[2]
cdef Loop EXP[2]
cdef Loop LOG[2]
cdef Loop EXPM1[2]
for _k, _typenum in enumerate((cnp.NPY_FLOAT, cnp.NPY_DOUBLE)):
    MATMUL[_k] = _find_loop(np.matmul, _typenum)
    TANH[_k] = _find_loop(np.tanh, _typenum)
    MAXIMUM[_k] = _find_loop(np.maximum, _typenum)
    EXP[_k] = _find_loop(np.exp, _typenum)
    LOG[_k] = _find_loop(np.log, _typenum)
    EXPM1[_k] = _find_loop(np.expm1, _typenum)


cdef inline void _matmul(Loop* loop, char* a, npy_intp a_m, npy_intp a_n,
                         char* b, npy_intp b_n, npy_intp b_p,
                         char* out, npy_intp out_m, npy_intp out_p,
                         npy_intp m, npy_intp n, npy_intp p):
    """out (m, p) = a (m, n) @ b (n, p), strides in bytes: what np.matmul(a, b, out=out) runs.
    A 1-d operand is a missing core dim: size 1, stride 0 (as the ufunc machinery passes it)."""
    cdef char* args[3]
    cdef npy_intp dims[4]
    cdef npy_intp steps[9]
    args[0], args[1], args[2] = a, b, out
    dims[0], dims[1], dims[2], dims[3] = 1, m, n, p
    steps[0], steps[1], steps[2] = 0, 0, 0
    steps[3], steps[4], steps[5], steps[6], steps[7], steps[8] = a_m, a_n, b_n, b_p, out_m, out_p
    loop.function(args, dims, steps, loop.data)


cdef inline void _unary(Loop* loop, char* x, char* out, npy_intp n, npy_intp itemsize):
    """out = f(x) over n contiguous elements: np.f(x, out=out) on contiguous arrays."""
    cdef char* args[2]
    cdef npy_intp dims[1]
    cdef npy_intp steps[2]
    args[0], args[1] = x, out
    dims[0] = n
    steps[0], steps[1] = itemsize, itemsize
    loop.function(args, dims, steps, loop.data)


cdef inline int _kind(cnp.ndarray a):
    """0 for float32, 1 for float64, -1 for anything else."""
    cdef int t = cnp.PyArray_TYPE(a)
    return 0 if t == cnp.NPY_FLOAT else (1 if t == cnp.NPY_DOUBLE else -1)


cdef inline char* _data(cnp.ndarray a):
    return <char*>cnp.PyArray_DATA(a)


cdef inline cnp.ndarray _empty2(npy_intp rows, npy_intp cols, int kind):
    cdef npy_intp dims[2]
    dims[0], dims[1] = rows, cols
    return cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT if kind == 0 else cnp.NPY_DOUBLE, 0)


cdef inline cnp.ndarray _empty1(npy_intp n, int typenum):
    cdef npy_intp dims[1]
    dims[0] = n
    return cnp.PyArray_EMPTY(1, dims, typenum, 0)


cdef inline void _check_length(str name, Py_ssize_t got, Py_ssize_t expected) except *:
    if got != expected:
        raise ValueError(f"{name} has length {got}, expected {expected}")


cdef void _check_vector(str name, cnp.ndarray a, Py_ssize_t n, int kind,
                        bint writeable) except *:
    """a is a contiguous 1-d array of n entries of the float dtype `kind`."""
    if a.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a) or _kind(a) != kind:
        raise ValueError(f"{name} must be a contiguous 1-d array of the parameters' dtype, got "
                         f"shape {(<object>a).shape}, dtype {(<object>a).dtype}")
    _check_length(name, a.shape[0], n)
    if writeable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} must be writeable")


cdef floating _pairwise_sum(const floating* a, Py_ssize_t n) noexcept nogil:
    """NumPy's sum of a contiguous float32 or float64 vector (np.add.reduce), in its order and
    its dtype: a running sum below 8 entries, eight interleaved running sums up to 128, halves
    above."""
    cdef floating res, r0, r1, r2, r3, r4, r5, r6, r7
    cdef Py_ssize_t i, half
    if n < 8:
        res = 0
        for i in range(n):
            res = res + a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
        r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
        i = 8
        while i < n - (n % 8):
            r0 = r0 + a[i]
            r1 = r1 + a[i + 1]
            r2 = r2 + a[i + 2]
            r3 = r3 + a[i + 3]
            r4 = r4 + a[i + 4]
            r5 = r5 + a[i + 5]
            r6 = r6 + a[i + 6]
            r7 = r7 + a[i + 7]
            i = i + 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res = res + a[i]
            i = i + 1
        return res
    half = n // 2
    half = half - half % 8
    return _pairwise_sum(a, half) + _pairwise_sum(a + half, n - half)


def pairwise_sum(cnp.ndarray a not None):
    """a.sum() for a contiguous 1-d float32 or float64 array, as NumPy sums it (the tests hold
    the kernels' sums to NumPy's with this)."""
    cdef int kind = _kind(a)
    if kind < 0 or a.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("a must be a contiguous 1-d float32 or float64 array")
    if kind == 0:
        return _pairwise_sum(<float*>_data(a), a.shape[0])
    return _pairwise_sum(<double*>_data(a), a.shape[0])


cdef void _product(const floating* a, const floating* b, floating* out,
                   npy_intp n) noexcept nogil:
    cdef npy_intp i
    for i in range(n):
        out[i] = a[i] * b[i]


cdef void _difference(const floating* a, const floating* b, floating* out,
                      npy_intp n) noexcept nogil:
    cdef npy_intp i
    for i in range(n):
        out[i] = a[i] - b[i]


cdef inline bint _vectors(cnp.ndarray a, cnp.ndarray b, int kind):
    """a and b contiguous 1-d arrays of one length and of the float dtype `kind`."""
    return (kind >= 0 and _kind(a) == kind and _kind(b) == kind and a.ndim == 1 and b.ndim == 1
            and a.shape[0] == b.shape[0] and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and cnp.PyArray_IS_C_CONTIGUOUS(b))


# The kernels, by the module whose NumPy lines they run (each file names its references).
include "_update_optim.pxi"
include "_update_nn.pxi"
include "_update_categorical.pxi"
include "_update_ppo.pxi"
include "_update_collect.pxi"

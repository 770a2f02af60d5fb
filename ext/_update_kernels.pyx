"""Compiled kernels for the update step: Adam's step and tanh's derivative in the backward pass.

Each kernel is one loop doing what its NumPy reference (Adam.step_reference in
minipg/core/optim.py, MLP.backward's NumPy lines in minipg/core/nn.py) does in several passes
over the arrays: the same IEEE operations, on the same dtype, in the same order, so the results
are bit for bit the reference's (the tests compare them with array_equal). Two things keep them
so: setup.py compiles this module without FMA contraction (-ffp-contract=off; a fused
multiply-add rounds once where NumPy rounds twice) and without -ffast-math, and each scalar is
rounded to the dtype NumPy would compute in. NumPy 2 treats a Python float as "weak" (it takes
the array's dtype: float32 for a float32 array) and a numpy.float64 scalar as float64 (the
float32 array is promoted, the result rounded back when stored), and the kernels follow the
reference line by line on that.

Shapes are checked here (ValueError), before the GIL is released: the loops trust them.
"""
from libc.math cimport sqrt, sqrtf
from cython cimport floating


cdef inline void _check_length(str name, Py_ssize_t got, Py_ssize_t expected) except *:
    if got != expected:
        raise ValueError(f"{name} has length {got}, expected {expected}")


def adam_step(floating[::1] params not None, const floating[::1] grad not None,
              floating[::1] m not None, floating[::1] v not None,
              double one_minus_beta1, double one_minus_beta2, double eps_term, double step_size):
    """One Adam step in place, as Adam.step_reference computes it, element by element:

        m  = m + (1 - beta1) (g - m)            (1 - beta1: a Python float, the arrays' dtype)
        v  = v + (1 - beta2) (g^2 - v)          (likewise)
        s  = sqrt(v) + eps_term                 (eps_term: float64, the sum rounded back)
        s  = m / s
        s  = s * step_size                      (step_size: float64, the product rounded back)
        params = params - s
    """
    cdef Py_ssize_t n = params.shape[0], i
    _check_length("grad", grad.shape[0], n)
    _check_length("m", m.shape[0], n)
    _check_length("v", v.shape[0], n)
    if n == 0:
        return
    cdef floating c1 = <floating>one_minus_beta1, c2 = <floating>one_minus_beta2
    cdef floating d, e, mi, vi, s
    # plain pointers and one flat loop: what the compiler vectorises (with a runtime check
    # that the four arrays do not overlap)
    cdef floating* p = &params[0]
    cdef const floating* g = &grad[0]
    cdef floating* m_ = &m[0]
    cdef floating* v_ = &v[0]
    with nogil:
        for i in range(n):
            d = g[i] - m_[i]
            d = d * c1
            mi = m_[i] + d
            m_[i] = mi
            e = g[i] * g[i]
            e = e - v_[i]
            e = e * c2
            vi = v_[i] + e
            v_[i] = vi
            if floating is float:   # correctly rounded either way: sqrtf(x) == (float)sqrt(x)
                s = sqrtf(vi)
            else:
                s = sqrt(vi)
            s = <floating>(<double>s + eps_term)
            s = mi / s
            s = <floating>(<double>s * step_size)
            p[i] = p[i] - s


def tanh_backward(floating[:, ::1] grad_h not None, const floating[:, ::1] h not None):
    """grad_h *= 1 - h^2 in place (tanh'(z) from the layer's output h = tanh(z)), rounding as
    NumPy's three passes do: h*h, then 1 - that, then the product."""
    cdef Py_ssize_t rows = grad_h.shape[0], cols = grad_h.shape[1], i, j
    _check_length("h's rows", h.shape[0], rows)
    _check_length("h's columns", h.shape[1], cols)
    if rows == 0 or cols == 0:
        return
    cdef floating square, derivative
    cdef floating* g = &grad_h[0, 0]
    cdef const floating* h_ = &h[0, 0]
    with nogil:
        for i in range(rows * cols):                  # both C-contiguous: one flat loop
            square = h_[i] * h_[i]
            derivative = 1 - square
            g[i] = g[i] * derivative

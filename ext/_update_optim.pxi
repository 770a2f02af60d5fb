# Adam's step: Adam.step_reference (minipg/core/optim.py) in one loop.
# Included by _update_kernels.pyx, which defines the helpers used here.


cdef void _adam(floating* p, const floating* g, floating* m_, floating* v_, Py_ssize_t n,
                double one_minus_beta1, double one_minus_beta2, double eps_term,
                double step_size) noexcept nogil:
    cdef floating c1 = <floating>one_minus_beta1, c2 = <floating>one_minus_beta2
    cdef floating d, e, mi, vi, s
    cdef Py_ssize_t i
    # plain pointers and one flat loop: what the compiler vectorises (with a runtime check
    # that the four arrays do not overlap)
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


def adam_step(cnp.ndarray params not None, cnp.ndarray grad not None,
              cnp.ndarray m not None, cnp.ndarray v not None,
              double one_minus_beta1, double one_minus_beta2, double eps_term, double step_size):
    """One Adam step in place, as Adam.step_reference computes it, element by element:

        m  = m + (1 - beta1) (g - m)            (1 - beta1: a Python float, the arrays' dtype)
        v  = v + (1 - beta2) (g^2 - v)          (likewise)
        s  = sqrt(v) + eps_term                 (eps_term: float64, the sum rounded back)
        s  = m / s
        s  = s * step_size                      (step_size: float64, the product rounded back)
        params = params - s

    All four: contiguous 1-d arrays of one float dtype and one length.
    """
    cdef int kind = _kind(params)
    if kind < 0 or params.ndim != 1:
        raise ValueError("params must be a 1-d float32 or float64 array")
    cdef Py_ssize_t n = params.shape[0]
    _check_vector("params", params, n, kind, True)
    _check_vector("grad", grad, n, kind, False)
    _check_vector("m", m, n, kind, True)
    _check_vector("v", v, n, kind, True)
    cdef char* p = _data(params)
    cdef char* g = _data(grad)
    cdef char* m_ = _data(m)
    cdef char* v_ = _data(v)
    if kind == 0:
        with nogil:
            _adam(<float*>p, <float*>g, <float*>m_, <float*>v_, n, one_minus_beta1,
                  one_minus_beta2, eps_term, step_size)
    else:
        with nogil:
            _adam(<double*>p, <double*>g, <double*>m_, <double*>v_, n, one_minus_beta1,
                  one_minus_beta2, eps_term, step_size)

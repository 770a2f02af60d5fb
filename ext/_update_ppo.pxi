# PPO's clipped surrogate, approx_kl and clip fraction: their NumPy lines in
# minipg/algos/ppo.py. Included by _update_kernels.pyx.


cdef inline floating _maximum(floating a, floating b) noexcept nogil:
    """np.maximum: a NaN in either wins."""
    return a if (a >= b or a != a) else b


cdef inline floating _minimum(floating a, floating b) noexcept nogil:
    """np.minimum: a NaN in either wins."""
    return a if (a <= b or a != a) else b


cdef floating _surrogate(const floating* log_prob, const floating* old_log_prob,
                         const floating* advantages, floating* ratio, floating* grad,
                         floating low, floating high, floating inv_b, npy_intp n) noexcept nogil:
    """The loops of clipped_surrogate after ratio = exp(...): grad and the terms' sum (the
    terms max(unclipped, clipped) go to grad first, summed there, then overwritten)."""
    cdef npy_intp i
    cdef floating unclipped, clipped, total
    for i in range(n):
        unclipped = -advantages[i] * ratio[i]
        clipped = -advantages[i] * _minimum(_maximum(ratio[i], low), high)
        grad[i] = _maximum(unclipped, clipped)
    total = _pairwise_sum(grad, n)
    for i in range(n):
        unclipped = -advantages[i] * ratio[i]
        clipped = -advantages[i] * _minimum(_maximum(ratio[i], low), high)
        grad[i] = (unclipped if unclipped >= clipped else 0) * inv_b
    return total


cdef cnp.ndarray _log_ratio(cnp.ndarray log_prob, cnp.ndarray old_log_prob, int kind):
    """log_prob - old_log_prob, a new array (two checked vectors of the dtype `kind`)."""
    cdef npy_intp n = log_prob.shape[0]
    cdef cnp.ndarray out = _empty1(n, cnp.PyArray_TYPE(log_prob))
    if kind == 0:
        _difference(<float*>_data(log_prob), <float*>_data(old_log_prob), <float*>_data(out), n)
    else:
        _difference(<double*>_data(log_prob), <double*>_data(old_log_prob),
                    <double*>_data(out), n)
    return out


def clipped_surrogate(cnp.ndarray log_prob not None, cnp.ndarray old_log_prob not None,
                      cnp.ndarray advantages not None, double clip_coef):
    """minipg.algos.ppo.clipped_surrogate's NumPy lines in one call, the same numbers:

        ratio_i = exp(log_prob_i - old_log_prob_i)
        L       = sum_i max(-A_i ratio_i, -A_i clip(ratio_i, 1 - clip_coef, 1 + clip_coef)) / B
        dL/d log_prob_i = -A_i ratio_i / B  where the unclipped term is the max, else 0

    (the bounds and 1 / B are Python floats, so NumPy rounds them to the arrays' dtype first).
    Returns (L, dL/d log_prob, ratio), or None unless the three are contiguous 1-d arrays of
    one float dtype and one length (the caller's NumPy lines take any other case).
    """
    cdef int kind = _kind(log_prob)
    if (not _vectors(log_prob, old_log_prob, kind) or not _vectors(log_prob, advantages, kind)
            or log_prob.shape[0] == 0):
        return None
    cdef npy_intp n = log_prob.shape[0]
    cdef cnp.ndarray ratio = _log_ratio(log_prob, old_log_prob, kind)
    cdef cnp.ndarray grad = _empty1(n, cnp.PyArray_TYPE(log_prob))
    cdef double total
    _unary(&EXP[kind], _data(ratio), _data(ratio), n, log_prob.itemsize)
    if kind == 0:
        total = _surrogate(<float*>_data(log_prob), <float*>_data(old_log_prob),
                           <float*>_data(advantages), <float*>_data(ratio),
                           <float*>_data(grad), <float>(1.0 - clip_coef),
                           <float>(1.0 + clip_coef), <float>(1.0 / n), n)
    else:
        total = _surrogate(<double*>_data(log_prob), <double*>_data(old_log_prob),
                           <double*>_data(advantages), <double*>_data(ratio),
                           <double*>_data(grad), 1.0 - clip_coef, 1.0 + clip_coef, 1.0 / n, n)
    return total / n, grad, ratio


cdef void _kl_terms(floating* terms, const floating* log_ratio, npy_intp n) noexcept nogil:
    cdef npy_intp i
    for i in range(n):
        terms[i] = terms[i] - log_ratio[i]


def approx_kl(cnp.ndarray log_prob not None, cnp.ndarray old_log_prob not None):
    """minipg.algos.ppo.approx_kl's NumPy lines in one call, the same number:

        r_i = log_prob_i - old_log_prob_i,   KL ~ sum_i (expm1(r_i) - r_i) / n

    None unless both are contiguous 1-d arrays of one float dtype and one length > 0."""
    cdef int kind = _kind(log_prob)
    if not _vectors(log_prob, old_log_prob, kind) or log_prob.shape[0] == 0:
        return None
    cdef npy_intp n = log_prob.shape[0]
    cdef cnp.ndarray log_ratio = _log_ratio(log_prob, old_log_prob, kind)
    cdef cnp.ndarray terms = _empty1(n, cnp.PyArray_TYPE(log_prob))
    _unary(&EXPM1[kind], _data(log_ratio), _data(terms), n, log_prob.itemsize)
    if kind == 0:
        _kl_terms(<float*>_data(terms), <float*>_data(log_ratio), n)
        return <double>_pairwise_sum(<float*>_data(terms), n) / n
    _kl_terms(<double*>_data(terms), <double*>_data(log_ratio), n)
    return _pairwise_sum(<double*>_data(terms), n) / n


cdef npy_intp _count_outside(const floating* ratio, floating clip_coef,
                             npy_intp n) noexcept nogil:
    cdef npy_intp i, count = 0
    cdef floating distance
    for i in range(n):
        distance = ratio[i] - 1
        if distance < 0:
            distance = -distance
        if distance > clip_coef:
            count = count + 1
    return count


def clip_fraction(cnp.ndarray ratio not None, double clip_coef):
    """count_nonzero(|ratio - 1| > clip_coef) / n, as NumPy computes it (ratio - 1 and the
    comparison in ratio's dtype, clip_coef rounded to it). None unless ratio is a contiguous
    1-d float array of length > 0."""
    cdef int kind = _kind(ratio)
    if not _vectors(ratio, ratio, kind) or ratio.shape[0] == 0:
        return None
    cdef npy_intp n = ratio.shape[0]
    if kind == 0:
        return _count_outside(<float*>_data(ratio), <float>clip_coef, n) / <double>n
    return _count_outside(<double*>_data(ratio), clip_coef, n) / <double>n

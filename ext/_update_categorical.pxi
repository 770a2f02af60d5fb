# A Categorical's log-softmax, sampling, log_prob, entropy and param_grads: their NumPy
# lines in minipg/core/distributions.py. Included by _update_kernels.pyx.


cdef void _shift_by_row_max(floating* shifted, const floating* logits, npy_intp n,
                            npy_intp K) noexcept nogil:
    """shifted[i] = logits[i] - logits[i, argmax_k logits[i]] (argmax: the first maximum, or
    the first NaN, as np.argmax)."""
    cdef npy_intp i, k, best
    cdef floating top, v
    for i in range(n):
        best, top = 0, logits[i * K]
        if top == top:
            for k in range(1, K):
                v = logits[i * K + k]
                if v != v:
                    best = k
                    break
                if v > top:
                    best, top = k, v
        top = logits[i * K + best]
        for k in range(K):
            shifted[i * K + k] = logits[i * K + k] - top


cdef void _normalise(floating* log_probs, floating* probs, const floating* log_sum,
                     const floating* sum_exp, npy_intp n, npy_intp K) noexcept nogil:
    """log_probs = shifted - log(sum_exp), probs = exp / sum_exp, row by row, in place."""
    cdef npy_intp i, k
    for i in range(n):
        for k in range(K):
            log_probs[i * K + k] = log_probs[i * K + k] - log_sum[i]
            probs[i * K + k] = probs[i * K + k] / sum_exp[i]


cdef inline bint _table(cnp.ndarray a, int kind):
    """a is a C-contiguous 2-d array (n, K) of the float dtype `kind`."""
    return kind >= 0 and a.ndim == 2 and cnp.PyArray_IS_C_CONTIGUOUS(a) and _kind(a) == kind


cdef cnp.ndarray _filled(npy_intp n, int kind, double value):
    """A new (n,) vector of `value` in the dtype `kind` (NumPy's np.ones, np.full)."""
    cdef cnp.ndarray out = _empty1(n, cnp.NPY_FLOAT if kind == 0 else cnp.NPY_DOUBLE)
    out.fill(value)
    return out


def categorical_log_softmax(cnp.ndarray logits not None):
    """Categorical's log-softmax in one call, its NumPy lines' numbers:

        m = z[argmax z] per row,  s = z - m,  e = exp(s),  S = e @ (1, ..., 1),
        log pi = s - log(S),  pi = e / S

    logits: (n, K) C-contiguous, float32 or float64. Returns (log_probs, probs), new (n, K)
    arrays.
    """
    cdef int kind = _kind(logits)
    if not _table(logits, kind):
        raise ValueError(f"logits must be a C-contiguous 2-d float32 or float64 array, got "
                         f"shape {(<object>logits).shape}, dtype {(<object>logits).dtype}")
    cdef npy_intp n = logits.shape[0], K = logits.shape[1], itemsize = logits.itemsize
    if K == 0:
        raise ValueError("logits must have at least one action in its last dim")
    cdef cnp.ndarray ones = _filled(K, kind, 1)
    cdef cnp.ndarray log_probs = _empty2(n, K, kind), probs = _empty2(n, K, kind)
    cdef cnp.ndarray sum_exp = _empty2(n, 1, kind), log_sum = _empty2(n, 1, kind)
    if n == 0:
        return log_probs, probs
    if kind == 0:
        _shift_by_row_max(<float*>_data(log_probs), <float*>_data(logits), n, K)
    else:
        _shift_by_row_max(<double*>_data(log_probs), <double*>_data(logits), n, K)
    _unary(&EXP[kind], _data(log_probs), _data(probs), n * K, itemsize)
    # S = e @ ones: a matrix times a 1-d vector, the missing column dim of size 1, stride 0
    _matmul(&MATMUL[kind], _data(probs), K * itemsize, itemsize, _data(ones), itemsize, 0,
            _data(sum_exp), itemsize, 0, n, K, 1)
    _unary(&LOG[kind], _data(sum_exp), _data(log_sum), n, itemsize)
    if kind == 0:
        _normalise(<float*>_data(log_probs), <float*>_data(probs), <float*>_data(log_sum),
                   <float*>_data(sum_exp), n, K)
    else:
        _normalise(<double*>_data(log_probs), <double*>_data(probs), <double*>_data(log_sum),
                   <double*>_data(sum_exp), n, K)
    return log_probs, probs


cdef void _sample(const floating* probs, const floating* log_probs, const double* u,
                  long long* actions, floating* log_prob, npy_intp n, npy_intp K) noexcept nogil:
    """a_i = the first k with u_i < cdf_k, cdf_k = pi_0 + ... + pi_k summed in the
    probabilities' dtype (np.cumsum) and compared in float64 (NumPy promotes); the last cdf
    entry counts as inf, so a_i = K - 1 if no earlier one; 0 if u_i is NaN (np.argmax of a
    row of False)."""
    cdef npy_intp i, k, a
    cdef floating cdf
    for i in range(n):
        a = K - 1 if u[i] == u[i] else 0
        cdf = 0
        for k in range(K - 1):
            cdf = probs[i * K] if k == 0 else cdf + probs[i * K + k]
            if <double>cdf > u[i]:
                a = k
                break
        actions[i] = a
        log_prob[i] = log_probs[i * K + a]


def categorical_sample(cnp.ndarray probs not None, cnp.ndarray log_probs not None,
                       cnp.ndarray u not None):
    """Categorical.sample_with_log_prob's NumPy lines after the draw of u, in one call:

        cdf = cumsum(pi) (the last entry set to inf),  a = first k with u < cdf_k,
        log_prob = log pi(a)

    probs, log_probs (n, K) C-contiguous of one float dtype, u (n,) or (n, 1) float64
    uniforms. Returns (actions int64 (n,), log_prob (n,)).
    """
    cdef int kind = _kind(probs)
    if (not _table(probs, kind) or not _table(log_probs, kind)
            or log_probs.shape[0] != probs.shape[0] or log_probs.shape[1] != probs.shape[1]):
        raise ValueError("probs and log_probs must be C-contiguous (n, K) arrays of one float "
                         "dtype")
    cdef npy_intp n = probs.shape[0], K = probs.shape[1]
    if (_kind(u) != 1 or u.size != n or not cnp.PyArray_IS_C_CONTIGUOUS(u)):
        raise ValueError(f"u must be {n} contiguous float64 uniforms")
    if K == 0:
        raise ValueError("probs must have at least one action in its last dim")
    cdef cnp.ndarray actions = _empty1(n, cnp.NPY_INT64)
    cdef cnp.ndarray log_prob = _empty1(n, cnp.PyArray_TYPE(probs))
    if kind == 0:
        _sample(<float*>_data(probs), <float*>_data(log_probs), <double*>_data(u),
                <long long*>_data(actions), <float*>_data(log_prob), n, K)
    else:
        _sample(<double*>_data(probs), <double*>_data(log_probs), <double*>_data(u),
                <long long*>_data(actions), <double*>_data(log_prob), n, K)
    return actions, log_prob


def categorical_log_prob(cnp.ndarray log_probs not None, cnp.ndarray actions not None):
    """log pi(a_i) = log_probs[i, a_i] for (n, K) log_probs and (n,) intp actions, checked to
    be in [0, K) by the caller. None unless both are contiguous and log_probs a float array."""
    cdef int kind = _kind(log_probs)
    if (not _table(log_probs, kind) or cnp.PyArray_TYPE(actions) != cnp.NPY_INTP
            or actions.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(actions)):
        return None
    cdef npy_intp n = log_probs.shape[0], K = log_probs.shape[1], i
    if actions.shape[0] != n:
        raise ValueError(f"actions must have length {n}, got {actions.shape[0]}")
    cdef cnp.ndarray out = _empty1(n, cnp.PyArray_TYPE(log_probs))
    cdef const Py_ssize_t* a = <Py_ssize_t*>_data(actions)
    if kind == 0:
        for i in range(n):
            (<float*>_data(out))[i] = (<float*>_data(log_probs))[i * K + a[i]]
    else:
        for i in range(n):
            (<double*>_data(out))[i] = (<double*>_data(log_probs))[i * K + a[i]]
    return out


cdef cnp.ndarray _entropy(cnp.ndarray probs, cnp.ndarray log_probs, int kind):
    """H = (pi * log pi) @ (-1, ..., -1), a new (n,) array, for (n, K) arrays the caller has
    checked (C-contiguous, of the dtype `kind`): NumPy's product, then its matmul loop."""
    cdef npy_intp n = probs.shape[0], K = probs.shape[1], itemsize = probs.itemsize
    cdef cnp.ndarray terms = _empty2(n, K, kind)
    cdef cnp.ndarray minus_ones = _filled(K, kind, -1)
    cdef cnp.ndarray entropy = _empty1(n, cnp.PyArray_TYPE(probs))
    if kind == 0:
        _product(<float*>_data(probs), <float*>_data(log_probs), <float*>_data(terms), n * K)
    else:
        _product(<double*>_data(probs), <double*>_data(log_probs), <double*>_data(terms), n * K)
    if n > 0:
        _matmul(&MATMUL[kind], _data(terms), K * itemsize, itemsize, _data(minus_ones),
                itemsize, 0, _data(entropy), itemsize, 0, n, K, 1)
    return entropy


def categorical_entropy(cnp.ndarray probs not None, cnp.ndarray log_probs not None):
    """Categorical.entropy's NumPy line in one call: H = (pi * log pi) @ (-1, ..., -1), the
    product's sum by NumPy's own matmul loop. probs, log_probs (n, K); returns H (n,), or None
    unless both are C-contiguous of one float dtype."""
    cdef int kind = _kind(probs)
    if not _table(probs, kind) or not _table(log_probs, kind):
        return None
    cdef npy_intp n = probs.shape[0], K = probs.shape[1]
    if log_probs.shape[0] != n or log_probs.shape[1] != K:
        raise ValueError(f"log_probs must have the shape of probs ({n}, {K})")
    return _entropy(probs, log_probs, kind)


cdef void _score_grads(const floating* probs, const Py_ssize_t* actions, const floating* w,
                       floating* grad, npy_intp n, npy_intp K) noexcept nogil:
    """grad = probs * -w[:, None], then grad[i, a_i] += w_i."""
    cdef npy_intp i, k
    cdef floating minus_w
    for i in range(n):
        minus_w = -w[i]
        for k in range(K):
            grad[i * K + k] = probs[i * K + k] * minus_w
        grad[i * K + actions[i]] = grad[i * K + actions[i]] + w[i]


cdef void _entropy_grads(const floating* probs, const floating* log_probs,
                         const floating* entropy, const floating* c, npy_intp c_step,
                         floating* grad, npy_intp n, npy_intp K) noexcept nogil:
    """grad += c[:, None] * (-probs * (log_probs + H[:, None])), NumPy's order of roundings."""
    cdef npy_intp i, k
    cdef floating e
    for i in range(n):
        for k in range(K):
            e = -probs[i * K + k] * (log_probs[i * K + k] + entropy[i])
            grad[i * K + k] = grad[i * K + k] + c[i * c_step] * e


cdef bint _any_nonzero(const floating* c, npy_intp n) noexcept nogil:
    """c.any() for a float vector: NaN counts as nonzero, as in NumPy."""
    cdef npy_intp i
    for i in range(n):
        if c[i] != 0:
            return True
    return False


def categorical_param_grads(cnp.ndarray probs not None, cnp.ndarray log_probs not None,
                            cnp.ndarray actions not None, cnp.ndarray w not None,
                            cnp.ndarray c not None):
    """Categorical.param_grads' NumPy lines in one call, the same numbers:

        dL/dz_i = w_i * (onehot(a_i) - pi_i)  +  c_i * (-pi_i * (log pi_i + H_i))

    with H_i = (pi_i * log pi_i) @ (-1, ..., -1) (a matrix product, NumPy's own loop) and the
    entropy term only when some c_i is not 0. probs, log_probs (n, K); actions (n,) intp,
    checked to be in [0, K) by the caller; w (n,); c a 0-d or (n,) array. Returns the new
    (n, K) gradient, or None unless all are contiguous of one float dtype (NumPy's lines take
    any other case).
    """
    cdef int kind = _kind(probs)
    if (not _table(probs, kind) or _kind(log_probs) != kind or _kind(w) != kind
            or _kind(c) != kind or cnp.PyArray_TYPE(actions) != cnp.NPY_INTP
            or not cnp.PyArray_IS_C_CONTIGUOUS(log_probs)
            or not cnp.PyArray_IS_C_CONTIGUOUS(actions) or not cnp.PyArray_IS_C_CONTIGUOUS(w)
            or not cnp.PyArray_IS_C_CONTIGUOUS(c)):
        return None
    cdef npy_intp n = probs.shape[0], K = probs.shape[1]
    if (log_probs.ndim != 2 or log_probs.shape[0] != n or log_probs.shape[1] != K
            or actions.size != n or w.size != n or c.size not in (1, n)):
        raise ValueError(f"log_probs must be ({n}, {K}), actions and w ({n},) and c a scalar "
                         f"or ({n},)")
    cdef cnp.ndarray grad = _empty2(n, K, kind), entropy
    if kind == 0:
        _score_grads(<float*>_data(probs), <Py_ssize_t*>_data(actions), <float*>_data(w),
                     <float*>_data(grad), n, K)
    else:
        _score_grads(<double*>_data(probs), <Py_ssize_t*>_data(actions), <double*>_data(w),
                     <double*>_data(grad), n, K)
    if not (_any_nonzero(<float*>_data(c), c.size) if kind == 0
            else _any_nonzero(<double*>_data(c), c.size)):
        return grad
    entropy = _entropy(probs, log_probs, kind)
    if kind == 0:
        _entropy_grads(<float*>_data(probs), <float*>_data(log_probs), <float*>_data(entropy),
                       <float*>_data(c), 0 if c.size == 1 else 1, <float*>_data(grad), n, K)
    else:
        _entropy_grads(<double*>_data(probs), <double*>_data(log_probs),
                       <double*>_data(entropy), <double*>_data(c), 0 if c.size == 1 else 1,
                       <double*>_data(grad), n, K)
    return grad

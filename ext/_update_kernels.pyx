"""Compiled kernels for the training step, each bit for bit the NumPy lines it replaces:

    adam_step                  Adam.step_reference (minipg/core/optim.py)
    reward_scale_step          RewardScaler.scale_reference (minipg/core/normalize.py)
    mlp_forward/backward       MLP.forward's and MLP.backward's NumPy lines (minipg/core/nn.py)
    categorical_log_softmax    log_softmax's NumPy lines (minipg/core/distributions.py)
    categorical_sample         Categorical.sample's lines and the gather of log_prob

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


def reward_scale_step(cnp.ndarray returns not None, object rewards, object dones, object real,
                      double gamma,
                      long long count, double mean, double var, double eps, double clip_reward):
    """One step of RewardScaler.scale, as scale_reference computes it with NumPy:

        R      = R * gamma + r                    (returns, in place)
        merge the R of the real rows into (count, mean, var) as RunningMeanStd.update does:
            mean_b = sum(R_real) / n_b, var_b = sum((R_real - mean_b)^2) / n_b   (NumPy's sums)
            delta  = mean_b - mean
            M2     = var * count + var_b * n_b + delta * delta * count * n_b / (count + n_b)
            mean   = mean + delta * n_b / (count + n_b),  var = M2 / (count + n_b)
        R      = 0 where done
        scaled = clip(r / sqrt(var + eps), -clip_reward, clip_reward)

    returns (N,) float64, written in place; rewards (N,) float64; dones and real (N,) bool (real
    None: every row), all contiguous. Returns (scaled, count, mean, var), the statistics as
    they are after the step (no real row leaves them as they were), or None for other dtypes
    or layouts (the caller's NumPy reference takes those).
    """
    cdef Py_ssize_t n = returns.shape[0] if returns.ndim == 1 else -1, i, k = 0
    cdef bint every_row = real is None
    if every_row:
        real = dones                        # (only its layout is checked, never its values)
    if not (isinstance(rewards, np.ndarray) and isinstance(dones, np.ndarray)
            and isinstance(real, np.ndarray)):
        return None
    cdef cnp.ndarray real_array = real, rewards_array = rewards, dones_array = dones
    cdef cnp.ndarray array
    for array in (returns, rewards_array, dones_array, real_array):
        if array.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(array):
            return None
    if (cnp.PyArray_TYPE(returns) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(rewards_array) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(dones_array) != cnp.NPY_BOOL
            or cnp.PyArray_TYPE(real_array) != cnp.NPY_BOOL
            or not cnp.PyArray_ISWRITEABLE(returns)):
        return None
    _check_length("rewards", rewards_array.shape[0], n)
    _check_length("dones", dones_array.shape[0], n)
    _check_length("real", real_array.shape[0], n)
    cdef cnp.ndarray scaled_array = _empty1(n, cnp.NPY_DOUBLE)
    cdef double* returns_ = <double*>_data(returns)
    cdef const double* rewards_ = <double*>_data(rewards_array)
    cdef const unsigned char* dones_ = <unsigned char*>_data(dones_array)
    cdef const unsigned char* real_ = <unsigned char*>_data(real_array)
    cdef double* scaled = <double*>_data(scaled_array)
    cdef double* picked = <double*>malloc(max(n, 1) * sizeof(double))
    if picked == NULL:
        raise MemoryError()
    cdef double mean_b, var_b, delta, m2, n_a, n_b, n_ab, x, scale
    with nogil:
        for i in range(n):
            returns_[i] = returns_[i] * gamma + rewards_[i]
            if every_row or real_[i]:
                picked[k] = returns_[i]
                k = k + 1
        if k > 0:
            n_b = <double>k
            mean_b = _pairwise_sum(picked, k) / n_b
            for i in range(k):
                x = picked[i] - mean_b
                picked[i] = x * x
            var_b = _pairwise_sum(picked, k) / n_b
            n_a = <double>count
            n_ab = <double>(count + k)
            delta = mean_b - mean
            m2 = (var * n_a if count else 0.0) + var_b * n_b
            m2 = m2 + delta * delta * n_a * n_b / n_ab
            mean = mean + delta * n_b / n_ab
            var = m2 / n_ab
            count = count + k
        for i in range(n):
            if dones_[i]:
                returns_[i] = 0.0
        scale = sqrt(var + eps)
        for i in range(n):
            x = rewards_[i] / scale
            # np.clip's order: the upper bound over the lower one's max; a NaN stays NaN
            if not (x != x):
                if x < -clip_reward:
                    x = -clip_reward
                if x > clip_reward:
                    x = clip_reward
            scaled[i] = x
    free(picked)
    return scaled_array, count, mean, var


# --------------------------------------------------------------------------------------------
# NumPy's own loops, called from here. A network's forward and backward pass, and a
# Categorical's log-softmax and sampling, are a dozen NumPy calls each on small arrays, where
# NumPy's per-call work (parsing the arguments, choosing a loop, allocating, broadcasting a bias
# row by row) costs as much as the arithmetic. The kernels below do that work once: they call
# the very inner loops NumPy would run (its matmul loop, which calls the same BLAS routine with
# the same arguments, its SIMD tanh, exp, expm1 and log, and its maximum for relu), with the
# strides NumPy would pass, and do
# the exactly rounded steps (adding a bias, subtracting, dividing) in plain loops. So their
# results are NumPy's bit for bit, including tanh and exp, whose SIMD approximations differ
# from the C library's in the last bit. The tests compare them with array_equal, which is also
# what would catch a NumPy whose loop table no longer holds the loops its ufuncs run.
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


cdef void _check_layers(tuple weights, tuple biases, int kind) except *:
    """Every W_l a C-contiguous (n_in, n_out) matrix and b_l an (n_out,) vector of the
    network's dtype, each layer's n_in the last one's n_out."""
    cdef Py_ssize_t l, L = len(weights)
    cdef cnp.ndarray W, b
    if L == 0 or len(biases) != L:
        raise ValueError(f"weights and biases must have one entry per layer, got {L} and "
                         f"{len(biases)}")
    for l in range(L):
        W, b = weights[l], biases[l]
        if W.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(W) or _kind(W) != kind:
            raise ValueError(f"weights[{l}] must be a C-contiguous 2-d array of the network's "
                             f"dtype, got shape {(<object>W).shape}, dtype {(<object>W).dtype}")
        if (b.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(b) or _kind(b) != kind
                or b.shape[0] != W.shape[1]):
            raise ValueError(f"biases[{l}] must be a contiguous ({W.shape[1]},) vector of the "
                             f"network's dtype, got shape {(<object>b).shape}, "
                             f"dtype {(<object>b).dtype}")
        if l > 0 and W.shape[0] != (<cnp.ndarray>weights[l - 1]).shape[1]:
            raise ValueError(f"weights[{l}] has {W.shape[0]} rows, expected "
                             f"{(<cnp.ndarray>weights[l - 1]).shape[1]}")


cdef void _add_bias(floating* h, const floating* b, npy_intp rows, npy_intp cols) noexcept nogil:
    """h[i, :] += b (np.add's rounding: one IEEE addition per entry)."""
    cdef npy_intp i, j
    for i in range(rows):
        for j in range(cols):
            h[i * cols + j] = h[i * cols + j] + b[j]


cdef void _relu(Loop* loop, char* h, npy_intp n, npy_intp itemsize, int kind):
    """h = np.maximum(h, 0) in place: NumPy's maximum loop with the 0 as a scalar operand
    (stride 0), as NumPy passes it (which decides the sign of a zero and where a NaN goes)."""
    cdef float zero32 = 0
    cdef double zero64 = 0
    cdef char* args[3]
    cdef npy_intp dims[1]
    cdef npy_intp steps[3]
    args[0], args[2] = h, h
    args[1] = <char*>&zero32 if kind == 0 else <char*>&zero64
    dims[0] = n
    steps[0], steps[1], steps[2] = itemsize, 0, itemsize
    loop.function(args, dims, steps, loop.data)


def mlp_forward(cnp.ndarray x not None, tuple weights not None, tuple biases not None,
                bint relu):
    """MLP.forward's NumPy lines in one call, for a tanh network (relu False) or a relu one:

        z_l = h_{l-1} @ W_l + b_l,   h_l = f(z_l) on hidden layers,   out = z_L

    Returns (hidden, out): the list [h_1, ..., h_{L-1}] and out, new C-contiguous arrays. x is
    (B, n_0) with any strides NumPy would take as they are. None where NumPy's lines would do
    something else (the caller runs them): an x of another dtype than the network's (NumPy
    would promote) or misaligned (NumPy would copy it first).
    """
    if len(weights) == 0:
        raise ValueError("weights must have at least one layer")
    cdef cnp.ndarray W = weights[0]
    cdef int kind = _kind(W)
    if kind < 0:
        raise ValueError(f"weights[0] must be float32 or float64, got {(<object>W).dtype}")
    _check_layers(weights, biases, kind)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-d array, got shape {(<object>x).shape}")
    if _kind(x) != kind or not cnp.PyArray_ISALIGNED(x):
        return None
    if x.shape[1] != W.shape[0]:
        raise ValueError(f"x must have {W.shape[0]} columns, got shape {(<object>x).shape}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch (B = 0)")
    cdef npy_intp B = x.shape[0], itemsize = x.itemsize, n_in, n_out
    cdef Py_ssize_t l, L = len(weights)
    cdef cnp.ndarray h_prev = x, h, b
    cdef npy_intp prev_m = x.strides[0], prev_n = x.strides[1]
    hidden = []
    for l in range(L):
        W, b = weights[l], biases[l]
        n_in, n_out = W.shape[0], W.shape[1]
        h = _empty2(B, n_out, kind)
        _matmul(&MATMUL[kind], _data(h_prev), prev_m, prev_n,
                _data(W), n_out * itemsize, itemsize,
                _data(h), n_out * itemsize, itemsize, B, n_in, n_out)
        if kind == 0:
            _add_bias(<float*>_data(h), <float*>_data(b), B, n_out)
        else:
            _add_bias(<double*>_data(h), <double*>_data(b), B, n_out)
        if l == L - 1:
            return hidden, h
        if relu:
            _relu(&MAXIMUM[kind], _data(h), B * n_out, itemsize, kind)
        else:
            _unary(&TANH[kind], _data(h), _data(h), B * n_out, itemsize)
        hidden.append(h)
        h_prev, prev_m, prev_n = h, n_out * itemsize, itemsize


cdef void _tanh_derivative(floating* g, const floating* h, npy_intp n) noexcept nogil:
    """g *= 1 - h^2 (tanh'(z) from the layer's output h = tanh(z)), rounded as NumPy's three
    passes do: h*h, then 1 - that, then the product."""
    cdef npy_intp i
    cdef floating square, derivative
    for i in range(n):
        square = h[i] * h[i]
        derivative = 1 - square
        g[i] = g[i] * derivative


cdef void _relu_derivative(floating* g, const floating* h, npy_intp n) noexcept nogil:
    """g *= [h > 0] (relu'(z) from the layer's output h = max(z, 0)): the mask is 1 or 0 in
    the array's dtype, then the product, as NumPy multiplies by a bool array."""
    cdef npy_intp i
    for i in range(n):
        g[i] = g[i] * (<floating>1 if h[i] > 0 else <floating>0)


cdef void _outer(floating* out, const floating* g, const floating* w, npy_intp rows,
                 npy_intp cols, npy_intp w_stride) noexcept nogil:
    """out[i, j] = g[i] * w[j]: np.multiply(g (rows, 1), W[:, 0]) broadcast."""
    cdef npy_intp i, j
    for i in range(rows):
        for j in range(cols):
            out[i * cols + j] = g[i] * w[j * w_stride]


def mlp_backward(list layer_inputs not None, tuple weights not None, tuple biases not None,
                 cnp.ndarray grad_out not None, cnp.ndarray grad_params not None,
                 cnp.ndarray ones not None, bint input_grad, bint relu):
    """MLP.backward's NumPy lines in one call, for a tanh network (relu False) or a relu one,
    from the top layer down:

        dL/dW_l = h_{l-1}^T g_l,   dL/db_l = ones^T g_l,   g_{l-1} = (g_l W_l^T) * f'(z_{l-1})

    with f'(z) = 1 - h^2 for tanh and [h > 0] for relu, from the layer's output h = f(z) (and
    g_l W_l^T for a one-column W_l the broadcast product NumPy's lines use). Writes
    dL/dW_1, dL/db_1, dL/dW_2, ... into grad_params, a flat contiguous vector laid out like the
    parameters; returns dL/dx = g_1 W_1^T if input_grad, else None. layer_inputs = [x, h_1, ...]
    from the forward, ones a (B,) vector of ones, grad_out (B, n_L) C-contiguous.
    """
    cdef cnp.ndarray x = layer_inputs[0], h_prev, W, g, grad_h
    cdef int kind = _kind(x)
    if kind < 0 or x.ndim != 2:
        raise ValueError(f"layer_inputs[0] must be a 2-d float32 or float64 array")
    _check_layers(weights, biases, kind)
    cdef Py_ssize_t l, L = len(weights)
    cdef npy_intp B = x.shape[0], itemsize = x.itemsize, n_in, n_out, h_m, h_n, size = 0
    if len(layer_inputs) != L:
        raise ValueError(f"layer_inputs must have one entry per layer ({L})")
    if not cnp.PyArray_ISALIGNED(x):
        raise ValueError("layer_inputs[0] must be aligned")
    for l in range(L):
        W, h_prev = weights[l], layer_inputs[l]
        size += W.shape[0] * W.shape[1] + W.shape[1]
        if (_kind(h_prev) != kind or h_prev.ndim != 2 or h_prev.shape[0] != B
                or h_prev.shape[1] != W.shape[0]
                or (l > 0 and not cnp.PyArray_IS_C_CONTIGUOUS(h_prev))):
            raise ValueError(f"layer_inputs[{l}] must be ({B}, {W.shape[0]}) in the network's "
                             f"dtype" + (", C-contiguous" if l > 0 else ""))
    if (_kind(grad_params) != kind or grad_params.ndim != 1 or grad_params.shape[0] != size
            or not cnp.PyArray_IS_C_CONTIGUOUS(grad_params)
            or not cnp.PyArray_ISWRITEABLE(grad_params)):
        raise ValueError(f"grad_params must be a writeable contiguous ({size},) vector of the "
                         "network's dtype")
    W = weights[L - 1]
    if (_kind(grad_out) != kind or grad_out.ndim != 2 or grad_out.shape[0] != B
            or grad_out.shape[1] != W.shape[1] or not cnp.PyArray_IS_C_CONTIGUOUS(grad_out)):
        raise ValueError(f"grad_out must be a C-contiguous ({B}, {W.shape[1]}) array of the "
                         "network's dtype")
    if (_kind(ones) != kind or ones.ndim != 1 or ones.shape[0] != B
            or not cnp.PyArray_IS_C_CONTIGUOUS(ones)):
        raise ValueError(f"ones must be a contiguous ({B},) vector of the network's dtype")

    cdef char* dW
    cdef char* db
    g = grad_out
    for l in range(L - 1, -1, -1):
        W, h_prev = weights[l], layer_inputs[l]
        n_in, n_out = W.shape[0], W.shape[1]
        size -= n_in * n_out + n_out                       # where layer l starts
        dW = _data(grad_params) + size * itemsize
        db = dW + n_in * n_out * itemsize
        h_m, h_n = h_prev.strides[0], h_prev.strides[1]
        # dL/dW_l = h_{l-1}^T g_l: h^T is (n_in, B) with h's strides swapped
        _matmul(&MATMUL[kind], _data(h_prev), h_n, h_m, _data(g), n_out * itemsize, itemsize,
                dW, n_out * itemsize, itemsize, n_in, B, n_out)
        # dL/db_l = ones @ g_l: ones is 1-d, a missing row dim (size 1, stride 0), and so is
        # the output's
        _matmul(&MATMUL[kind], _data(ones), 0, itemsize, _data(g), n_out * itemsize, itemsize,
                db, 0, itemsize, 1, B, n_out)
        if l == 0 and not input_grad:
            return None
        grad_h = _empty2(B, n_in, kind)
        if n_out == 1 and l > 0:
            if kind == 0:
                _outer(<float*>_data(grad_h), <float*>_data(g), <float*>_data(W), B, n_in, 1)
            else:
                _outer(<double*>_data(grad_h), <double*>_data(g), <double*>_data(W), B, n_in, 1)
        else:
            # g_l W_l^T: W^T is (n_out, n_in) with W's strides swapped
            _matmul(&MATMUL[kind], _data(g), n_out * itemsize, itemsize,
                    _data(W), itemsize, n_out * itemsize,
                    _data(grad_h), n_in * itemsize, itemsize, B, n_out, n_in)
        if l == 0:
            return grad_h
        if relu and kind == 0:
            _relu_derivative(<float*>_data(grad_h), <float*>_data(h_prev), B * n_in)
        elif relu:
            _relu_derivative(<double*>_data(grad_h), <double*>_data(h_prev), B * n_in)
        elif kind == 0:
            _tanh_derivative(<float*>_data(grad_h), <float*>_data(h_prev), B * n_in)
        else:
            _tanh_derivative(<double*>_data(grad_h), <double*>_data(h_prev), B * n_in)
        g = grad_h


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


def categorical_log_softmax(cnp.ndarray logits not None, cnp.ndarray ones not None):
    """Categorical's log-softmax in one call, its NumPy lines' numbers:

        m = z[argmax z] per row,  s = z - m,  e = exp(s),  S = e @ ones,
        log pi = s - log(S),  pi = e / S

    logits: (n, K) C-contiguous, float32 or float64; ones: (K,) of ones, same dtype.
    Returns (log_probs, probs), new (n, K) arrays.
    """
    cdef int kind = _kind(logits)
    if kind < 0 or logits.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(logits):
        raise ValueError(f"logits must be a C-contiguous 2-d float32 or float64 array, got "
                         f"shape {(<object>logits).shape}, dtype {(<object>logits).dtype}")
    cdef npy_intp n = logits.shape[0], K = logits.shape[1], itemsize = logits.itemsize
    if (_kind(ones) != kind or ones.ndim != 1 or ones.shape[0] != K
            or not cnp.PyArray_IS_C_CONTIGUOUS(ones)):
        raise ValueError(f"ones must be a contiguous ({K},) vector of the logits' dtype")
    if K == 0:
        raise ValueError("logits must have at least one action in its last dim")
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
    if (kind < 0 or probs.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(probs)
            or _kind(log_probs) != kind or log_probs.ndim != 2
            or log_probs.shape[0] != probs.shape[0] or log_probs.shape[1] != probs.shape[1]
            or not cnp.PyArray_IS_C_CONTIGUOUS(log_probs)):
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


def pairwise_sum(cnp.ndarray a not None):
    """a.sum() for a contiguous 1-d float32 or float64 array, as NumPy sums it (the tests hold
    the kernels' sums to NumPy's with this)."""
    cdef int kind = _kind(a)
    if kind < 0 or a.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("a must be a contiguous 1-d float32 or float64 array")
    if kind == 0:
        return _pairwise_sum(<float*>_data(a), a.shape[0])
    return _pairwise_sum(<double*>_data(a), a.shape[0])


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


cdef void _difference(const floating* a, const floating* b, floating* out,
                      npy_intp n) noexcept nogil:
    cdef npy_intp i
    for i in range(n):
        out[i] = a[i] - b[i]


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
    cdef npy_intp n = log_prob.shape[0] if log_prob.ndim == 1 else -1
    if (kind < 0 or n < 1 or _kind(old_log_prob) != kind or _kind(advantages) != kind
            or old_log_prob.ndim != 1 or advantages.ndim != 1
            or old_log_prob.shape[0] != n or advantages.shape[0] != n
            or not cnp.PyArray_IS_C_CONTIGUOUS(log_prob)
            or not cnp.PyArray_IS_C_CONTIGUOUS(old_log_prob)
            or not cnp.PyArray_IS_C_CONTIGUOUS(advantages)):
        return None
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


cdef void _product(const floating* a, const floating* b, floating* out,
                   npy_intp n) noexcept nogil:
    cdef npy_intp i
    for i in range(n):
        out[i] = a[i] * b[i]


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


cdef cnp.ndarray _entropy(cnp.ndarray probs, cnp.ndarray log_probs, int kind):
    """H = (pi * log pi) @ (-1, ..., -1), a new (n,) array, for (n, K) arrays the caller has
    checked (C-contiguous, of the dtype `kind`): NumPy's product, then its matmul loop."""
    cdef npy_intp n = probs.shape[0], K = probs.shape[1], itemsize = probs.itemsize
    cdef cnp.ndarray terms = _empty2(n, K, kind)
    cdef cnp.ndarray minus_ones = _empty1(K, cnp.PyArray_TYPE(probs))
    cdef cnp.ndarray entropy = _empty1(n, cnp.PyArray_TYPE(probs))
    minus_ones.fill(-1)
    if kind == 0:
        _product(<float*>_data(probs), <float*>_data(log_probs), <float*>_data(terms), n * K)
    else:
        _product(<double*>_data(probs), <double*>_data(log_probs), <double*>_data(terms), n * K)
    if n > 0:
        _matmul(&MATMUL[kind], _data(terms), K * itemsize, itemsize, _data(minus_ones),
                itemsize, 0, _data(entropy), itemsize, 0, n, K, 1)
    return entropy


cdef bint _any_nonzero(cnp.ndarray c):
    cdef npy_intp i
    for i in range(c.size):
        if _kind(c) == 0 and (<float*>_data(c))[i] != 0:
            return True
        if _kind(c) == 1 and (<double*>_data(c))[i] != 0:
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
    if (kind < 0 or probs.ndim != 2 or _kind(log_probs) != kind or _kind(w) != kind
            or _kind(c) != kind or cnp.PyArray_TYPE(actions) != cnp.NPY_INTP
            or not cnp.PyArray_IS_C_CONTIGUOUS(probs)
            or not cnp.PyArray_IS_C_CONTIGUOUS(log_probs)
            or not cnp.PyArray_IS_C_CONTIGUOUS(actions) or not cnp.PyArray_IS_C_CONTIGUOUS(w)
            or not cnp.PyArray_IS_C_CONTIGUOUS(c)):
        return None
    cdef npy_intp n = probs.shape[0], K = probs.shape[1], itemsize = probs.itemsize
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
    if not _any_nonzero(c):                     # c.any(): NaN counts, as in NumPy
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


cdef inline bint _vectors(cnp.ndarray a, cnp.ndarray b, int kind):
    """a and b contiguous 1-d arrays of one length and of the float dtype `kind`."""
    return (kind >= 0 and _kind(a) == kind and _kind(b) == kind and a.ndim == 1 and b.ndim == 1
            and a.shape[0] == b.shape[0] and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and cnp.PyArray_IS_C_CONTIGUOUS(b))


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


def categorical_entropy(cnp.ndarray probs not None, cnp.ndarray log_probs not None):
    """Categorical.entropy's NumPy line in one call: H = (pi * log pi) @ (-1, ..., -1), the
    product's sum by NumPy's own matmul loop. probs, log_probs (n, K); returns H (n,), or None
    unless both are C-contiguous of one float dtype."""
    cdef int kind = _kind(probs)
    if (kind < 0 or probs.ndim != 2 or _kind(log_probs) != kind or log_probs.ndim != 2
            or not cnp.PyArray_IS_C_CONTIGUOUS(probs)
            or not cnp.PyArray_IS_C_CONTIGUOUS(log_probs)):
        return None
    cdef npy_intp n = probs.shape[0], K = probs.shape[1], itemsize = probs.itemsize
    if log_probs.shape[0] != n or log_probs.shape[1] != K:
        raise ValueError(f"log_probs must have the shape of probs ({n}, {K})")
    return _entropy(probs, log_probs, kind)


def categorical_log_prob(cnp.ndarray log_probs not None, cnp.ndarray actions not None):
    """log pi(a_i) = log_probs[i, a_i] for (n, K) log_probs and (n,) intp actions, checked to
    be in [0, K) by the caller. None unless both are contiguous and log_probs a float array."""
    cdef int kind = _kind(log_probs)
    if (kind < 0 or log_probs.ndim != 2 or cnp.PyArray_TYPE(actions) != cnp.NPY_INTP
            or actions.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(log_probs)
            or not cnp.PyArray_IS_C_CONTIGUOUS(actions)):
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


def track_episodes(cnp.ndarray episode_return not None, cnp.ndarray episode_length not None,
                   cnp.ndarray rewards not None, cnp.ndarray real not None,
                   cnp.ndarray terminated not None, cnp.ndarray truncated not None):
    """The collector's episode bookkeeping for one step of N envs (RolloutCollector's
    _track_episodes, its NumPy lines' numbers), in place:

        return += r * real,   length += real,   ended = real & (terminated | truncated)
        then, for each ended env (in order): record (return, length), and start both at 0

    episode_return (N,) float64, episode_length (N,) int64, rewards (N,) float64, the rest (N,)
    bool, all contiguous. Returns (ended (N,) bool, [(return, length) of each ended episode]),
    or None for other dtypes or layouts (the caller's NumPy lines take them).
    """
    cdef npy_intp n = episode_return.shape[0] if episode_return.ndim == 1 else -1, i
    cdef cnp.ndarray array
    for array in (episode_return, episode_length, rewards, real, terminated, truncated):
        if array.ndim != 1 or array.shape[0] != n or not cnp.PyArray_IS_C_CONTIGUOUS(array):
            return None
    if (cnp.PyArray_TYPE(episode_return) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(rewards) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(episode_length) != cnp.NPY_INT64
            or cnp.PyArray_TYPE(real) != cnp.NPY_BOOL
            or cnp.PyArray_TYPE(terminated) != cnp.NPY_BOOL
            or cnp.PyArray_TYPE(truncated) != cnp.NPY_BOOL):
        return None
    cdef double* ret = <double*>_data(episode_return)
    cdef long long* length = <long long*>_data(episode_length)
    cdef const double* r = <double*>_data(rewards)
    cdef const unsigned char* real_ = <unsigned char*>_data(real)
    cdef const unsigned char* term = <unsigned char*>_data(terminated)
    cdef const unsigned char* trunc = <unsigned char*>_data(truncated)
    cdef cnp.ndarray ended = _empty1(n, cnp.NPY_BOOL)
    cdef unsigned char* ended_ = <unsigned char*>_data(ended)
    finished = []
    for i in range(n):
        ret[i] = ret[i] + r[i] * (1.0 if real_[i] else 0.0)
        length[i] = length[i] + (1 if real_[i] else 0)
        ended_[i] = 1 if (real_[i] and (term[i] or trunc[i])) else 0
        if ended_[i]:
            finished.append((ret[i], length[i]))
            ret[i] = 0.0
            length[i] = 0
    return ended, finished

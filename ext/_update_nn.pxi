# An MLP's forward and backward pass: MLP.forward's and MLP.backward's NumPy lines
# (minipg/core/nn.py), tanh or relu. Included by _update_kernels.pyx.


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
                 npy_intp cols) noexcept nogil:
    """out[i, j] = g[i] * w[j]: np.multiply(g (rows, 1), W[:, 0]) broadcast (W a contiguous
    (cols, 1) column)."""
    cdef npy_intp i, j
    for i in range(rows):
        for j in range(cols):
            out[i * cols + j] = g[i] * w[j]


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
                _outer(<float*>_data(grad_h), <float*>_data(g), <float*>_data(W), B, n_in)
            else:
                _outer(<double*>_data(grad_h), <double*>_data(g), <double*>_data(W), B, n_in)
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

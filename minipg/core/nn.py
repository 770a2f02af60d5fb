"""A multilayer perceptron with a hand-written backward pass, its parameters in one flat vector.

The layer API of hand-written backprop: every forward returns what its backward needs, and the
network keeps nothing from one call to the next.

    out, cache           = net.forward(x)                  x (B, in_dim) -> out (B, out_dim)
    grad_x, grad_params  = net.backward(cache, grad_out)   grad_out = dL/dout, same shape as out
    grad_out_dot         = net.jvp(cache, vector)          d out along a parameter direction

Two forwards can be alive at once; each backward uses its own cache. For layer l with weight
W_l (n_in, n_out) and bias b_l (n_out,):

    forward     z_l = h_{l-1} @ W_l + b_l,      h_l = f(z_l) on hidden layers, h_L = z_L (linear)
    backward    given g_l = dL/dz_l (B, n_out):
                dL/dW_l     = h_{l-1}^T @ g_l           (summed over the batch by the matmul)
                dL/db_l     = sum_b g_l[b]              (= ones^T @ g_l, a matrix-vector product)
                dL/dh_{l-1} = g_l @ W_l^T
                g_{l-1}     = dL/dh_{l-1} * f'(z_{l-1})
    f = tanh:   f'(z) = 1 - tanh(z)^2 = 1 - h^2     (from the cached output, no second tanh)
    f = relu:   f'(z) = [z > 0] = [h > 0]

backward takes the gradient of a scalar loss L with respect to the outputs, so whatever averaging
the loss does (1/B for a mean) is already inside grad_out.

The parameters are one flat vector `params`: W_1, b_1, W_2, b_2, ... in that order, each layer's
W and b a view into it. The optimizer, gradient clipping and checkpoints see a single array, and
grad_params has the same layout. A caller can hand in a slice of a bigger buffer (`params=`) so
that, say, a policy and a value function live in one vector that one optimizer pass updates;
`backward(..., out=)` writes the gradient into the matching slice of a gradient buffer. The views
stay valid only while the buffer is updated in place (`params[...] = ...`, `params -= ...`).

Arithmetic: the network computes in the dtype of its parameters, float64 (what the gradient
checks use) or float32 (about twice as fast on the matmuls that dominate a training step, the
usual choice of deep-learning libraries). Inputs are converted to it; nothing is converted back.

Speed: on the small batches of RL, a dozen NumPy calls cost as much in NumPy's own per-call
work as in arithmetic. forward, predict and backward therefore run their NumPy lines as one
compiled call each (ext/_update_kernels.pyx), which calls NumPy's own matmul, tanh and maximum
loops and rounds the bias additions and f' as NumPy does: the same numbers, bit for bit. The
NumPy lines below are the reference; they run with MINIPG_PURE_NUMPY=1.

Initialisation (orthogonal, Saxe et al. 2014, the usual choice for PPO): each W is a random
orthogonal matrix times a gain, biases zero. Default gains are sqrt(2) for hidden layers and 1
for the output; a policy head uses a small output gain (0.01) so that the initial policy is
close to uniform, a value head uses 1. The alternative, init="uniform", is PyTorch's default
for a linear layer (what Stable-Baselines3 uses with ortho_init=False): W and b drawn from
U(-1/sqrt(n_in), 1/sqrt(n_in)), no gains. Its weights are smaller (a std of 1/sqrt(3 n_in)
against sqrt(2/n_in)) and its output layer is not damped: the first policy is further from
uniform.
"""
import numpy as np

from minipg.core.checks import as_generator, check_choice, check_float_dtype
from minipg.core.returns import update_kernels

__all__ = ["MLP", "MLPCache", "orthogonal", "uniform"]

ACTIVATIONS = ("tanh", "relu")
INITS = ("orthogonal", "uniform")


def orthogonal(shape, gain, rng):
    """A (n_in, n_out) matrix with orthonormal rows or columns (whichever are fewer), times gain.

    QR of a Gaussian matrix gives a Haar-random orthogonal Q once the signs of R's diagonal are
    folded into Q (without that, Q is biased toward particular orientations).
    """
    n_in, n_out = shape
    gaussian = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))
    return gain * (q if n_in >= n_out else q.T)


def uniform(shape, n_in, rng):
    """PyTorch's default for nn.Linear's W (n_in, n_out) and b (n_out,) alike: every entry
    from U(-1/sqrt(n_in), 1/sqrt(n_in)), n_in the layer's input width."""
    bound = 1.0 / np.sqrt(n_in)
    return rng.uniform(-bound, bound, shape)


class MLPCache:
    """What backward and jvp need from one forward pass: the input of every layer.

    layer_inputs = [h_0 = x, h_1, ..., h_{L-1}], each (B, n) in the network's dtype. The arrays
    belong to this cache alone: a later forward allocates its own.
    """

    __slots__ = ("layer_inputs",)

    def __init__(self, layer_inputs):
        self.layer_inputs = layer_inputs

    @property
    def batch_size(self):
        return self.layer_inputs[0].shape[0]


class MLP:
    """Fully connected network: `activation` on hidden layers, a linear output layer.

    sizes       (in_dim, hidden..., out_dim), e.g. (4, 64, 64, 2)
    activation  "tanh" or "relu"
    gains       one orthogonal-init gain per layer; default sqrt(2) for hidden layers, 1 for output
    init        "orthogonal" (W orthogonal times its gain, b = 0) or "uniform" (PyTorch's
                default, gains unused)
    rng         Generator, int seed or None, used for the initial weights only
    params      optional 1-d buffer of length MLP.count_params(sizes) to live in (e.g. a slice
                of a bigger flat vector); its dtype is the network's. Allocated if not given.
    dtype       float64 (default) or float32, used when params is not given
    """

    def __init__(self, sizes, activation="tanh", gains=None, rng=None, params=None,
                 dtype=np.float64, init="orthogonal"):
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in sizes):
            raise ValueError(f"sizes must be at least two positive ints (in_dim, ..., out_dim), "
                             f"got {sizes}")
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("init", init, INITS)
        n_layers = len(sizes) - 1
        if gains is None:
            gains = (np.sqrt(2.0),) * (n_layers - 1) + (1.0,)
        gains = tuple(float(g) for g in gains)
        if len(gains) != n_layers:
            raise ValueError(f"gains must have one entry per layer ({n_layers}), got {len(gains)}")
        rng = as_generator(rng)

        self.sizes = tuple(int(n) for n in sizes)
        self._layout = self.layout(self.sizes)
        self._ones = np.ones(0)             # ones(B), kept for the next backward of B rows
        self.activation = activation
        n_params = self.count_params(self.sizes)
        if params is None:
            params = np.zeros(n_params, check_float_dtype("dtype", dtype))
        self.params = check_flat_buffer("params", params, n_params)
        self.dtype = self.params.dtype
        self.weights, self.biases = self.layer_views(self.params)
        for W, b, gain in zip(self.weights, self.biases, gains):
            if init == "orthogonal":
                W[...] = orthogonal(W.shape, gain, rng)
                b[...] = 0.0
            else:
                W[...] = uniform(W.shape, W.shape[0], rng)
                b[...] = uniform(b.shape, W.shape[0], rng)

    def live_in(self, buffer):
        """Copy params into buffer (1-d, same length and dtype) and compute from it from now on:
        how several networks come to share one flat vector (minipg.core.heads.join_params)."""
        buffer = check_flat_buffer("buffer", buffer, self.params.size, self.dtype)
        buffer[...] = self.params
        self.params = buffer
        self.weights, self.biases = self.layer_views(buffer)

    def layer_views(self, flat):
        """Per-layer (n_in, n_out) weight and (n_out,) bias views of a flat vector laid out like
        params: two tuples, (W_1, W_2, ...) and (b_1, b_2, ...)."""
        layout = self._layout
        weights = tuple(flat[start:middle].reshape(shape) for start, middle, _, shape in layout)
        biases = tuple(flat[middle:end] for _, middle, end, _ in layout)
        return weights, biases

    @staticmethod
    def layout(sizes):
        """[(start of W_l, start of b_l, end of b_l, (n_in, n_out))] in the flat vector."""
        layout, offset = [], 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layout.append((offset, offset + n_in * n_out, offset + n_in * n_out + n_out,
                           (n_in, n_out)))
            offset += n_in * n_out + n_out
        return layout

    @staticmethod
    def count_params(sizes):
        """Number of parameters: sum over layers of n_in * n_out + n_out."""
        return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))

    @property
    def in_dim(self):
        return self.sizes[0]

    @property
    def out_dim(self):
        return self.sizes[-1]

    def forward(self, x):
        """(out, cache): outputs (B, out_dim) for inputs (B, in_dim), and what backward needs.

        x is converted to the network's dtype (a copy only if it is not already that dtype);
        the cache keeps it by reference, so do not modify it before the backward.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch (B = 0); the network needs at least one row")
        computed = self._compiled_forward(x)
        if computed is not None:
            hidden, out = computed
            return out, MLPCache([x, *hidden])
        layer_inputs = [x]
        h = x
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            h = h @ W                                  # z_l = h_{l-1} W_l + b_l
            h += b
            if self.activation == "tanh":              # h_l = f(z_l), in place
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0, out=h)
            layer_inputs.append(h)
        out = h @ self.weights[-1]                     # linear output layer
        out += self.biases[-1]
        return out, MLPCache(layer_inputs)

    def predict(self, x):
        """The outputs (B, out_dim) of forward(x), nothing kept for a backward, nothing checked.

        For acting in a rollout, one call per env step on a few rows, where forward's checks
        and cache would cost as much as the matmuls: x must already be a (B, in_dim) array of
        the network's dtype (the caller's checks, e.g. as_rows, guarantee it). The same
        operations as forward, so the same numbers.
        """
        computed = self._compiled_forward(x)
        if computed is not None:
            return computed[1]
        h = x
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            h = h @ W
            h += b
            if self.activation == "tanh":
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0, out=h)
        out = h @ self.weights[-1]
        out += self.biases[-1]
        return out

    def _compiled_forward(self, x):
        """forward's NumPy lines below as one compiled call (ext/_update_kernels.pyx: the same
        NumPy loops and roundings, so the same numbers): (hidden outputs, out), or None where
        it does not apply (MINIPG_PURE_NUMPY=1, an x that NumPy would promote or copy first)."""
        if update_kernels is None:
            return None
        return update_kernels.mlp_forward(x, self.weights, self.biases,
                                          self.activation == "relu")

    def backward(self, cache, grad_out, out=None, input_grad=True):
        """(grad_x, grad_params) = (dL/dx (B, in_dim), dL/dparams laid out like params).

        grad_out is dL/d(outputs) (B, out_dim) for the forward pass that made `cache`. The
        parameter gradient is written into `out` when given (a buffer laid out like params, e.g.
        a slice of a bigger gradient vector), else into a new array. Nothing is accumulated.
        input_grad=False skips dL/dx (returned as None) when the inputs are data, not
        parameters: one matmul less.
        """
        batch = cache.batch_size
        grad_out = np.asarray(grad_out, dtype=self.dtype)
        if grad_out.shape != (batch, self.out_dim):
            raise ValueError(f"grad_out must have the shape of the forward's output "
                             f"({batch}, {self.out_dim}), got shape {grad_out.shape}")
        if out is None:
            out = np.empty_like(self.params)
        else:
            out = check_flat_buffer("out", out, self.params.size, self.dtype)
        if self._ones.shape[0] != batch or self._ones.dtype != self.dtype:
            self._ones = np.ones(batch, self.dtype)
        ones = self._ones
        if (update_kernels is not None and grad_out.flags.c_contiguous
                and cache.layer_inputs[0].flags.aligned):
            # the loop below as one compiled call, the same numbers (ext/_update_kernels.pyx)
            grad_x = update_kernels.mlp_backward(cache.layer_inputs, self.weights, self.biases,
                                                 grad_out, out, ones, input_grad,
                                                 self.activation == "relu")
            return grad_x, out
        grad_weights, grad_biases = self.layer_views(out)
        g = grad_out                                       # g_l = dL/dz_l, from the top down
        for l in reversed(range(len(self.weights))):
            h_prev = cache.layer_inputs[l]
            np.matmul(h_prev.T, g, out=grad_weights[l])    # dL/dW_l = h_{l-1}^T g_l
            np.matmul(ones, g, out=grad_biases[l])         # dL/db_l = sum over the batch
            if l == 0:
                return (g @ self.weights[0].T if input_grad else None), out    # dL/dx
            W = self.weights[l]
            # dL/dh_{l-1} = g_l W_l^T. With one output (a value head) that is an outer product,
            # which NumPy's matmul computes without BLAS (20 us at B = 251): broadcast instead.
            grad_h = g * W[:, 0] if W.shape[1] == 1 else g @ W.T
            # g_{l-1} = dL/dh_{l-1} * f'(z_{l-1})
            if self.activation == "tanh":
                derivative = h_prev * h_prev
                np.subtract(1, derivative, out=derivative)     # 1 - h^2
                grad_h *= derivative
            else:
                grad_h *= h_prev > 0                           # [h > 0]
            g = grad_h

    def jvp(self, cache, vector):
        """The Jacobian-vector product d out = J v (B, out_dim): how the outputs of the forward
        that made `cache` move when the parameters move along `vector` (laid out like params).

        The forward pass differentiated along v (forward-mode, the "R-operator"), with
        dz_l = dh_{l-1} W_l + h_{l-1} dW_l + db_l and dh_0 = 0 (the inputs do not move):

            dh_l = f'(z_l) * dz_l        (1 - h_l^2 for tanh, [h_l > 0] for relu)
            d out = dz_L
        """
        vector = check_flat_buffer("vector", np.asarray(vector, dtype=self.dtype),
                                   self.params.size)
        d_weights, d_biases = self.layer_views(vector)
        dh = None                                           # dh_0 = 0
        for l, (W, dW, db) in enumerate(zip(self.weights, d_weights, d_biases)):
            h_prev = cache.layer_inputs[l]
            dz = h_prev @ dW
            dz += db
            if dh is not None:
                dz += dh @ W
            if l == len(self.weights) - 1:
                return dz
            h = cache.layer_inputs[l + 1]
            if self.activation == "tanh":
                dz *= 1 - h * h
            else:
                dz *= h > 0
            dh = dz


def check_flat_buffer(name, buffer, size, dtype=None):
    """A 1-d contiguous float array of length size (and of dtype, when given), or an error."""
    if not isinstance(buffer, np.ndarray) or buffer.ndim != 1 or buffer.dtype.kind != "f":
        raise TypeError(f"{name} must be a 1-d float32 or float64 numpy array")
    if dtype is not None and buffer.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {buffer.dtype}")
    if buffer.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {buffer.dtype}")
    if buffer.shape[0] != size:
        raise ValueError(f"{name} must have length {size}, got {buffer.shape[0]}")
    if not buffer.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous (a plain slice of a flat array)")
    return buffer

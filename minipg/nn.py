"""A multilayer perceptron with a hand-written backward pass, its parameters in one flat vector.

Shapes: inputs are (B, in_dim), batch first; outputs (B, out_dim). For layer l with weight W_l
(n_in, n_out) and bias b_l (n_out,):

    forward     z_l = h_{l-1} @ W_l + b_l,      h_l = f(z_l) on hidden layers, h_L = z_L (linear)
    backward    given g_l = dL/dz_l (B, n_out):
                dL/dW_l     = h_{l-1}^T @ g_l           (summed over the batch by the matmul)
                dL/db_l     = sum_b g_l[b]
                dL/dh_{l-1} = g_l @ W_l^T
                g_{l-1}     = dL/dh_{l-1} * f'(z_{l-1})
    f = tanh:   f'(z) = 1 - tanh(z)^2 = 1 - h^2     (from the cached output, no second tanh)
    f = relu:   f'(z) = [z > 0] = [h > 0]

backward takes the gradient of a scalar loss L with respect to the outputs, so whatever averaging
the loss does (1/B for a mean) is already inside grad_out.

Why one flat vector: the optimizer, gradient clipping and checkpoints all see a single float64
array `params` and a single `grads` of the same layout; each layer's W and b are views into it.
A policy can hand in slices of a bigger buffer so that network weights and, say, a learnable
log_std live in one vector. Views stay valid only while the buffer is updated in place
(`params[...] = ...`, `params -= ...`), never rebound.

Initialisation (orthogonal, Saxe et al. 2014, the usual choice for PPO): each W is a random
orthogonal matrix times a gain, biases zero. Default gains are sqrt(2) for hidden layers and 1
for the output; a policy head uses a small output gain (0.01) so that the initial policy is
close to uniform, a value head uses 1.
"""
import numbers

import numpy as np

__all__ = ["MLP", "orthogonal", "as_generator"]

ACTIVATIONS = ("tanh", "relu")


def as_generator(rng):
    """A numpy Generator from a Generator (returned as is), an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")


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


class MLP:
    """Fully connected network: `activation` on hidden layers, a linear output layer.

    sizes       (in_dim, hidden..., out_dim), e.g. (4, 64, 64, 2)
    activation  "tanh" or "relu"
    gains       one orthogonal-init gain per layer; default sqrt(2) for hidden layers, 1 for output
    rng         Generator, int seed or None, used for the initial weights only
    params, grads  optional 1-d float64 buffers of length MLP.count_params(sizes) to live in
                   (e.g. slices of a policy's flat vector); allocated here if not given
    dtype       the arithmetic of forward and backward: float64 (default; what the gradient
                checks use) or float32, about twice as fast on the matmuls that dominate a
                training step. params and grads stay float64 either way: float32 runs on a
                copy of params made at each forward, and its gradients are copied back.
    """

    def __init__(self, sizes, activation="tanh", gains=None, rng=None, params=None, grads=None,
                 dtype=np.float64):
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(n, numbers.Integral) and n > 0 for n in sizes):
            raise ValueError(f"sizes must be at least two positive ints (in_dim, ..., out_dim), "
                             f"got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        n_layers = len(sizes) - 1
        if gains is None:
            gains = (np.sqrt(2.0),) * (n_layers - 1) + (1.0,)
        gains = tuple(float(g) for g in gains)
        if len(gains) != n_layers:
            raise ValueError(f"gains must have one entry per layer ({n_layers}), got {len(gains)}")
        rng = as_generator(rng)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")

        self.sizes = tuple(int(n) for n in sizes)
        self.activation = activation
        self.dtype = np.dtype(dtype)
        n_params = self.count_params(self.sizes)
        self.params = self._check_buffer("params", params, n_params)
        self.grads = self._check_buffer("grads", grads, n_params)
        self.weights, self.biases = self._layer_views(self.params)
        self.weight_grads, self.bias_grads = self._layer_views(self.grads)
        # The arrays forward/backward compute with: the float64 ones themselves, or float32
        # copies (refreshed from params at every forward, copied into grads after backward).
        if self.dtype == np.float64:
            self._params_c, self._grads_c = self.params, self.grads
        else:
            self._params_c, self._grads_c = np.empty(n_params, dtype), np.empty(n_params, dtype)
        self._W, self._b = self._layer_views(self._params_c)
        self._dW, self._db = self._layer_views(self._grads_c)

        for W, b, gain in zip(self.weights, self.biases, gains):
            W[...] = orthogonal(W.shape, gain, rng)
            b[...] = 0.0
        self.grads[...] = 0.0
        self._layer_inputs = None            # h_0 .. h_{L-1}, kept by forward for backward
        self._workspace = None

    def _layer_views(self, flat):
        """Per-layer (n_in, n_out) weight and (n_out,) bias views, in the order W_1, b_1, W_2, ..."""
        weights, biases, offset = [], [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            weights.append(flat[offset:offset + n_in * n_out].reshape(n_in, n_out))
            offset += n_in * n_out
            biases.append(flat[offset:offset + n_out])
            offset += n_out
        return weights, biases

    @staticmethod
    def count_params(sizes):
        """Number of parameters: sum over layers of n_in * n_out + n_out."""
        return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))

    @staticmethod
    def _check_buffer(name, buffer, n_params):
        if buffer is None:
            return np.zeros(n_params)
        if not isinstance(buffer, np.ndarray) or buffer.dtype != np.float64 or buffer.ndim != 1:
            raise TypeError(f"{name} must be a 1-d float64 numpy array")
        if buffer.shape[0] != n_params:
            raise ValueError(f"{name} must have length {n_params}, got {buffer.shape[0]}")
        if not buffer.flags.c_contiguous:
            raise ValueError(f"{name} must be contiguous (a plain slice of a flat array)")
        return buffer

    @property
    def in_dim(self):
        return self.sizes[0]

    @property
    def out_dim(self):
        return self.sizes[-1]

    def _workspace_for(self, batch):
        """Hidden activations h_1..h_{L-1}, their gradients, and a scratch array, for B = batch.

        Reused from call to call, reallocated only when the batch size changes. Not a
        micro-optimisation: a fresh 256 x 64 float64 array is 128 KiB, which malloc maps from
        the OS and unmaps on free, so every call paid page faults again (measured: 2x slower).
        """
        if self._workspace is None or self._workspace["batch"] != batch:
            hidden = self.sizes[1:-1]
            self._workspace = {
                "batch": batch,
                "h": [np.empty((batch, n), self.dtype) for n in hidden],
                "g": [np.empty((batch, n), self.dtype) for n in hidden],
                "scratch": [np.empty((batch, n), self.dtype) for n in hidden],
            }
        return self._workspace

    def forward(self, x):
        """Outputs (B, out_dim) for inputs (B, in_dim); keeps the layer inputs for backward.

        The output is a fresh array of the network's dtype. The input is kept by reference
        until backward, so do not modify it in between.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch (B = 0); the network needs at least one row")
        if self._params_c is not self.params:
            self._params_c[...] = self.params               # float32 copy of the current params
        workspace = self._workspace_for(x.shape[0])
        self._layer_inputs = [x] + workspace["h"]
        h = x
        for l, h_next in enumerate(workspace["h"]):
            np.matmul(h, self._W[l], out=h_next)            # z_l = h_{l-1} W_l + b_l
            h_next += self._b[l]
            if self.activation == "tanh":                   # h_l = f(z_l), in place
                np.tanh(h_next, out=h_next)
            else:
                np.maximum(h_next, 0.0, out=h_next)
            h = h_next
        out = h @ self._W[-1]               # linear output layer, fresh: the caller keeps it
        out += self._b[-1]
        return out

    __call__ = forward

    def backward(self, grad_out):
        """Gradient wrt the inputs of the last forward, given dL/d(outputs) (B, out_dim).

        Overwrites self.grads (does not accumulate) with dL/d params.
        """
        if self._layer_inputs is None:
            raise RuntimeError("backward called before forward")
        grad_out = np.asarray(grad_out, dtype=self.dtype)
        batch = self._layer_inputs[0].shape[0]
        if grad_out.shape != (batch, self.out_dim):
            raise ValueError(f"grad_out must have the output's shape ({batch}, {self.out_dim}), "
                             f"got shape {grad_out.shape}")
        workspace = self._workspace
        g = grad_out                                        # g_l = dL/dz_l, from the top down
        for l in reversed(range(1, len(self.weights))):
            h_prev = self._layer_inputs[l]
            np.matmul(h_prev.T, g, out=self._dW[l])            # dL/dW_l = h_{l-1}^T g_l
            g.sum(axis=0, out=self._db[l])                     # dL/db_l = sum over the batch
            g_prev = workspace["g"][l - 1]
            np.matmul(g, self._W[l].T, out=g_prev)             # dL/dh_{l-1} = g_l W_l^T
            derivative = workspace["scratch"][l - 1]           # f'(z_{l-1}) from h_{l-1}
            if self.activation == "tanh":
                np.multiply(h_prev, h_prev, out=derivative)
                np.subtract(1.0, derivative, out=derivative)   # 1 - h^2
            else:
                np.greater(h_prev, 0.0, out=derivative)        # [h > 0] as 0.0 / 1.0
            g_prev *= derivative
            g = g_prev
        np.matmul(self._layer_inputs[0].T, g, out=self._dW[0])
        g.sum(axis=0, out=self._db[0])
        if self._grads_c is not self.grads:
            self.grads[...] = self._grads_c                    # float32 gradients -> float64
        return g @ self._W[0].T                                # dL/dx

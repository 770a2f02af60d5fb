"""The value function V(s) (the critic, or baseline): an MLP with one linear output.

    values, cache = value_fn.forward(obs);   grad = value_fn.backward(cache, dL/dvalues)

Observations are (..., obs_dim); values keep the leading dims (...,). Its params are one flat
vector like a policy's (minipg/core/heads.py), and the loss that trains it is
minipg.core.losses.value_loss.
"""
from minipg.core.checks import as_generator, check_float_dtype
from minipg.core.heads import HIDDEN_GAIN, Cache, Stateful, as_rows, check_rows
from minipg.core.nn import MLP

__all__ = ["ValueFunction"]

VALUE_HEAD_GAIN = 1.0


class ValueFunction(Stateful):
    """V(s): an MLP with one linear output, the critic/baseline."""

    kind = "value"

    def __init__(self, obs_dim, hidden_sizes=(64, 64), activation="tanh", rng=None,
                 dtype="float64", init="orthogonal"):
        hidden_sizes = [int(n) for n in hidden_sizes]
        dtype = check_float_dtype("dtype", dtype)
        self.config = dict(obs_dim=int(obs_dim), hidden_sizes=hidden_sizes,
                           activation=activation, dtype=dtype.name, init=init)
        self.obs_dim = int(obs_dim)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [VALUE_HEAD_GAIN]
        self.net = MLP([obs_dim, *hidden_sizes, 1], activation, gains, as_generator(rng),
                       dtype=dtype, init=init)
        self.params = self.net.params

    def live_in(self, buffer):
        """Copy params into buffer and compute from it from now on (see join_params)."""
        self.net.live_in(buffer)
        self.params = self.net.params

    def forward(self, obs):
        """(values, cache): V(s) for observations (..., obs_dim), shape (...,)."""
        rows, batch_shape = as_rows(obs, self.obs_dim)
        values, net_cache = self.net.forward(rows)
        return values.reshape(batch_shape), Cache(net_cache, batch_shape)

    def backward(self, cache, grad_values, out=None):
        """dL/dparams (laid out like params) from dL/dV (...,) of the forward that made cache."""
        grad_values = check_rows("grad_values", grad_values, cache.batch_shape, ())
        _, grad = self.net.backward(cache.net, grad_values, out, input_grad=False)
        return grad

    def predict(self, obs):
        """V(s) for observations (..., obs_dim), shape (...,), without a cache."""
        return self.forward(obs)[0]



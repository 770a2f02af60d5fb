"""Policies (a network plus a distribution over actions) and the value function (critic).

Shapes: observations are (..., obs_dim) with any leading batch dims, e.g. (B, obs_dim), time-first
(T, N, obs_dim), or one observation (obs_dim,). Everything per sample keeps those leading dims:
logits (..., K), mean (..., D), actions (...,) or (..., D), values (...,).

The backward pass is split at the distribution's parameters. An algorithm computes its loss from
the distribution (log_prob, entropy), writes the gradient with respect to the logits (or the mean
and log_std) using the scores from minipg.distributions, and hands it to `backward`, which runs
the network's backward pass and writes `grads`:

    loss L(logits) ---- algorithm: dL/dlogits = sum of weights * score ----> policy.backward
                                                                               |
    params  <--------------------------- MLP backward -------------------------+

Every trainable number lives in one flat float64 vector `params` (gradient `grads`, same layout):
what an optimizer, gradient clipping and a checkpoint need. Update it in place, never rebind it:
the layers are views into it.
"""
import json

import numpy as np

from minipg.distributions import Categorical, DiagGaussian
from minipg.nn import MLP, as_generator

__all__ = ["CategoricalPolicy", "GaussianPolicy", "ValueFunction", "value_loss",
           "from_state", "load"]

HIDDEN_GAIN = np.sqrt(2.0)
POLICY_HEAD_GAIN = 0.01   # near-zero logits / mean at init: a near-uniform, unbiased first policy
VALUE_HEAD_GAIN = 1.0


def _as_obs(obs, obs_dim):
    """Observations (..., obs_dim) as float64 rows (B, obs_dim), plus their leading shape."""
    try:
        obs = np.asarray(obs, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"obs must be a real numeric array: {error}") from error
    if obs.ndim == 0 or obs.shape[-1] != obs_dim:
        raise ValueError(f"obs must have shape (..., {obs_dim}) (last dim = obs_dim), got shape "
                         f"{obs.shape}")
    if obs.size == 0:
        raise ValueError(f"obs is an empty batch (shape {obs.shape}); need at least one row")
    if not np.isfinite(obs).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(obs))[0])
        raise ValueError(f"obs contains a non-finite value (NaN or inf) at index {bad}")
    return obs.reshape(-1, obs_dim), obs.shape[:-1]


def _check_grad(name, grad, batch_shape, event_shape=()):
    """grad as float64, checked against the leading shape cached by the last forward pass."""
    if batch_shape is None:
        raise RuntimeError("backward called before a forward pass (distribution / predict)")
    shape = batch_shape + event_shape
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (matching the last forward pass), "
                         f"got shape {grad.shape}")
    return grad


class _Checkpointable:
    """state() / save(): the flat params plus the constructor's config, as numpy arrays."""

    def state(self, prefix=""):
        """{prefix + "params": copy of params, prefix + "config": JSON string of kind + config}.

        A prefix ("policy/", "value/") lets one .npz hold several objects and other entries.
        """
        config = json.dumps({"kind": self.kind, **self.config})
        return {prefix + "params": self.params.copy(), prefix + "config": np.array(config)}

    def save(self, path):
        """Write state() to one .npz file, atomically; read it back with minipg.policies.load.

        Returns the path written (".npz" is appended if the name lacks it, as numpy does).
        """
        from minipg.checkpoint import write_checkpoint

        path = str(path)
        path = path if path.endswith(".npz") else path + ".npz"
        return write_checkpoint(path, self.state())


class CategoricalPolicy(_Checkpointable):
    """pi(a | s) = softmax(logits(s)) over n_actions discrete actions; logits from an MLP."""

    kind = "categorical"

    def __init__(self, obs_dim, n_actions, hidden_sizes=(64, 64), activation="tanh", rng=None,
                 dtype="float64"):
        hidden_sizes = [int(n) for n in hidden_sizes]
        self.config = dict(obs_dim=int(obs_dim), n_actions=int(n_actions),
                           hidden_sizes=hidden_sizes, activation=activation,
                           dtype=np.dtype(dtype).name)
        self.rng = as_generator(rng)               # used for init, then by act(rng=None)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [POLICY_HEAD_GAIN]
        self.net = MLP([obs_dim, *hidden_sizes, n_actions], activation, gains, self.rng,
                       dtype=dtype)
        self.params, self.grads = self.net.params, self.net.grads
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self._batch_shape = None

    def distribution(self, obs):
        """The Categorical over actions for observations (..., obs_dim); caches for backward."""
        rows, self._batch_shape = _as_obs(obs, self.obs_dim)
        logits = self.net.forward(rows)
        return Categorical(logits.reshape(self._batch_shape + (self.n_actions,)))

    def backward(self, grad_logits):
        """Write grads = dL/dparams, given dL/dlogits (..., K) for the last distribution().

        grad_logits is the gradient of the whole loss, so any 1/B of a mean is already in it.
        """
        grad_logits = _check_grad("grad_logits", grad_logits, self._batch_shape,
                                  (self.n_actions,))
        self.net.backward(grad_logits.reshape(-1, self.n_actions))

    def act(self, obs, deterministic=False, rng=None):
        """Actions for observations (..., obs_dim): sampled, or the most probable if deterministic.

        A single observation (obs_dim,) gives a single action. rng=None uses the policy's own
        generator (seeded at construction).
        """
        dist = self.distribution(obs)
        actions = dist.mode() if deterministic else dist.sample(self.rng if rng is None else rng)
        return self.to_env(actions)

    def to_env(self, actions):
        """What is sent to the environment: the action indices themselves."""
        return actions


class GaussianPolicy(_Checkpointable):
    """pi(a | s) = N(mean(s), diag(exp(log_std))^2): mean from an MLP, log_std learned per dim.

    log_std does not depend on the state. Its raw value (`raw_log_std`) is the last action_dim
    entries of `params`; the distribution uses it clamped to log_std_bounds:

        log_std = clip(raw_log_std, low, high),   d log_std / d raw_log_std = [low <= raw <= high]

    Where the clamp is active the gradient is zero: a raw value pushed past a bound stays there
    until something else moves it. The bounds guard against a collapsed (std -> 0, log_prob ->
    +inf) or exploding std; they are not meant to be reached in normal training.
    """

    kind = "gaussian"

    def __init__(self, obs_dim, action_dim, hidden_sizes=(64, 64), activation="tanh",
                 log_std_init=0.0, log_std_bounds=(-5.0, 2.0), action_low=None, action_high=None,
                 rng=None, dtype="float64"):
        hidden_sizes = [int(n) for n in hidden_sizes]
        obs_dim, action_dim = int(obs_dim), int(action_dim)
        low, high = (float(b) for b in log_std_bounds)
        if not low < high:
            raise ValueError(f"log_std_bounds must be (low, high) with low < high, got "
                             f"{log_std_bounds}")
        log_std_init = self._per_dimension("log_std_init", log_std_init, action_dim)
        if not ((low <= log_std_init) & (log_std_init <= high)).all():
            raise ValueError(f"log_std_init must lie within log_std_bounds {(low, high)}, got "
                             f"{log_std_init}")
        action_low = self._per_dimension("action_low", action_low, action_dim)
        action_high = self._per_dimension("action_high", action_high, action_dim)
        if action_low is not None and action_high is not None and (action_low > action_high).any():
            raise ValueError("action_low must not exceed action_high")
        self.config = dict(
            obs_dim=obs_dim, action_dim=action_dim, hidden_sizes=hidden_sizes,
            activation=activation, log_std_init=log_std_init.tolist(),
            log_std_bounds=[low, high],
            action_low=None if action_low is None else action_low.tolist(),
            action_high=None if action_high is None else action_high.tolist(),
            dtype=np.dtype(dtype).name)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.log_std_bounds = (low, high)
        self.action_low, self.action_high = action_low, action_high
        self.rng = as_generator(rng)

        sizes = [obs_dim, *hidden_sizes, action_dim]
        n_net = MLP.count_params(sizes)
        self.params = np.zeros(n_net + action_dim)
        self.grads = np.zeros(n_net + action_dim)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [POLICY_HEAD_GAIN]
        self.net = MLP(sizes, activation, gains, self.rng,
                       params=self.params[:n_net], grads=self.grads[:n_net], dtype=dtype)
        self.raw_log_std = self.params[n_net:]      # views: optimizer steps reach them
        self._raw_log_std_grad = self.grads[n_net:]
        self.raw_log_std[...] = log_std_init
        self._batch_shape = None

    @staticmethod
    def _per_dimension(name, value, action_dim):
        """A scalar or (D,) setting as a float64 (D,) array (None stays None)."""
        if value is None:
            return None
        value = np.asarray(value, dtype=np.float64)
        if value.shape not in ((), (action_dim,)):
            raise ValueError(f"{name} must be a scalar or have shape ({action_dim},), got shape "
                             f"{value.shape}")
        return np.broadcast_to(value, (action_dim,)).copy()

    @property
    def log_std(self):
        """The log_std the distribution uses: raw_log_std clamped to log_std_bounds, (D,)."""
        return np.clip(self.raw_log_std, *self.log_std_bounds)

    def distribution(self, obs):
        """The DiagGaussian for observations (..., obs_dim); caches for backward."""
        rows, self._batch_shape = _as_obs(obs, self.obs_dim)
        mean = self.net.forward(rows)
        return DiagGaussian(mean.reshape(self._batch_shape + (self.action_dim,)), self.log_std)

    def backward(self, grad_mean, grad_log_std):
        """Write grads = dL/dparams from dL/dmean (..., D) and dL/dlog_std (D,).

        grad_log_std is already summed over the batch (log_std is shared by every sample). It is
        the gradient wrt the clamped log_std; the clamp passes it to raw_log_std only where
        low <= raw_log_std <= high, and zero elsewhere.
        """
        grad_mean = _check_grad("grad_mean", grad_mean, self._batch_shape, (self.action_dim,))
        grad_log_std = _check_grad("grad_log_std", grad_log_std, (), (self.action_dim,))
        self.net.backward(grad_mean.reshape(-1, self.action_dim))
        low, high = self.log_std_bounds
        inside = (low <= self.raw_log_std) & (self.raw_log_std <= high)
        self._raw_log_std_grad[...] = np.where(inside, grad_log_std, 0.0)

    def act(self, obs, deterministic=False, rng=None):
        """Env-ready (clipped) actions for observations (..., obs_dim); the mean if deterministic.

        To store actions for training, sample from distribution(obs) instead and keep the
        unclipped sample: log_prob must be of the action that was drawn.
        """
        dist = self.distribution(obs)
        actions = dist.mode() if deterministic else dist.sample(self.rng if rng is None else rng)
        return self.to_env(actions)

    def to_env(self, actions):
        """The copy of the actions sent to the environment, clipped to [action_low, action_high].

        Only this copy is clipped, never the stored action: the stored one is the sample whose
        log_prob the gradient uses, and clipping it would bias the policy gradient.
        """
        if self.action_low is None and self.action_high is None:
            return actions
        return np.clip(actions, self.action_low, self.action_high)


class ValueFunction(_Checkpointable):
    """V(s): an MLP with one linear output, the critic/baseline."""

    kind = "value"

    def __init__(self, obs_dim, hidden_sizes=(64, 64), activation="tanh", rng=None,
                 dtype="float64"):
        hidden_sizes = [int(n) for n in hidden_sizes]
        self.config = dict(obs_dim=int(obs_dim), hidden_sizes=hidden_sizes,
                           activation=activation, dtype=np.dtype(dtype).name)
        self.obs_dim = int(obs_dim)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [VALUE_HEAD_GAIN]
        self.net = MLP([obs_dim, *hidden_sizes, 1], activation, gains, as_generator(rng),
                       dtype=dtype)
        self.params, self.grads = self.net.params, self.net.grads
        self._batch_shape = None

    def predict(self, obs):
        """V(s) for observations (..., obs_dim), shape (...,); caches for backward."""
        rows, self._batch_shape = _as_obs(obs, self.obs_dim)
        return self.net.forward(rows).reshape(self._batch_shape)

    def backward(self, grad_values):
        """Write grads = dL/dparams, given dL/dV (...,) for the last predict()."""
        grad_values = _check_grad("grad_values", grad_values, self._batch_shape)
        self.net.backward(grad_values.reshape(-1, 1))


def value_loss(predictions, targets):
    """Squared-error regression of V onto its targets, and its gradient wrt the predictions.

        loss = 0.5 * mean_i (V_i - target_i)^2,    dloss/dV_i = (V_i - target_i) / n

    The mean is over every sample i in the batch (every time step of every environment), so a
    batch of any size gives a loss on the same scale. Returns (loss, grad), grad shaped like
    predictions.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions and targets must have the same shape, got "
                         f"{predictions.shape} and {targets.shape}")
    if predictions.size == 0:
        raise ValueError("predictions is an empty batch; the mean squared error is undefined")
    error = predictions - targets
    return 0.5 * np.mean(error * error), error / error.size


# ------------------------------------------------------------------------------------------
# Persistence: one .npz can hold a policy, a value function and anything else under prefixes.
# ------------------------------------------------------------------------------------------

_KINDS = {"categorical": CategoricalPolicy, "gaussian": GaussianPolicy, "value": ValueFunction}


def from_state(state, prefix="", rng=None):
    """Rebuild the policy or value function saved by obj.state(prefix) (a dict or an NpzFile).

    rng seeds the rebuilt object's own generator (used by act(rng=None)); the weights come from
    the state.
    """
    try:
        config = json.loads(str(np.asarray(state[prefix + "config"])))
        params = np.asarray(state[prefix + "params"], dtype=np.float64)
    except KeyError as error:
        raise KeyError(f"state has no entry {error} (wrong prefix {prefix!r}?)") from None
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"{prefix}config must be a JSON object with a 'kind', got {config!r}")
    kind = config.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r} in state; expected one of {sorted(_KINDS)}")
    obj = _KINDS[kind](**config, rng=rng)
    if params.shape != obj.params.shape:
        raise ValueError(f"{prefix}params has shape {params.shape}, but the config describes "
                         f"{obj.params.shape}")
    if not np.isfinite(params).all():
        raise ValueError(f"{prefix}params holds non-finite values (NaN or inf)")
    obj.params[...] = params                       # in place: the layer views stay valid
    return obj


def load(path, prefix="", rng=None):
    """Load an object written by obj.save(path) (or stored under prefix in a checkpoint).

    The file is checked to be a minipg checkpoint first and never unpickled
    (minipg.checkpoint.read_checkpoint).
    """
    from minipg.checkpoint import read_checkpoint

    return read_checkpoint(path).rebuild(prefix, rng)

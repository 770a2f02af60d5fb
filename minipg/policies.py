"""Policies (a network plus a distribution over actions) and the value function (critic).

Shapes: observations are (..., obs_dim) with any leading batch dims, e.g. (B, obs_dim), time-first
(T, N, obs_dim), or one observation (obs_dim,). Everything per sample keeps those leading dims:
logits (..., K), mean (..., D), actions (...,) or (..., D), values (...,).

The chain rule, one link per call, each backward a function of its forward's cache:

    dist, cache  = policy.forward(obs)                           network, then distribution
    dist_grads   = dist.param_grads(actions, dL/dlog_prob, dL/dH)   loss -> distribution params
    grad         = policy.backward(cache, dist_grads)             distribution params -> params

and the other way, forward mode: `policy.jvp(cache, v)` is how the distribution's parameters
move when params move along v (the Jacobian J times v), in the layout of dist_grads; backward
is J^T. A trust-region method needs both: F v = J^T F_dist J v.

    values, cache = value_fn.forward(obs);   grad = value_fn.backward(cache, dL/dvalues)

`policy.distribution(obs)`, `policy.act(obs)` and `value_fn.predict(obs)` are the same forward
passes without a cache, for acting. No object remembers its last forward pass: two forwards may
be alive at once, and each backward uses the cache it is given. A policy trained with norm_obs
carries its observation statistics: act() takes the env's raw observations and normalises them
(normalize_input); forward() and distribution() take the network's input.

Every trainable number of a policy lives in one flat vector `params` (float32 or float64, the
arithmetic of the network), and backward returns a gradient laid out the same way. Update
params in place, never rebind it: the layers are views into it. `join_params(policy, value_fn)`
moves several networks into one vector, so that one optimizer pass updates them all.
"""
import json

import numpy as np

from minipg.checks import as_generator, check_float_dtype
from minipg.distributions import Categorical, CategoricalGrads, DiagGaussian, DiagGaussianGrads
from minipg.nn import MLP
from minipg.normalize import RunningMeanStd, normalize_obs

__all__ = ["CategoricalPolicy", "GaussianPolicy", "ValueFunction", "value_loss", "join_params",
           "from_state", "load"]

HIDDEN_GAIN = np.sqrt(2.0)
POLICY_HEAD_GAIN = 0.01   # near-zero logits / mean at init: a near-uniform, unbiased first policy
VALUE_HEAD_GAIN = 1.0


def _as_rows(obs, obs_dim):
    """Observations (..., obs_dim) as rows (B, obs_dim), plus their leading shape."""
    obs = np.asarray(obs)
    if obs.dtype.kind not in "fiub":
        raise TypeError(f"obs must be a real numeric array, got dtype {obs.dtype}")
    if obs.ndim == 0 or obs.shape[-1] != obs_dim:
        raise ValueError(f"obs must have shape (..., {obs_dim}) (last dim = obs_dim), got shape "
                         f"{obs.shape}")
    if obs.size == 0:
        raise ValueError(f"obs is an empty batch (shape {obs.shape}); need at least one row")
    if not np.isfinite(obs).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(obs))[0])
        raise ValueError(f"obs contains a non-finite value (NaN or inf) at index {bad}")
    return obs.reshape(-1, obs_dim), obs.shape[:-1]


def _check_rows(name, grad, batch_shape, event_shape):
    """grad (batch_shape + event_shape) as rows (B, prod(event_shape)) for the network."""
    grad = np.asarray(grad)
    shape = tuple(batch_shape) + tuple(event_shape)
    if grad.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (the batch of the forward pass that "
                         f"made the cache), got shape {grad.shape}")
    return grad.reshape(-1, int(np.prod(event_shape, dtype=int)))


class Cache:
    """What a policy's or value function's backward needs from its forward: the network's
    cache, the leading batch shape of the observations, and (Gaussian policy) where the
    log_std clamp let the gradient through."""

    __slots__ = ("net", "batch_shape", "log_std_inside")

    def __init__(self, net, batch_shape, log_std_inside=None):
        self.net, self.batch_shape, self.log_std_inside = net, batch_shape, log_std_inside


def _check_vector(vector, params):
    """vector as a 1-d array laid out like params (same length), in params' dtype."""
    vector = np.asarray(vector)
    if vector.dtype.kind not in "fiu":
        raise TypeError(f"vector must be a real numeric array, got dtype {vector.dtype}")
    if vector.shape != params.shape:
        raise ValueError(f"vector must be laid out like params, shape {params.shape}, got shape "
                         f"{vector.shape}")
    return np.ascontiguousarray(vector, dtype=params.dtype)


def join_params(*modules):
    """Move the parameters of several modules into one flat vector and return it.

    Each module's params becomes a view of its slice, in the order given (policy first, then
    value function: the layout of the concatenated gradients). One Adam pass and one global
    gradient-norm clip over the joint vector are the same math as one optimizer per network
    with the same settings (Adam is elementwise), at half the calls.
    """
    dtypes = {m.params.dtype for m in modules}
    if len(dtypes) != 1:
        raise ValueError(f"modules must share one dtype to share a vector, got "
                         f"{sorted(map(str, dtypes))}")
    params = np.concatenate([m.params for m in modules])
    offset = 0
    for module in modules:
        size = module.params.size
        module.live_in(params[offset:offset + size])
        offset += size
    return params


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


class _Policy(_Checkpointable):
    """What both policies share: acting on the env's raw observations, which a policy trained
    with observation normalisation first normalises with its own statistics (obs_rms):

        act(obs) = sample of pi(. | normalize_input(obs)),
        normalize_input(o) = clip((o - mean) / sqrt(var + 1e-8), -clip_obs, clip_obs)

    forward() and distribution() take the network's input, i.e. normalize_input(obs). Acting
    never updates the statistics: the trainer does (minipg.rollout), so they are frozen at
    evaluation, and they are saved with the parameters (state()).
    """

    def _init_obs_norm(self, norm_obs, clip_obs):
        if not isinstance(norm_obs, (bool, np.bool_)):
            raise TypeError(f"norm_obs must be a bool, got {type(norm_obs).__name__}")
        self.obs_rms = RunningMeanStd((self.obs_dim,)) if norm_obs else None
        self.clip_obs = float(clip_obs)
        if norm_obs:
            self.config.update(norm_obs=True, clip_obs=self.clip_obs)

    def normalize_input(self, obs):
        """The network's input for raw observations: normalised if the policy normalises."""
        if self.obs_rms is None:
            return obs
        return normalize_obs(obs, self.obs_rms, self.clip_obs)

    def act(self, obs, deterministic=False, rng=None):
        """Env-ready actions for raw observations (..., obs_dim): sampled, or the mode if
        deterministic (the most probable action; a Gaussian's mean, clipped to the bounds).

        A single observation (obs_dim,) gives a single action. rng (a Generator or an int seed)
        defaults to the policy's own generator (seeded at construction). To store actions for
        training, sample from distribution() instead and keep the unclipped sample: log_prob
        must be of the action that was drawn.
        """
        dist = self.distribution(self.normalize_input(obs))
        actions = dist.mode() if deterministic else dist.sample(self.rng if rng is None else rng)
        return self.to_env(actions)

    def state(self, prefix=""):
        """_Checkpointable.state, plus the observation statistics under prefix + "obs_rms/"."""
        state = super().state(prefix)
        if self.obs_rms is not None:
            state.update(self.obs_rms.state(prefix + "obs_rms/"))
        return state


class CategoricalPolicy(_Policy):
    """pi(a | s) = softmax(logits(s)) over n_actions discrete actions; logits from an MLP."""

    kind = "categorical"

    def __init__(self, obs_dim, n_actions, hidden_sizes=(64, 64), activation="tanh", rng=None,
                 dtype="float64", norm_obs=False, clip_obs=10.0):
        hidden_sizes = [int(n) for n in hidden_sizes]
        dtype = check_float_dtype("dtype", dtype)
        self.config = dict(obs_dim=int(obs_dim), n_actions=int(n_actions),
                           hidden_sizes=hidden_sizes, activation=activation, dtype=dtype.name)
        self.rng = as_generator(rng)               # used for init, then by act(rng=None)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [POLICY_HEAD_GAIN]
        self.net = MLP([obs_dim, *hidden_sizes, n_actions], activation, gains, self.rng,
                       dtype=dtype)
        self.params = self.net.params
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self._init_obs_norm(norm_obs, clip_obs)

    def live_in(self, buffer):
        """Copy params into buffer and compute from it from now on (see join_params)."""
        self.net.live_in(buffer)
        self.params = self.net.params

    def forward(self, obs):
        """(dist, cache): the Categorical over actions for observations (..., obs_dim)."""
        rows, batch_shape = _as_rows(obs, self.obs_dim)
        logits, net_cache = self.net.forward(rows)
        return (Categorical(logits.reshape(batch_shape + (self.n_actions,))),
                Cache(net_cache, batch_shape))

    def backward(self, cache, dist_grads, out=None):
        """dL/dparams (laid out like params) from dist_grads = dist.param_grads(...) of the
        forward pass that made `cache`: the logits' gradient through the network.

        out: an optional buffer laid out like params to write into (else a new array).
        """
        grad_logits = _check_rows("dist_grads.logits", dist_grads.logits, cache.batch_shape,
                                  (self.n_actions,))
        _, grad = self.net.backward(cache.net, grad_logits, out, input_grad=False)
        return grad

    def jvp(self, cache, vector):
        """d logits = J v: how the logits of the forward that made `cache` move when params
        move along `vector` (laid out like params). Returns CategoricalGrads (..., K), the
        layout backward takes (backward is J^T)."""
        d_logits = self.net.jvp(cache.net, _check_vector(vector, self.params))
        return CategoricalGrads(d_logits.reshape(cache.batch_shape + (self.n_actions,)))

    def distribution(self, obs):
        """The Categorical over actions for observations (..., obs_dim), for acting."""
        return self.forward(obs)[0]

    def to_env(self, actions):
        """What is sent to the environment: the action indices themselves."""
        return actions


class GaussianPolicy(_Policy):
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
                 rng=None, dtype="float64", norm_obs=False, clip_obs=10.0):
        hidden_sizes = [int(n) for n in hidden_sizes]
        obs_dim, action_dim = int(obs_dim), int(action_dim)
        dtype = check_float_dtype("dtype", dtype)
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
            dtype=dtype.name)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.log_std_bounds = (low, high)
        self.action_low, self.action_high = action_low, action_high
        self.rng = as_generator(rng)

        sizes = [obs_dim, *hidden_sizes, action_dim]
        self.n_net = MLP.count_params(sizes)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [POLICY_HEAD_GAIN]
        self.live_in(np.zeros(self.n_net + action_dim, dtype), MLP(sizes, activation, gains,
                                                                     self.rng, dtype=dtype))
        self.raw_log_std[...] = log_std_init
        self._init_obs_norm(norm_obs, clip_obs)

    def live_in(self, buffer, net=None):
        """Copy params into buffer and compute from it from now on (see join_params)."""
        if net is None:                                  # moving: keep the current values
            net = self.net
            buffer[self.n_net:] = self.raw_log_std
        net.live_in(buffer[:self.n_net])
        self.net, self.params = net, buffer
        self.raw_log_std = buffer[self.n_net:]           # a view: optimizer steps reach it

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

    def forward(self, obs):
        """(dist, cache): the DiagGaussian for observations (..., obs_dim)."""
        rows, batch_shape = _as_rows(obs, self.obs_dim)
        mean, net_cache = self.net.forward(rows)
        low, high = self.log_std_bounds
        inside = (low <= self.raw_log_std) & (self.raw_log_std <= high)
        dist = DiagGaussian(mean.reshape(batch_shape + (self.action_dim,)), self.log_std)
        return dist, Cache(net_cache, batch_shape, inside)

    def backward(self, cache, dist_grads, out=None):
        """dL/dparams (laid out like params) from dist_grads = dist.param_grads(...) of the
        forward pass that made `cache`: dL/dmean through the network, and dL/dlog_std (already
        summed over the batch) through the clamp, which passes it to raw_log_std only where
        low <= raw_log_std <= high (zero elsewhere).

        out: an optional buffer laid out like params to write into (else a new array).
        """
        grad_mean = _check_rows("dist_grads.mean", dist_grads.mean, cache.batch_shape,
                                (self.action_dim,))
        grad_log_std = _check_rows("dist_grads.log_std", dist_grads.log_std, (),
                                   (self.action_dim,))[0]
        if out is None:
            out = np.empty_like(self.params)
        self.net.backward(cache.net, grad_mean, out[:self.n_net], input_grad=False)
        out[self.n_net:] = np.where(cache.log_std_inside, grad_log_std, 0.0)
        return out

    def jvp(self, cache, vector):
        """(d mean, d log_std) = J v: how the distribution of the forward that made `cache`
        moves when params move along `vector` (laid out like params). The mean moves through
        the network; the log_std by the raw log_std's entries of v, where the clamp lets it
        move (low <= raw <= high), else not at all. Returns DiagGaussianGrads: d mean (..., D),
        d log_std (D,), the layout backward takes (backward is J^T)."""
        vector = _check_vector(vector, self.params)
        d_mean = self.net.jvp(cache.net, vector[:self.n_net])
        d_log_std = np.where(cache.log_std_inside, vector[self.n_net:], 0).astype(vector.dtype)
        return DiagGaussianGrads(d_mean.reshape(cache.batch_shape + (self.action_dim,)),
                                 d_log_std)

    def distribution(self, obs):
        """The DiagGaussian for observations (..., obs_dim), for acting."""
        return self.forward(obs)[0]

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
        dtype = check_float_dtype("dtype", dtype)
        self.config = dict(obs_dim=int(obs_dim), hidden_sizes=hidden_sizes,
                           activation=activation, dtype=dtype.name)
        self.obs_dim = int(obs_dim)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [VALUE_HEAD_GAIN]
        self.net = MLP([obs_dim, *hidden_sizes, 1], activation, gains, as_generator(rng),
                       dtype=dtype)
        self.params = self.net.params

    def live_in(self, buffer):
        """Copy params into buffer and compute from it from now on (see join_params)."""
        self.net.live_in(buffer)
        self.params = self.net.params

    def forward(self, obs):
        """(values, cache): V(s) for observations (..., obs_dim), shape (...,)."""
        rows, batch_shape = _as_rows(obs, self.obs_dim)
        values, net_cache = self.net.forward(rows)
        return values.reshape(batch_shape), Cache(net_cache, batch_shape)

    def backward(self, cache, grad_values, out=None):
        """dL/dparams (laid out like params) from dL/dV (...,) of the forward that made cache."""
        grad_values = _check_rows("grad_values", grad_values, cache.batch_shape, ())
        _, grad = self.net.backward(cache.net, grad_values, out, input_grad=False)
        return grad

    def predict(self, obs):
        """V(s) for observations (..., obs_dim), shape (...,), without a cache."""
        return self.forward(obs)[0]


def value_loss(values, targets):
    """Squared-error regression of V onto its targets, and its gradient wrt the values:

        loss = 0.5 * mean_i (V_i - target_i)^2,    dloss/dV_i = (V_i - target_i) / n

    The mean is over every sample i in the batch (every time step of every environment), so a
    batch of any size gives a loss on the same scale. Returns (loss, grad), grad shaped like
    values.
    """
    values, targets = np.asarray(values), np.asarray(targets)
    if values.shape != targets.shape:
        raise ValueError(f"values and targets must have the same shape, got {values.shape} and "
                         f"{targets.shape}")
    if values.size == 0:
        raise ValueError("values is an empty batch; the mean squared error is undefined")
    error = values - targets
    return 0.5 * float(np.dot(error.ravel(), error.ravel())) / error.size, error / error.size


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
    if getattr(obj, "obs_rms", None) is not None:
        try:
            obj.obs_rms = RunningMeanStd.from_state(state, prefix + "obs_rms/")
        except KeyError as error:
            raise KeyError(f"state has no entry {error}: the policy normalises observations "
                           "but its statistics are missing") from None
        if obj.obs_rms.mean.shape != (obj.obs_dim,) or obj.obs_rms.var.shape != (obj.obs_dim,):
            raise ValueError(f"{prefix}obs_rms holds statistics of shape "
                             f"{obj.obs_rms.mean.shape}, not ({obj.obs_dim},)")
    return obj


def load(path, prefix="", rng=None):
    """Load an object written by obj.save(path) (or stored under prefix in a checkpoint).

    The file is checked to be a minipg checkpoint first and never unpickled
    (minipg.checkpoint.read_checkpoint).
    """
    from minipg.checkpoint import read_checkpoint

    return read_checkpoint(path).rebuild(prefix, rng)

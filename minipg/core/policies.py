"""Policies: a network plus a distribution over actions.

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

`policy.distribution(obs)`, `policy.act(obs)` are the same forward passes without a cache, for
acting. No object remembers its last forward pass: two forwards may be alive at once, and each
backward uses the cache it is given.

Checks: forward, distribution (and the value function's forward and predict) are the network's
API, called thousands of times per run on observations the caller has checked (the rollout
collector checks what the env returns): they check shape and dtype only. act() is the entry point
for a user's raw observations and also rejects a NaN or inf in them (ValueError).

A policy trained with norm_obs carries its observation statistics: act() takes the env's raw
observations and normalises them (normalize_input); forward() and distribution() take the
network's input.

Every trainable number of a policy lives in one flat vector `params` (float32 or float64, the
arithmetic of the network), and backward returns a gradient laid out the same way. Update
params in place, never rebind it: the layers are views into it. `join_params(policy, value_fn)`
(minipg/core/heads.py) moves several networks into one vector, so that one optimizer pass
updates them all.
"""
import numpy as np

from minipg.core.checks import as_generator, check_float_dtype
from minipg.core.distributions import (Categorical, CategoricalGrads, DiagGaussian,
                                       DiagGaussianGrads)
from minipg.core.heads import (HIDDEN_GAIN, Cache, Stateful, as_rows, check_finite_obs,
                               check_rows, check_vector)
from minipg.core.nn import MLP
from minipg.core.normalize import RunningMeanStd, normalize_obs

__all__ = ["CategoricalPolicy", "GaussianPolicy", "POLICIES"]

POLICY_HEAD_GAIN = 0.01   # near-zero logits / mean at init: a near-uniform, unbiased first policy


class _Policy(Stateful):
    """What both policies share: acting on the env's raw observations, which a policy trained
    with observation normalisation first normalises with its own statistics (obs_rms):

        act(obs) = sample of pi(. | normalize_input(obs)),
        normalize_input(o) = clip((o - mean) / sqrt(var + 1e-8), -clip_obs, clip_obs)

    forward() and distribution() take the network's input, i.e. normalize_input(obs). Acting
    never updates the statistics: the trainer does (minipg.envs.rollout), so they are frozen at
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
        obs = check_finite_obs(obs, self.obs_dim)    # a user's numbers: the one NaN scan
        dist = self.distribution(self.normalize_input(obs))
        actions = dist.mode() if deterministic else dist.sample(self.rng if rng is None else rng)
        return self.to_env(actions)

    def state(self, prefix=""):
        """Stateful.state, plus the observation statistics under prefix + "obs_rms/"."""
        state = super().state(prefix)
        if self.obs_rms is not None:
            state.update(self.obs_rms.state(prefix + "obs_rms/"))
        return state


class CategoricalPolicy(_Policy):
    """pi(a | s) = softmax(logits(s)) over n_actions discrete actions; logits from an MLP."""

    kind = "categorical"

    def __init__(self, obs_dim, n_actions, hidden_sizes=(64, 64), activation="tanh", rng=None,
                 dtype="float64", norm_obs=False, clip_obs=10.0, init="orthogonal"):
        hidden_sizes = [int(n) for n in hidden_sizes]
        dtype = check_float_dtype("dtype", dtype)
        self.config = dict(obs_dim=int(obs_dim), n_actions=int(n_actions),
                           hidden_sizes=hidden_sizes, activation=activation, dtype=dtype.name,
                           init=init)
        self.rng = as_generator(rng)               # used for init, then by act(rng=None)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [POLICY_HEAD_GAIN]
        self.net = MLP([obs_dim, *hidden_sizes, n_actions], activation, gains, self.rng,
                       dtype=dtype, init=init)
        self.params = self.net.params
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self._init_obs_norm(norm_obs, clip_obs)

    def live_in(self, buffer):
        """Copy params into buffer and compute from it from now on (see join_params)."""
        self.net.live_in(buffer)
        self.params = self.net.params

    def forward(self, obs):
        """(dist, cache): the Categorical over actions for observations (..., obs_dim)."""
        rows, batch_shape = as_rows(obs, self.obs_dim)
        logits, net_cache = self.net.forward(rows)
        return (Categorical(logits.reshape(batch_shape + (self.n_actions,))),
                Cache(net_cache, batch_shape))

    def backward(self, cache, dist_grads, out=None):
        """dL/dparams (laid out like params) from dist_grads = dist.param_grads(...) of the
        forward pass that made `cache`: the logits' gradient through the network.

        out: an optional buffer laid out like params to write into (else a new array).
        """
        grad_logits = check_rows("dist_grads.logits", dist_grads.logits, cache.batch_shape,
                                  (self.n_actions,))
        _, grad = self.net.backward(cache.net, grad_logits, out, input_grad=False)
        return grad

    def jvp(self, cache, vector):
        """d logits = J v: how the logits of the forward that made `cache` move when params
        move along `vector` (laid out like params). Returns CategoricalGrads (..., K), the
        layout backward takes (backward is J^T)."""
        d_logits = self.net.jvp(cache.net, check_vector(vector, self.params))
        return CategoricalGrads(d_logits.reshape(cache.batch_shape + (self.n_actions,)))

    def distribution(self, obs):
        """The Categorical over actions for observations (..., obs_dim), for acting: forward's
        numbers without its cache (net.predict) or the logits' re-check."""
        rows, batch_shape = as_rows(obs, self.obs_dim)
        logits = self.net.predict(np.asarray(rows, self.net.dtype))
        return Categorical(logits.reshape(batch_shape + (self.n_actions,)), checked=False)

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
                 rng=None, dtype="float64", norm_obs=False, clip_obs=10.0, init="orthogonal"):
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
            dtype=dtype.name, init=init)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.log_std_bounds = (low, high)
        self.action_low, self.action_high = action_low, action_high
        self.rng = as_generator(rng)

        sizes = [obs_dim, *hidden_sizes, action_dim]
        self.n_net = MLP.count_params(sizes)
        gains = [HIDDEN_GAIN] * len(hidden_sizes) + [POLICY_HEAD_GAIN]
        self.live_in(np.zeros(self.n_net + action_dim, dtype), MLP(sizes, activation, gains,
                                                                     self.rng, dtype=dtype,
                                                                     init=init))
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
        rows, batch_shape = as_rows(obs, self.obs_dim)
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
        grad_mean = check_rows("dist_grads.mean", dist_grads.mean, cache.batch_shape,
                                (self.action_dim,))
        grad_log_std = check_rows("dist_grads.log_std", dist_grads.log_std, (),
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
        vector = check_vector(vector, self.params)
        d_mean = self.net.jvp(cache.net, vector[:self.n_net])
        d_log_std = np.where(cache.log_std_inside, vector[self.n_net:], 0).astype(vector.dtype)
        return DiagGaussianGrads(d_mean.reshape(cache.batch_shape + (self.action_dim,)),
                                 d_log_std)

    def distribution(self, obs):
        """The DiagGaussian for observations (..., obs_dim), for acting: forward's numbers
        without its cache (net.predict) or the re-check of mean and log_std."""
        rows, batch_shape = as_rows(obs, self.obs_dim)
        mean = self.net.predict(np.asarray(rows, self.net.dtype))
        return DiagGaussian(mean.reshape(batch_shape + (self.action_dim,)), self.log_std,
                            checked=False)

    def to_env(self, actions):
        """The copy of the actions sent to the environment, clipped to [action_low, action_high].

        Only this copy is clipped, never the stored action: the stored one is the sample whose
        log_prob the gradient uses, and clipping it would bias the policy gradient.
        """
        if self.action_low is None and self.action_high is None:
            return actions
        return np.clip(actions, self.action_low, self.action_high)


POLICIES = {"categorical": CategoricalPolicy, "gaussian": GaussianPolicy}
"""The policy classes by their `kind`, the name a checkpoint records."""

"""The two action distributions a policy network parameterises, with their gradients by hand.

Shapes, stated once: a distribution holds a batch of independent distributions. Batch dims lead
and the event dim is last: logits (..., K) for K discrete actions, mean (..., D) for a
D-dimensional continuous action. log_prob and entropy return one number per distribution (...,).
Arithmetic is in the dtype of the parameters (float32 or float64; integers become float64).

The gradients are the point of this module. A policy-gradient loss is a function of log_prob
and entropy; the network needs its gradient with respect to the distribution's parameters (the
logits, or the mean and log_std), and from there backpropagation takes over. Every loss in
minipg has the form

    L = sum_i w_i * log pi(a_i|s_i)  +  sum_i c_i * H(pi(.|s_i))

with the per-sample weights w_i = dL/d log_prob_i (the algorithm's estimator, e.g. -A_i / B) and
c_i = dL/dH_i (the entropy bonus, e.g. -ent_coef / B). `dist.param_grads(actions, w, c)` is its
gradient with respect to the distribution's parameters: the scores weighted by w plus the
entropy gradient weighted by c. The policy's network takes it from there.

    Categorical over logits z:   pi = softmax(z)
        log pi(a)                = z_a - logsumexp(z)
        score(a) = d log pi(a)/dz = onehot(a) - pi
        H        = -sum_k pi_k log pi_k
        dH/dz                    = -pi * (log pi + H)

    DiagGaussian with mean mu and state-independent log_std (sigma = exp(log_std)):
        log pi(a)                = sum_d [ -z_d^2 / 2 - log sigma_d - log(2 pi) / 2 ],
                                   z = (a - mu) / sigma
        d log pi(a)/d mu         = (a - mu) / sigma^2
        d log pi(a)/d log_std    = ((a - mu) / sigma)^2 - 1
        H                        = sum_d [ log sigma_d + (1 + log(2 pi)) / 2 ]
        dH/d log_std             = 1

How far apart two distributions of the same family are, and the second-order shape of that
distance around a point: the KL divergence and its Hessian, the Fisher information
F = E_{a ~ pi}[score(a) score(a)^T] (derived in docs/derivation.md, "Trust regions"). Both are
written in closed form; `fisher_vector_product(directions)` applies F to a direction in the
space of the distribution's parameters, the piece from which a trust-region method builds the
Fisher of a whole policy.

    Categorical:   KL(p || q) = sum_k p_k (log p_k - log q_k)
                   F = diag(pi) - pi pi^T                        (K x K, over the logits)
    DiagGaussian:  KL(p || q) = sum_d [ log sigma_q,d - log sigma_p,d
                                        + (sigma_p,d^2 + (mu_p,d - mu_q,d)^2) / (2 sigma_q,d^2)
                                        - 1/2 ]
                   F = diag(1 / sigma^2) on the mean, 2 on each log_std, 0 between them

For speed, a Categorical's log-softmax, sampling, log_prob, entropy and param_grads each run
their NumPy lines as one compiled call (ext/_update_kernels.pyx, calling NumPy's own exp, log
and matmul loops): the same numbers, bit for bit. The NumPy lines stay beside each call as the
reference, and run with MINIPG_PURE_NUMPY=1.

A useful identity the tests hold: the expected score is zero, E_{a ~ pi}[d log pi(a)/d theta] = 0
(for Categorical, sum_a pi(a) * (onehot(a) - pi) = pi - pi = 0 exactly). That is why subtracting a
baseline from the return leaves the policy gradient unbiased.
"""
from typing import NamedTuple

import numpy as np

from minipg.core.checks import as_generator
from minipg.core.returns import update_kernels

__all__ = ["Categorical", "DiagGaussian", "CategoricalGrads", "DiagGaussianGrads"]

_LOG_2PI = float(np.log(2.0 * np.pi))     # a Python float: it keeps float32 arrays float32


def _as_float(name, x, min_ndim):
    """x as a float32 or float64 array (other numbers become float64), finite, ndim >= min_ndim."""
    try:
        array = np.asarray(x)
        if array.dtype not in (np.float32, np.float64):
            array = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real numeric array: {error}") from error
    if array.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape "
                         f"{array.shape}")
    if not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{name} contains a non-finite value (NaN or inf) at index {bad}")
    return array


def _loss_weights(grad_log_prob, grad_entropy, batch_shape, dtype):
    """w (...,) and c (scalar or (...,)) of L = sum_i w_i log pi_i + sum_i c_i H_i, checked."""
    w = np.asarray(grad_log_prob, dtype=dtype)
    if w.shape != batch_shape:
        raise ValueError(f"grad_log_prob must have the batch shape {batch_shape}, got shape "
                         f"{w.shape}")
    c = np.asarray(grad_entropy, dtype=dtype)
    if c.shape not in ((), batch_shape):
        raise ValueError(f"grad_entropy must be a scalar or have the batch shape {batch_shape}, "
                         f"got shape {c.shape}")
    return w, c


class CategoricalGrads(NamedTuple):
    """dL/d(parameters of a Categorical): the logits, (..., K).

    The same layout carries a direction d logits (policy.jvp) and a Fisher-vector product."""
    logits: np.ndarray


class DiagGaussianGrads(NamedTuple):
    """dL/d(parameters of a DiagGaussian): the mean (..., D) and the shared log_std (D,).

    The same layout carries a direction (d mean, d log_std) (policy.jvp) and a Fisher-vector
    product (fisher_vector_product)."""
    mean: np.ndarray
    log_std: np.ndarray


def _check_same_family(dist, other):
    """other, if it is a distribution of dist's class over the same batch and event shape."""
    if type(other) is not type(dist):
        raise TypeError(f"other must be a {type(dist).__name__}, got {type(other).__name__}")
    mine, theirs = dist.params_shape, other.params_shape
    if mine != theirs:
        raise ValueError(f"other must have the parameter shape {mine} of this distribution, "
                         f"got {theirs}")
    return other


def _check_direction(name, direction, shape, dtype):
    direction = np.asarray(direction, dtype=dtype)
    if direction.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got shape {direction.shape}")
    return direction


def _log_softmax(logits):
    """(log pi, pi) for logits z (..., K), along the last axis:

        m = max_k z_k,   S = sum_k exp(z_k - m),   log pi = (z - m) - log S,   pi = exp(z - m) / S

    With the max subtracted first, exp never overflows, and a logit 2000 below the max gives
    log pi = -2000 (finite) and pi = 0, instead of log(0) = -inf.
    """
    rows = logits.reshape(-1, logits.shape[-1])
    if update_kernels is not None and rows.flags.c_contiguous:
        # the NumPy lines below as one compiled call, the same numbers (ext/_update_kernels.pyx
        # runs NumPy's own exp, log and matmul loops)
        log_probs, probs = update_kernels.categorical_log_softmax(rows)
        return log_probs.reshape(logits.shape), probs.reshape(logits.shape)
    # The row max comes from argmax and the row sums from a product with ones: NumPy's max and
    # sum along a short last axis cost 5-10x more (11 us for 251 rows of 2).
    row_max = rows[np.arange(len(rows)), rows.argmax(axis=-1)]
    shifted = logits - row_max.reshape(logits.shape[:-1] + (1,))
    exp = np.exp(shifted)
    sum_exp = (exp @ np.ones(logits.shape[-1], logits.dtype))[..., None]
    return shifted - np.log(sum_exp), exp / sum_exp


class Categorical:
    """pi(a) = softmax(z)_a over K actions, for a batch of logits z of shape (..., K)."""

    def __init__(self, logits, checked=True):
        """checked=False trusts logits to be a finite float array of shape (..., K >= 1): a
        policy's own network output, built once per env step while acting (the collector
        checks what the networks computed once per rollout)."""
        if checked:
            logits = _as_float("logits", logits, min_ndim=1)
            if logits.shape[-1] == 0:
                raise ValueError("logits must have at least one action in its last dim, got "
                                 f"shape {logits.shape}")
        self.logits = logits
        self.log_probs, self.probs = _log_softmax(logits)

    @property
    def batch_shape(self):
        return self.logits.shape[:-1]

    @property
    def n_actions(self):
        return self.logits.shape[-1]

    def _check_actions(self, actions):
        actions = np.asarray(actions)
        if actions.dtype.kind == "f":
            # Rollout buffers often store actions as floats; accept them if they are integers.
            if not np.array_equal(actions, np.round(actions)):
                raise ValueError("actions must be integer action indices, got non-integer floats")
        elif actions.dtype.kind not in "iu":
            raise TypeError(f"actions must be integer action indices, got dtype {actions.dtype}")
        if actions.shape != self.batch_shape:
            raise ValueError(f"actions must have the batch shape of logits {self.batch_shape}, "
                             f"got shape {actions.shape}")
        actions = actions.astype(np.intp, copy=False)
        # One pass for both bounds: seen as unsigned, a negative index is a huge number.
        if actions.size and actions.view(np.uintp).max() >= self.n_actions:
            raise ValueError(f"actions must be in [0, {self.n_actions}), got values in "
                             f"[{actions.min()}, {actions.max()}]")
        return actions

    def _rows(self, actions):
        """(row index, action index) of the entries a_i of the (n, K) table, n = prod(batch)."""
        flat = actions.reshape(-1)
        return np.arange(flat.size), flat

    def log_prob(self, actions):
        """log pi(a) = z_a - logsumexp(z), shape (...,)."""
        return self._log_prob(self._check_actions(actions))

    def _tables(self):
        """probs and log_probs as (n, K) rows, n = prod(batch): what the kernels take."""
        return self.probs.reshape(-1, self.n_actions), self.log_probs.reshape(-1, self.n_actions)

    def _log_prob(self, actions):
        if update_kernels is not None:             # the lines below as one compiled call
            log_prob = update_kernels.categorical_log_prob(self._tables()[1], actions.reshape(-1))
            if log_prob is not None:
                return log_prob.reshape(self.batch_shape)
        rows = self._rows(actions)
        return self.log_probs.reshape(-1, self.n_actions)[rows].reshape(self.batch_shape)

    def sample_with_log_prob(self, rng):
        """(a, log pi(a)) for a = sample(rng): log_prob's numbers without checking again the
        actions just drawn here (a collector's call, once per env step)."""
        if update_kernels is None:
            actions = self.sample(rng)
            return actions, self._log_prob(actions)
        # sample's lines and log_prob's gather as one compiled call, the same numbers from the
        # same uniforms
        u = as_generator(rng).random(self.batch_shape + (1,))
        actions, log_prob = update_kernels.categorical_sample(*self._tables(), u)
        # [()]: one distribution's action is a scalar, as sample's argmax gives
        return actions.reshape(self.batch_shape)[()], log_prob.reshape(self.batch_shape)

    def entropy(self):
        """H = -sum_k pi_k log pi_k, shape (...,)."""
        if update_kernels is not None:             # the line below as one compiled call
            entropy = update_kernels.categorical_entropy(*self._tables())
            if entropy is not None:     # [()]: a scalar for one distribution, as @ gives
                return entropy.reshape(self.batch_shape)[()]
        return (self.probs * self.log_probs) @ np.full(self.n_actions, -1.0, self.logits.dtype)

    def sample(self, rng):
        """Draw a ~ pi by inverting the CDF with one uniform per distribution; int64 (...,).

        rng: a numpy Generator or an int seed.
        """
        rng = as_generator(rng)
        cdf = np.cumsum(self.probs, axis=-1)                 # cdf_k = sum_{j <= k} pi_j
        cdf[..., -1] = np.inf          # rounding may leave the last entry just below u < 1
        u = rng.random(self.batch_shape + (1,))
        # a = the first k with u < cdf_k: a zero-probability action (cdf_k == cdf_{k-1}) is
        # never the first. (argmax finds it; a sum of the booleans along a short last axis
        # would cost several times more.)
        return (cdf > u).argmax(axis=-1).astype(np.int64)

    def mode(self):
        """The most probable action, argmax_k pi_k; int64 (...,)."""
        return self.logits.argmax(axis=-1).astype(np.int64)

    def score(self, actions):
        """d log pi(a) / dz = onehot(a) - pi, shape (..., K), one row per sample."""
        actions = self._check_actions(actions)
        score = -self.probs
        score.reshape(-1, self.n_actions)[self._rows(actions)] += 1.0
        return score

    def entropy_grad(self):
        """dH/dz = -pi * (log pi + H), shape (..., K).

        From dpi_k/dz_j = pi_k (delta_kj - pi_j):
            dH/dz_j = -sum_k pi_k (delta_kj - pi_j)(log pi_k + 1) = -pi_j (log pi_j + H).
        """
        entropy = self.entropy()
        return -self.probs * (self.log_probs + entropy[..., None])

    def param_grads(self, actions, grad_log_prob, grad_entropy=0.0):
        """dL/dz for L = sum_i w_i log pi(a_i) + sum_i c_i H_i, w = grad_log_prob (...,), c =
        grad_entropy (a scalar or (...,)):

            dL/dz_i = w_i * (onehot(a_i) - pi_i)  +  c_i * (-pi_i * (log pi_i + H_i))

        Returns CategoricalGrads(logits) of shape (..., K).
        """
        actions = self._check_actions(actions)
        w, c = _loss_weights(grad_log_prob, grad_entropy, self.batch_shape, self.logits.dtype)
        if update_kernels is not None:
            # the NumPy lines below as one compiled call, the same numbers
            grad_logits = update_kernels.categorical_param_grads(
                *self._tables(), actions.reshape(-1), w.reshape(-1), c.reshape(-1))
            if grad_logits is not None:        # None: arrays it does not take, NumPy does
                return CategoricalGrads(grad_logits.reshape(self.logits.shape))
        grad_logits = self.probs * -w[..., None]                  # w_i * (0 - pi_i) ...
        rows = grad_logits.reshape(-1, self.n_actions)
        rows[self._rows(actions)] += w.reshape(-1)                 # ... + w_i at a_i
        if c.any():
            grad_logits += c[..., None] * self.entropy_grad()
        return CategoricalGrads(grad_logits)

    @property
    def params_shape(self):
        return self.logits.shape

    def kl(self, other):
        """KL(self || other) = sum_k p_k (log p_k - log q_k), one number per distribution (...,).

        p = self.probs, q = other.probs; other is a Categorical with logits of the same shape.
        An action with p_k = 0 adds nothing (log p_k stays finite, see __init__).
        """
        other = _check_same_family(self, other)
        return (self.probs * (self.log_probs - other.log_probs)) @ np.ones(self.n_actions,
                                                                            self.logits.dtype)

    def fisher_vector_product(self, directions):
        """F u for each distribution, with F = E_a[score(a) score(a)^T] over the logits.

        score(a) = onehot(a) - pi, so F = sum_a pi_a (e_a - pi)(e_a - pi)^T = diag(pi) - pi pi^T
        and, for a direction u (..., K) of the logits (a CategoricalGrads, as policy.jvp gives),

            F u = pi * u - pi (pi . u)

        F is also the Hessian of KL(pi || softmax(z + u)) in u at u = 0. F 1 = 0: adding the
        same number to every logit changes no probability. Returns CategoricalGrads (..., K).
        """
        u = _check_direction("directions.logits", directions.logits, self.logits.shape,
                             self.logits.dtype)
        pi = self.probs
        pi_dot_u = (pi * u) @ np.ones(self.n_actions, self.logits.dtype)
        return CategoricalGrads(pi * (u - pi_dot_u[..., None]))


class DiagGaussian:
    """N(mu, diag(sigma^2)) with mean (..., D) and one state-independent log_std (D,)."""

    def __init__(self, mean, log_std, checked=True):
        """checked=False trusts mean (..., D) and log_std (D,) to be finite float arrays of one
        dtype: a policy's own outputs, built once per env step while acting."""
        if checked:
            mean = _as_float("mean", mean, min_ndim=1)
            log_std = _as_float("log_std", log_std, min_ndim=1).astype(mean.dtype, copy=False)
            if log_std.shape != mean.shape[-1:]:
                raise ValueError(f"log_std must have shape (D,) = {mean.shape[-1:]} to match "
                                 f"mean {mean.shape}, got shape {log_std.shape}")
        self.mean = mean
        self.log_std = log_std
        self.std = np.exp(log_std)

    @property
    def batch_shape(self):
        return self.mean.shape[:-1]

    @property
    def action_dim(self):
        return self.mean.shape[-1]

    def _check_actions(self, actions):
        actions = _as_float("actions", actions, min_ndim=1).astype(self.mean.dtype, copy=False)
        if actions.shape != self.mean.shape:
            raise ValueError(f"actions must have the shape of mean {self.mean.shape}, got "
                             f"shape {actions.shape}")
        return actions

    def _z(self, actions):
        """z = (a - mu) / sigma, (..., D)."""
        return (self._check_actions(actions) - self.mean) / self.std

    def log_prob(self, actions):
        """log pi(a) = sum_d [-z_d^2 / 2 - log sigma_d - log(2 pi) / 2], z = (a - mu) / sigma.

        Shape (...,): the D independent dimensions add up in log space.
        """
        return self._log_prob(self._check_actions(actions))

    def _log_prob(self, actions):
        z = (actions - self.mean) / self.std
        return -0.5 * (z * z).sum(axis=-1) - self.log_std.sum() - 0.5 * self.action_dim * _LOG_2PI

    def sample_with_log_prob(self, rng):
        """(a, log pi(a)) for a = sample(rng): log_prob's numbers without checking again the
        actions just drawn here (a collector's call, once per env step)."""
        actions = self.sample(rng)
        return actions, self._log_prob(actions)

    def entropy(self):
        """H = sum_d [log sigma_d + (1 + log(2 pi)) / 2], shape (...,): equal for every sample."""
        entropy = self.log_std.sum() + 0.5 * self.action_dim * (1.0 + _LOG_2PI)
        return np.full(self.batch_shape, entropy, self.mean.dtype)

    def sample(self, rng):
        """a = mu + sigma * eps, eps ~ N(0, I); shape (..., D), in the dtype of the mean.

        rng: a Generator or an int seed."""
        rng = as_generator(rng)
        return self.mean + self.std * rng.standard_normal(self.mean.shape, self.mean.dtype)

    def mode(self):
        """The most probable action is the mean (a copy, safe to modify)."""
        return self.mean.copy()

    def score(self, actions):
        """(d log pi(a)/d mu, d log pi(a)/d log_std), both (..., D), one row per sample.

            d log pi/d mu      = (a - mu) / sigma^2
            d log pi/d log_std = ((a - mu) / sigma)^2 - 1

        The log_std rows are per sample, not summed: log_std is shared by the whole batch, so a
        caller sums them (weighted by its loss) to get the gradient of the shared parameter.
        """
        z = self._z(actions)
        return z / self.std, z * z - 1.0

    def entropy_grad(self):
        """dH/d log_std = 1 for every dimension, shape (D,); H does not depend on the mean."""
        return np.ones(self.action_dim, self.mean.dtype)

    def param_grads(self, actions, grad_log_prob, grad_entropy=0.0):
        """dL/d(mean, log_std) for L = sum_i w_i log pi(a_i) + sum_i c_i H_i, w = grad_log_prob
        (...,), c = grad_entropy (a scalar or (...,)):

            dL/dmu_i      = w_i * (a_i - mu_i) / sigma^2
            dL/dlog_std   = sum_i w_i * (((a_i - mu_i) / sigma)^2 - 1)  +  sum_i c_i * 1

        log_std is shared by every sample, so its gradient is summed over the batch. Returns
        DiagGaussianGrads(mean (..., D), log_std (D,)).
        """
        z = self._z(actions)
        w, c = _loss_weights(grad_log_prob, grad_entropy, self.batch_shape, self.mean.dtype)
        w_rows = w.reshape(-1)
        grad_mean = (w[..., None] / self.std) * z
        grad_log_std = w_rows @ (z * z - 1.0).reshape(-1, self.action_dim)
        entropy_weight = c * w_rows.size if c.ndim == 0 else c.sum()
        grad_log_std += entropy_weight * self.entropy_grad()
        return DiagGaussianGrads(grad_mean, grad_log_std)

    @property
    def params_shape(self):
        return self.mean.shape

    def kl(self, other):
        """KL(self || other), one number per distribution (...,), summed over the D dimensions:

            sum_d [ log sigma_q,d - log sigma_p,d + (sigma_p,d^2 + (mu_p,d - mu_q,d)^2)
                    / (2 sigma_q,d^2) - 1/2 ]

        p = self, q = other (a DiagGaussian with a mean of the same shape).
        """
        other = _check_same_family(self, other)
        variance_ratio = (self.std / other.std) ** 2                      # sigma_p^2 / sigma_q^2
        z = (self.mean - other.mean) / other.std
        per_dim = (other.log_std - self.log_std) + 0.5 * (variance_ratio + z * z - 1.0)
        return per_dim.sum(axis=-1)

    def fisher_vector_product(self, directions):
        """F u for the distributions, with F = E_a[score(a) score(a)^T] over (mean, log_std).

        With z = (a - mu) / sigma ~ N(0, 1) per dimension the scores are z / sigma (mean) and
        z^2 - 1 (log_std), and E[z^2] = 1, E[z (z^2 - 1)] = 0, E[(z^2 - 1)^2] = 3 - 2 + 1 = 2:

            F u = ( u_mean / sigma^2 ,  2 u_log_std )         per distribution, per dimension

        directions is a DiagGaussianGrads: u_mean (..., D) per distribution, u_log_std (D,) one
        direction of the shared log_std. As in param_grads, the shared log_std's entry is
        summed over the batch, here n * 2 u_log_std for n distributions: the gradient in u of
        (1/2) sum_i u_i^T F u_i, the second-order term of sum_i KL(pi_i || pi_i + u_i).
        """
        u_mean = _check_direction("directions.mean", directions.mean, self.mean.shape,
                                  self.mean.dtype)
        u_log_std = _check_direction("directions.log_std", directions.log_std,
                                     self.log_std.shape, self.mean.dtype)
        n = int(np.prod(self.batch_shape, dtype=int))
        return DiagGaussianGrads(u_mean / (self.std * self.std), (2.0 * n) * u_log_std)

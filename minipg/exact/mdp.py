"""Tiny tabular MDPs whose objective and policy gradient are known exactly.

A finite-horizon MDP with S states, A actions and horizon H, and a tabular softmax policy

    pi(a|s) = softmax(theta[s])_a,        theta has shape (S, A).

Every trajectory tau = (s_0, a_0, ..., s_{H-1}, a_{H-1}) that has positive probability can be
listed, so the objective and its gradient are finite sums instead of expectations:

    P(tau)   = rho0(s_0) * prod_t pi(a_t|s_t) * prod_{t<H-1} P(s_{t+1}|s_t, a_t)
    R(tau)   = sum_t gamma^t R(s_t, a_t)
    J(theta) = sum_tau P(tau) R(tau)
    grad J   = sum_tau P(tau) R(tau) sum_t grad log pi(a_t|s_t)      (log-derivative trick)

The transition probabilities do not depend on theta, so their log-derivatives are zero and
only the policy's score grad_{theta[s]} log pi(a|s) = onehot(a) - pi(.|s) survives. The tests
check grad_J against finite differences of J, which does contain the transitions.

Against that exact gradient we hold the Monte Carlo estimators a policy-gradient library uses,

    g_hat = (1/N) sum_episodes sum_t score_t * Psi_t,       score_t = onehot(a_t) - pi(.|s_t)

with Psi_t one of PSI: the full return, the reward-to-go G_t, G_t minus a baseline (V, or the
variance-minimising b* of minipg.exact.baseline), or GAE. The estimators are built from minipg's
own pieces (Categorical.score, returns.reward_to_go, returns.gae), so the exact gradient
verifies them. Because trajectories can be enumerated, the exact mean and variance of each
single-episode estimator are available too (`exact_moments`): bias is measured exactly.
Estimators that reuse episodes of an older policy (importance sampling) are in minipg.exact.importance.

Time matters. With a finite horizon the value of a state depends on how many steps remain, so
V^pi and Q^pi carry a time index: V_t(s), Q_t(s, a), with V_H = 0. The horizon is part of the
MDP, so the last step is a terminal step (no bootstrap), not a time-limit truncation.
"""
import numbers
from typing import NamedTuple

import numpy as np

from minipg.core.checks import as_generator
from minipg.core.distributions import Categorical
from minipg.exact.baseline import optimal_baseline
from minipg.core.returns import gae, reward_to_go

__all__ = ["TabularMDP", "Episodes", "PSI", "BASELINES"]

PSI = ("return", "reward_to_go", "baseline", "gae", "optimal_baseline", "optimal_baseline_scalar")
# What psi_weights(..., baseline=...) subtracts from "return" or "reward_to_go"; the psi names
# "baseline", "optimal_baseline", "optimal_baseline_scalar" are reward_to_go minus these.
BASELINES = (None, "value", "optimal", "optimal_scalar")
_PSI_BASELINE = {"baseline": "value", "optimal_baseline": "optimal",
                 "optimal_baseline_scalar": "optimal_scalar"}


class Episodes(NamedTuple):
    """A batch of N complete episodes, time first: each field has shape (H, N)."""
    states: np.ndarray    # s_t, int64
    actions: np.ndarray   # a_t, int64
    rewards: np.ndarray   # r_t, float64


def _softmax(theta):
    """pi[s] = softmax(theta[s]); the exact side computes it itself, independent of Categorical."""
    z = np.exp(theta - theta.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _float_array(name, x, shape=None, ndim=None):
    try:
        array = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real numeric array: {error}") from error
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains a non-finite value (NaN or inf)")
    return array


def _coefficient(name, value, upper=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not 0.0 <= float(value) <= upper:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, {upper}], got {value}")
    return float(value)


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class TabularMDP:
    """Finite-horizon MDP: P[s, a, s'], R[s, a], start distribution rho0[s], horizon H.

    reward_noise: width w of zero-mean uniform noise U(-w/2, w/2) added to each sampled reward.
    It changes no expectation (J, grad_J, V, Q are those of R) but adds variance to estimates.
    max_trajectories: refuse to build an MDP with more positive-probability trajectories.
    """

    def __init__(self, P, R, rho0, horizon, gamma=1.0, *, reward_noise=0.0,
                 max_trajectories=1_000_000):
        P = _float_array("P", P, ndim=3)
        S, A = P.shape[:2]
        if S == 0 or A == 0 or P.shape[2] != S:
            raise ValueError(f"P must have shape (S, A, S) with S, A >= 1, got shape {P.shape}")
        if (P < 0).any():
            s, a, s_next = np.argwhere(P < 0)[0]
            raise ValueError(f"P must be non-negative; P[{s}, {a}, {s_next}] = {P[s, a, s_next]}")
        row_sums = P.sum(axis=2)
        if not np.allclose(row_sums, 1.0, rtol=0.0, atol=1e-9):
            s, a = np.argwhere(~np.isclose(row_sums, 1.0, rtol=0.0, atol=1e-9))[0]
            raise ValueError(f"P[s, a, :] must sum to 1 (a distribution over next states); "
                             f"P[{s}, {a}, :] sums to {float(row_sums[s, a])!r}")
        self.P = P
        self.R = _float_array("R", R, shape=(S, A))
        self.rho0 = _float_array("rho0", rho0, shape=(S,))
        if (self.rho0 < 0).any() or not np.isclose(self.rho0.sum(), 1.0, rtol=0.0, atol=1e-9):
            raise ValueError(f"rho0 must be a distribution over the {S} states (non-negative, "
                             f"summing to 1), got {self.rho0}")
        self.horizon = _positive_int("horizon", horizon)
        self.gamma = _coefficient("gamma", gamma)
        self.reward_noise = _coefficient("reward_noise", reward_noise, upper=np.inf)
        self.n_states, self.n_actions = S, A
        self.discounts = self.gamma ** np.arange(self.horizon)           # gamma^t, t = 0..H-1

        self.n_trajectories = self._count_trajectories()
        if self.n_trajectories > max_trajectories:
            count = (f"{int(self.n_trajectories):,}" if self.n_trajectories < 2**53 else
                     f"about {self.n_trajectories:.3g}" if np.isfinite(self.n_trajectories)
                     else "more than 1e308")
            raise ValueError(f"horizon={self.horizon} is too large to enumerate: it would be "
                             f"{count} trajectories (S={S}, A={A}), more than "
                             f"max_trajectories={max_trajectories:,}")
        self._states, self._actions, self._env_prob = self._enumerate()
        # R(tau) = sum_t gamma^t R(s_t, a_t) does not depend on theta: computed once.
        self._returns = self.discounts @ self.R[self._states, self._actions]

    # ---------------------------------------------------------------------------------------
    # Enumeration of trajectories
    # ---------------------------------------------------------------------------------------

    def _count_trajectories(self):
        """Number of positive-probability trajectories: paths through reachable transitions.

        Every action has positive probability under a softmax, so only P and rho0 prune.
        """
        n_paths = (self.rho0 > 0).astype(np.float64)              # paths ending in s at t = 0
        moves = (self.P > 0).sum(axis=1).astype(np.float64)       # moves[s, s'] = #a with P>0
        for _ in range(self.horizon - 1):
            with np.errstate(over="ignore"):
                n_paths = n_paths @ moves
            if np.isinf(n_paths).any():
                break                                             # too many to count, let alone list
        return float(n_paths.sum() * self.n_actions)              # inf if beyond float range

    def _enumerate(self):
        """All positive-probability (s_0, a_0, ..., s_{H-1}, a_{H-1}) as (H, M) arrays, and
        the environment's share of each one's probability, rho0(s_0) prod P(s_{t+1}|s_t, a_t)."""
        A = self.n_actions
        states = np.flatnonzero(self.rho0 > 0)[:, None]
        actions = np.zeros((len(states), 0), dtype=np.int64)
        env_prob = self.rho0[states[:, 0]]
        for t in range(self.horizon):
            M = len(states)                                       # branch on every action
            states, env_prob = np.repeat(states, A, axis=0), np.repeat(env_prob, A)
            actions = np.column_stack([np.repeat(actions, A, axis=0), np.tile(np.arange(A), M)])
            if t == self.horizon - 1:
                break
            transition = self.P[states[:, -1], actions[:, -1]]   # (M*A, S)
            path, s_next = np.nonzero(transition > 0)             # branch on reachable s'
            states = np.column_stack([states[path], s_next])
            actions, env_prob = actions[path], env_prob[path] * transition[path, s_next]
        return states.T.copy(), actions.T.copy(), env_prob

    def _check_theta(self, theta):
        return _float_array("theta", theta, shape=(self.n_states, self.n_actions))

    def policy(self, theta):
        """pi[s, a] = softmax(theta[s])_a, shape (S, A)."""
        return _softmax(self._check_theta(theta))

    def trajectory_probs(self, theta):
        """P(tau) for every enumerated trajectory, shape (M,); sums to 1."""
        pi = self.policy(theta)
        return self._env_prob * pi[self._states, self._actions].prod(axis=0)

    def trajectories(self):
        """Every positive-probability trajectory as Episodes of shape (H, M), with the mean
        rewards R(s_t, a_t); column m goes with trajectory_probs(theta)[m]. An expectation of
        any per-episode quantity f is then trajectory_probs(theta) @ f(trajectories())."""
        return Episodes(self._states, self._actions, self.R[self._states, self._actions])

    # ---------------------------------------------------------------------------------------
    # Exact quantities
    # ---------------------------------------------------------------------------------------

    def J(self, theta):
        """J(theta) = sum_tau P(tau) R(tau), R(tau) = sum_t gamma^t R(s_t, a_t)."""
        return float(self.trajectory_probs(theta) @ self._returns)

    def grad_J(self, theta):
        """grad J = sum_tau P(tau) R(tau) sum_t (onehot(a_t) - pi(.|s_t)) in row s_t, (S, A).

        Only policy terms appear: grad log P(s_{t+1}|s_t, a_t) = grad log rho0(s_0) = 0.
        """
        pi = self.policy(theta)
        S, A = self.n_states, self.n_actions
        weight = self.trajectory_probs(theta) * self._returns                # P(tau) R(tau)
        grad = np.zeros((S, A))
        for s, a in zip(self._states, self._actions):             # one time step at a time
            grad += np.bincount(s * A + a, weight, S * A).reshape(S, A)     # onehot(a_t)
            grad -= np.bincount(s, weight, S)[:, None] * pi                  # - pi(.|s_t)
        return grad

    def Q_and_V(self, theta):
        """Backward recursion over the horizon, V_H = 0:

            Q_t(s, a) = R(s, a) + gamma * sum_s' P(s'|s, a) V_{t+1}(s')
            V_t(s)    = sum_a pi(a|s) Q_t(s, a)

        Returns Q of shape (H, S, A) and V of shape (H + 1, S), V[H] = 0.
        """
        pi = self.policy(theta)
        V = np.zeros((self.horizon + 1, self.n_states))
        Q = np.zeros((self.horizon, self.n_states, self.n_actions))
        for t in reversed(range(self.horizon)):
            Q[t] = self.R + self.gamma * self.P @ V[t + 1]
            V[t] = (pi * Q[t]).sum(axis=1)
        return Q, V

    def Q(self, theta):
        """Q_t(s, a), shape (H, S, A)."""
        return self.Q_and_V(theta)[0]

    def V(self, theta):
        """V_t(s), shape (H + 1, S); the last row is V_H = 0."""
        return self.Q_and_V(theta)[1]

    def state_distribution(self, theta):
        """d_t(s) = Pr(s_t = s): d_0 = rho0, d_{t+1}(s') = sum_{s,a} d_t(s) pi(a|s) P(s'|s,a)."""
        pi = self.policy(theta)
        d = np.zeros((self.horizon, self.n_states))
        d[0] = self.rho0
        for t in range(1, self.horizon):
            d[t] = np.einsum("s,sa,sap->p", d[t - 1], pi, self.P)
        return d

    def time_averaged_V(self, theta):
        """The best critic that cannot see time: V(s) = sum_t d_t(s) V_t(s) / sum_t d_t(s).

        It minimises the on-policy squared error sum_t E[(V(s_t) - V_t(s_t))^2], i.e. it is what
        a value network regressed on returns, without t in its input, converges to. 0 for
        states never visited.
        """
        d, V = self.state_distribution(theta), self.V(theta)[:-1]
        visits = d.sum(axis=0)
        return np.divide((d * V).sum(axis=0), visits, out=np.zeros_like(visits), where=visits > 0)

    def grad_J_from_Q(self, theta):
        """The policy gradient theorem, finite horizon, as a second exact route to grad J:

            grad_{theta[s]} J = sum_t gamma^t d_t(s) pi(.|s) * (Q_t(s, .) - V_t(s))

        (sum_a pi(a|s) Q_t(s,a) (onehot(a) - pi) = pi * (Q_t - V_t): the advantage appears).
        """
        pi = self.policy(theta)
        Q, V = self.Q_and_V(theta)
        d = self.state_distribution(theta)
        advantage = Q - V[:-1, :, None]
        return np.einsum("t,ts,sa,tsa->sa", self.discounts, d, pi, advantage)

    # ---------------------------------------------------------------------------------------
    # Monte Carlo estimators
    # ---------------------------------------------------------------------------------------

    def sample_episodes(self, theta, n_episodes, rng):
        """Run n_episodes episodes side by side (vectorised over episodes); Episodes of (H, N).

        rng: a numpy Generator or an int seed."""
        theta = self._check_theta(theta)
        N, H = _positive_int("n_episodes", n_episodes), self.horizon
        rng = as_generator(rng)
        states = np.zeros((H, N), dtype=np.int64)
        actions = np.zeros((H, N), dtype=np.int64)
        rewards = np.zeros((H, N))
        s = _inverse_cdf(np.broadcast_to(self.rho0, (N, self.n_states)), rng)
        for t in range(H):
            a = Categorical(theta[s]).sample(rng)
            states[t], actions[t] = s, a
            rewards[t] = self.R[s, a]
            if self.reward_noise > 0:
                rewards[t] += self.reward_noise * (rng.random(N) - 0.5)
            if t < H - 1:
                s = _inverse_cdf(self.P[s, a], rng)
        return Episodes(states, actions, rewards)

    def _value_table(self, theta, values):
        """values=None: exact V_t(s). Otherwise (S,) (a critic that ignores time), (H, S) or
        (H + 1, S). Returned as (H + 1, S)."""
        H, S = self.horizon, self.n_states
        if values is None:
            return self.V(theta)
        values = _float_array("values", values)
        if values.shape == (S,):
            return np.tile(values, (H + 1, 1))
        if values.shape == (H, S):
            return np.vstack([values, np.zeros((1, S))])
        if values.shape == (H + 1, S):
            return values
        raise ValueError(f"values must have shape (S,) = ({S},), (H, S) = ({H}, {S}) or "
                         f"(H + 1, S) = ({H + 1}, {S}), got shape {values.shape}")

    def psi_weights(self, theta, episodes, psi, lam=0.95, *, values=None, baseline=None,
                    weight_by_discount=False):
        """Psi_t for every step of every episode, shape (H, N), or (H, N, A) with a
        per-parameter baseline (one weight per logit of row s_t).

            "return"        Psi_t = R(tau) = sum_k gamma^k r_k              (same for every t)
            "reward_to_go"  Psi_t = G_t = sum_{k>=t} gamma^(k-t) r_k        (causality)
            "baseline"      Psi_t = G_t - V_t(s_t)                          (advantage estimate)
            "gae"           Psi_t = sum_l (gamma lam)^l delta_{t+l},
                            delta_t = r_t + gamma V_{t+1}(s_{t+1}) - V_t(s_t)
            "optimal_baseline"         Psi_{t,k} = G_t - b*_k(t, s_t)      per parameter k
            "optimal_baseline_scalar"  Psi_t = G_t - b*(t, s_t)

        b* is the variance-minimising baseline, computed by enumeration (minipg.exact.baseline).
        baseline ("value", "optimal", "optimal_scalar") subtracts V, b* or scalar b* from "return"
        or "reward_to_go"; the last three psi names are reward_to_go with those baselines.
        V is the exact V^pi unless `values` is given. weight_by_discount multiplies Psi_t by
        gamma^t: that factor makes the discounted estimators unbiased for the discounted J;
        the usual practice leaves it out (see the tests and docs/derivation.md).
        """
        if psi not in PSI:
            raise ValueError(f"psi must be one of {PSI}, got {psi!r}")
        if not (baseline is None or isinstance(baseline, str) and baseline in BASELINES):
            raise ValueError(f"baseline must be one of {BASELINES} (a critic table goes in "
                             f"values), got {baseline!r}")
        if baseline is not None and psi not in ("return", "reward_to_go"):
            raise ValueError(f"baseline applies to psi 'return' or 'reward_to_go'; psi={psi!r} "
                             f"{'has its own' if psi in _PSI_BASELINE else 'takes none'}")
        if weight_by_discount and psi == "return":
            raise ValueError("weight_by_discount applies to psi in ('reward_to_go', 'baseline', "
                             "'gae', 'optimal_baseline', 'optimal_baseline_scalar'); R(tau) "
                             "already carries gamma^k on each reward")
        if psi in _PSI_BASELINE:
            psi, baseline = "reward_to_go", _PSI_BASELINE[psi]
        if values is not None and baseline in ("optimal", "optimal_scalar"):
            raise ValueError("values (a critic) does not apply to the optimal baseline, which "
                             "is computed from theta")
        lam = _coefficient("lam", lam)
        states, rewards = episodes.states, episodes.rewards
        H = self.horizon
        if rewards.ndim != 2 or rewards.shape[0] != H or states.shape != rewards.shape:
            raise ValueError(f"episodes must hold (H, N) arrays with H = {H}, got states "
                             f"{states.shape} and rewards {rewards.shape}")
        # The horizon ends every episode and V_H = 0 by definition: a terminal step.
        terminated = np.zeros(rewards.shape, dtype=bool)
        terminated[-1] = True
        truncated = np.zeros_like(terminated)
        time = np.arange(H)[:, None]
        if psi in ("return", "reward_to_go"):
            G = reward_to_go(rewards, terminated, truncated, self.gamma)
            if psi == "return":
                weights = np.broadcast_to(G[0], G.shape).copy()          # G_0 = R(tau)
            else:
                weights = G
            if baseline == "value":
                weights = weights - self._value_table(theta, values)[time, states]
            elif baseline is not None:
                per_parameter = baseline == "optimal"
                b = optimal_baseline(self, theta, psi, per_parameter=per_parameter)
                weights = (weights[..., None] - b[time, states] if per_parameter
                           else weights - b[time, states])
        else:
            table = self._value_table(theta, values)
            # s_{t+1}; the last row is a placeholder, its value is ignored at a terminal step.
            next_states = np.vstack([states[1:], states[-1:]])
            weights = gae(rewards, table[time, states], table[time + 1, next_states],
                          terminated, truncated, self.gamma, lam)
        if weight_by_discount:
            weights = weights * self.discounts.reshape((H,) + (1,) * (weights.ndim - 1))
        return weights

    def episode_grads(self, theta, episodes, psi, lam=0.95, *, values=None, baseline=None,
                      weight_by_discount=False):
        """One gradient estimate per episode, sum_t score_t * Psi_t, shape (N, S, A).

        score_t = Categorical(theta[s_t]).score(a_t) = onehot(a_t) - pi(.|s_t) lands in row s_t.
        """
        theta = self._check_theta(theta)
        weights = self.psi_weights(theta, episodes, psi, lam, values=values, baseline=baseline,
                                   weight_by_discount=weight_by_discount)
        if weights.ndim == 2:
            weights = weights[..., None]                # one Psi_t for every logit of row s_t
        score = Categorical(theta[episodes.states]).score(episodes.actions)      # (H, N, A)
        return _sum_into_rows(episodes.states, weights * score, self.n_states)

    def estimate_grad(self, theta, n_episodes, psi, rng, lam=0.95, *, values=None,
                      baseline=None, weight_by_discount=False):
        """Monte Carlo policy gradient: the mean of episode_grads over n_episodes fresh episodes.

        Per-episode estimates (for variances and standard errors): episode_grads(theta,
        sample_episodes(theta, n_episodes, rng), psi, ...), which consumes rng identically.
        """
        episodes = self.sample_episodes(theta, n_episodes, rng)
        return self.episode_grads(theta, episodes, psi, lam, values=values, baseline=baseline,
                                  weight_by_discount=weight_by_discount).mean(axis=0)

    def exact_moments(self, theta, psi, lam=0.95, *, values=None, baseline=None,
                      weight_by_discount=False):
        """Exact mean and variance (per entry, both (S, A)) of the single-episode estimator.

        The estimator is evaluated on every trajectory with the mean rewards and averaged with
        weights P(tau). Reward noise eps_k enters Psi_t linearly and independently of tau, so
        it adds sigma^2 sum_k E[h_k^2], where h_k is the estimator with a unit reward at step k
        and nothing subtracted (no baseline, a zero critic), sigma^2 = w^2 / 12 for uniform
        noise of width w: a baseline is a function of theta, so it never multiplies noise.
        """
        theta = self._check_theta(theta)
        prob = self.trajectory_probs(theta)
        options = dict(lam=lam, weight_by_discount=weight_by_discount)
        episodes = self.trajectories()
        grads = self.episode_grads(theta, episodes, psi, values=values, baseline=baseline,
                                   **options)
        mean = np.tensordot(prob, grads, axes=1)
        variance = np.tensordot(prob, (grads - mean) ** 2, axes=1)
        if self.reward_noise > 0:
            noise_psi = "reward_to_go" if psi in _PSI_BASELINE else psi
            zero_critic = np.zeros(self.n_states) if psi == "gae" else None
            for k in range(self.horizon):
                unit = np.zeros(episodes.rewards.shape)
                unit[k] = 1.0
                h = self.episode_grads(theta, episodes._replace(rewards=unit), noise_psi,
                                       values=zero_critic, **options)
                variance += self.reward_noise ** 2 / 12 * np.tensordot(prob, h ** 2, axes=1)
        return mean, variance


def _sum_into_rows(states, per_step, n_states):
    """(N, S, A) per-episode gradients: sum_t per_step[t, n] added to row states[t, n], the
    only row of theta that step's score touches."""
    H, N, A = per_step.shape
    cell = (np.arange(N) * n_states + states).ravel()             # row (n, s_t) of (N * S, A)
    return np.stack([np.bincount(cell, per_step[..., a].ravel(), N * n_states)
                     for a in range(A)], axis=-1).reshape(N, n_states, A)


def _inverse_cdf(probs, rng):
    """One draw per row of probs (N, K): the first k with u < cdf_k, u ~ U[0, cdf_K).

    Scaling u by the row total means a rounding error in the sum can never select a
    zero-probability state after the support."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)

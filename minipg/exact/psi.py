"""More choices of Psi_t, exactly: the true Q and A, n-step advantages, GAE as their mixture.

Every policy-gradient estimator here has the form g = sum_t score_t Psi_t. Beside the sampled
weights of TabularMDP.psi_weights (R(tau), G_t, G_t - V_t, GAE), the standard table of choices
has two that only an oracle knows, and a family between them and the TD residual:

    Psi_t = Q_t(s_t, a_t)                  the true action value          (`q_weights`)
    Psi_t = A_t(s_t, a_t) = Q_t - V_t      the true advantage             (`advantage_weights`)
    Psi_t = A^(n)_t = sum_{l<n} gamma^l r_{t+l} + gamma^n V_{t+n}(s_{t+n}) - V_t(s_t)
                                           the n-step advantage           (`n_step_advantages`)

(V_H = 0: a sum that reaches the horizon stops there, so A^(n)_t = G_t - V_t(s_t) for
n >= H - t). All are unbiased for grad J at gamma = 1 with the exact V: given (s_t, a_t) each has
mean Q_t or A_t, and E[score_t f(s_t)] = 0. A^(1) is the TD residual delta_t, A^(inf) is
G_t - V_t. GAE is their geometric mixture,

    A^GAE(lam)_t = (1 - lam) sum_{n>=1} lam^(n-1) A^(n)_t = sum_l (gamma lam)^l delta_{t+l}

for any critic V, exact or not (`gae_as_mixture` computes the left side; minipg.core.returns.gae
the right). The weights (1 - lam) lam^(n-1) sum to 1; with a finite horizon the tail
n >= H - t, whose terms are all G_t - V_t, carries the weight lam^(H-t-1).
"""
import numpy as np

from minipg.core.distributions import Categorical
from minipg.exact.mdp import _coefficient, _positive_int, _sum_into_rows

__all__ = ["q_weights", "advantage_weights", "n_step_advantages", "gae_as_mixture",
           "grads_from_weights", "exact_moments_of_weights", "centred_batch_mean"]


def q_weights(mdp, theta, episodes):
    """Psi_t = Q_t(s_t, a_t), the exact action value, shape (H, N)."""
    Q = mdp.Q(theta)
    return Q[np.arange(mdp.horizon)[:, None], episodes.states, episodes.actions]


def advantage_weights(mdp, theta, episodes):
    """Psi_t = A_t(s_t, a_t) = Q_t(s_t, a_t) - V_t(s_t), the exact advantage, shape (H, N)."""
    time = np.arange(mdp.horizon)[:, None]
    return q_weights(mdp, theta, episodes) - mdp.V(theta)[time, episodes.states]


def n_step_advantages(mdp, theta, episodes, n, *, values=None):
    """A^(n)_t = sum_{l<n, t+l<H} gamma^l r_{t+l} + gamma^n V_{t+n}(s_{t+n}) - V_t(s_t), (H, N).

    values: the critic, as in TabularMDP.psi_weights (None: the exact V_t); V_H = 0.
    """
    n = _positive_int("n", n)
    table = mdp._value_table(theta, values)                                 # (H + 1, S)
    H, gamma = mdp.horizon, mdp.gamma
    rewards, states = episodes.rewards, episodes.states
    advantages = np.zeros(rewards.shape)
    for t in range(H):
        end = min(t + n, H)
        discounts = gamma ** np.arange(end - t)
        bootstrap = 0.0 if end == H else gamma ** n * table[end, states[end]]
        advantages[t] = discounts @ rewards[t:end] + bootstrap - table[t, states[t]]
    return advantages


def gae_as_mixture(mdp, theta, episodes, lam, *, values=None):
    """(1 - lam) sum_{n>=1} lam^(n-1) A^(n)_t, summed over n, shape (H, N).

    The n-step advantages stop changing at n = H - t (the sum reaches the horizon), so the
    infinite tail is one term with weight lam^(H-t-1).
    """
    lam = _coefficient("lam", lam)
    H = mdp.horizon
    by_n = [n_step_advantages(mdp, theta, episodes, n, values=values) for n in range(1, H + 1)]
    mixture = np.zeros(episodes.rewards.shape)
    for t in range(H):
        last = H - t                                        # A^(n)_t = A^(last)_t for n >= last
        for n in range(1, last):
            mixture[t] += (1 - lam) * lam ** (n - 1) * by_n[n - 1][t]
        mixture[t] += lam ** (last - 1) * by_n[last - 1][t]
    return mixture


def grads_from_weights(mdp, theta, episodes, weights):
    """sum_t score_t Psi_t per episode, shape (N, S, A), for any weights Psi of shape (H, N)."""
    score = Categorical(mdp._check_theta(theta)[episodes.states]).score(episodes.actions)
    return _sum_into_rows(episodes.states, weights[..., None] * score, mdp.n_states)


def exact_moments_of_weights(mdp, theta, weigh):
    """Exact mean and variance (per entry, (S, A)) of the single-episode estimator whose
    weights are weigh(episodes) (a function of the episodes, such as
    lambda e: q_weights(mdp, theta, e)), summed over every trajectory with mean rewards.
    Noise-free MDPs only: the weights may be nonlinear in the rewards."""
    if mdp.reward_noise > 0:
        raise ValueError("exact_moments_of_weights needs noise-free rewards (reward_noise = 0)")
    episodes = mdp.trajectories()
    grads = grads_from_weights(mdp, theta, episodes, weigh(episodes))
    prob = mdp.trajectory_probs(theta)
    mean = np.tensordot(prob, grads, axes=1)
    return mean, np.tensordot(prob, (grads - mean) ** 2, axes=1)


def centred_batch_mean(mdp, theta, weigh, n_episodes):
    """Exact E[g] when every Psi of a batch of n_episodes whole episodes (B = n_episodes H steps)
    is centred by the batch mean, g = (1/N) sum_i sum_t score_{i,t} (Psi_{i,t} - mean(Psi)):

        E[g] = E[sum_t score_t Psi_t] - (1/B) E[(sum_t score_t)(sum_u Psi_u)]

    (another episode's Psi is independent of this one's scores, whose mean is zero, so only the
    episode's own steps enter the mean's correction). If the steps were independent only u = t
    would count and the correction would be E[sum_t score_t Psi_t] / B, the (B-1)/B shrink of
    independent samples; the steps of one episode are not, and every u whose Psi depends on a_t
    adds a term. Returns the (S, A) mean; weigh(episodes) -> (H, M) as in exact_moments_of_weights.
    """
    n_episodes = _positive_int("n_episodes", n_episodes)
    if mdp.reward_noise > 0:
        raise ValueError("centred_batch_mean needs noise-free rewards (reward_noise = 0)")
    episodes = mdp.trajectories()
    weights = weigh(episodes)
    prob = mdp.trajectory_probs(theta)
    own = np.tensordot(prob, grads_from_weights(mdp, theta, episodes, weights), axes=1)
    whole_score = grads_from_weights(mdp, theta, episodes, np.ones_like(weights))
    cross = np.tensordot(prob, whole_score * weights.sum(axis=0)[:, None, None], axes=1)
    return own - cross / (n_episodes * mdp.horizon)

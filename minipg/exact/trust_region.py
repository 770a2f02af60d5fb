"""Why trust regions: the performance-difference lemma and the surrogate's error bound, exactly.

For two policies of a finite-horizon TabularMDP, with A^old_t the old policy's advantage,

    J(theta) - J(theta_old) = sum_t gamma^t sum_s d^theta_t(s) sum_a pi_theta(a|s) A^old_t(s, a)

(the performance-difference lemma, `performance_difference`): the new policy's gain is the old
advantage of its own actions, at the states IT visits. Proof: telescope
J(theta) - J(theta_old) = E_theta[sum_t gamma^t (r_t + gamma V^old_{t+1}(s_{t+1}) - V^old_t(s_t))],
whose step t has mean sum_a pi_theta(a|s_t) A^old_t(s_t, a) given s_t.

The surrogate replaces d^theta_t by d^old_t, the states the data came from:

    L(theta) = J(theta_old) + sum_t gamma^t sum_s d^old_t(s) sum_a pi_theta(a|s) A^old_t(s, a)

(`discounted_surrogate`; at gamma = 1 it is minipg.exact.importance.surrogate). Their difference
is sum_t gamma^t sum_s (d^theta_t - d^old_t)(s) abar_t(s), abar_t(s) = sum_a pi_theta A^old_t. Two
facts bound it, with alpha = max_s TV(pi_old(.|s), pi_theta(.|s)):

    |abar_t(s)| = |sum_a (pi_theta - pi_old)(a|s) A^old_t(s, a)| <= alpha span_t,
        span_t = max_s (max_a A^old_t(s, a) - min_a A^old_t(s, a))   (sum_a pi_old A^old = 0)
    |d^theta_t - d^old_t|_1 <= 2 (1 - (1 - alpha)^t)
        (couple the two policies' actions so that they differ with probability <= alpha at
        each step: the state paths part only after a disagreement)

so that

    |J(theta) - L(theta)| <= 2 alpha sum_t gamma^t (1 - (1 - alpha)^t) span_t      (`surrogate_error_bound`)

second order in alpha, as L matches J in value and gradient at theta_old. With span_t <= 2 eps,
eps = max |A|, 1 - (1 - alpha)^t <= t alpha and an infinite horizon it becomes TRPO's
4 eps gamma alpha^2 / (1 - gamma)^2 (Schulman et al., 2015, Theorem 1), and Pinsker's inequality,
alpha^2 <= max_s KL / 2, turns it into the KL penalty behind the trust region. J >= L - bound:
improving L by more than the bound improves J.
"""
import numpy as np

__all__ = ["performance_difference", "discounted_surrogate", "max_total_variation",
           "surrogate_error_bound", "trpo_bound"]


def _advantage_old(mdp, theta_old):
    Q, V = mdp.Q_and_V(theta_old)
    return Q - V[:-1, :, None]                                                # (H, S, A)


def performance_difference(mdp, theta, theta_old):
    """sum_t gamma^t sum_s d^theta_t(s) sum_a pi_theta(a|s) A^old_t(s, a): J(theta) - J(theta_old)."""
    pi, d = mdp.policy(theta), mdp.state_distribution(theta)
    return float(np.einsum("t,ts,sa,tsa->", mdp.discounts, d, pi, _advantage_old(mdp, theta_old)))


def discounted_surrogate(mdp, theta, theta_old):
    """L(theta) = J(theta_old) + sum_t gamma^t sum_s d^old_t(s) sum_a pi_theta(a|s) A^old_t(s, a)."""
    pi, d_old = mdp.policy(theta), mdp.state_distribution(theta_old)
    return mdp.J(theta_old) + float(np.einsum("t,ts,sa,tsa->", mdp.discounts, d_old, pi,
                                              _advantage_old(mdp, theta_old)))


def max_total_variation(mdp, theta, theta_old):
    """alpha = max_s TV(pi_old(.|s), pi_theta(.|s)), TV = (1/2) sum_a |pi_old - pi_theta|."""
    return float(0.5 * np.abs(mdp.policy(theta) - mdp.policy(theta_old)).sum(axis=1).max())


def surrogate_error_bound(mdp, theta, theta_old):
    """2 alpha sum_t gamma^t (1 - (1 - alpha)^t) span_t >= |J(theta) - L(theta)| (module docstring)."""
    alpha = max_total_variation(mdp, theta, theta_old)
    advantage = _advantage_old(mdp, theta_old)
    span = (advantage.max(axis=2) - advantage.min(axis=2)).max(axis=1)         # (H,)
    t = np.arange(mdp.horizon)
    return float(2 * alpha * np.sum(mdp.discounts * (1 - (1 - alpha) ** t) * span))


def trpo_bound(mdp, theta, theta_old):
    """TRPO's infinite-horizon form, 4 eps gamma alpha^2 / (1 - gamma)^2, eps = max |A^old|;
    gamma < 1 only. It is at least surrogate_error_bound."""
    if not mdp.gamma < 1:
        raise ValueError(f"trpo_bound needs gamma < 1, got gamma = {mdp.gamma}")
    alpha = max_total_variation(mdp, theta, theta_old)
    epsilon = np.abs(_advantage_old(mdp, theta_old)).max()
    return float(4 * epsilon * mdp.gamma * alpha ** 2 / (1 - mdp.gamma) ** 2)

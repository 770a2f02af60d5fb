"""Reusing episodes of an older policy: importance sampling, exactly, on a TabularMDP.

Episodes drawn from pi_old = softmax(theta_old) can estimate the gradient at another theta if
each one is reweighted by how much likelier the new policy makes it. Per decision, the ratio is

    rho_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t),        rho_{0:k} = prod_{j<=k} rho_j

and the three estimators here differ only in which ratios they put where. All three use the
critic a PPO update has, the old policy's value V^old, through its TD residuals
delta_k = r_k + gamma V^old_{k+1}(s_{k+1}) - V^old_k(s_k); on-policy, sum_{k>=t} gamma^(k-t)
delta_k = G_t - V^old_t(s_t), the advantage estimate. With score_t the score of a_t under the NEW
policy, onehot(a_t) - pi_theta(.|s_t), in row s_t:

    g = sum_t score_t sum_{k>=t} gamma^(k-t) c_{t,k} delta_k,   with c_{t,k} =

    "trajectory"    w(tau) = rho_{0:H-1} = P_theta(tau) / P_old(tau)    (g = w sum_t score_t A_t)
    "per_decision"  rho_{0:k}: the decisions delta_k depends on, and no later ones
    "ppo"           rho_t: only the step's own decision                 (g = sum_t score_t rho_t A_t)

where A_t = G_t - V^old_t(s_t). The first two are unbiased: E_old[w f(tau)] = E_theta[f(tau)] for
any f, and score_t delta_k (t <= k) is a function of the first k + 1 decisions and the state
they lead to, whose probability ratio is rho_{0:k}. Their mean is the on-policy estimator's at
theta (grad J(theta) when gamma = 1). Their variance is the price: E_old[w^2] =
1 + chi^2(P_theta || P_old) is a product over the steps (`weight_second_moment`) and at least
exp KL(P_theta || P_old), so it grows exponentially with the horizon and with the distance
between the policies.

"ppo" drops rho_{0:t-1}, the correction for the states the new policy would visit, and the
later ratios, so A_t stays the old policy's advantage. It is the gradient of the surrogate
L(theta) = J(theta_old) + E_old[sum_t rho_t A_t] (`surrogate`), which equals J and its gradient
at theta_old and drifts from them as theta moves: a bias for a bounded variance. With clip_coef
it is the gradient of PPO's clipped objective, min(rho_t A_t, clip(rho_t, 1 - clip_coef,
1 + clip_coef) A_t): a step contributes only while the unclipped term is the minimum, i.e.
rho_t <= 1 + clip_coef where A_t > 0 and rho_t >= 1 - clip_coef where A_t < 0.

Exact moments enumerate the trajectories under P_old (noise-free rewards: with noise the
clipped estimator's switch depends on the noise and is no longer a function of the trajectory).
"""
import numpy as np

from minipg.core.distributions import Categorical
from minipg.exact.mdp import Episodes, _coefficient, _sum_into_rows

__all__ = ["ESTIMATORS", "ratios", "off_policy_episode_grads", "off_policy_estimate_grad",
           "off_policy_moments", "weight_second_moment", "kl", "surrogate"]

ESTIMATORS = ("trajectory", "per_decision", "ppo")


def ratios(mdp, theta, theta_old, episodes):
    """rho_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t) for every step, shape (H, N)."""
    pi, pi_old = mdp.policy(theta), mdp.policy(theta_old)
    return pi[episodes.states, episodes.actions] / pi_old[episodes.states, episodes.actions]


def off_policy_episode_grads(mdp, theta, theta_old, episodes, estimator, *, clip_coef=None):
    """One estimate of the gradient at theta per episode of pi_old, shape (N, S, A).

    estimator: "trajectory", "per_decision" or "ppo" (module docstring); clip_coef only with
    "ppo" (None: the unclipped surrogate's gradient).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if clip_coef is not None:
        if estimator != "ppo":
            raise ValueError(f"clip_coef applies to estimator 'ppo' only, got {estimator!r}")
        clip_coef = _coefficient("clip_coef", clip_coef)
    theta, theta_old = mdp._check_theta(theta), mdp._check_theta(theta_old)
    if not isinstance(episodes, Episodes):
        raise TypeError(f"episodes must be minipg.exact.mdp.Episodes, got {type(episodes).__name__}")
    rho = ratios(mdp, theta, theta_old, episodes)                               # (H, N)
    # A_t = G_t - V^old_t(s_t): the old policy's advantage estimate, as PPO computes it.
    advantages = mdp.psi_weights(theta_old, episodes, "baseline")
    if estimator == "trajectory":
        weights = rho.prod(axis=0) * advantages                                 # w(tau) A_t
    elif estimator == "per_decision":
        # GAE with lam = 0 is the TD residual delta_k; the reward-to-go of rho_{0:k} delta_k
        # is sum_{k>=t} gamma^(k-t) rho_{0:k} delta_k.
        delta = mdp.psi_weights(theta_old, episodes, "gae", lam=0.0)
        weighted = episodes._replace(rewards=np.cumprod(rho, axis=0) * delta)
        weights = mdp.psi_weights(theta, weighted, "reward_to_go")
    else:
        weights = rho * advantages
        if clip_coef is not None:
            active = np.where(advantages > 0, rho <= 1 + clip_coef, rho >= 1 - clip_coef)
            weights = np.where(active, weights, 0.0)
    score = Categorical(theta[episodes.states]).score(episodes.actions)        # (H, N, A)
    return _sum_into_rows(episodes.states, weights[..., None] * score, mdp.n_states)


def off_policy_estimate_grad(mdp, theta, theta_old, n_episodes, estimator, rng, *,
                             clip_coef=None):
    """Mean of off_policy_episode_grads over n_episodes fresh episodes of pi_old."""
    episodes = mdp.sample_episodes(theta_old, n_episodes, rng)
    return off_policy_episode_grads(mdp, theta, theta_old, episodes, estimator,
                                    clip_coef=clip_coef).mean(axis=0)


def off_policy_moments(mdp, theta, theta_old, estimator, *, clip_coef=None):
    """Exact mean and variance (per entry, (S, A) each) of the single-episode estimator when
    the episode comes from pi_old: sums over every trajectory weighted by P_old(tau)."""
    if mdp.reward_noise > 0:
        raise ValueError("off_policy_moments needs noise-free rewards (reward_noise = 0): the "
                         "clipped estimator is not a function of the trajectory alone")
    grads = off_policy_episode_grads(mdp, theta, theta_old, mdp.trajectories(), estimator,
                                     clip_coef=clip_coef)
    prob = mdp.trajectory_probs(theta_old)
    mean = np.tensordot(prob, grads, axes=1)
    return mean, np.tensordot(prob, (grads - mean) ** 2, axes=1)


def weight_second_moment(mdp, theta, theta_old):
    """E_old[w(tau)^2] = sum_tau P_theta(tau)^2 / P_old(tau) = 1 + chi^2(P_theta || P_old).

    The environment's factors appear once (P^2 / P = P), the policy's as pi^2 / pi_old, so a
    backward recursion over the horizon gives it without listing trajectories:

        M_{H-1}(s) = sum_a pi(a|s)^2 / pi_old(a|s)
        M_t(s)     = sum_a pi(a|s)^2 / pi_old(a|s) sum_s' P(s'|s, a) M_{t+1}(s'),   E = rho0 . M_0

    When the states are the time steps it is prod_t (1 + chi^2_t): exponential in the horizon.
    """
    pi, pi_old = mdp.policy(theta), mdp.policy(theta_old)
    factor = pi ** 2 / pi_old                                                   # (S, A)
    M = np.ones(mdp.n_states)
    for _ in range(mdp.horizon):
        M = (factor * (mdp.P @ M)).sum(axis=1)
    return float(mdp.rho0 @ M)


def kl(mdp, theta_p, theta_q):
    """KL(P_p || P_q) between the trajectory distributions of two policies.

    log P_p(tau) - log P_q(tau) = sum_t log pi_p(a_t|s_t) - log pi_q(a_t|s_t): the transitions
    cancel, and the expectation is the policies' KL at each visited state, summed over time,

        KL(P_p || P_q) = sum_t sum_s d^p_t(s) KL(pi_p(.|s) || pi_q(.|s)).

    kl(mdp, theta_old, theta) / H is the per-step KL that PPO's approx_kl estimates.
    """
    pi_p, pi_q = mdp.policy(theta_p), mdp.policy(theta_q)
    per_state = (pi_p * (np.log(pi_p) - np.log(pi_q))).sum(axis=1)             # (S,)
    return float(mdp.state_distribution(theta_p).sum(axis=0) @ per_state)


def surrogate(mdp, theta, theta_old):
    """L(theta) = J(theta_old) + sum_t sum_s d^old_t(s) sum_a pi_theta(a|s) A^old_t(s, a).

    The objective PPO and TRPO climb with old data: the true J(theta) would weight by d^theta_t,
    the states the new policy visits. L and J agree, with their gradients, at theta_old; the
    unclipped "ppo" estimator's mean is grad L.
    """
    pi = mdp.policy(theta)
    Q, V = mdp.Q_and_V(theta_old)
    d = mdp.state_distribution(theta_old)
    return mdp.J(theta_old) + float(np.einsum("ts,sa,tsa->", d, pi, Q - V[:-1, :, None]))

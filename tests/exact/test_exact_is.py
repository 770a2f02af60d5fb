"""Importance sampling on old episodes, exactly (minipg/exact/importance.py).

Episodes come from pi_old; the gradient is wanted at theta. The trajectory-level and per-decision
estimators are unbiased and their variance grows with the distance between the policies; PPO's
one-step ratio trades that for a bias (it climbs a surrogate), and its clip switches the gradient
off once the ratios leave [1 - clip_coef, 1 + clip_coef].
"""
import numpy as np
import pytest

from statcheck import assert_sample_variance_within, assert_within, standard_errors

from minipg.exact.examples import layered_mdp, random_mdp
from minipg.exact.mdp import TabularMDP
from minipg.exact.importance import (ESTIMATORS, kl, off_policy_episode_grads, off_policy_estimate_grad,
                             off_policy_moments, ratios, surrogate, weight_second_moment)


def uphill(mdp, theta_old, alpha):
    """theta_old + alpha * grad J(theta_old) / |grad J(theta_old)|: the path a PPO update takes."""
    grad = mdp.grad_J(theta_old)
    return theta_old + alpha * grad / np.linalg.norm(grad)


def chain_mdp(H=5, A=3, seed=0):
    """State = time step, whatever the action: the actions choose rewards, never states."""
    P = np.zeros((H, A, H))
    P[np.arange(H), :, np.minimum(np.arange(H) + 1, H - 1)] = 1.0
    R = np.zeros((H, A))
    R[np.arange(H), np.random.default_rng(seed).integers(0, A, H)] = 1.0
    return TabularMDP(P, R, np.eye(H)[0], H)


def relative_error(estimate, target):
    return np.linalg.norm(estimate - target) / np.linalg.norm(target)


# ------------------------------------------------------------------------------------------
# The weights
# ------------------------------------------------------------------------------------------

def test_on_policy_the_ratios_are_one_and_each_estimator_is_its_on_policy_twin():
    mdp, theta = random_mdp(40, H=5)
    episodes = mdp.sample_episodes(theta, 200, np.random.default_rng(40))
    np.testing.assert_array_equal(ratios(mdp, theta, theta, episodes), 1.0)
    advantage = mdp.episode_grads(theta, episodes, "baseline")
    for estimator in ESTIMATORS:
        np.testing.assert_allclose(
            off_policy_episode_grads(mdp, theta, theta, episodes, estimator), advantage,
            rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        off_policy_episode_grads(mdp, theta, theta, episodes, "ppo", clip_coef=0.2), advantage,
        rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_the_trajectory_weight_has_mean_one_and_the_second_moment_of_the_recursion(alpha):
    # w = P_theta / P_old: E_old[w] = sum_tau P_theta = 1; E_old[w^2] = sum_tau P_theta^2 / P_old,
    # listed trajectory by trajectory against weight_second_moment's backward recursion.
    mdp, theta_old = random_mdp(41, H=5)
    theta = uphill(mdp, theta_old, alpha)
    p, p_old = mdp.trajectory_probs(theta), mdp.trajectory_probs(theta_old)
    w = ratios(mdp, theta, theta_old, mdp.trajectories()).prod(axis=0)
    np.testing.assert_allclose(w, p / p_old, rtol=1e-12)
    assert p_old @ w == pytest.approx(1.0, abs=1e-12)
    assert weight_second_moment(mdp, theta, theta_old) == pytest.approx(p_old @ w ** 2, rel=1e-12)
    assert weight_second_moment(mdp, theta, theta_old) > 1.0


def test_the_second_moment_of_the_trajectory_weight_is_exponential_in_the_horizon():
    # When the states are the time steps and the policy changes the same way at every step,
    # E_old[w^2] = (sum_a pi(a)^2 / pi_old(a))^H: every extra step multiplies it again.
    pi_old, pi = np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.3, 0.3])
    per_step = (pi ** 2 / pi_old).sum()
    for H in (1, 3, 6):
        mdp = chain_mdp(H)
        theta_old, theta = np.tile(np.log(pi_old), (H, 1)), np.tile(np.log(pi), (H, 1))
        assert weight_second_moment(mdp, theta, theta_old) == pytest.approx(per_step ** H,
                                                                            rel=1e-12)


@pytest.mark.parametrize("make", [random_mdp, layered_mdp])
def test_kl_is_the_per_state_kl_summed_over_visits_and_bounds_the_weight_from_below(make):
    # KL(P_p || P_q) = E_p[log P_p / P_q] over trajectories equals the chain-rule sum
    # sum_t sum_s d^p_t(s) KL(pi_p || pi_q)(s). Jensen: log E_old[w^2] = log E_theta[w]
    # >= E_theta[log w] = KL(P_theta || P_old), so E_old[w^2] >= exp KL(P_theta || P_old).
    mdp, theta_old = make(42, H=5)
    for alpha in (0.3, 1.0, 3.0):
        theta = uphill(mdp, theta_old, alpha)
        p, p_old = mdp.trajectory_probs(theta), mdp.trajectory_probs(theta_old)
        assert kl(mdp, theta, theta_old) == pytest.approx(p @ np.log(p / p_old), rel=1e-10)
        assert kl(mdp, theta_old, theta) == pytest.approx(p_old @ np.log(p_old / p), rel=1e-10)
        assert weight_second_moment(mdp, theta, theta_old) >= np.exp(kl(mdp, theta, theta_old))
    assert kl(mdp, theta_old, theta_old) == 0.0


def test_the_bound_needs_the_kl_from_the_new_policy_and_the_example_table_shows_both():
    # The last row of the table in docs/derivation.md (examples/importance_sampling.py: 6-step
    # layered MDP, seed 0, the 25th point of its path). PPO's approx_kl estimates
    # KL(P_old || P_theta); the bound is in the other direction, and here the two differ enough
    # that the wrong one would seem to break it.
    mdp, theta_old = layered_mdp(0, width=2, A=3, H=6)
    theta = uphill(mdp, theta_old, np.geomspace(0.1, 10.0, 28)[24])
    H = mdp.horizon
    forward, reverse = kl(mdp, theta_old, theta) / H, kl(mdp, theta, theta_old) / H
    second_moment = weight_second_moment(mdp, theta, theta_old)
    assert (round(forward, 3), round(reverse, 3), round(second_moment, 1)) == (0.506, 0.304, 12.4)
    assert np.exp(H * reverse) == pytest.approx(6.21, abs=0.005)
    assert np.exp(H * reverse) <= second_moment < np.exp(H * forward)
    assert round(np.exp(H * forward), 1) == 20.8 and round(forward / reverse, 1) == 1.7


# ------------------------------------------------------------------------------------------
# Unbiased, and the variance that pays for it
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("estimator", ["trajectory", "per_decision"])
@pytest.mark.parametrize("make", [random_mdp, layered_mdp])
def test_importance_sampling_is_exactly_unbiased_all_along_the_path(make, estimator):
    mdp, theta_old = make(43, H=5)
    for alpha in (0.0, 0.5, 1.5, 4.0):
        theta = uphill(mdp, theta_old, alpha)
        mean, _ = off_policy_moments(mdp, theta, theta_old, estimator)
        np.testing.assert_allclose(mean, mdp.grad_J(theta), rtol=0, atol=1e-12)


@pytest.mark.parametrize("estimator", ["trajectory", "per_decision"])
def test_with_discounting_importance_sampling_reproduces_the_on_policy_estimator_mean(estimator):
    # Reweighting changes the distribution, not the estimator: its mean is that of the usual
    # (gamma^t-less) estimator G_t - b at theta, biased for J_gamma exactly as on-policy.
    mdp, theta_old = random_mdp(44, H=5, gamma=0.8)
    theta = uphill(mdp, theta_old, 1.0)
    mean, _ = off_policy_moments(mdp, theta, theta_old, estimator)
    np.testing.assert_allclose(mean, mdp.exact_moments(theta, "reward_to_go")[0], rtol=1e-10,
                               atol=1e-13)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_sampled_off_policy_estimates_agree_with_the_exact_mean_and_variance(estimator):
    mdp, theta_old = layered_mdp(45, H=5)
    theta = uphill(mdp, theta_old, 1.0)
    per_episode = off_policy_episode_grads(
        mdp, theta, theta_old, mdp.sample_episodes(theta_old, 40_000, np.random.default_rng(45)),
        estimator, clip_coef=0.2 if estimator == "ppo" else None)
    mean, variance = off_policy_moments(mdp, theta, theta_old, estimator,
                                        clip_coef=0.2 if estimator == "ppo" else None)
    assert_within(per_episode.mean(axis=0), mean, standard_errors(per_episode))
    assert_sample_variance_within(per_episode, variance, k=5.0)
    if estimator != "ppo":
        np.testing.assert_allclose(mean, mdp.grad_J(theta), rtol=0, atol=1e-12)


def test_off_policy_estimate_grad_is_the_mean_over_episodes_of_the_old_policy():
    mdp, theta_old = layered_mdp(46)
    theta = uphill(mdp, theta_old, 0.5)
    estimate = off_policy_estimate_grad(mdp, theta, theta_old, 300, "per_decision",
                                        np.random.default_rng(46))
    episodes = mdp.sample_episodes(theta_old, 300, np.random.default_rng(46))
    np.testing.assert_allclose(
        estimate,
        off_policy_episode_grads(mdp, theta, theta_old, episodes, "per_decision").mean(axis=0),
        rtol=1e-14)


def test_the_variance_of_importance_sampling_grows_with_the_distance_travelled():
    # Exact, on one layered MDP: along the uphill path the variance of both unbiased estimators
    # rises at every step, with the trajectory weight's second moment, while a fresh batch
    # from pi_theta itself (on-policy, G_t - V_t) gets quieter as the policy sharpens.
    mdp, theta_old = layered_mdp(47, H=5)
    alphas = np.linspace(0.0, 3.0, 7)
    variance = {estimator: [off_policy_moments(mdp, uphill(mdp, theta_old, a), theta_old,
                                               estimator)[1].sum() for a in alphas]
                for estimator in ("trajectory", "per_decision")}
    second_moment = [weight_second_moment(mdp, uphill(mdp, theta_old, a), theta_old)
                     for a in alphas]
    on_policy = [mdp.exact_moments(uphill(mdp, theta_old, a), "baseline")[1].sum()
                 for a in alphas]
    for values in (*variance.values(), second_moment):
        assert np.all(np.diff(values) > 0)
    assert variance["trajectory"][-1] > 2.5 * on_policy[-1]
    assert on_policy[-1] < on_policy[0]


# ------------------------------------------------------------------------------------------
# PPO: one ratio per step (a surrogate), then the clip
# ------------------------------------------------------------------------------------------

def test_the_one_step_ratio_estimates_the_gradient_of_the_surrogate_not_of_J():
    mdp, theta_old = random_mdp(48, H=5)
    # L and J touch at theta_old: same value, same gradient.
    assert surrogate(mdp, theta_old, theta_old) == pytest.approx(mdp.J(theta_old), rel=1e-12)
    mean, _ = off_policy_moments(mdp, theta_old, theta_old, "ppo")
    np.testing.assert_allclose(mean, mdp.grad_J(theta_old), rtol=1e-10, atol=1e-13)
    theta = uphill(mdp, theta_old, 1.5)
    mean, _ = off_policy_moments(mdp, theta, theta_old, "ppo")
    h, numerical = 1e-6, np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[i] = h
        numerical[i] = (surrogate(mdp, theta + step, theta_old)
                        - surrogate(mdp, theta - step, theta_old)) / (2 * h)
    np.testing.assert_allclose(mean, numerical, rtol=1e-6, atol=1e-9)
    assert relative_error(mean, mdp.grad_J(theta)) > 0.1


def test_the_surrogate_is_exact_when_actions_do_not_move_the_state():
    # The surrogate weights the new policy's actions by the OLD state distribution and the OLD
    # advantages. In a chain whose state is the time step, d_t does not depend on the policy,
    # and A_t(s, a) = R(s, a) - E_pi[R(s, .)] changes with the policy only by a per-state
    # constant, which a baseline absorbs: grad L = grad J everywhere.
    mdp = chain_mdp(H=4)
    theta_old = np.random.default_rng(49).normal(size=(4, 3))
    for alpha in (1.0, 3.0):
        theta = uphill(mdp, theta_old, alpha)
        np.testing.assert_allclose(off_policy_moments(mdp, theta, theta_old, "ppo")[0],
                                   mdp.grad_J(theta), rtol=1e-10, atol=1e-13)


def test_the_clip_changes_nothing_inside_the_range_and_switches_the_gradient_off_outside():
    mdp, theta_old = layered_mdp(50, H=4)
    episodes = mdp.trajectories()
    # Near theta_old every ratio is within [0.8, 1.2]: clipped and unclipped coincide.
    near = uphill(mdp, theta_old, 0.05)
    assert np.abs(ratios(mdp, near, theta_old, episodes) - 1).max() < 0.2
    np.testing.assert_array_equal(
        off_policy_episode_grads(mdp, near, theta_old, episodes, "ppo", clip_coef=0.2),
        off_policy_episode_grads(mdp, near, theta_old, episodes, "ppo"))
    # Further on, a step contributes rho_t A_t score_t only while its ratio has not passed
    # 1 + clip_coef in the direction a positive advantage pushes it (1 - clip_coef for a
    # negative one); the other steps contribute nothing. Built here step by step.
    far = uphill(mdp, theta_old, 2.0)
    rho = ratios(mdp, far, theta_old, episodes)
    advantages = mdp.psi_weights(theta_old, episodes, "baseline")             # G_t - V^old_t
    active = np.where(advantages > 0, rho <= 1.2, rho >= 0.8)
    assert 0.2 < active.mean() < 0.9
    pi = mdp.policy(far)
    expected = np.zeros((episodes.states.shape[1], mdp.n_states, mdp.n_actions))
    for (t, m) in zip(*np.nonzero(active)):
        s, a = episodes.states[t, m], episodes.actions[t, m]
        expected[m, s] += rho[t, m] * advantages[t, m] * (np.eye(mdp.n_actions)[a] - pi[s])
    np.testing.assert_allclose(
        off_policy_episode_grads(mdp, far, theta_old, episodes, "ppo", clip_coef=0.2),
        expected, rtol=1e-12, atol=1e-14)


def test_far_from_the_old_policy_the_clipped_gradient_is_zero_a_trust_region():
    # One state, three arms paying 1, 0, 0, uniform old policy; the new policy has moved the
    # good arm's probability to 0.6 (ratio 1.8) and each bad arm's to 0.2 (ratio 0.6). Every
    # ratio is outside [0.8, 1.2] on the side its advantage pushes: the clipped gradient is
    # exactly zero, with zero variance, while grad J(theta) = pi * (Q - V) is not. The bias is
    # all of the gradient: the clip does not estimate grad J there, it stops the update.
    mdp = TabularMDP(np.ones((1, 3, 1)), [[1.0, 0.0, 0.0]], [1.0], horizon=1)
    theta_old, theta = np.zeros((1, 3)), np.log([[0.6, 0.2, 0.2]])
    mean, variance = off_policy_moments(mdp, theta, theta_old, "ppo", clip_coef=0.2)
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(variance, 0.0)
    np.testing.assert_allclose(mdp.grad_J(theta), [[0.24, -0.12, -0.12]], rtol=1e-12)
    # Without the clip, one step has no state distribution to correct: unbiased, and noisy.
    unclipped_mean, unclipped_variance = off_policy_moments(mdp, theta, theta_old, "ppo")
    np.testing.assert_allclose(unclipped_mean, mdp.grad_J(theta), rtol=1e-12)
    assert unclipped_variance.sum() > 0.05


# ------------------------------------------------------------------------------------------
# Clear errors
# ------------------------------------------------------------------------------------------

def test_bad_off_policy_arguments_are_rejected():
    mdp, theta = layered_mdp(51)
    episodes = mdp.trajectories()
    with pytest.raises(ValueError, match="estimator must be one of"):
        off_policy_episode_grads(mdp, theta, theta, episodes, "weighted")
    with pytest.raises(ValueError, match="clip_coef applies to estimator 'ppo' only"):
        off_policy_episode_grads(mdp, theta, theta, episodes, "trajectory", clip_coef=0.2)
    with pytest.raises(ValueError, match=r"clip_coef must be in \[0, 1\]"):
        off_policy_episode_grads(mdp, theta, theta, episodes, "ppo", clip_coef=-0.1)
    with pytest.raises(ValueError, match="theta must have shape"):
        off_policy_episode_grads(mdp, theta[:1], theta, episodes, "ppo")
    with pytest.raises(TypeError, match="episodes must be minipg.exact.mdp.Episodes"):
        off_policy_episode_grads(mdp, theta, theta, (1, 2, 3), "ppo")
    noisy, theta = layered_mdp(51, reward_noise=0.5)
    with pytest.raises(ValueError, match="needs noise-free rewards"):
        off_policy_moments(noisy, theta, theta, "trajectory")

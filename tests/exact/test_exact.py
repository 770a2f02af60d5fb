"""The policy-gradient derivation as tests, on MDPs small enough to enumerate.

grad_J is the exact gradient (a finite sum over trajectories); exact_moments gives the exact mean
and variance of each single-episode estimator; estimate_grad samples. Statistical checks use
fixed seeds and bounds of 4-5 standard errors computed from the samples themselves.
"""
import numpy as np
import pytest

from statcheck import assert_sample_variance_within, assert_within, standard_errors

from minipg.exact.examples import random_mdp, stay_or_leave_mdp, three_step_mdp
from minipg.core.distributions import Categorical
from minipg.exact.mdp import PSI, TabularMDP


# ------------------------------------------------------------------------------------------
# The objective, its exact gradient, V and Q
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_J_is_a_probability_weighted_sum_that_matches_the_backward_recursion(gamma):
    mdp, theta = random_mdp(0, gamma=gamma)
    assert mdp.n_trajectories == 6 ** 4 == mdp.trajectory_probs(theta).size
    assert mdp.trajectory_probs(theta).sum() == pytest.approx(1.0, abs=1e-12)
    Q, V = mdp.Q_and_V(theta)
    assert mdp.J(theta) == pytest.approx(mdp.rho0 @ V[0], rel=1e-12)
    np.testing.assert_allclose(V[:-1], (mdp.policy(theta) * Q).sum(axis=2), rtol=1e-12)


def finite_difference_gradient(f, theta, h=1e-5):
    numerical = np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[i] = h
        numerical[i] = (f(theta + step) - f(theta - step)) / (2 * h)
    return numerical


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_grad_J_equals_central_finite_differences_of_J(gamma):
    # J is computed from rho0, P and pi together; grad_J from the policy's scores alone. When P
    # and rho0 do not depend on theta, the scores are the whole gradient. (That a gradient
    # missing transition terms would fail this comparison: the next test.)
    mdp, theta = random_mdp(1, gamma=gamma)
    np.testing.assert_allclose(mdp.grad_J(theta), finite_difference_gradient(mdp.J, theta),
                               rtol=1e-7, atol=1e-9)


def test_when_theta_moves_the_dynamics_the_transition_terms_carry_the_gradient():
    # The same random process written twice. Original: the agent picks a ~ pi_theta(.|s), the
    # environment moves by P(s'|s, a), the reward r(s) depends on the state only. Folded: one
    # dummy action, and the environment moves by P_theta(s'|s) = sum_a pi_theta(a|s) P(s'|s, a):
    # the policy's randomness is now inside the dynamics. Both have the same J(theta). In the
    # folded MDP the policy's scores are zero and the whole gradient is in the transition terms
    # sum_t grad log P_theta(s_{t+1}|s_t) of grad log P(tau). So the finite-difference check can
    # fail: it rejects the score-only gradient here, and accepts the one with transition terms.
    base, theta = random_mdp(6, S=3, A=2, H=4, gamma=0.9)
    r = np.array([0.3, 1.0, -0.5])
    original = TabularMDP(base.P, np.tile(r[:, None], (1, 2)), base.rho0, base.horizon, base.gamma)

    def folded(theta):
        P_theta = np.einsum("sa,sap->sp", original.policy(theta), original.P)[:, None, :]
        return TabularMDP(P_theta, r[:, None], original.rho0, original.horizon, original.gamma)

    def folded_J(theta):
        return folded(theta).J(np.zeros((3, 1)))

    numerical = finite_difference_gradient(folded_J, theta)
    assert folded_J(theta) == pytest.approx(original.J(theta), rel=1e-12)
    np.testing.assert_allclose(original.grad_J(theta), numerical, rtol=1e-7, atol=1e-9)
    # Score-only in the folded MDP: zero, far from the truth.
    assert np.abs(folded(theta).grad_J(np.zeros((3, 1)))).max() == 0.0
    assert np.abs(numerical).max() > 0.05
    # With the transition terms: grad_{theta[s, b]} log P_theta(s'|s) = pi_b (P(s'|s, b) -
    # P_theta(s'|s)) / P_theta(s'|s), summed over the steps of each enumerated trajectory.
    mdp = folded(theta)
    pi, P_theta = original.policy(theta), mdp.P[:, 0, :]
    states = mdp.trajectories().states                                      # (H, M)
    weight = mdp.trajectory_probs(np.zeros((3, 1))) * (mdp.discounts @ r[states])
    with_transitions = np.zeros_like(theta)
    for s, s_next in zip(states[:-1], states[1:]):
        score = pi[s] * (original.P[s, :, s_next] - P_theta[s, s_next][:, None]) \
            / P_theta[s, s_next][:, None]                                   # (M, A)
        np.add.at(with_transitions, s, weight[:, None] * score)
    np.testing.assert_allclose(with_transitions, numerical, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_grad_J_equals_the_policy_gradient_theorem_with_exact_advantages(gamma):
    # sum_t gamma^t d_t(s) pi * (Q_t - V_t): the trajectory form after causality and baseline.
    mdp, theta = random_mdp(2, gamma=gamma)
    np.testing.assert_allclose(mdp.grad_J_from_Q(theta), mdp.grad_J(theta), rtol=1e-10,
                               atol=1e-13)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_expected_score_is_zero_to_rounding_so_a_reward_shift_changes_nothing_at_a_fixed_horizon(
        gamma):
    # sum_a pi_a (e_a - pi) = pi - pi is an identity; in floating point, a few units of the
    # last place (eps = 2.2e-16).
    logits = np.random.default_rng(3).normal(size=(5, 4)) * 3
    dist = Categorical(logits)
    scores = np.stack([dist.score(np.full(5, a)) for a in range(4)], axis=1)     # (5, K, K)
    expected_score = (dist.probs[:, :, None] * scores).sum(axis=1)
    np.testing.assert_allclose(expected_score, 0.0, atol=1e-15)
    # Every trajectory has H steps, so adding 10 to every reward adds the same
    # 10 sum_{t<H} gamma^t to every R(tau): J moves by it and the gradient does not move.
    mdp, theta = random_mdp(3, gamma=gamma)
    shifted = TabularMDP(mdp.P, mdp.R + 10.0, mdp.rho0, mdp.horizon, gamma)
    np.testing.assert_allclose(shifted.grad_J(theta), mdp.grad_J(theta), atol=1e-12)
    gain = 10.0 * mdp.horizon if gamma == 1 else 10.0 * (1 - gamma ** mdp.horizon) / (1 - gamma)
    assert shifted.J(theta) == pytest.approx(mdp.J(theta) + gain, rel=1e-12)


def test_a_reward_shift_changes_the_gradient_when_episodes_can_end_early():
    # One live state; "stop" pays 1 and ends the episode (an absorbing state that pays nothing:
    # no more rewards, as after a real termination), "go" pays 0 and continues; horizon 3. The
    # reward exists only while the episode runs, so shifting it by c adds c times the episode's
    # own length to R(tau). As it stands stopping is better; shifted by +1 (stop 2, go 1 a step
    # for up to 3 steps) going on is: the gradient changes sign.
    P = np.zeros((2, 2, 2))
    P[0, 0, 1] = P[0, 1, 0] = 1.0          # live state 0: action 0 stops, action 1 goes on
    P[1, :, 1] = 1.0                       # state 1: ended, for good
    R = np.array([[1.0, 0.0], [0.0, 0.0]])
    live = np.array([[1.0, 1.0], [0.0, 0.0]])
    theta = np.zeros((2, 2))
    original = TabularMDP(P, R, [1.0, 0.0], horizon=3)
    shifted = TabularMDP(P, R + 1.0 * live, [1.0, 0.0], horizon=3)
    assert original.grad_J(theta)[0, 0] > 0 > original.grad_J(theta)[0, 1]
    assert shifted.grad_J(theta)[0, 1] > 0 > shifted.grad_J(theta)[0, 0]


# ------------------------------------------------------------------------------------------
# The estimators: exactly unbiased (gamma = 1), and the sampler agrees within standard errors
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("psi", PSI)
@pytest.mark.parametrize("lam", [0.95, 0.3])
def test_every_estimator_is_exactly_unbiased_with_exact_time_dependent_values(psi, lam):
    for mdp, theta in (random_mdp(4, H=5), (three_step_mdp(), np.ones((3, 3)))):
        mean, _ = mdp.exact_moments(theta, psi, lam)
        np.testing.assert_allclose(mean, mdp.grad_J(theta), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("psi", PSI)
def test_monte_carlo_mean_and_variance_agree_with_the_exact_ones(psi):
    mdp, theta = random_mdp(5, H=5, reward_noise=0.6)
    per_episode = mdp.episode_grads(
        theta, mdp.sample_episodes(theta, 20_000, np.random.default_rng(5)), psi)
    assert_within(per_episode.mean(axis=0), mdp.grad_J(theta), standard_errors(per_episode))
    # The sample variance against exact_moments' variance (noise included).
    _, exact_variance = mdp.exact_moments(theta, psi)
    assert_sample_variance_within(per_episode, exact_variance, k=5.0)


def test_reward_noise_adds_exactly_the_variance_exact_moments_says():
    # Zero rewards plus noise: the whole variance is noise, so a wrong sigma^2 cannot hide.
    mdp = three_step_mdp()
    silent = TabularMDP(mdp.P, np.zeros_like(mdp.R), mdp.rho0, mdp.horizon, reward_noise=0.6)
    theta = np.ones((3, 3))
    for psi in ("return", "gae"):
        mean, variance = silent.exact_moments(theta, psi)
        np.testing.assert_allclose(mean, 0.0, atol=1e-15)
        g = silent.episode_grads(
            theta, silent.sample_episodes(theta, 20_000, np.random.default_rng(14)), psi)
        assert_sample_variance_within(g, variance, k=5.0)


def test_estimate_grad_is_reproducible_and_is_the_mean_of_the_per_episode_estimates():
    mdp, theta = random_mdp(6)
    a = mdp.estimate_grad(theta, 500, "gae", np.random.default_rng(7), lam=0.9)
    b = mdp.estimate_grad(theta, 500, "gae", np.random.default_rng(7), lam=0.9)
    per_episode = mdp.episode_grads(
        theta, mdp.sample_episodes(theta, 500, np.random.default_rng(7)), "gae", lam=0.9)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, per_episode.mean(axis=0), rtol=1e-14)


def test_bandit_weights_raw_and_baselined():
    # Two one-step states, uniform policy: V(s) is the mean of the state's two rewards.
    from minipg.exact.mdp import Episodes
    P = np.full((2, 2, 2), 0.5)
    mdp = TabularMDP(P, [[12.0, 7.0], [2.0, 5.0]], [0.5, 0.5], horizon=1)
    theta = np.zeros((2, 2))
    samples = Episodes(states=np.array([[0, 1]]), actions=np.array([[1, 1]]),
                       rewards=np.array([[7.0, 5.0]]))                   # (s1, a2), (s2, a2)
    np.testing.assert_allclose(mdp.psi_weights(theta, samples, "return"), [[7.0, 5.0]])
    np.testing.assert_allclose(mdp.psi_weights(theta, samples, "baseline"), [[-2.5, 1.5]])


# ------------------------------------------------------------------------------------------
# Variance: ordering of the estimators, and the 1/N law
# ------------------------------------------------------------------------------------------

def test_variance_is_ordered_return_then_reward_to_go_then_baseline_on_the_three_step_mdp():
    mdp, theta = three_step_mdp(), np.zeros((3, 3))
    exact = {psi: mdp.exact_moments(theta, psi)[1].sum() for psi in PSI}
    assert exact["return"] > exact["reward_to_go"] > exact["baseline"] > exact["gae"]
    # The sampler shows the same ordering; the gaps are many standard errors wide.
    episodes = mdp.sample_episodes(theta, 20_000, np.random.default_rng(8))
    measured, se = {}, {}
    for psi in PSI:
        g = mdp.episode_grads(theta, episodes, psi)
        squared_norm = ((g - g.mean(axis=0)) ** 2).sum(axis=(1, 2))     # trace of covariance
        measured[psi], se[psi] = squared_norm.mean(), standard_errors(squared_norm)
        assert_within(measured[psi], exact[psi], se[psi], k=5.0)
    for high, low in [("return", "reward_to_go"), ("reward_to_go", "baseline")]:
        assert measured[high] - measured[low] > 5 * (se[high] + se[low])


def test_variance_of_a_batch_mean_falls_as_one_over_N():
    mdp, theta = three_step_mdp(), np.zeros((3, 3))
    single = mdp.exact_moments(theta, "reward_to_go")[1].sum()     # exact Var[g_1] (trace)
    rng = np.random.default_rng(9)
    n_batches = 2000
    for N in (1, 4, 16, 64):
        g = mdp.episode_grads(theta, mdp.sample_episodes(theta, n_batches * N, rng), "reward_to_go")
        batch_means = g.reshape(n_batches, N, 3, 3).mean(axis=1)
        squared_norm = ((batch_means - batch_means.mean(axis=0)) ** 2).sum(axis=(1, 2))
        # N * Var[g_N] must equal Var[g_1]; the bound is 5 standard errors of the estimate.
        assert_within(N * squared_norm.mean(), single, N * standard_errors(squared_norm), k=5.0)


# ------------------------------------------------------------------------------------------
# GAE and the time-blind critic
# ------------------------------------------------------------------------------------------

def test_gae_is_biased_when_the_critic_cannot_see_time():
    # With a finite horizon, V_t(s) depends on the steps left. The best critic V(s) that ignores
    # t is the visit-weighted average of V_t(s). The TD residuals then keep a conditional mean
    # E[delta_{t+l} | s_t, a_t] != 0 for l >= 1, and GAE(lam) sums them with weight lam^l. With
    # e_t = V_bar - V_t and gamma = 1, GAE with V_bar minus GAE with the exact V_t is
    #   -e_t(s_t) + (1 - lam) sum_{l>=1} lam^(l-1) e_{t+l}(s_{t+l}):
    # the first term is a harmless baseline; the rest depends on a_t through the states it leads
    # to. It vanishes at lam = 1 (plain G_t - V(s_t)) and grows as lam falls.
    mdp, theta = stay_or_leave_mdp(), np.zeros((2, 2))
    grad = mdp.grad_J(theta)
    V_bar = mdp.time_averaged_V(theta)
    assert grad[0, 1] > 0                   # leaving home is the better move ...
    # ... but most visits to "away" come late, with few steps left, so the critic undervalues
    # it at t = 1 (4.2 against 6), and the TD residual of leaving at t = 0, 0 + V(1) - V(0),
    # falls below that of staying, 1 + V(0) - V(0) = 1.
    assert V_bar[1] < mdp.V(theta)[1, 1] and V_bar[1] - V_bar[0] < 1.0
    assert (V_bar[1], mdp.V(theta)[1, 1]) == (pytest.approx(4.2, rel=1e-12), 6.0)
    relative_bias = {}
    for lam in (0.0, 0.5, 0.95, 1.0):
        mean, _ = mdp.exact_moments(theta, "gae", lam, values=V_bar)
        relative_bias[lam] = np.linalg.norm(mean - grad) / np.linalg.norm(grad)
        if lam == 0.0:
            assert mean[0, 1] < 0           # TD(0) with this critic points the wrong way
    assert relative_bias[0.0] > relative_bias[0.5] > relative_bias[0.95] > 0.05
    assert relative_bias[1.0] < 1e-12
    # The figures docs/derivation.md quotes (115%, 64%, 7%). They are finite sums over the 8
    # trajectories of a uniform policy, exact up to double rounding (~1e-15): pinned to 1e-9,
    # and to the whole percent the text rounds them to.
    pinned = {0.0: 1.1494505495, 0.5: 0.6384615385, 0.95: 0.0695824176}
    for lam, value in pinned.items():
        assert relative_bias[lam] == pytest.approx(value, abs=1e-9)
    assert [round(100 * relative_bias[lam]) for lam in pinned] == [115, 64, 7]
    # A baseline never biases, whatever function of the state it is.
    np.testing.assert_allclose(mdp.exact_moments(theta, "baseline", values=V_bar)[0], grad,
                               atol=1e-12)
    # The sampler sees it too: GAE(0.95) with V_bar is many standard errors off grad J and
    # within 4 of its own exact (biased) mean; with the exact V_t(s) it is on target.
    episodes = mdp.sample_episodes(theta, 20_000, np.random.default_rng(10))
    blind = mdp.episode_grads(theta, episodes, "gae", 0.95, values=V_bar)
    assert np.abs(blind.mean(axis=0) - grad).max() > 5 * standard_errors(blind).max()
    assert_within(blind.mean(axis=0), mdp.exact_moments(theta, "gae", 0.95, values=V_bar)[0],
                  standard_errors(blind))
    exact_critic = mdp.episode_grads(theta, episodes, "gae", 0.95)
    assert_within(exact_critic.mean(axis=0), grad, standard_errors(exact_critic))


# ------------------------------------------------------------------------------------------
# gamma < 1: the estimator everyone uses is not the gradient of the discounted J
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [11, 12])
def test_discounted_reward_to_go_without_gamma_t_has_an_exactly_known_bias(seed):
    # grad J_gamma = E[sum_t gamma^t score_t G_t]; dropping gamma^t leaves
    #   bias = sum_t (1 - gamma^t) d_t(s) pi * A_t(s, .)        (A_t: discounted advantage)
    mdp, theta = random_mdp(seed, H=5, gamma=0.8)
    grad = mdp.grad_J(theta)
    pi, d = mdp.policy(theta), mdp.state_distribution(theta)
    Q, V = mdp.Q_and_V(theta)
    predicted_bias = np.einsum("t,ts,sa,tsa->sa", 1 - mdp.discounts, d, pi, Q - V[:-1, :, None])
    for psi in ("reward_to_go", "baseline", "gae"):
        usual, _ = mdp.exact_moments(theta, psi)
        np.testing.assert_allclose(usual - grad, predicted_bias, atol=1e-12)
        assert np.linalg.norm(usual - grad) > 0.05 * np.linalg.norm(grad)
        corrected, _ = mdp.exact_moments(theta, psi, weight_by_discount=True)
        np.testing.assert_allclose(corrected, grad, atol=1e-12)
    # The full discounted return R(tau) = sum_k gamma^k r_k needs no correction.
    np.testing.assert_allclose(mdp.exact_moments(theta, "return")[0], grad, atol=1e-12)


def test_discounted_reward_to_go_without_gamma_t_can_point_downhill():
    # Stay-or-leave with gamma = 0.45 and a policy that mostly stays: home is visited at every
    # step, and late in the episode staying is the better move. The usual estimator weighs those
    # late visits as much as the first; J_gamma weighs them by gamma^t. The signs disagree.
    mdp, theta = stay_or_leave_mdp(gamma=0.45), np.array([[1.25, 0.0], [0.0, 0.0]])
    grad = mdp.grad_J(theta)
    usual, _ = mdp.exact_moments(theta, "reward_to_go")
    assert grad[0, 1] > 0 > usual[0, 1]
    assert np.sum(usual * grad) < 0         # a step along it lowers J_gamma
    per_episode = mdp.episode_grads(
        theta, mdp.sample_episodes(theta, 50_000, np.random.default_rng(13)), "reward_to_go")
    assert per_episode.mean(axis=0)[0, 1] < -4 * standard_errors(per_episode)[0, 1]
    assert_within(per_episode.mean(axis=0), usual, standard_errors(per_episode))


# ------------------------------------------------------------------------------------------
# Clear errors
# ------------------------------------------------------------------------------------------

def good_arguments():
    return dict(P=np.full((2, 2, 2), 0.5), R=np.zeros((2, 2)), rho0=[0.5, 0.5], horizon=3)


@pytest.mark.parametrize("change, message", [
    (dict(P=np.full((2, 2, 2), 0.4)), r"P\[0, 0, :\] sums to 0.8"),
    (dict(P=np.array([[[1.5, -0.5], [0.5, 0.5]]] * 2)), r"non-negative; P\[0, 0, 1\] = -0.5"),
    (dict(P=np.full((2, 2, 3), 1 / 3)), r"P must have shape \(S, A, S\)"),
    (dict(P=np.full((2, 2), 0.5)), r"P must be 3-d"),
    (dict(R=np.zeros((2, 3))), r"R must have shape \(2, 2\)"),
    (dict(R=[[0.0, np.nan], [0.0, 0.0]]), r"R contains a non-finite"),
    (dict(rho0=[0.7, 0.7]), r"rho0 must be a distribution"),
    (dict(horizon=0), r"horizon must be an integer >= 1"),
    (dict(horizon=2.5), r"horizon must be an integer >= 1"),
    (dict(horizon=20), r"horizon=20 is too large to enumerate: it would be "
                       r"1,099,511,627,776 trajectories"),
    (dict(gamma=1.5), r"gamma must be in \[0, 1\]"),
])
def test_malformed_mdps_are_rejected_with_a_message_naming_the_argument(change, message):
    with pytest.raises(ValueError, match=message):
        TabularMDP(**{**good_arguments(), **change})


def test_bad_estimator_arguments_are_rejected():
    mdp = TabularMDP(**good_arguments())
    theta, rng = np.zeros((2, 2)), np.random.default_rng(0)
    with pytest.raises(ValueError, match="psi must be one of"):
        mdp.estimate_grad(theta, 10, "advantage", rng)
    with pytest.raises(ValueError, match=r"theta must have shape \(2, 2\)"):
        mdp.estimate_grad(np.zeros(4), 10, "return", rng)
    with pytest.raises(ValueError, match="n_episodes must be an integer >= 1"):
        mdp.estimate_grad(theta, 0, "return", rng)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        mdp.estimate_grad(theta, 10, "gae", rng, lam=1.5)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator, an int seed"):
        mdp.estimate_grad(theta, 10, "return", "seed")
    np.testing.assert_array_equal(mdp.estimate_grad(theta, 10, "return", 3),       # int seeds
                                  mdp.estimate_grad(theta, 10, "return", np.random.default_rng(3)))
    with pytest.raises(ValueError, match="values must have shape"):
        mdp.estimate_grad(theta, 10, "gae", rng, values=np.zeros(3))
    with pytest.raises(ValueError, match="weight_by_discount applies to"):
        mdp.estimate_grad(theta, 10, "return", rng, weight_by_discount=True)

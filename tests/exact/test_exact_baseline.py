"""The variance-minimising baseline b*, computed exactly (minipg/exact/baseline.py).

b*_k(t, s) = E[g_k^2 G_t | t, s] / E[g_k^2 | t, s] per parameter, E[|g|^2 G_t | .] / E[|g|^2 | .]
as one number per state. The tests: its closed form, that every baseline leaves the estimator
unbiased, that b* minimises the variance when each state is visited at most once per episode
(by exactly the amount the excess-variance formula says), and two places where V is not the
best baseline: a confident bandit, and a state the agent can return to.
"""
import numpy as np
import pytest

from statcheck import assert_sample_variance_within, assert_within, standard_errors

from minipg.exact.examples import layered_mdp, random_mdp, stay_or_leave_mdp
from minipg.exact.mdp import BASELINES, TabularMDP
from minipg.exact.baseline import optimal_baseline, optimal_baseline_from_Q


def visited(mdp, theta):
    """Mask of the (t, s) with Pr(s_t = s) > 0: where a baseline multiplies a score."""
    return mdp.state_distribution(theta) > 0


def trace_variance(mdp, theta, psi, **options):
    return mdp.exact_moments(theta, psi, **options)[1].sum()


# ------------------------------------------------------------------------------------------
# What b* is
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gamma", [1.0, 0.8])
@pytest.mark.parametrize("make", [random_mdp, layered_mdp])
def test_b_star_by_enumeration_equals_its_closed_form_from_Q(make, gamma):
    # Given (t, s_t, a_t) the score is fixed and E[G_t] = Q_t(s, a), so the trajectory sums
    # collapse to sums over actions: b*_k = Q_k - pi_k A_k / (1 - pi_k) per parameter.
    mdp, theta = make(20, gamma=gamma)
    seen = visited(mdp, theta)
    for per_parameter in (True, False):
        enumerated = optimal_baseline(mdp, theta, per_parameter=per_parameter)
        closed_form = optimal_baseline_from_Q(mdp, theta, per_parameter=per_parameter)
        np.testing.assert_allclose(enumerated[seen], closed_form[seen], rtol=1e-10)
        assert (enumerated[~seen] == 0).all()
    # b* is not V here: the policy is far from uniform.
    V = mdp.V(theta)[:-1]
    assert np.abs(optimal_baseline(mdp, theta, per_parameter=False) - V)[seen].max() > 0.05


def test_at_a_uniform_policy_the_scalar_b_star_is_V_and_the_per_parameter_one_is_not():
    # Uniform pi: |g(a)|^2 = 1 - 2/A + 1/A is the same for every action, so the weighting in
    # E[|g|^2 G | s] / E[|g|^2 | s] cancels and leaves E[G | s] = V. Per parameter, with
    # pi_k = 1/3: b*_k = Q_k - (1/3) A_k / (2/3) = (Q_k + V) / 2.
    mdp, _ = random_mdp(21, A=3)
    theta = np.zeros((3, 3))
    seen = visited(mdp, theta)
    Q, V = mdp.Q_and_V(theta)
    np.testing.assert_allclose(optimal_baseline(mdp, theta, per_parameter=False)[seen],
                               V[:-1][seen], rtol=1e-12)
    np.testing.assert_allclose(optimal_baseline(mdp, theta)[seen],
                               ((Q + V[:-1, :, None]) / 2)[seen], rtol=1e-12)


@pytest.mark.parametrize("psi", ["return", "reward_to_go"])
@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_leaves_the_estimator_exactly_unbiased(psi, baseline):
    # E[g_k b(t, s_t)] = E[b E[g_k | t, s_t]] = 0: whatever b is, even per parameter.
    for mdp, theta in (random_mdp(22, H=5), layered_mdp(22)):
        mean, _ = mdp.exact_moments(theta, psi, baseline=baseline)
        np.testing.assert_allclose(mean, mdp.grad_J(theta), rtol=0, atol=1e-12)


@pytest.mark.parametrize("psi", ["optimal_baseline", "optimal_baseline_scalar"])
def test_sampled_b_star_estimates_agree_with_grad_J_and_with_their_exact_variance(psi):
    mdp, theta = layered_mdp(23, reward_noise=0.4)
    per_episode = mdp.episode_grads(
        theta, mdp.sample_episodes(theta, 20_000, np.random.default_rng(23)), psi)
    assert_within(per_episode.mean(axis=0), mdp.grad_J(theta), standard_errors(per_episode))
    _, exact_variance = mdp.exact_moments(theta, psi)
    assert_sample_variance_within(per_episode, exact_variance, k=5.0)


# ------------------------------------------------------------------------------------------
# One visit per state: b* minimises the variance, exactly
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [24, 25, 26])
def test_the_excess_variance_of_a_baseline_is_its_weighted_squared_distance_from_b_star(seed):
    # With one visit per state the variance is a sum of per-step terms, each a parabola in b:
    #   Var_k(b) - Var_k(b*) = sum_{t,s} d_t(s) E[g_k^2 | s] (b(t, s) - b*_k(t, s))^2,
    # E[g_k^2 | s] = pi_k (1 - pi_k); for one b per state and the trace, E[|g|^2 | s] = 1 - |pi|^2.
    # Reward noise adds the same amount to every baseline's variance and cancels.
    mdp, theta = layered_mdp(seed, reward_noise=0.3)
    H, S = mdp.horizon, mdp.n_states
    d, pi = mdp.state_distribution(theta), mdp.policy(theta)
    b_star = optimal_baseline(mdp, theta)                                       # (H, S, A)
    b_star_scalar = optimal_baseline(mdp, theta, per_parameter=False)           # (H, S)
    floor = mdp.exact_moments(theta, "optimal_baseline")[1]
    floor_scalar = trace_variance(mdp, theta, "optimal_baseline_scalar")
    candidates = {"none": np.zeros((H, S)), "V": mdp.V(theta)[:-1],
                  "b* scalar": b_star_scalar,
                  "random": np.random.default_rng(seed).normal(1.0, 1.0, size=(H, S))}
    for name, b in candidates.items():
        variance = mdp.exact_moments(theta, "baseline", values=b)[1]
        predicted = np.einsum("ts,sa,tsa->sa", d, pi * (1 - pi), (b[..., None] - b_star) ** 2)
        np.testing.assert_allclose(variance - floor, predicted, rtol=1e-9, atol=1e-13)
        predicted_trace = np.einsum("ts,s,ts->", d, 1 - (pi ** 2).sum(axis=1),
                                    (b - b_star_scalar) ** 2)
        assert variance.sum() - floor_scalar == pytest.approx(predicted_trace, rel=1e-9,
                                                              abs=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_variance_ordering_none_rtg_V_scalar_b_star_per_parameter_b_star(seed):
    # Which links are theorems here: return >= reward-to-go because the rewards are >= 0 (the
    # dropped past adds to |Psi| on every trajectory); V >= scalar b* >= per-parameter b* by the
    # excess-variance formula above. reward-to-go >= V is not a theorem (next section shows V
    # losing to no baseline at all); these random MDPs satisfy it, by a wide margin.
    mdp, theta = layered_mdp(seed)
    variance = {name: mdp.exact_moments(theta, psi)[1] for name, psi in [
        ("none", "return"), ("reward_to_go", "reward_to_go"), ("V", "baseline"),
        ("b* scalar", "optimal_baseline_scalar"), ("b*", "optimal_baseline")]}
    trace = [v.sum() for v in variance.values()]
    assert all(high > low for high, low in zip(trace, trace[1:])), trace
    assert trace[2] > 1.05 * trace[4]                       # b* is not a rounding-error gain
    for name, v in variance.items():                        # per parameter b* wins entry by entry
        assert (variance["b*"] <= v + 1e-12).all(), name


# ------------------------------------------------------------------------------------------
# Where V is not the variance-minimising baseline
# ------------------------------------------------------------------------------------------

def confident_bandit():
    """One state, two arms paying 1 and 0, a policy that pulls the good arm 90% of the time."""
    mdp = TabularMDP(np.ones((1, 2, 1)), [[1.0, 0.0]], [1.0], horizon=1)
    return mdp, np.log([[0.9, 0.1]])


def paired_variance_gap(mdp, theta, psi_a, psi_b, n_episodes, seed, **options_b):
    """E|g_a - grad J|^2 - E|g_b - grad J|^2 from the same episodes, and its standard error.

    Both estimators are unbiased, so centring on the exact grad J gives each trace variance."""
    episodes = mdp.sample_episodes(theta, n_episodes, np.random.default_rng(seed))
    grad = mdp.grad_J(theta)
    a = ((mdp.episode_grads(theta, episodes, psi_a) - grad) ** 2).sum(axis=(1, 2))
    b = ((mdp.episode_grads(theta, episodes, psi_b, **options_b) - grad) ** 2).sum(axis=(1, 2))
    return (a - b).mean(), standard_errors(a - b)


def test_V_loses_to_no_baseline_in_a_confident_bandit():
    # V = 0.9. The rare arm's score is 9 times larger (|g|^2 = 1.62 against 0.02), so the
    # samples that need centring most are the rare pulls, whose return is 0:
    #   b* = (0.9 * 0.02 * 1 + 0.1 * 1.62 * 0) / (0.9 * 0.02 + 0.1 * 1.62) = 0.1 for both logits.
    # Excess variance E|g|^2 (b - b*)^2 with E|g|^2 = 0.18: V pays 0.18 * 0.8^2 = 0.1152, no
    # baseline 0.18 * 0.1^2 = 0.0018, and b* nothing (two arms, deterministic payoffs).
    mdp, theta = confident_bandit()
    np.testing.assert_allclose(optimal_baseline(mdp, theta), [[[0.1, 0.1]]], rtol=1e-12)
    assert mdp.V(theta)[0, 0] == pytest.approx(0.9)
    assert trace_variance(mdp, theta, "reward_to_go") == pytest.approx(0.0018, rel=1e-9)
    assert trace_variance(mdp, theta, "baseline") == pytest.approx(0.1152, rel=1e-9)
    assert trace_variance(mdp, theta, "optimal_baseline") < 1e-20
    # Measured: V's extra variance over no baseline is many standard errors wide.
    gap, se = paired_variance_gap(mdp, theta, "baseline", "reward_to_go", 20_000, seed=27)
    assert gap > 10 * se
    assert_within(gap, 0.1152 - 0.0018, se)


def test_with_a_recurring_state_b_star_can_lose_to_V_and_the_whole_episode_baseline_wins():
    # Stay or leave (away pays 0.5), staying likelier (logits 1, 0): staying brings the agent
    # home again, so the action at t decides whether home's later scores appear in the same
    # episode. The cross terms between those visits depend on the baseline and b*, which
    # minimises the per-visit terms only, ends up with 7 times V's variance. The exact
    # minimiser (whole_episode=True) regresses the whole episode's estimate on the step's score.
    mdp, theta = stay_or_leave_mdp(away=0.5), np.array([[1.0, 0.0], [0.0, 0.0]])
    whole = optimal_baseline(mdp, theta, per_parameter=False, whole_episode=True)
    variance = {"V": trace_variance(mdp, theta, "baseline"),
                "b*": trace_variance(mdp, theta, "optimal_baseline"),
                "whole episode": trace_variance(mdp, theta, "baseline", values=whole)}
    assert variance["b*"] > 6 * variance["V"] > 6 * 0.02
    assert variance["whole episode"] < 0.01 * variance["V"]
    gap, se = paired_variance_gap(mdp, theta, "optimal_baseline", "baseline", 20_000, seed=28)
    assert gap > 10 * se
    assert_within(gap, variance["b*"] - variance["V"], se)


@pytest.mark.parametrize("make, recurs", [(random_mdp, True), (layered_mdp, False)])
def test_the_whole_episode_baseline_is_where_the_exact_variance_is_flat(make, recurs):
    # The trace variance is a quadratic in the table b(t, s); central differences of it are
    # exact up to rounding. Its gradient vanishes at the whole-episode baseline; at b* only if
    # no state recurs, in which case the two baselines are the same table.
    mdp, theta = make(29)
    H, S = mdp.horizon, mdp.n_states
    seen = visited(mdp, theta)

    def gradient(b, h=1e-3):
        grad = np.zeros((H, S))
        for i in zip(*np.nonzero(seen)):
            step = np.zeros((H, S))
            step[i] = h
            grad[i] = (trace_variance(mdp, theta, "baseline", values=b + step)
                       - trace_variance(mdp, theta, "baseline", values=b - step)) / (2 * h)
        return grad

    whole = optimal_baseline(mdp, theta, per_parameter=False, whole_episode=True)
    b_star = optimal_baseline(mdp, theta, per_parameter=False)
    assert np.abs(gradient(whole)).max() < 1e-9
    if recurs:
        assert np.abs(gradient(b_star)).max() > 1e-2
        assert trace_variance(mdp, theta, "baseline", values=whole) < \
            trace_variance(mdp, theta, "optimal_baseline_scalar")
    else:
        np.testing.assert_allclose(whole, b_star, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            optimal_baseline(mdp, theta, whole_episode=True), optimal_baseline(mdp, theta),
            rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Clear errors
# ------------------------------------------------------------------------------------------

def test_bad_baseline_arguments_are_rejected():
    mdp, theta = layered_mdp(30)
    episodes = mdp.trajectories()
    with pytest.raises(ValueError, match="baseline must be one of"):
        mdp.psi_weights(theta, episodes, "reward_to_go", baseline="V")
    with pytest.raises(ValueError, match="a critic table goes in values"):
        mdp.psi_weights(theta, episodes, "reward_to_go", baseline=np.zeros(mdp.n_states))
    with pytest.raises(ValueError, match="baseline applies to psi 'return' or 'reward_to_go'"):
        mdp.psi_weights(theta, episodes, "gae", baseline="optimal")
    with pytest.raises(ValueError, match="values .* does not apply to the optimal baseline"):
        mdp.psi_weights(theta, episodes, "optimal_baseline", values=np.zeros(mdp.n_states))
    with pytest.raises(ValueError, match="psi must be 'reward_to_go' or 'return'"):
        optimal_baseline(mdp, theta, "gae")

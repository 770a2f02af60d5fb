"""Psi_t = Q, A, the n-step advantages and GAE as their mixture, exactly (minipg/exact/psi.py)."""
import numpy as np
import pytest

from minipg.exact.examples import layered_mdp, random_mdp
from minipg.exact.mdp import Episodes
from minipg.exact.psi import (advantage_weights, centred_batch_mean, exact_moments_of_weights,
                              gae_as_mixture, grads_from_weights, n_step_advantages, q_weights)


def choices(mdp, theta):
    """label -> weights function, for every Psi of the module (exact V)."""
    out = {"Q": lambda e: q_weights(mdp, theta, e), "A": lambda e: advantage_weights(mdp, theta, e)}
    for n in range(1, mdp.horizon + 1):
        out[f"A({n})"] = lambda e, n=n: n_step_advantages(mdp, theta, e, n)
    return out


@pytest.mark.parametrize("make", [random_mdp, layered_mdp])
def test_q_a_and_every_n_step_advantage_are_exactly_unbiased(make):
    mdp, theta = make(70, H=5) if make is random_mdp else make(70)
    grad = mdp.grad_J(theta)
    for label, weigh in choices(mdp, theta).items():
        mean, _ = exact_moments_of_weights(mdp, theta, weigh)
        np.testing.assert_allclose(mean, grad, rtol=1e-10, atol=1e-13, err_msg=label)


def test_with_discounting_each_is_unbiased_once_multiplied_by_gamma_t():
    mdp, theta = random_mdp(71, H=5, gamma=0.8)
    grad = mdp.grad_J(theta)
    discounts = mdp.discounts[:, None]
    for label, weigh in choices(mdp, theta).items():
        corrected, _ = exact_moments_of_weights(mdp, theta, lambda e: discounts * weigh(e))
        np.testing.assert_allclose(corrected, grad, rtol=1e-10, atol=1e-13, err_msg=label)
        usual, _ = exact_moments_of_weights(mdp, theta, weigh)
        assert np.linalg.norm(usual - grad) > 0.05 * np.linalg.norm(grad), label


@pytest.mark.parametrize("gamma", [1.0, 0.8])
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_gae_is_the_geometric_mixture_of_the_n_step_advantages_for_any_critic(lam, gamma):
    mdp, theta = random_mdp(72, H=5, gamma=gamma, reward_noise=0.6)
    episodes = mdp.sample_episodes(theta, 50, np.random.default_rng(72))
    critics = {"exact": None, "blind to time": mdp.time_averaged_V(theta),
               "random": np.random.default_rng(73).normal(size=(mdp.horizon, mdp.n_states))}
    for name, values in critics.items():
        np.testing.assert_allclose(gae_as_mixture(mdp, theta, episodes, lam, values=values),
                                   mdp.psi_weights(theta, episodes, "gae", lam, values=values),
                                   rtol=1e-12, atol=1e-12, err_msg=name)


def test_one_step_is_the_td_residual_and_the_whole_episode_is_G_minus_V():
    mdp, theta = random_mdp(74, H=5, reward_noise=0.6)
    episodes = mdp.sample_episodes(theta, 50, np.random.default_rng(74))
    np.testing.assert_allclose(n_step_advantages(mdp, theta, episodes, 1),
                               mdp.psi_weights(theta, episodes, "gae", 0.0), atol=1e-12)
    for n in (mdp.horizon, mdp.horizon + 3):
        np.testing.assert_allclose(n_step_advantages(mdp, theta, episodes, n),
                                   mdp.psi_weights(theta, episodes, "baseline"), atol=1e-12)


def test_the_fewer_sampled_rewards_the_lower_the_variance_with_the_exact_critic():
    # docs/derivation.md's table (layered MDP, seed 0): trace of the single-episode variance.
    # Q (no baseline) is far above; with the exact V each further sampled step adds variance,
    # from the true A (none sampled) up to G_t - V_t.
    mdp, theta = layered_mdp(0)
    variance = {label: exact_moments_of_weights(mdp, theta, weigh)[1].sum()
                for label, weigh in choices(mdp, theta).items()}
    order = ["A", "A(1)", "A(2)", "A(3)", "A(4)", "Q"]
    assert [round(variance[label], 3) for label in order] == [0.118, 0.158, 0.232, 0.259,
                                                             0.275, 2.943]
    assert variance["A(4)"] == pytest.approx(mdp.exact_moments(theta, "baseline")[1].sum(),
                                             rel=1e-12)


def test_centring_over_a_batch_of_whole_episodes_by_enumerating_every_pair():
    # Two episodes, B = 2H steps, every ordered pair of trajectories listed: the closed form
    # of centred_batch_mean against the brute-force expectation.
    mdp, theta = random_mdp(76, S=2, A=2, H=3)
    episodes, prob = mdp.trajectories(), mdp.trajectory_probs(theta)
    weights = mdp.psi_weights(theta, episodes, "reward_to_go")
    H, M = weights.shape
    one = [Episodes(*(field[:, [m]] for field in episodes)) for m in range(M)]
    brute = np.zeros_like(theta)
    for i in range(M):
        for j in range(M):
            batch = np.concatenate([weights[:, i], weights[:, j]])
            centred = batch - batch.mean()
            g = (grads_from_weights(mdp, theta, one[i], centred[:H, None])[0]
                 + grads_from_weights(mdp, theta, one[j], centred[H:, None])[0]) / 2
            brute += prob[i] * prob[j] * g
    np.testing.assert_allclose(
        centred_batch_mean(mdp, theta, lambda e: mdp.psi_weights(theta, e, "reward_to_go"), 2),
        brute, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("seed, times", [(0, 2.78), (1, 3.30), (2, 2.89)])
def test_centring_shrinks_by_1_over_B_only_when_the_steps_do_not_interact(seed, times):
    # docs/derivation.md, "Advantage normalisation". With the exact A_t, a later step's Psi has
    # mean zero given its state and an earlier one is fixed when a_t is drawn: only u = t counts,
    # and centring shrinks the gradient by exactly (B - 1)/B. With G_t - V_t, the Psi of every
    # earlier step contains the rewards a_t earns: on random MDPs with H = 5 the correction is
    # about 3 times grad J / B (an O(H/B) effect, not O(1/B)).
    mdp, theta = random_mdp(seed, S=3, A=2, H=5)
    grad, N = mdp.grad_J(theta), 4
    B = N * mdp.horizon
    exact_A = centred_batch_mean(mdp, theta, lambda e: advantage_weights(mdp, theta, e), N)
    np.testing.assert_allclose(exact_A, (1 - 1 / B) * grad, rtol=1e-10, atol=1e-13)
    usual = centred_batch_mean(mdp, theta, lambda e: mdp.psi_weights(theta, e, "baseline"), N)
    ratio = np.linalg.norm(usual - grad) / np.linalg.norm(grad / B)
    assert round(ratio, 2) == times


def test_bad_arguments_are_rejected():
    mdp, theta = random_mdp(75)
    episodes = mdp.sample_episodes(theta, 3, 0)
    with pytest.raises(ValueError, match="n must be"):
        n_step_advantages(mdp, theta, episodes, 0)
    with pytest.raises(ValueError, match="lam"):
        gae_as_mixture(mdp, theta, episodes, 1.5)
    with pytest.raises(ValueError, match="noise-free"):
        noisy, theta = random_mdp(75, reward_noise=0.5)
        exact_moments_of_weights(noisy, theta, lambda e: q_weights(noisy, theta, e))

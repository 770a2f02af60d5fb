"""The performance-difference lemma and the surrogate's error bound, exactly
(minipg/exact/trust_region.py): J(theta) - J(theta_old) is the old advantage of the new policy's
actions at the new policy's states; the surrogate uses the old states, and the error that costs
is second order in the distance between the policies, within the coupling bound."""
import numpy as np
import pytest

from minipg.exact.examples import layered_mdp, random_mdp, stay_or_leave_mdp
from minipg.exact.importance import surrogate
from minipg.exact.trust_region import (discounted_surrogate, max_total_variation,
                                       performance_difference, surrogate_error_bound,
                                       trpo_bound)


def path(mdp, theta_old, alphas, seed=0):
    """theta_old + a u for a fixed random unit direction u: a move that is not uphill."""
    u = np.random.default_rng(seed).normal(size=theta_old.shape)
    return [theta_old + a * u / np.linalg.norm(u) for a in alphas]


@pytest.mark.parametrize("gamma", [1.0, 0.8])
@pytest.mark.parametrize("make", [random_mdp, layered_mdp])
def test_the_performance_difference_lemma_holds_exactly(make, gamma):
    mdp, theta_old = make(60, gamma=gamma)
    for theta in path(mdp, theta_old, (0.1, 1.0, 4.0)):
        assert performance_difference(mdp, theta, theta_old) == pytest.approx(
            mdp.J(theta) - mdp.J(theta_old), rel=1e-10, abs=1e-13)


def test_the_lemma_needs_the_new_policys_states():
    # With the old state distribution in its place (the surrogate) the equality fails as soon as
    # actions move the state: that is the surrogate's error.
    mdp, theta_old = stay_or_leave_mdp(), np.zeros((2, 2))
    theta = np.array([[0.0, 2.0], [0.0, 0.0]])
    gain = mdp.J(theta) - mdp.J(theta_old)
    assert performance_difference(mdp, theta, theta_old) == pytest.approx(gain, rel=1e-12)
    assert abs(discounted_surrogate(mdp, theta, theta_old) - mdp.J(theta_old) - gain) > 0.1


@pytest.mark.parametrize("gamma", [1.0, 0.8])
@pytest.mark.parametrize("make", [random_mdp, layered_mdp])
def test_the_surrogate_error_is_within_the_coupling_bound_and_second_order(make, gamma):
    mdp, theta_old = make(61, gamma=gamma)
    if gamma == 1.0:                          # the surrogate PPO's estimator climbs, at gamma = 1
        theta = path(mdp, theta_old, (0.7,))[0]
        assert discounted_surrogate(mdp, theta, theta_old) == pytest.approx(
            surrogate(mdp, theta, theta_old), rel=1e-12)
    for theta in path(mdp, theta_old, np.geomspace(1e-3, 5.0, 12)):
        error = abs(mdp.J(theta) - discounted_surrogate(mdp, theta, theta_old))
        bound = surrogate_error_bound(mdp, theta, theta_old)
        assert error <= bound
        assert mdp.J(theta) >= discounted_surrogate(mdp, theta, theta_old) - bound
    # Second order: near theta_old the error over alpha^2 is a constant (moving 10 times
    # further multiplies the error by 100), and so is the bound over alpha^2.
    per_alpha_squared = []
    for theta in path(mdp, theta_old, (1e-3, 1e-2)):
        alpha = max_total_variation(mdp, theta, theta_old)
        error = abs(mdp.J(theta) - discounted_surrogate(mdp, theta, theta_old))
        per_alpha_squared.append((error / alpha ** 2,
                                  surrogate_error_bound(mdp, theta, theta_old) / alpha ** 2))
    np.testing.assert_allclose(per_alpha_squared[0], per_alpha_squared[1], rtol=0.02)
    assert per_alpha_squared[0][0] > 0.01


def test_trpos_infinite_horizon_bound_is_looser_than_the_finite_horizon_one():
    mdp, theta_old = random_mdp(62, H=5, gamma=0.8)
    for theta in path(mdp, theta_old, (0.05, 0.5, 2.0)):
        error = abs(mdp.J(theta) - discounted_surrogate(mdp, theta, theta_old))
        assert error <= surrogate_error_bound(mdp, theta, theta_old) <= trpo_bound(mdp, theta,
                                                                                    theta_old)
    with pytest.raises(ValueError, match="gamma < 1"):
        trpo_bound(random_mdp(62)[0], theta_old, theta_old)

"""The entropy bonus on a bandit (minipg/exact/entropy.py): it changes the optimum to
softmax(R / beta), and it stops REINFORCE from collapsing onto the wrong arm."""
import numpy as np
import pytest
from gradcheck import numerical_gradient

from minipg.exact.entropy import (entropy_bonus_gradient, exact_ascent, regularised_gradient,
                                  regularised_objective, regularised_optimum, sampled_reinforce,
                                  visited_entropy)
from minipg.exact.examples import stay_or_leave_mdp, three_step_mdp

REWARDS = np.array([1.0, 0.8, 0.0])


def test_the_regularised_gradient_matches_finite_differences():
    logits = np.array([0.4, -1.0, 2.0])
    for beta in (0.0, 0.3):
        numeric = numerical_gradient(lambda: regularised_objective(REWARDS, logits, beta), logits)
        np.testing.assert_allclose(regularised_gradient(REWARDS, logits, beta), numeric,
                                   rtol=1e-7, atol=1e-10)


def test_with_the_bonus_the_optimum_is_the_softmax_at_temperature_beta():
    # The objective changes: exact ascent converges to softmax(R / beta), not to the best arm,
    # and J there falls short of R_max.
    for beta in (0.5, 1.0):
        pi = exact_ascent(REWARDS, np.zeros(3), beta, learning_rate=2.0, steps=5000)
        optimum = regularised_optimum(REWARDS, beta)
        np.testing.assert_allclose(pi, optimum, atol=1e-9)
        np.testing.assert_allclose(regularised_gradient(REWARDS, np.log(optimum), beta), 0.0,
                                   atol=1e-12)
        assert optimum @ REWARDS < REWARDS.max()
        assert optimum.min() / optimum.max() >= np.exp(-(REWARDS.max() - REWARDS.min()) / beta)
    # Without it the exact ascent heads for the vertex of the best arm.
    pi = exact_ascent(REWARDS, np.zeros(3), 0.0, learning_rate=2.0, steps=5000)
    assert pi[0] > 0.999 and pi[1:].max() < 1e-3


def test_the_bonus_prevents_reinforce_from_collapsing_onto_the_wrong_arm():
    # 1000 runs of REINFORCE from the uniform policy, one pull per update, 2000 updates,
    # learning rate 1. A run has collapsed when pi(best arm) < 0.01 at the end. The collapse
    # fraction p is a binomial proportion: its standard error is sqrt(p (1 - p) / n).
    n = 1000
    collapsed = {}
    for beta in (0.0, 0.2):
        pi = sampled_reinforce(REWARDS, np.zeros(3), beta, 1.0, 2000, n, rng=0)
        collapsed[beta] = np.mean(pi[:, 0] < 0.01)
    p0, p1 = collapsed[0.0], collapsed[0.2]
    standard_error = np.sqrt(p0 * (1 - p0) / n + p1 * (1 - p1) / n)
    assert p0 - p1 > 5 * standard_error
    assert round((p0 - p1) / standard_error) == 15     # 0.188 against 0: the quoted 15 SE
    assert p1 <= 3 / n                 # none seen; 3/n is the 95% upper bound for zero of n
    assert round(p0, 3) == 0.188                       # the figure docs/derivation.md quotes
    # The price: beta = 0.2 aims at softmax(R / 0.2), whose J is 0.94, not 1.
    assert round(regularised_optimum(REWARDS, 0.2) @ REWARDS, 2) == 0.94


def test_the_bonus_gradient_holds_the_visited_states_fixed():
    # Stay or leave: the action decides whether home is visited again, so the visited entropy
    # depends on theta through d_t too, and the implemented gradient misses that term. Where the
    # states are the time steps (three_step_mdp), d_t does not move and the two agree.
    mdp, theta = stay_or_leave_mdp(), np.array([[0.5, -0.3], [0.2, 0.0]])
    numeric = numerical_gradient(lambda: visited_entropy(mdp, theta), theta)
    implemented = entropy_bonus_gradient(mdp, theta)
    # 9% of the gradient here, against a finite-difference error of about 1e-11.
    missed = np.linalg.norm(implemented - numeric) / np.linalg.norm(numeric)
    assert round(missed, 2) == 0.09                    # the figure docs/derivation.md quotes
    np.testing.assert_allclose(implemented[1], numeric[1], atol=1e-9)   # away: no choice to make
    fixed, theta = three_step_mdp(), np.random.default_rng(5).normal(size=(3, 3))
    np.testing.assert_allclose(entropy_bonus_gradient(fixed, theta),
                               numerical_gradient(lambda: visited_entropy(fixed, theta), theta),
                               rtol=1e-7, atol=1e-10)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="beta must be > 0"):
        regularised_optimum(REWARDS, 0.0)
    with pytest.raises(ValueError, match="rewards"):
        regularised_gradient([1.0], [0.0], 0.1)
    with pytest.raises(ValueError, match="beta"):
        sampled_reinforce(REWARDS, np.zeros(3), -0.1, 1.0, 10, 5, rng=0)
    with pytest.raises(ValueError, match="n_runs"):
        sampled_reinforce(REWARDS, np.zeros(3), 0.1, 1.0, 10, 0, rng=0)

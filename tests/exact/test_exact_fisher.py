"""The exact Fisher of a tabular softmax policy's trajectory distribution, as a specification:
it is E[g g^T] of the trajectory score and the Hessian of the trajectory KL (both by finite
differences of the enumerated trajectory probabilities, nothing else), block diagonal with the
expected visits; the natural gradient pinv(F) grad J is the centred visit-weighted advantage,
and conjugate gradient with the exact Fisher-vector product reaches it."""
import numpy as np
import pytest
from gradcheck import relative_error

from minipg.exact import fisher as exact_fisher
from minipg.algos.trpo import conjugate_gradient
from minipg.exact.mdp import TabularMDP


def random_mdp(seed=0, gamma=0.9):
    """3 states, 3 actions, horizon 4; state 2 is never reached (no start, no transition in)."""
    rng = np.random.default_rng(seed)
    P = np.zeros((3, 3, 3))
    P[:, :, :2] = rng.dirichlet(np.ones(2), size=(3, 3))
    return TabularMDP(P, rng.normal(size=(3, 3)), [0.6, 0.4, 0.0], 4, gamma=gamma)


def theta_for(mdp, seed=1):
    return np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions))


def jacobian_of_log_probs(mdp, theta, h=1e-6):
    """d log P_theta(tau) / d theta for every enumerated trajectory, (M, S*A), by central
    differences of the trajectory probabilities."""
    flat = theta.ravel().copy()
    columns = []
    for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += h
        minus[i] -= h
        columns.append((np.log(mdp.trajectory_probs(plus.reshape(theta.shape)))
                        - np.log(mdp.trajectory_probs(minus.reshape(theta.shape)))) / (2 * h))
    return np.column_stack(columns)


def test_fisher_is_the_expected_outer_product_of_the_trajectory_score():
    mdp = random_mdp()
    theta = theta_for(mdp)
    scores = jacobian_of_log_probs(mdp, theta)                # g(tau), one row per trajectory
    prob = mdp.trajectory_probs(theta)
    expected = np.einsum("m,mi,mj->ij", prob, scores, scores)
    assert relative_error(exact_fisher.fisher(mdp, theta), expected) < 1e-8


def test_fisher_is_the_hessian_of_the_trajectory_kl_at_the_old_policy():
    mdp = random_mdp(seed=2)
    theta_old = theta_for(mdp, seed=3)
    p_old = mdp.trajectory_probs(theta_old)

    def kl(theta):                                           # KL(P_old(tau) || P_theta(tau))
        return float(p_old @ (np.log(p_old) - np.log(mdp.trajectory_probs(theta))))

    n, h = theta_old.size, 1e-4
    hessian = np.zeros((n, n))
    E = np.eye(n).reshape(n, *theta_old.shape) * h
    for i in range(n):
        for j in range(n):
            hessian[i, j] = (kl(theta_old + E[i] + E[j]) - kl(theta_old + E[i] - E[j])
                             - kl(theta_old - E[i] + E[j])
                             + kl(theta_old - E[i] - E[j])) / (4 * h * h)
    assert relative_error(exact_fisher.fisher(mdp, theta_old), hessian) < 1e-6


def test_fisher_is_block_diagonal_with_the_expected_visits_and_singular():
    mdp = random_mdp()
    theta = theta_for(mdp)
    F = exact_fisher.fisher(mdp, theta)
    pi, d = mdp.policy(theta), exact_fisher.expected_visits(mdp, theta)
    assert d.sum() == pytest.approx(mdp.horizon)             # one state per step
    assert d[2] == 0
    for s in range(3):
        block = F[3 * s:3 * s + 3, 3 * s:3 * s + 3]
        np.testing.assert_allclose(block, d[s] * (np.diag(pi[s]) - np.outer(pi[s], pi[s])),
                                   atol=1e-15)
    off_block = F.copy()
    for s in range(3):
        off_block[3 * s:3 * s + 3, 3 * s:3 * s + 3] = 0
    assert not off_block.any()
    # null directions: a constant added to a row theta[s]; every direction of the unvisited row
    assert np.linalg.matrix_rank(F) == 2 * (3 - 1)
    v = np.random.default_rng(4).normal(size=(3, 3))
    np.testing.assert_allclose(exact_fisher.fisher_vector_product(mdp, theta, v),
                               (F @ v.ravel()).reshape(3, 3), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_natural_gradient_is_the_centred_visit_weighted_advantage(gamma):
    mdp = random_mdp(seed=5, gamma=gamma)
    theta = theta_for(mdp, seed=6)
    x = exact_fisher.natural_gradient(mdp, theta)
    np.testing.assert_allclose(x, exact_fisher.advantage_natural_gradient(mdp, theta),
                               rtol=1e-9, atol=1e-12)
    # it solves F x = grad J, with no part along F's null directions
    np.testing.assert_allclose(exact_fisher.fisher_vector_product(mdp, theta, x),
                               mdp.grad_J(theta), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_array_equal(x[2], 0.0)                  # the unvisited state
    assert np.abs(x).max() > 0.1


def test_conjugate_gradient_with_the_exact_fisher_vector_product_reaches_the_natural_gradient():
    """F has rank 4 here (two visited states, one null direction each): conjugate gradient from
    0 stays in F's range and lands on pinv(F) grad J in at most 4 products."""
    mdp = random_mdp(seed=7)
    theta = theta_for(mdp, seed=8)
    calls = []

    def fisher_product(v):
        calls.append(1)
        return exact_fisher.fisher_vector_product(mdp, theta, v.reshape(theta.shape)).ravel()

    x = conjugate_gradient(fisher_product, mdp.grad_J(theta).ravel(), iters=9,
                           residual_tol=1e-24)
    assert len(calls) <= 4
    assert relative_error(x.reshape(theta.shape), exact_fisher.natural_gradient(mdp, theta)) < 1e-9


def chain_mdp():
    """The chain of examples/natural_gradient.py: 4 states, horizon 8; "right" (action 1) moves
    along, "back" (action 0) returns to state 0; reward 1 for "right" in the last state."""
    P, R = np.zeros((4, 2, 4)), np.zeros((4, 2))
    for s in range(4):
        P[s, 0, 0] = 1.0
        P[s, 1, min(s + 1, 3)] = 1.0
    R[3, 1] = 1.0
    return TabularMDP(P, R, [1, 0, 0, 0], 8)


def test_the_natural_gradient_crosses_the_plateau_that_stalls_the_vanilla_one():
    """From pi(right) = 0.018 everywhere (J = 5e-7; the best J is 5), 30 iterations of ascent at
    learning rate 1: natural above 4.5, vanilla still below 1e-5."""
    mdp = chain_mdp()
    theta_vanilla = theta_natural = np.tile([2.0, -2.0], (4, 1))
    assert mdp.J(theta_natural) < 1e-6
    for _ in range(30):
        theta_vanilla = theta_vanilla + mdp.grad_J(theta_vanilla)
        theta_natural = theta_natural + exact_fisher.natural_gradient(mdp, theta_natural)
    assert mdp.J(theta_natural) > 4.5
    assert mdp.J(theta_vanilla) < 1e-5


def test_fisher_vector_product_rejects_a_vector_not_shaped_like_theta():
    mdp = random_mdp()
    with pytest.raises(ValueError, match="vector"):
        exact_fisher.fisher_vector_product(mdp, theta_for(mdp), np.zeros(9))

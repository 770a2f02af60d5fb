"""The Fisher information of a tabular softmax policy's trajectory distribution, exactly, and the
natural gradient it defines (for the MDPs of minipg.exact.mdp.TabularMDP).

With pi(a|s) = softmax(theta[s])_a and theta of shape (S, A), the trajectory's score is

    g(tau) = grad log P_theta(tau) = sum_t score_t,    score_t = onehot(a_t) - pi(.|s_t) in row s_t

(the transitions do not depend on theta). Its Fisher information is

    F = E_tau[g g^T] = sum_t E[score_t score_t^T]

because the cross terms vanish: for k < t, score_k is fixed once s_t is, and E[score_t | s_t] = 0.
E[score_t score_t^T] is the Categorical's Fisher diag(pi) - pi pi^T in the block of s_t, so F is
block diagonal, one A x A block per state:

    F_s = d(s) (diag(pi_s) - pi_s pi_s^T),      d(s) = sum_t Pr(s_t = s)   (expected visits)

It is also the Hessian, at theta_old, of KL(P_old(tau) || P_theta(tau)): the divergence between
the distributions of whole trajectories, which TRPO's mean KL over visited states estimates.

F is singular: adding a constant to a row theta[s] changes no probability (F_s 1 = 0), and an
unvisited state's block is zero. The natural gradient is therefore F's pseudo-inverse applied to
grad J, the minimum-norm solution of F x = grad J, and it has a closed form. With
grad_{theta[s]} J = sum_t gamma^t d_t(s) pi_s * A_t(s, .) (the policy gradient theorem) and
sum_a pi_s(a) A_t(s, a) = 0, the visit-weighted advantage

    A_bar(s, a) = sum_t gamma^t d_t(s) A_t(s, a) / d(s)

solves F_s x_s = grad_{theta[s]} J, since (diag(pi) - pi pi^T) A_bar = pi * A_bar. The minimum-norm
solution removes the null direction 1: the natural gradient is A_bar(s, .) - mean_a A_bar(s, a),
and 0 in unvisited states. Vanilla gradient ascent moves theta[s] by pi_s * A (tiny where pi_s is
tiny: a near-deterministic policy barely moves); the natural gradient moves it by the advantage
itself, whatever pi is.
"""
import numpy as np

__all__ = ["expected_visits", "fisher", "fisher_vector_product", "natural_gradient",
           "advantage_natural_gradient"]


def expected_visits(mdp, theta):
    """d(s) = sum_t Pr(s_t = s), the expected number of visits to s in an episode, (S,)."""
    return mdp.state_distribution(theta).sum(axis=0)


def fisher(mdp, theta):
    """F = E_tau[g g^T] as an (S*A, S*A) matrix over theta.ravel(): block diagonal, with block s
    d(s) (diag(pi_s) - pi_s pi_s^T)."""
    pi, d = mdp.policy(theta), expected_visits(mdp, theta)
    S, A = pi.shape
    F = np.zeros((S * A, S * A))
    for s in range(S):
        F[s * A:(s + 1) * A, s * A:(s + 1) * A] = d[s] * (np.diag(pi[s]) - np.outer(pi[s], pi[s]))
    return F


def fisher_vector_product(mdp, theta, vector):
    """F v for v of shape (S, A) (laid out like theta), without forming F:

        (F v)[s] = d(s) (pi_s * v_s - pi_s (pi_s . v_s))
    """
    pi, d = mdp.policy(theta), expected_visits(mdp, theta)
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != pi.shape:
        raise ValueError(f"vector must have the shape of theta {pi.shape}, got {vector.shape}")
    pi_dot_v = (pi * vector).sum(axis=1, keepdims=True)
    return d[:, None] * pi * (vector - pi_dot_v)


def natural_gradient(mdp, theta, rcond=1e-10):
    """pinv(F) grad J, shape (S, A): the minimum-norm x with F x = grad J. Singular values below
    rcond times the largest count as zero (the null directions of the softmax).

    F and grad J are divided by F's largest entry first (pinv(c F) = pinv(F) / c, so the
    result is the same): near a deterministic policy both are tiny, and the reciprocals of
    tiny singular values would overflow.
    """
    F, grad = fisher(mdp, theta), mdp.grad_J(theta)
    scale = np.abs(F).max()
    if scale == 0:                        # every block underflowed: no direction is measurable
        return np.zeros_like(grad)
    return (np.linalg.pinv(F / scale, rcond=rcond) @ (grad.ravel() / scale)).reshape(grad.shape)


def advantage_natural_gradient(mdp, theta):
    """The natural gradient in closed form: A_bar(s, .) - mean_a A_bar(s, a), with
    A_bar(s, a) = sum_t gamma^t d_t(s) A_t(s, a) / d(s), and 0 where d(s) = 0; (S, A)."""
    Q, V = mdp.Q_and_V(theta)
    d_t = mdp.state_distribution(theta)                               # (H, S)
    advantage = Q - V[:-1, :, None]                                   # A_t(s, a), (H, S, A)
    weighted = np.einsum("t,ts,tsa->sa", mdp.discounts, d_t, advantage)
    d = d_t.sum(axis=0)
    A_bar = np.divide(weighted, d[:, None], out=np.zeros_like(weighted), where=d[:, None] > 0)
    return A_bar - A_bar.mean(axis=1, keepdims=True)

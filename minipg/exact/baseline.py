"""The variance-minimising baseline b*, computed exactly on a TabularMDP.

One step's contribution to the gradient estimate, parameter k (a logit theta[s_t, k]):

    g_k (W_t - b),        g = score of a_t = onehot(a_t) - pi(.|s_t),  W_t = G_t or R(tau)

Its mean does not depend on b (E[g_k | s_t] = 0), so the best b minimises the second moment
E[g_k^2 (W_t - b)^2 | t, s_t], a parabola in b with its minimum at

    b*_k(t, s) = E[g_k^2 W_t | t, s_t = s] / E[g_k^2 | t, s_t = s]          (one per parameter)

and, when one number has to serve every parameter of the row, the minimum of the summed second
moment E[|g|^2 (W_t - b)^2 | t, s_t]:

    b*(t, s)   = E[|g|^2 W_t | t, s_t = s] / E[|g|^2 | t, s_t = s]          (scalar)

Both are weighted averages of W_t, weighted by how large the score is. V_t(s) = E[G_t | t, s]
is the unweighted average: it is b* when |g|^2 does not depend on the action (a uniform policy)
and can be far from it otherwise (a rare action has a large score and pulls b* towards its own
return).

Each state is conditioned on together with the time t: with a finite horizon the value of a
state, and its b*, depend on how many steps remain.

What b* minimises. Parameter k's estimate from one episode is a sum over the steps that visit
its state s, X_k(b) = sum_t 1{s_t = s} g_{t,k} (W_t - b_t). Its second moment is the sum of the
per-step terms E[1{s_t = s} g_{t,k}^2 (W_t - b_t)^2] plus, for episodes that visit s twice
(t < u), cross terms 2 E[1{s_t = s} 1{s_u = s} g_{t,k} g_{u,k} (W_t - b_t)(W_u - b_u)]. b*
minimises the per-step terms. When each state is visited at most once per episode there are no
cross terms and b* minimises the variance itself, exactly. When a state recurs, the cross terms
are linear in the baselines (the b_t b_u coefficient is E[... g_{u,k}] = 0, the later score
having mean zero given the past), with coefficients E[1{s_t = s, s_u = s} g_{t,k}] pi_k A_u(s, k)
for W = G: nonzero when the action at t changes the odds of being back in s at time u. Then b* is not the
minimiser and can lose even to V (tests/exact/test_exact_baseline.py shows one). Because the second
moment is a quadratic with a diagonal curvature E[1{s_t = s} g_{t,k}^2], its exact minimiser
has the same shape as b* with the step's own term replaced by the whole episode's estimate
X_k(0) (whole_episode=True):

    b_k(t, s) = E[g_{t,k} X_k(0) | t, s_t = s] / E[g_{t,k}^2 | t, s_t = s]

b* and this baseline are regression coefficients of the estimate on the step's score; with
one visit per state, g_{t,k} X_k(0) = g_{t,k}^2 W_t and the two coincide.
"""
import numpy as np

from minipg.core.distributions import Categorical

__all__ = ["optimal_baseline", "optimal_baseline_from_Q"]


def optimal_baseline(mdp, theta, psi="reward_to_go", *, per_parameter=True,
                     whole_episode=False):
    """b* by enumeration: conditional expectations as sums over every trajectory, P(tau)-weighted.

        per_parameter=True    b*_k(t, s) = E[g_k^2 W_t | t, s] / E[g_k^2 | t, s],  shape (H, S, A)
        per_parameter=False   b*(t, s) = E[|g|^2 W_t | t, s] / E[|g|^2 | t, s],    shape (H, S)

    W_t is the weight the baseline is subtracted from: psi="reward_to_go" (G_t) or "return"
    (R(tau)). whole_episode=True replaces g_k W_t by g_k X_k, X_k the episode's whole estimate
    for parameter k (sum over all its visits to s): the exact variance minimiser when states
    recur, b* itself when they do not (module docstring). Zero-mean reward noise is independent
    of the score, so the mean rewards give the same baseline. Where E[g_k^2 | t, s] = 0 (s
    unreachable at time t, or a score that is exactly 0) the baseline multiplies nothing and 0
    is returned.
    """
    if psi not in ("reward_to_go", "return"):
        raise ValueError(f"psi must be 'reward_to_go' or 'return' (the weight b* is subtracted "
                         f"from), got {psi!r}")
    theta = mdp._check_theta(theta)
    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    episodes = mdp.trajectories()
    prob = mdp.trajectory_probs(theta)                                          # (M,)
    W = mdp.psi_weights(theta, episodes, psi)                                   # (H, M)
    score = Categorical(theta[episodes.states]).score(episodes.actions)        # (H, M, A)
    if whole_episode:
        # X_k for the state of step t: the episode's sum of g_{u,k} W_u over u with s_u = s_t.
        same_state = episodes.states[:, None, :] == episodes.states[None, :, :]   # (t, u, M)
        X = np.einsum("tum,uma->tma", same_state, W[..., None] * score)
        gW = score * X
    else:
        gW = score ** 2 * W[..., None]
    g2 = score ** 2
    if not per_parameter:
        gW, g2 = gW.sum(axis=-1, keepdims=True), g2.sum(axis=-1, keepdims=True)
    # Group the terms by (t, s_t): row t * S + s of the (H * S, columns) sums.
    cell = (np.arange(H)[:, None] * S + episodes.states).ravel()
    numerator = np.stack([np.bincount(cell, (prob * gW[..., j]).ravel(), H * S)
                          for j in range(g2.shape[-1])], axis=-1)
    denominator = np.stack([np.bincount(cell, (prob * g2[..., j]).ravel(), H * S)
                            for j in range(g2.shape[-1])], axis=-1)
    b = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return b.reshape(H, S, A) if per_parameter else b.reshape(H, S)


def optimal_baseline_from_Q(mdp, theta, *, per_parameter=True):
    """b* for W_t = G_t in closed form, from Q_t and the softmax policy alone.

    Given (t, s_t = s, a_t = a), the score is fixed and E[G_t] = Q_t(s, a), so every conditional
    expectation above is a sum over actions, E[f(a) G_t | t, s] = sum_a pi(a|s) f(a) Q_t(s, a).
    With g_k(a) = [a = k] - pi_k, so g_k^2 = (1 - pi_k)^2 for a = k and pi_k^2 otherwise:

        b*_k(t, s) = Q_t(s, k) - pi_k A_t(s, k) / (1 - pi_k),     A_t = Q_t - V_t

    (for a rarely chosen action, pi_k -> 0, its logit's b* is its own Q; at pi_k = 1/2 it is V).
    The scalar version weights Q_t(s, a) by pi(a|s) |g(a)|^2, |g(a)|^2 = 1 - 2 pi_a + sum_b pi_b^2:

        b*(t, s) = sum_a pi_a |g(a)|^2 Q_t(s, a) / sum_a pi_a |g(a)|^2

    Defined for every (t, s), visited or not; needs 0 < pi_k < 1 (true for a softmax unless
    it has underflowed, or there is a single action).
    """
    pi = mdp.policy(theta)
    Q, V = mdp.Q_and_V(theta)
    if per_parameter:
        return Q - pi * (Q - V[:-1, :, None]) / (1 - pi)
    squared_score = 1 - 2 * pi + (pi ** 2).sum(axis=1, keepdims=True)         # |g(a)|^2, (S, A)
    weight = pi * squared_score
    return (weight * Q).sum(axis=2) / weight.sum(axis=1)

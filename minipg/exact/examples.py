"""Small MDPs with a lesson each, shared by the tests of minipg.exact.mdp and the examples.

    random_mdp       random dynamics in which states recur at different times
    three_step_mdp   the variance lesson: 3 steps, 3 actions, a noisy reward for the best one
    stay_or_leave    a state the agent may come back to, by its own choice
    layered_mdp      states (t, x): no state is visited twice in an episode

Each returns a minipg.exact.mdp.TabularMDP (the random ones with a policy theta beside it).
"""
import numpy as np

from minipg.exact.mdp import TabularMDP

__all__ = ["random_mdp", "three_step_mdp", "stay_or_leave_mdp", "layered_mdp"]


def random_mdp(seed, S=3, A=2, H=4, gamma=1.0, reward_noise=0.0):
    """Random dynamics in which states recur at different times; returns (mdp, theta)."""
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) ** 3             # cubed: some transitions much likelier than others
    P /= P.sum(axis=2, keepdims=True)
    mdp = TabularMDP(P, 2 * rng.random((S, A)), rng.dirichlet(np.ones(S)), H, gamma,
                     reward_noise=reward_noise)
    return mdp, rng.normal(size=(S, A))


def three_step_mdp():
    """The variance lesson (as in examples/variance_explorer.py): 3 steps, 3 actions, reward 1
    for the step's best action plus uniform noise of width 0.6. State = time step."""
    T, K = 3, 3
    P = np.zeros((T, K, T))
    P[np.arange(T), :, np.minimum(np.arange(T) + 1, T - 1)] = 1.0
    R = np.zeros((T, K))
    R[np.arange(T), [2, 0, 1]] = 1.0
    return TabularMDP(P, R, np.eye(T)[0], horizon=T, reward_noise=0.6)


def stay_or_leave_mdp(gamma=1.0, away=3.0):
    """State 0 (home): stay -> reward 1, stay home; leave -> reward 0, move to state 1 for good.
    State 1 pays `away` per step whatever the action. Horizon 3, start at home.
    Leaving pays off early in the episode and not at its end: values depend on time. Home is
    visited again exactly when the agent stays: the action decides whether the state recurs."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    return TabularMDP(P, [[1.0, 0.0], [away, away]], [1.0, 0.0], horizon=3, gamma=gamma)


def layered_mdp(seed, width=2, A=3, H=4, gamma=1.0, reward_noise=0.0):
    """Random MDP whose states are (t, x) pairs, x < width: layer t only leads to layer t + 1,
    so every state is visited at most once per episode. Rewards in [0, 1); returns (mdp, theta)
    with theta ~ N(0, 1), a policy far from uniform in places."""
    rng = np.random.default_rng(seed)
    S = width * H
    P = np.zeros((S, A, S))
    for t in range(H):
        layer = slice(t * width, (t + 1) * width)
        if t < H - 1:
            step = rng.random((width, A, width)) ** 3
            P[layer, :, (t + 1) * width:(t + 2) * width] = step / step.sum(axis=2, keepdims=True)
        else:
            P[layer, :, layer] = np.eye(width)[:, None, :]      # never used: the horizon ends
    rho0 = np.zeros(S)
    rho0[:width] = rng.dirichlet(np.ones(width))
    mdp = TabularMDP(P, rng.random((S, A)), rho0, H, gamma, reward_noise=reward_noise)
    return mdp, rng.normal(size=(S, A))

"""A TabularMDP (minipg.exact) as a gymnasium VectorEnv, so that the trainer's own collectors and
updates can be held against the MDP's exact gradient.

The observation is the one-hot state, so a CategoricalPolicy without hidden layers is a tabular
softmax: its logits at state s are theta[s] = W[s] + b. States in `terminal` end the episode on
arrival (terminated=True); the MDP's horizon ends it too, as a truncation. NEXT_STEP autoreset,
as gymnasium's: the step after an end ignores the action and returns a new start state with
reward 0. reset(seed) draws the N start states from rho0 with a generator seeded so (an int
seed, or a list of one per env: the first is used).
"""
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from minipg.exact import TabularMDP


def variable_length_mdp(horizon=3):
    """Episodes of 1 or 3 steps, the length chosen by the policy's first action.

    States 0, 1, 2 and the terminal state 3 (absorbing, reward 0, so that J and grad J of the
    fixed-horizon TabularMDP are those of the episodes that stop there). From the start state 0,
    action 0 ends the episode at once (reward 1); action 1 goes on through states 1 and 2
    (reward 0), where action 1 pays 0.5 at state 1 and 2 at state 2. horizon < 3 cuts the long
    episode: the problem with a time limit of `horizon` steps.
    """
    S, A, end = 4, 2, 3
    P = np.zeros((S, A, S))
    P[0, 0, end] = 1.0
    P[0, 1, 1] = 1.0
    P[1, :, 2] = 1.0
    P[2, :, end] = 1.0
    P[end, :, end] = 1.0
    R = np.zeros((S, A))
    R[0, 0] = 1.0
    R[1, 1] = 0.5
    R[2, 1] = 2.0
    return TabularMDP(P, R, np.eye(S)[0], horizon, gamma=1.0), (end,)


class TabularVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, mdp, terminal, num_envs, time_limit=None):
        self.mdp, self.terminal = mdp, np.asarray(terminal)
        self.time_limit = time_limit or mdp.horizon
        self.num_envs = num_envs
        S = mdp.n_states
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (S,), np.float64)
        self.single_action_space = gym.spaces.Discrete(mdp.n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(0)

    def _draw(self, probs):
        """One state per row of probs (n, S), by inverse CDF."""
        u = self.rng.random(len(probs))[:, None]
        return np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), probs.shape[1] - 1)

    def _obs(self):
        return np.eye(self.mdp.n_states)[self.state]

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed if np.isscalar(seed) else seed[0])
        self.state = self._draw(np.tile(self.mdp.rho0, (self.num_envs, 1)))
        self.t = np.zeros(self.num_envs, np.int64)
        self.pending_reset = np.zeros(self.num_envs, bool)
        return self._obs(), {}

    def step(self, actions):
        actions = np.asarray(actions)
        rewards = self.mdp.R[self.state, actions]
        next_state = self._draw(self.mdp.P[self.state, actions])
        restart = self.pending_reset
        rewards = np.where(restart, 0.0, rewards)
        next_state[restart] = self._draw(np.tile(self.mdp.rho0, (int(restart.sum()), 1)))
        self.t = np.where(restart, 0, self.t + 1)
        terminated = ~restart & np.isin(next_state, self.terminal)
        truncated = ~restart & ~terminated & (self.t >= self.time_limit)
        self.state = next_state
        self.pending_reset = terminated | truncated
        return self._obs(), rewards, terminated, truncated, {}

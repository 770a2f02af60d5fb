"""A scripted gymnasium VectorEnv with known episode ends, shared by the rollout/algo tests.

Imported as `from toy_env import ...`: pyproject.toml's pytest settings put tests/helpers/ on
sys.path (pythonpath), both for `pytest` from the root and `pytest tests/envs/x.py`.

Env n plays episodes of fixed lengths (scripts[n], cycled); an episode of length L ends at its
L-th transition with terminated=True or truncated=True. NEXT_STEP autoreset, as gymnasium's:
the step() after an end ignores the action and returns the first observation of a new episode,
with reward `reset_reward` (gymnasium: 0) and both flags False.

Observation of env n: [0.1 * (n + 1), 0.01 * calls, 0.05 * k] where `calls` counts step() calls
and k is the index of the state within its episode, so every observation differs. The reward of
the k-th transition (k = 0, 1, ...) of env n is (n + 1) * (1 + 0.5 * k).
Everything the env receives and returns is recorded: `received[c]` holds the actions of call c,
`returned_obs[c]` the observations call c returned (returned_obs[-1] would be the reset).
"""
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

OBS_DIM = 3


def transition_reward(n, k):
    return (n + 1) * (1.0 + 0.5 * k)


class ScriptedVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, scripts, action_space=None, reset_reward=0.0):
        """scripts[n] = [(length, "terminated" | "truncated"), ...], cycled per env."""
        self.scripts = [list(s) for s in scripts]
        self.num_envs = len(scripts)
        self.reset_reward = reset_reward
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64)
        self.single_action_space = action_space or gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space,
                                                         self.num_envs)
        self.reset_calls = 0

    def _obs(self):
        n = np.arange(self.num_envs)
        return np.stack([0.1 * (n + 1), np.full(self.num_envs, 0.01 * self.calls),
                         0.05 * self.k], axis=1)

    def _start_episode(self, n):
        length, kind = self.scripts[n][self.episode_index[n] % len(self.scripts[n])]
        self.length[n], self.kind[n] = length, kind
        self.k[n] = 0

    def reset(self, *, seed=None, options=None):
        self.reset_calls += 1
        self.calls = 0
        self.k = np.zeros(self.num_envs, np.int64)
        self.length = np.zeros(self.num_envs, np.int64)
        self.kind = [None] * self.num_envs
        self.episode_index = np.zeros(self.num_envs, np.int64)
        self.pending_reset = np.zeros(self.num_envs, bool)
        for n in range(self.num_envs):
            self._start_episode(n)
        self.received, self.returned_obs = [], []
        return self._obs(), {}

    def step(self, actions):
        self.received.append(np.array(actions, copy=True))
        self.calls += 1
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for n in range(self.num_envs):
            if self.pending_reset[n]:                  # the reset step: action ignored
                self.pending_reset[n] = False
                self.episode_index[n] += 1
                self._start_episode(n)
                rewards[n] = self.reset_reward
                continue
            rewards[n] = transition_reward(n, self.k[n])
            self.k[n] += 1
            if self.k[n] == self.length[n]:
                terminated[n] = self.kind[n] == "terminated"
                truncated[n] = self.kind[n] == "truncated"
                self.pending_reset[n] = True
        obs = self._obs()
        self.returned_obs.append(obs.copy())
        return obs, rewards, terminated, truncated, {}


# env 0 terminates every 3 transitions, env 1 is truncated every 2, env 2 runs 11 then 100.
SCRIPTS = [[(3, "terminated")], [(2, "truncated")], [(11, "terminated"), (100, "truncated")]]
T = 8
# Reset rows in the first collection of T = 8 steps (the row after each end).
#                  env0 ends 2, 6     env1 ends 1, 4, 7     env2 never
EXPECTED_MASK = np.array([
    [1, 1, 1],
    [1, 1, 1],
    [1, 0, 1],
    [0, 1, 1],
    [1, 1, 1],
    [1, 0, 1],
    [1, 1, 1],
    [0, 1, 1],
], bool)
EXPECTED_TERMINATED = np.zeros((T, 3), bool)
EXPECTED_TERMINATED[[2, 6], 0] = True
EXPECTED_TRUNCATED = np.zeros((T, 3), bool)
EXPECTED_TRUNCATED[[1, 4, 7], 1] = True


def make_env(reset_reward=0.0, action_space=None, scripts=SCRIPTS):
    return ScriptedVectorEnv(scripts, action_space=action_space, reset_reward=reset_reward)

"""Small scripted gymnasium envs that misbehave on purpose, registered under "minipg-test/" ids
so that minipg.train and the CLI make them like any other env (sync vector env of N copies).

ScriptedEnv: 3-dim observations [sin k, cos k, noise] (k = step within the episode, noise from
the env's own seeded generator, so the env's state matters for reproducibility), Discrete(2)
actions, reward 1 for action 1 and 0 for action 0, episodes of `length` steps (None: never
ending). A fault fires at the `at`-th step() call of an instance, counted across episodes:

    "raise"       step() raises RuntimeError("scripted failure")
    "nan_obs"     the observation's second entry is NaN
    "inf_reward"  the reward is +inf

Every step() checks that the action lies in the action space and raises otherwise, so an env
with Discrete(n, start=k) catches actions that were not shifted.

Imported as `import fault_envs` (pytest puts tests/helpers/ on sys.path, see toy_env.py).
"""
import threading

import gymnasium as gym
import numpy as np

FAULT_AT = 100       # step() calls per instance before the fault: iteration 7 at num_steps=16


class ScriptedEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, length=20, fault=None, at=FAULT_AT, action_space=None, dict_obs=False,
                 unpicklable=False):
        box = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.observation_space = gym.spaces.Dict({"x": box}) if dict_obs else box
        self.action_space = action_space or gym.spaces.Discrete(2)
        self.length, self.fault, self.at = length, fault, at
        self.calls, self.k = 0, 0
        if unpicklable:
            self.lock = threading.Lock()          # pickle refuses locks

    def _obs(self):
        obs = np.array([np.sin(self.k), np.cos(self.k), self.np_random.normal()])
        return {"x": obs} if isinstance(self.observation_space, gym.spaces.Dict) else obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        self.calls += 1
        self.k += 1
        obs, reward = self._obs(), float(action == self.action_space.start + 1)
        if self.fault is not None and self.calls == self.at:
            if self.fault == "raise":
                raise RuntimeError("scripted failure")
            if self.fault == "nan_obs":
                obs[1] = np.nan
            if self.fault == "inf_reward":
                reward = np.inf
        terminated = self.length is not None and self.k >= self.length
        return obs, reward, terminated, False, {}


IDS = {
    "minipg-test/Raises-v0": dict(fault="raise"),
    "minipg-test/NaNObservation-v0": dict(fault="nan_obs"),
    "minipg-test/InfReward-v0": dict(fault="inf_reward"),
    "minipg-test/NeverEnds-v0": dict(length=None),
    "minipg-test/DiscreteStart-v0": dict(action_space=gym.spaces.Discrete(3, start=-1)),
    "minipg-test/DictObservation-v0": dict(dict_obs=True),
    "minipg-test/Unpicklable-v0": dict(unpicklable=True),
}
for env_id, kwargs in IDS.items():
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=ScriptedEnv, kwargs=kwargs, disable_env_checker=True)

"""Collect (T, N) rollouts from a gymnasium vector env.

One call to `collect` steps all N environments T times and fills preallocated arrays, time
first:

    obs[t]          s_t, the observation the action was chosen from          (T, N, obs_dim)
                    (as the network saw it: normalised, if the policy normalises)
    actions[t]      a_t ~ pi(.|s_t), the UNCLIPPED sample                      (T, N[, act_dim])
    log_prob[t]     log pi(a_t|s_t) under the policy that collected the data   (T, N)
    values[t]       V(s_t)                                                     (T, N)
    rewards[t]      r_t (divided by the return's running std with norm_reward)   (T, N)
    terminated[t]   s_{t+1} is terminal: its value is 0                        (T, N)
    truncated[t]    a time limit cut the episode after a_t                     (T, N)
    next_values[t]  V(s_{t+1}) of the TRUE next state                          (T, N)
    mask[t]         True where row t is a real transition                      (T, N)

Two traps live here, both from gymnasium's NEXT_STEP autoreset:

1. After an episode ends at step t, the env's next step() ignores the action and returns the
   first observation of a new episode with reward 0. That row (s_final, a, 0, s_reset) is a
   reset step, not a transition: mask[t+1] is False and the losses and statistics skip it.
2. The observation returned at the step where an episode ends IS the final observation
   s_{t+1} (the reset comes one call later). So next_values[t] = V(obs returned by step t) is
   the value of the true next state even for a truncated episode, which is exactly what a
   time-limit end must bootstrap from. Because that observation is also the next row's input,
   next_values[t] = values[t+1] inside the rollout, and only the last row needs one extra
   forward pass: the bootstrap value V(s_T).

What the env returns is checked as it arrives: an exception from the env becomes an EnvError
that says where it happened, and a NaN or inf observation or reward, or one too large to train
on (minipg/envs/outputs.py), a FloatingPointError naming the array, the row and the env (it came
from the env, so no learning rate will fix it). A
Discrete(n, start=k) action space gets the policy's indices 0..n-1 shifted by k.
"""
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from minipg.core.checks import as_generator
from minipg.envs.outputs import env_output_problem, output_limits


class EnvError(RuntimeError):
    """The environment raised while minipg was stepping or resetting it."""


def action_start(action_space):
    """k of a Discrete(n, start=k) space (the env's first action), else 0."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.start)
    return 0


@dataclass
class Rollout:
    """The (T, N) arrays of one collection; reused from one iteration to the next."""
    obs: np.ndarray
    actions: np.ndarray
    log_prob: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_values: np.ndarray
    mask: np.ndarray
    episode_returns: list = field(default_factory=list)
    """Undiscounted returns of the episodes that ended during this collection."""
    episode_lengths: list = field(default_factory=list)
    """Their lengths in real transitions."""

    def network_outputs(self):
        """What the networks computed while collecting, for the loop's finiteness check."""
        return {"values": self.values, "next_values": self.next_values,
                "log_prob": self.log_prob}

    @property
    def num_steps(self):
        return self.rewards.shape[0]

    @property
    def num_envs(self):
        return self.rewards.shape[1]


class RolloutCollector:
    """Steps a vector env with a policy and a value function, keeping state across calls.

    `policy.distribution(obs)` gives the action distribution for a batch of observations,
    `policy.to_env(actions)` the copy of the actions to send to the env; `value_fn.predict(obs)`
    gives V for a batch (value_fn may be None: then values are 0, e.g. for plain REINFORCE).
    `obs` is the observation the next step will act on; `global_step` counts env steps taken.
    """

    keeps_env_state = True
    """Episodes run on from one collect() to the next: resuming bit for bit needs the env's own
    state (minipg/run/env_state.py)."""

    def __init__(self, env, policy, value_fn, num_steps, rng, seed=None, reward_scaler=None,
                 noise=None, reset_each_rollout=False):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        # The masks and bootstraps below are right for NEXT_STEP only; with SAME_STEP the final
        # observation hides in `info` and no reset step exists, so they would be silently wrong.
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"env must use NEXT_STEP autoreset (gymnasium's default), got "
                             f"autoreset_mode={mode}")
        self.env, self.policy, self.value_fn = env, policy, value_fn
        self.reward_scaler = reward_scaler            # a RewardScaler, or None
        self.noise = noise                            # a ColouredNoise (Gaussian policies), or None
        self.rng = as_generator(rng)               # a Generator or an int seed
        self.num_envs = env.num_envs
        obs_shape = env.single_observation_space.shape
        action_space = env.single_action_space
        T, N = num_steps, self.num_envs
        # Real numbers are stored in the policy's arithmetic (float32 or float64), so that the
        # losses computed from them run in it too, without conversions in the update.
        dtype = policy.params.dtype
        action_shape = (T, N) + tuple(action_space.shape or ())
        action_dtype = np.int64 if action_space.shape == () else dtype
        self.buffer = Rollout(
            obs=np.zeros((T, N) + obs_shape, dtype), actions=np.zeros(action_shape, action_dtype),
            log_prob=np.zeros((T, N), dtype), values=np.zeros((T, N), dtype),
            rewards=np.zeros((T, N), dtype), terminated=np.zeros((T, N), bool),
            truncated=np.zeros((T, N), bool), next_values=np.zeros((T, N), dtype),
            mask=np.zeros((T, N), bool))
        self.action_start = action_start(action_space)
        self.seed = seed
        self.reset_each_rollout = reset_each_rollout  # every collect() starts fresh episodes
        self.steps_per_collect = T * N
        self.limits = output_limits(dtype, T * N, T)   # of what the env returns: envs/outputs.py
        self.obs = None
        self.global_step = 0                      # env steps taken, reset steps included
        self._episode_return = np.zeros(N)
        self._episode_length = np.zeros(N, np.int64)
        self._reset_pending = np.zeros(N, bool)   # the next step() of this env is a reset step

    def reset(self):
        """Start fresh episodes in every env (the first call uses the seed)."""
        try:
            obs, _ = self.env.reset(seed=self.seed)
        except Exception as error:
            raise EnvError(f"the environment raised {type(error).__name__} in reset(): "
                           f"{error}") from error
        problem = env_output_problem("reset observations", obs, self.limits.obs)
        if problem:
            raise FloatingPointError(problem)
        self.seed = None                          # seed once; later resets continue the env RNG
        self.obs = np.asarray(obs, dtype=self.buffer.obs.dtype)
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self._reset_pending[:] = False
        if self.noise is not None:
            self.noise.restart()

    def collect(self, reset=False):
        """Run num_steps steps in every env and return the filled Rollout (shared buffers);
        from fresh episodes in every env if reset or reset_each_rollout."""
        if self.obs is None or reset or self.reset_each_rollout:
            self.reset()
        b = self.buffer
        b.episode_returns, b.episode_lengths = [], []
        obs_rms = getattr(self.policy, "obs_rms", None)
        for t in range(b.num_steps):
            b.mask[t] = ~self._reset_pending
            if obs_rms is not None:          # the states acted on in real transitions only
                obs_rms.update(self.obs[b.mask[t]])
            b.obs[t] = self.policy.normalize_input(self.obs)
            dist = self.policy.distribution(b.obs[t])
            if self.noise is None:
                actions = dist.sample(self.rng)
            else:          # the process restarts on reset rows (whose action the env ignores)
                actions = self.noise.sample(dist, self.rng, restart=~b.mask[t])
            b.actions[t] = actions
            b.log_prob[t] = dist.log_prob(actions)

            self.obs, rewards, terminated, truncated = self._step(t, self.policy.to_env(actions))
            b.rewards[t] = (rewards if self.reward_scaler is None else
                            self.reward_scaler.scale(rewards, terminated | truncated, b.mask[t]))
            b.terminated[t] = terminated
            b.truncated[t] = truncated
            self._track_episodes(b, t, rewards, terminated, truncated)
            self.global_step += self.num_envs
        self._fill_values(b)
        return b

    def _step(self, t, env_actions):
        """env.step, with the action offset of a Discrete(start=k) space and its output checked."""
        if self.action_start:
            env_actions = env_actions + self.action_start
        try:
            obs, rewards, terminated, truncated, _ = self.env.step(env_actions)
        except Exception as error:
            raise EnvError(f"the environment raised {type(error).__name__} in step(): "
                           f"{error}") from error
        obs = np.asarray(obs, dtype=np.float64)
        rewards = np.asarray(rewards, dtype=np.float64)
        problem = (env_output_problem("observations", obs, self.limits.obs, t)
                   or env_output_problem("rewards", rewards, self.limits.reward, t))
        if problem:
            raise FloatingPointError(problem)
        return obs.astype(self.buffer.obs.dtype, copy=False), rewards, terminated, truncated

    def state(self):
        """What collect() carries from one call to the next, to continue exactly: a dict of
        numpy arrays and JSON-able values (the sampling generator's state is a dict)."""
        state = {} if self.reward_scaler is None else self.reward_scaler.state("reward_scaler/")
        if self.noise is not None:
            state.update(self.noise.state())
        state.update({"global_step": self.global_step, "seed": self.seed,
                 "rng": self.rng.bit_generator.state,
                 "episode_return": self._episode_return.copy(),
                 "episode_length": self._episode_length.copy(),
                 "reset_pending": self._reset_pending.copy()})
        if self.obs is not None:
            state["obs"] = self.obs.copy()
        return state

    def load_state(self, state, fresh_episodes_seed=None):
        """Continue from state(). With fresh_episodes_seed, the env is not where the state left
        it (its own state was not saved): the next collect() starts new episodes, seeded so."""
        N = self.num_envs
        for name, shape in (("episode_return", (N,)), ("episode_length", (N,)),
                            ("reset_pending", (N,))):
            if np.shape(state[name]) != shape:
                raise ValueError(f"collector state {name!r} has shape {np.shape(state[name])}, "
                                 f"expected {shape} for {N} envs")
        self.global_step = int(state["global_step"])
        self.rng.bit_generator.state = state["rng"]
        if self.reward_scaler is not None:
            self.reward_scaler.load_state(state, "reward_scaler/")
        if self.noise is not None:
            self.noise.load_state(state)
        if fresh_episodes_seed is not None:
            if self.reward_scaler is not None:
                self.reward_scaler.returns[:] = 0.0   # the episodes in progress are gone
            self.seed, self.obs = int(fresh_episodes_seed), None
            return
        self.seed = state["seed"]
        self.obs = (None if state.get("obs") is None
                    else np.array(state["obs"], self.buffer.obs.dtype))
        self._episode_return[:] = state["episode_return"]
        self._episode_length[:] = state["episode_length"]
        self._reset_pending[:] = state["reset_pending"]

    def _fill_values(self, b):
        """values[t] = V(s_t) and next_values[t] = V(s_{t+1}), in one batched forward pass.

        Acting never needs V, so the critic runs once on all T * N observations plus the last
        ones instead of T times on N. Row t+1 holds s_{t+1} even after an episode end (its
        input is the final observation; see trap 2 above), so next_values is values shifted up
        by one row, with V(s_T) -- the bootstrap value -- appended.
        """
        if self.value_fn is None:
            b.values[:] = 0.0
            b.next_values[:] = 0.0
            return
        T, N = b.rewards.shape
        last_obs = self.policy.normalize_input(self.obs)         # as the next rollout will see it
        all_obs = np.concatenate([b.obs.reshape(T * N, -1), last_obs])
        all_values = self.value_fn.predict(all_obs)
        b.values[:] = all_values[:T * N].reshape(T, N)
        b.next_values[:-1] = b.values[1:]
        b.next_values[-1] = all_values[T * N:]

    def _track_episodes(self, b, t, rewards, terminated, truncated):
        real = b.mask[t]
        self._episode_return += rewards * real            # a reset step adds nothing
        self._episode_length += real
        ended = real & (terminated | truncated)
        self._reset_pending = ended
        if ended.any():                                   # most steps end no episode
            for n in np.flatnonzero(ended):
                b.episode_returns.append(float(self._episode_return[n]))
                b.episode_lengths.append(int(self._episode_length[n]))
            self._episode_return[ended] = 0.0
            self._episode_length[ended] = 0

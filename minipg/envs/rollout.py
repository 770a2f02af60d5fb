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

What the env returns is checked once per rollout, on the whole (T, N) arrays, before the
observation statistics or any value is computed from it (and at once if the env raises: a NaN it returned earlier
is the likelier cause): an exception from the env becomes an EnvError that says where it
happened, and a NaN or inf observation or reward, or one too large to train on
(minipg/envs/outputs.py), a FloatingPointError naming the array, the row and the env (it came
from the env, so no learning rate will fix it). A Discrete(n, start=k)
action space gets the policy's indices 0..n-1 shifted by k.

Per env step the collector does only what acting needs: normalise the observation (with
constants computed once per rollout), the policy's forward pass and sample, log_prob, the env
step, and (with norm_reward) the reward scaler's step. The observation statistics and the
checks run once per rollout on the whole batch (minipg/core/normalize.py says what batching the
statistics changes: the normalisation is frozen at the statistics from the start of the
rollout). The reward scaler stays per step: the defaults were tuned and checked on many seeds
with it (scaling a whole rollout by one std shrinks the first rollouts' advantages, which
PPO's and A2C's unnormalised advantages feel as a smaller step).
"""
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from minipg.core.checks import as_generator
from minipg.core.normalize import obs_normalizer
from minipg.core.returns import update_kernels
from minipg.envs.outputs import env_output_problem, output_limits, step_output_problem


class EnvError(RuntimeError):
    """The environment raised while minipg was stepping or resetting it."""


def action_start(action_space):
    """k of a Discrete(n, start=k) space (the env's first action), else 0."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.start)
    return 0


def require_next_step_autoreset(env):
    """ValueError unless the vector env autoresets NEXT_STEP (gymnasium's default). Every
    collector's masks, bootstraps and final observations are right for NEXT_STEP only: with
    SAME_STEP the final observation hides in `info` and no reset step exists, so they would be
    silently wrong."""
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode != AutoresetMode.NEXT_STEP:
        raise ValueError(f"env must use NEXT_STEP autoreset (gymnasium's default), got "
                         f"autoreset_mode={mode}")


def call_env(env, method, *args, limits, t=None, **kwargs):
    """env.reset(...) or env.step(...), checked as it returns (the episode collectors: they
    step a few times per episode, where the rollout checks a whole (T, N) rollout at once): an
    exception from the env as an EnvError, observations or rewards that are non-finite or too
    large to train on (`limits`, minipg/envs/outputs.py) as a FloatingPointError naming where."""
    try:
        out = getattr(env, method)(*args, **kwargs)
    except Exception as error:
        raise EnvError(f"the environment raised {type(error).__name__} in {method}(): "
                       f"{error}") from error
    problem = step_output_problem(out[0], out[1] if method == "step" else None, limits, t)
    if problem:
        raise FloatingPointError(problem)
    return out


_SYNC_STATE = ("envs", "_autoreset_envs", "_env_obs", "_rewards", "_terminations",
               "_truncations")


def _steps_its_envs_itself(env):
    """True for gymnasium's own SyncVectorEnv (not a subclass, which may step differently)
    with the state its NEXT_STEP step() keeps: the collector then steps the copies itself."""
    return (type(env) is gym.vector.SyncVectorEnv and env.autoreset_mode == AutoresetMode.NEXT_STEP
            and all(hasattr(env, name) for name in _SYNC_STATE))


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
        require_next_step_autoreset(env)
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
        # What the env returned, before normalisation and scaling, for the checks and the
        # statistics at the end of the rollout: raw_obs[t] is the observation acted on at step
        # t (raw_obs[T] the next rollout's first), raw_rewards[t] the env's own reward.
        self._raw_obs = np.zeros((T + 1, N) + obs_shape, dtype)
        self._raw_rewards = np.zeros((T, N))
        self.limits = output_limits(dtype, T * N, T)   # of what the env returns: envs/outputs.py
        self.action_start = action_start(action_space)
        self.seed = seed
        self.reset_each_rollout = reset_each_rollout  # every collect() starts fresh episodes
        self.steps_per_collect = T * N
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
        raw_obs, raw_rewards = self._raw_obs, self._raw_rewards
        raw_obs[0] = self.obs
        obs_rms = getattr(self.policy, "obs_rms", None)
        normalizer = self._normalizer(obs_rms)      # frozen for the rollout
        # Asked once per rollout, not per step (a resume may have swapped self.env in between).
        step_copies = _steps_its_envs_itself(self.env)
        for t in range(b.num_steps):
            b.mask[t] = ~self._reset_pending
            x = b.obs[t]
            if normalizer is None:
                x[...] = raw_obs[t]
            else:                                   # normalize_obs's arithmetic, in place
                mean, scale, clip_obs = normalizer
                np.subtract(raw_obs[t], mean, out=x)
                x *= scale
                np.clip(x, -clip_obs, clip_obs, out=x)
            dist = self.policy.distribution(x)
            if self.noise is None:
                actions, log_prob = dist.sample_with_log_prob(self.rng)
            else:          # the process restarts on reset rows (whose action the env ignores)
                actions = self.noise.sample(dist, self.rng, restart=~b.mask[t])
                log_prob = dist.log_prob(actions)
            b.actions[t] = actions
            b.log_prob[t] = log_prob

            rewards, terminated, truncated = self._step(t, self.policy.to_env(actions),
                                                        step_copies)
            if self.reward_scaler is not None:
                b.rewards[t] = self.reward_scaler.scale(rewards, terminated | truncated, b.mask[t])
            b.terminated[t] = terminated
            b.truncated[t] = truncated
            self._track_episodes(b, t, rewards, terminated, truncated)
            self.global_step += self.num_envs
        self._check_env_outputs(b.num_steps)
        self.obs = raw_obs[-1].copy()
        if obs_rms is not None:          # the states acted on in real transitions only
            obs_rms.update(raw_obs[:-1][b.mask])
        if self.reward_scaler is None:
            b.rewards[...] = raw_rewards
        self._fill_values(b, normalizer)
        return b

    def _normalizer(self, obs_rms):
        """(mean, scale, clip_obs) of the policy's observation normalisation, or None."""
        if obs_rms is None:
            return None
        return (*obs_normalizer(obs_rms, self.buffer.obs.dtype), self.policy.clip_obs)

    def _step(self, t, env_actions, step_copies):
        """env.step, with the action offset of a Discrete(start=k) space; its observations and
        rewards go to raw_obs[t + 1] and raw_rewards[t] (checked at the end of the rollout).
        step_copies: the env is a SyncVectorEnv whose copies _step_sync_envs steps itself."""
        if self.action_start:
            env_actions = env_actions + self.action_start
        try:
            if step_copies:
                return self._step_sync_envs(t, env_actions)
            obs, rewards, terminated, truncated, _ = self.env.step(env_actions)
        except Exception as error:
            self._check_env_outputs(t)         # a NaN it returned before is the likelier cause
            raise EnvError(f"the environment raised {type(error).__name__} in step(): "
                           f"{error}") from error
        self._raw_obs[t + 1] = obs
        self._raw_rewards[t] = rewards
        return self._raw_rewards[t], terminated, truncated

    def _step_sync_envs(self, t, env_actions):
        """SyncVectorEnv.step's NEXT_STEP branch, done here: each copy steps (or, after its
        episode ended, resets: reward 0, not terminated, not truncated), its observation goes
        straight into raw_obs, and the vector env's own state is kept as its step() keeps it
        (so that it saves, restores and steps on exactly as before). What is left out: the
        infos dict, which nothing here reads, and a stacked copy of the observations per step;
        together a third of a MuJoCo env's own step time."""
        venv = self.env
        obs_out = self._raw_obs[t + 1]
        rewards, terminated, truncated = venv._rewards, venv._terminations, venv._truncations
        for i, sub_env in enumerate(venv.envs):
            if venv._autoreset_envs[i]:
                venv._env_obs[i], _ = sub_env.reset()
                rewards[i], terminated[i], truncated[i] = 0.0, False, False
            else:
                (venv._env_obs[i], rewards[i], terminated[i], truncated[i],
                 _) = sub_env.step(env_actions[i])
            obs_out[i] = venv._env_obs[i]
        venv._autoreset_envs = np.logical_or(terminated, truncated)
        self._raw_rewards[t] = rewards
        return self._raw_rewards[t], terminated.copy(), truncated.copy()

    def _check_env_outputs(self, steps):
        """FloatingPointError for the first NaN, inf or value too large to train on
        (minipg/envs/outputs.py) that the env returned in its first `steps` steps of this
        rollout, naming the array, the step and the env."""
        obs, rewards, limits = self._raw_obs[1:steps + 1], self._raw_rewards[:steps], self.limits
        # The usual case: two passes, no copy (NaN fails the comparison too, below).
        if (float(np.abs(obs).max(initial=0.0)) <= limits.obs
                and float(np.abs(rewards).max(initial=0.0)) <= limits.reward):
            return
        # the earliest step with a bad value; at that step the observation is named first
        bad_obs = (~(np.abs(obs) <= limits.obs)).reshape(steps, -1).any(axis=1)
        bad_rewards = (~(np.abs(rewards) <= limits.reward)).any(axis=1)
        t = int(np.flatnonzero(bad_obs | bad_rewards)[0])
        raise FloatingPointError(step_output_problem(obs[t], rewards[t], limits, t))

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

    def _fill_values(self, b, normalizer=None):
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
        last_obs = self.obs.copy()           # normalised as the rollout's rows were
        if normalizer is not None:
            mean, scale, clip_obs = normalizer
            last_obs -= mean
            last_obs *= scale
            np.clip(last_obs, -clip_obs, clip_obs, out=last_obs)
        all_obs = np.concatenate([b.obs.reshape(T * N, -1), last_obs])
        all_values = self.value_fn.predict(all_obs)
        b.values[:] = all_values[:T * N].reshape(T, N)
        b.next_values[:-1] = b.values[1:]
        b.next_values[-1] = all_values[T * N:]

    def _track_episodes(self, b, t, rewards, terminated, truncated):
        real = b.mask[t]
        if update_kernels is not None:         # the lines below as one compiled call
            tracked = update_kernels.track_episodes(self._episode_return, self._episode_length,
                                                    rewards, real, terminated, truncated)
            if tracked is not None:            # None: arrays it does not take, NumPy does
                self._reset_pending, finished = tracked
                for episode_return, episode_length in finished:
                    b.episode_returns.append(episode_return)
                    b.episode_lengths.append(episode_length)
                return
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

"""Batches of N whole, independent episodes: what REINFORCE's Monte Carlo estimate averages.

    grad J = E_tau[ sum_t score_t Psi_t ]  ~  (1/N) sum_{n<N} sum_t score_t^(n) Psi_t^(n)

is an average of N i.i.d. draws of the per-episode sum only if the N episodes are drawn as the
policy draws them: each from a fresh reset, each kept whatever its length. `collect()` does that
on a vector env of N copies: every env is reset, from a seed drawn from `rng`, and plays
exactly one episode; the batch ends when the last one does. It is returned as a (T, N) Rollout
(minipg/envs/rollout.py) whose column n is episode n, from row 0 to its end, T being the longest
episode of the batch:

    obs[t, n]          s_t (as the network saw it: normalised, if the policy normalises)
    actions, log_prob  a_t ~ pi(.|s_t) and log pi(a_t|s_t) of the policy that acted
    rewards[t, n]      r_t (divided by the return's running std with norm_reward)
    terminated[t, n]   the episode reached a terminal state at its last step
    truncated[t, n]    a time limit cut it at its last step: the env's own, or max_episode_steps
    values, next_values    V(s_t) and V(s_{t+1}); at the last step of a truncated episode
                       V(final observation), what completes its return (0 without a critic)
    mask[t, n]         True at the steps of episode n; after its end every array holds 0

Why whole episodes rather than the episodes that end inside a window of T rows: a window holds
more short episodes than long ones (an env that finishes quickly starts another), and the
episode still running at its end is lost. Pooling them would over-weight short episodes, and
dividing by their random number makes a ratio estimator: biased whenever the length of an
episode and its score-weighted return are related, as they are in CartPole.

Nothing is wasted: `global_step` counts the transitions of the episodes, the steps the batch
learns from. An env whose episode is over is still stepped (a vector env steps all copies) until
the longest ends, but those calls are neither transitions nor counted. Every collection draws
a new reset seed from `rng`, so nothing of the env carries from one batch to the next: the
collector's state is its generator, its step count and the reward scaler's statistics.
"""
import numpy as np

from minipg.core.checks import as_generator
from minipg.envs.outputs import output_limits
from minipg.envs.rollout import (Rollout, action_start, call_env,
                                  require_next_step_autoreset)

__all__ = ["EpisodeCollector"]


class EpisodeCollector:
    """One whole episode per env of a vector env per collect(), every env from a reset (one
    seed per batch, drawn from rng: the envs' start states are independent draws)."""

    keeps_env_state = False
    """Every collect() resets every env from seeds drawn from rng: no env state to keep."""
    steps_per_collect = None
    """Episodes vary in length: a batch has no fixed number of steps."""

    def __init__(self, env, policy, value_fn, max_episode_steps, rng, reward_scaler=None,
                 noise=None):
        if int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        # With NEXT_STEP autoreset the observation returned at an episode's last step is its
        # final observation, the one a truncated episode bootstraps from; SAME_STEP hides it.
        require_next_step_autoreset(env)
        self.env, self.policy, self.value_fn = env, policy, value_fn
        self.num_envs = env.num_envs
        self.max_episode_steps = int(max_episode_steps)
        self.rng = as_generator(rng)
        self.reward_scaler = reward_scaler            # a RewardScaler, or None
        self.noise = noise                            # a ColouredNoise (Gaussian policies), or None
        self.action_start = action_start(env.single_action_space)
        self.global_step = 0                          # transitions of the episodes collected
        # Of what the env returns (minipg/envs/outputs.py): a batch holds at most N episodes
        # of max_episode_steps transitions, and a return sums at most max_episode_steps rewards.
        self.limits = output_limits(policy.params.dtype, self.num_envs * self.max_episode_steps,
                                    self.max_episode_steps)

    def collect(self):
        """Run one episode in every env, from fresh resets, to its end; returns the Rollout."""
        N, dtype = self.num_envs, self.policy.params.dtype
        # One seed per batch: a vector env seeded with s draws its N start states independently
        # (gymnasium's sync and async envs seed copy i with s + i; CartPole's NumPy env draws
        # all N from one generator), and every env accepts an int where not all take a list.
        obs = call_env(self.env, "reset", seed=int(self.rng.integers(2 ** 31)),
                       limits=self.limits)[0]
        if self.noise is not None:
            self.noise.restart()
        if self.reward_scaler is not None:
            self.reward_scaler.returns[:] = 0.0       # every return starts again
        obs_rms = getattr(self.policy, "obs_rms", None)
        running, length = np.ones(N, bool), np.zeros(N, np.int64)
        episode_return = np.zeros(N)
        final_obs = np.zeros(np.shape(obs), dtype)   # each episode's last observation
        rows = {name: [] for name in ("obs", "actions", "log_prob", "rewards", "terminated",
                                      "truncated", "mask")}
        while running.any():
            obs = np.asarray(obs, dtype)
            if obs_rms is not None:              # the states acted on, in real transitions only
                obs_rms.update(obs[running])
            x = self.policy.normalize_input(obs)
            dist = self.policy.distribution(x)
            actions = (dist.sample(self.rng) if self.noise is None
                       else self.noise.sample(dist, self.rng))
            env_actions = self.policy.to_env(actions)
            if self.action_start:
                env_actions = env_actions + self.action_start
            obs, rewards, terminated, truncated, _ = call_env(
                self.env, "step", env_actions, limits=self.limits, t=len(rows["mask"]))
            rewards = np.asarray(rewards, np.float64)
            length += running
            episode_return += np.where(running, rewards, 0.0)
            # A time limit of our own cuts an episode the env would let run on.
            truncated = running & ~terminated & (truncated | (length >= self.max_episode_steps))
            terminated = running & terminated
            ended = terminated | truncated
            final_obs[ended] = self.policy.normalize_input(np.asarray(obs, dtype)[ended])
            if self.reward_scaler is not None:
                rewards = self.reward_scaler.scale(rewards, ended, running)
            rows["obs"].append(np.where(running[:, None], x, 0))
            rows["actions"].append(np.where(running.reshape((N,) + (1,) * (actions.ndim - 1)),
                                            actions, 0))
            rows["log_prob"].append(np.where(running, dist.log_prob(actions), 0))
            rows["rewards"].append(np.where(running, rewards, 0))
            rows["terminated"].append(terminated)
            rows["truncated"].append(truncated)
            rows["mask"].append(running.copy())
            running &= ~ended
        self.global_step += int(length.sum())
        batch = Rollout(obs=np.stack(rows["obs"]), actions=np.stack(rows["actions"]),
                        log_prob=np.stack(rows["log_prob"]).astype(dtype),
                        values=None, rewards=np.stack(rows["rewards"]).astype(dtype),
                        terminated=np.stack(rows["terminated"]),
                        truncated=np.stack(rows["truncated"]), next_values=None,
                        mask=np.stack(rows["mask"]), episode_returns=episode_return.tolist(),
                        episode_lengths=length.tolist())
        batch.values, batch.next_values = self._values(batch, final_obs)
        return batch

    def _values(self, batch, final_obs):
        """values[t] = V(s_t) and next_values[t] = V(s_{t+1}) over the episodes' steps (0
        elsewhere, and everywhere without a critic): next_values is values shifted up one row
        inside an episode, V(final observation) at its last step. One forward pass."""
        T, N = batch.mask.shape
        values = np.zeros((T, N), batch.rewards.dtype)
        next_values = np.zeros((T, N), batch.rewards.dtype)
        if self.value_fn is None:
            return values, next_values
        last = batch.terminated | batch.truncated
        predicted = self.value_fn.predict(np.concatenate([batch.obs[batch.mask], final_obs]))
        values[batch.mask] = predicted[:-N]
        next_values[:-1] = values[1:]
        # Each column's last step holds exactly one True in `last`; its row order is row-major,
        # final_obs's is by env: place V(final observation) column by column.
        rows, envs = np.nonzero(last)
        next_values[rows, envs] = predicted[-N:][envs]
        return values, next_values

    def state(self):
        """What collect() carries from one call to the next: its generator, its step count and
        the reward scaler's statistics (the noise restarts with every batch)."""
        state = {} if self.reward_scaler is None else self.reward_scaler.state("reward_scaler/")
        state.update({"global_step": self.global_step, "rng": self.rng.bit_generator.state})
        return state

    def load_state(self, state, fresh_episodes_seed=None):
        """Continue from state(). Every batch starts from resets, so the env's own state is
        never needed (fresh_episodes_seed, given when it was not restored, changes nothing)."""
        self.global_step = int(state["global_step"])
        self.rng.bit_generator.state = state["rng"]
        if self.reward_scaler is not None:
            self.reward_scaler.load_state(state, "reward_scaler/")

"""Groups of whole episodes that share a reset seed: what GRPO on an environment learns from.

A "prompt" is a start state: each of P reset seeds starts G episodes, which begin identically
and differ only in the actions sampled. `GroupCollector.collect()` runs all P * G episodes of a
vector env (one env per episode) to their ends and returns them padded to the longest, row b
being episode b of group b // G:

    obs[b, t]        the observation action t was chosen from (zeros after the end)   (B, T, obs_dim)
    actions[b, t]    the sampled action                                              (B, T)
    log_prob[b, t]   log pi_old(a|s) of the policy that acted                        (B, T)
    mask[b, t]       True at the steps of episode b                                  (B, T)
    returns[b]       its undiscounted return, what the group compares                (B,)

Every collection resets every env with its group's seed, so nothing of the env carries from
one batch to the next: the collector's state is its generator and its step count. Steps count
the transitions of the episodes (a finished env is stepped on, unused, until its group ends).
An episode that has not ended after the env's own time limit (or max_episode_steps, for an env
without one) is cut there, as a time limit would.
"""
from dataclasses import dataclass, field

import numpy as np

from minipg.core.checks import as_generator
from minipg.envs.outputs import output_limits
from minipg.envs.rollout import call_env

__all__ = ["EpisodeBatch", "GroupCollector", "DEFAULT_MAX_EPISODE_STEPS"]

DEFAULT_MAX_EPISODE_STEPS = 1000
"""The step limit of an episode on an env without a time limit of its own."""


@dataclass
class EpisodeBatch:
    """P * G complete episodes, row b = episode b (group b // G), padded to the longest."""
    obs: np.ndarray
    """(B, T, obs_dim) observations the actions were chosen from; zeros after the end."""
    actions: np.ndarray
    """(B, T) int actions."""
    log_prob: np.ndarray
    """(B, T) log pi_old(a|s) of the policy that acted."""
    mask: np.ndarray
    """(B, T) True at the steps of the episode."""
    returns: np.ndarray
    """(B,) undiscounted returns, the rewards the groups compare."""
    max_episode_steps: int = 0
    """The longest an episode may run (the env's time limit): dr_grpo's constant length."""
    episode_returns: list = field(default_factory=list)
    """The returns as a list, like a Rollout's (the loop's statistics read it)."""
    episode_lengths: list = field(default_factory=list)
    """Their lengths in transitions."""

    def network_outputs(self):
        """What the policy computed while collecting, for the loop's finiteness check."""
        return {"log_prob": self.log_prob}


class GroupCollector:
    """Collects num_groups groups of group_size episodes per call from a vector env of
    num_groups * group_size copies, each group from a fresh reset seed drawn from `rng`."""

    keeps_env_state = False
    """Every collect() resets every env from seeds drawn from rng: no env state to keep."""
    steps_per_collect = None
    """Episodes vary in length: a batch has no fixed number of steps."""

    def __init__(self, env, policy, num_groups, group_size, rng):
        if env.num_envs != num_groups * group_size:
            raise ValueError(f"env must have num_groups * group_size = "
                             f"{num_groups * group_size} copies, got {env.num_envs}")
        self.env, self.policy = env, policy
        self.num_groups, self.group_size = num_groups, group_size
        self.rng = as_generator(rng)
        spec = getattr(env, "spec", None)
        self.max_episode_steps = (getattr(spec, "max_episode_steps", None)
                                  or DEFAULT_MAX_EPISODE_STEPS)
        self.global_step = 0                  # transitions of the episodes collected so far
        # Of what the env returns (minipg/envs/outputs.py): as for whole episodes, a batch holds
        # at most num_envs episodes of max_episode_steps transitions each, all in one update.
        self.limits = output_limits(policy.params.dtype, env.num_envs * self.max_episode_steps,
                                    self.max_episode_steps)

    def collect(self):
        """Run one batch of groups to their ends; returns the EpisodeBatch."""
        reset_seeds = self.rng.integers(2 ** 31, size=self.num_groups)
        seeds = [int(s) for s in np.repeat(reset_seeds, self.group_size)]
        dtype = self.policy.params.dtype
        obs = call_env(self.env, "reset", seed=seeds, limits=self.limits)[0]
        B = len(seeds)
        running = np.ones(B, bool)
        returns, lengths = np.zeros(B), np.zeros(B, np.int64)
        rows_obs, rows_actions, rows_log_prob, rows_mask = [], [], [], []
        while running.any():
            obs = np.asarray(obs, dtype=dtype)
            dist = self.policy.distribution(obs)
            actions, log_prob = dist.sample_with_log_prob(self.rng)
            rows_obs.append(np.where(running[:, None], obs, 0))
            rows_actions.append(actions)
            rows_log_prob.append(log_prob)
            rows_mask.append(running.copy())
            obs, rewards, terminated, truncated, _ = call_env(
                self.env, "step", self.policy.to_env(actions), limits=self.limits,
                t=len(rows_mask) - 1)
            returns += np.where(running, rewards, 0.0)
            lengths += running
            running &= ~(terminated | truncated) & (lengths < self.max_episode_steps)
        mask = np.stack(rows_mask, 1)
        self.global_step += int(lengths.sum())
        return EpisodeBatch(np.stack(rows_obs, 1), np.stack(rows_actions, 1),
                            np.stack(rows_log_prob, 1), mask, returns, self.max_episode_steps,
                            returns.tolist(), lengths.tolist())

    def state(self):
        """What collect() carries from one call to the next: its generator and step count."""
        return {"global_step": self.global_step, "rng": self.rng.bit_generator.state}

    def load_state(self, state, fresh_episodes_seed=None):
        """Continue from state(). Every batch starts from resets, so the env's own state is
        never needed (fresh_episodes_seed, given when it was not restored, changes nothing)."""
        self.global_step = int(state["global_step"])
        self.rng.bit_generator.state = state["rng"]

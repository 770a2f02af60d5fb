"""GRPO on a gymnasium environment: the group baseline on episodes, no critic.

The sequence picture carried back to control. A "prompt" is a start state: a group is G
episodes reset with the same seed, so that they start identically and differ only in the
actions sampled (CartPole's dynamics are deterministic given the start). An episode is a
"response", its undiscounted return R_j the "verdict", and every step of episode j gets the
same advantage

    A_j = group_advantages(R of the group)_j          (no value function, no GAE)

then the per-step clipped ratio and the token weights of minipg/algos/grpo.py, the steps of an
episode playing the tokens of a response. Compared with PPO, nothing estimates which step of an
episode earned the return: the group only says which episodes beat their siblings.

Environment steps are counted as the transitions of the episodes collected (a finished env of
the vector env is stepped on until its group is done, but those steps are never used).
"""
import time
from dataclasses import dataclass
from typing import Tuple

import gymnasium as gym
import numpy as np

from minipg.algos.common import clip_and_step
from minipg.algos.grpo import (all_equal_groups,
                               check_group_fields, group_advantages, grpo_loss, token_weights)
from minipg.checks import check_int
from minipg.optim import Adam
from minipg.policies import CategoricalPolicy
from minipg.speed import training_speed

__all__ = ["Config", "collect_groups", "update", "train"]


@dataclass
class Config:
    """GRPO on a gymnasium env with discrete actions; defaults tuned on CartPole-v1."""
    env_id: str = "CartPole-v1"
    """gymnasium environment id (discrete actions, flat observations)."""
    total_steps: int = 300_000
    """Budget of environment transitions (the steps of the collected episodes)."""
    num_groups: int = 8
    """P, start states per update, each a reset seed shared by a group."""
    group_size: int = 8
    """G, episodes per start state."""
    num_iterations: int = 4
    """Gradient steps on each batch of P * G episodes."""
    learning_rate: float = 3e-3
    """Adam step size."""
    baseline: str = "group_mean"
    """"group_mean" or "leave_one_out" (see grpo.group_advantages)."""
    scale: str = "group"
    """Divide the centred returns by the std of the "group", of the "batch", or "none"."""
    adv_eps: float = 1e-4
    """eps added to the std before dividing."""
    loss_agg: str = "grpo"
    """"grpo" (mean over each episode's steps, then over episodes), "dapo" (mean over all steps)
    or "dr_grpo" (sum over steps / (B * longest episode allowed))."""
    eps_low: float = 0.2
    """The ratio is clipped below at 1 - eps_low."""
    eps_high: float = 0.2
    """The ratio is clipped above at 1 + eps_high."""
    ent_coef: float = 0.0
    """Weight of an entropy bonus, with the same step weights."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this (0 turns clipping off)."""
    hidden_sizes: Tuple[int, ...] = (64, 64)
    """Hidden widths of the policy network."""
    seed: int = 0
    """Fixes the initial weights, the reset seeds of the groups and the sampled actions."""

    def validate(self):
        check_int("total_steps", self.total_steps, 1)
        check_int("num_groups", self.num_groups, 1)
        check_group_fields(self)
        return self


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


def collect_groups(env, policy, reset_seeds, group_size, rng):
    """Run G episodes from each reset seed to their ends; returns an EpisodeBatch.

    env: a vector env of len(reset_seeds) * group_size copies (NEXT_STEP autoreset: after an
    env's episode ends its later rows are masked out, and it is stepped on unused).
    """
    seeds = [int(s) for s in np.repeat(reset_seeds, group_size)]
    obs, _ = env.reset(seed=seeds)
    B = len(seeds)
    running = np.ones(B, bool)
    returns = np.zeros(B)
    rows_obs, rows_actions, rows_log_prob, rows_mask = [], [], [], []
    while running.any():
        obs = np.asarray(obs, dtype=np.float64)
        dist = policy.distribution(obs)
        actions = dist.sample(rng)
        rows_obs.append(np.where(running[:, None], obs, 0.0))
        rows_actions.append(actions)
        rows_log_prob.append(dist.log_prob(actions))
        rows_mask.append(running.copy())
        obs, rewards, terminated, truncated, _ = env.step(policy.to_env(actions))
        returns += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
    return EpisodeBatch(np.stack(rows_obs, 1), np.stack(rows_actions, 1),
                        np.stack(rows_log_prob, 1), np.stack(rows_mask, 1), returns)


def update(policy, optim, batch, config, max_episode_steps):
    """num_iterations GRPO steps on a batch of groups of episodes; returns its statistics."""
    P, G = len(batch.returns) // config.group_size, config.group_size
    rewards = batch.returns.reshape(P, G)
    advantages = group_advantages(rewards, config.scale, config.baseline,
                                  config.adv_eps).reshape(P * G)
    mask = batch.mask
    if config.loss_agg == "dr_grpo":         # the constant is the longest episode allowed
        mask = np.concatenate([mask, np.zeros((P * G, max_episode_steps - mask.shape[1]), bool)],
                              axis=1)
    weights = token_weights(mask, config.loss_agg)[:, :batch.mask.shape[1]]
    stats = []
    for _ in range(config.num_iterations):
        dist, cache = policy.forward(batch.obs)
        loss, grad_log_prob, step_stats = grpo_loss(
            dist.log_prob(batch.actions), batch.log_prob, advantages, weights, config.eps_low,
            config.eps_high)
        dist_grads = dist.param_grads(batch.actions, grad_log_prob, -config.ent_coef * weights)
        step_stats["grad_norm"] = clip_and_step(optim, policy.backward(cache, dist_grads),
                                                config.max_grad_norm)
        stats.append(step_stats)
    record = {name: float(np.mean([s[name] for s in stats])) for name in stats[0]}
    record["frac_all_equal"] = float(all_equal_groups(rewards).mean())
    record["mean_return"] = float(batch.returns.mean())
    return record


def train(config, callback=None):
    """GRPO on config.env_id until config.total_steps transitions; returns (policy, history).

    callback(record, policy) after each update, outside the timed training; True stops. Each
    record has env_steps (transitions so far) and wall_clock (training seconds).
    """
    config.validate()
    rng = np.random.default_rng(config.seed)
    B = config.num_groups * config.group_size
    # "sync": N copies of the env, each reset with its own seed (the NumPy-vectorised CartPole
    # takes one seed for all its envs, and the groups need theirs repeated).
    env = gym.make_vec(config.env_id, num_envs=B, vectorization_mode="sync")
    max_episode_steps = env.spec.max_episode_steps or 1000
    policy = CategoricalPolicy(env.single_observation_space.shape[0],
                               int(env.single_action_space.n), config.hidden_sizes, rng=rng)
    optim = Adam(policy.params, config.learning_rate, eps=1e-5)
    history, env_steps, seconds = [], 0, 0.0
    try:
        with training_speed():
            while env_steps < config.total_steps:
                start = time.perf_counter()
                reset_seeds = rng.integers(2 ** 31, size=config.num_groups)
                batch = collect_groups(env, policy, reset_seeds, config.group_size, rng)
                record = update(policy, optim, batch, config, max_episode_steps)
                seconds += time.perf_counter() - start
                env_steps += int(batch.mask.sum())
                record.update(env_steps=env_steps, wall_clock=seconds)
                history.append(record)
                if callback is not None and callback(record, policy):
                    break
    finally:
        env.close()
    return policy, history

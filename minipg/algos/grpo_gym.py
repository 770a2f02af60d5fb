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
the vector env is stepped on until its group is done, but those steps are never used). The run
around it -- collect, update, log, checkpoint, resume -- is every algorithm's
(minipg/run/loop.py); this module is the Config and the update.
"""
from dataclasses import dataclass

import numpy as np

from minipg.algos.config import RunConfig
from minipg.algos.grpo import (all_equal_groups, check_group_fields, group_advantages, grpo_loss,
                               token_weights)
from minipg.core.checks import check_bool, check_choice, check_int
from minipg.core.optim import clip_and_step

__all__ = ["Config", "update", "COLLECTS"]

LOG_FIELDS = ("policy_loss", "clip_frac", "grad_norm", "frac_all_equal", "group_return")
"""progress.csv's columns after the run's: the update's statistics (means over its gradient
steps), the fraction of groups whose returns were all equal (no signal), and the mean return of
the batch's episodes."""
COLLECTS = "groups"
"""How the run collects for this algorithm: groups of whole episodes that share a reset seed
(minipg/envs/groups.py), not a (T, N) rollout."""


def uses_critic(config):
    return False


@dataclass
class Config(RunConfig):
    """GRPO on a gymnasium env with discrete actions; defaults tuned on CartPole-v1."""
    total_steps: int = 300_000
    vectorization: str = "sync"
    dtype: str = "float64"
    num_groups: int = 8
    """P, start states per update, each a reset seed shared by a group."""
    group_size: int = 8
    """G, episodes per start state."""
    num_iterations: int = 4
    """Gradient steps on each batch of P * G episodes."""
    learning_rate: float = 3e-3
    """Adam step size."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the budget of env steps."""
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

    @property
    def num_envs(self):
        """P * G: one env per episode of a batch (not a field: the groups fix it)."""
        return self.num_groups * self.group_size

    def validate(self):
        super().validate()
        check_int("num_groups", self.num_groups, 1)
        check_group_fields(self)
        check_bool("anneal_lr", self.anneal_lr)
        # The groups need one reset seed per env: the NumPy-vectorized envs take one for all.
        check_choice("vectorization", self.vectorization, ("sync", "async"))
        return self


def update(batch, policy, value_fn, optim, config, rng):
    """num_iterations GRPO steps on a batch of groups of episodes; returns its statistics.

    value_fn is None and rng unused (no critic, no minibatches): the signature is every
    algorithm's, so that one training loop runs them all.
    """
    P, G = len(batch.returns) // config.group_size, config.group_size
    rewards = batch.returns.reshape(P, G)
    advantages = group_advantages(rewards, config.scale, config.baseline,
                                  config.adv_eps).reshape(P * G)
    mask = batch.mask
    if config.loss_agg == "dr_grpo":         # the constant is the longest episode allowed
        padding = np.zeros((P * G, batch.max_episode_steps - mask.shape[1]), bool)
        mask = np.concatenate([mask, padding], axis=1)
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
    record["group_return"] = float(batch.returns.mean())
    return record

"""Proximal Policy Optimization (Schulman et al. 2017), clipped-surrogate version.

The data was collected by pi_old; we want several gradient steps on it without trusting it too
far. Importance sampling turns the on-policy objective into one on old data:

    ratio_i      = pi_theta(a_i|s_i) / pi_old(a_i|s_i) = exp(log_prob_i - old_log_prob_i)
    L_CLIP       = mean_i  max( -A_i * ratio_i,  -A_i * clip(ratio_i, 1 - clip_coef, 1 + clip_coef) )

The max (of the negated objective) is pessimistic: once the ratio has moved past the clip range
in the direction that helps, the clipped term wins and its gradient is zero, so the step stops
pushing. Differentiating, with d ratio_i / d log_prob_i = ratio_i:

    dL_CLIP/d log_prob_i = -A_i * ratio_i / B   where the unclipped term is the max,   else 0

Beside it, an entropy bonus -ent_coef * mean_i H_i keeps the policy exploring, and the value
function regresses on the GAE returns A_i + V_old(s_i). All three losses are means over the
steps of a minibatch (per step, not per trajectory). Advantages come from GAE(gamma, lam) over
the whole rollout, before it is cut into minibatches.
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from minipg.algos.common import normalize, optimizer_step, policy_backward, value_backward
from minipg.config import (TrainConfig, check_positive_int, check_range,
                           check_rollout_holds_transitions)
from minipg.returns import gae

# Episodes run on across rollouts: a segment cut by the rollout's end bootstraps from V.
COMPLETE_EPISODES = False


@dataclass
class Config(TrainConfig):
    # Defaults tuned on CartPole-v1 (benchmarks/bench_cartpole.py): close to rl-zoo's tuned
    # PPO (gamma 0.98, lam 0.8, many epochs on a small batch), with twice the envs per step
    # call and a larger learning rate, so that seeds 0-2 solve it within ~15k env steps.
    num_envs: int = 16
    """N, the number of environments stepped together."""
    num_steps: int = 32
    """T, steps per environment per rollout; the batch is the T * N real transitions."""
    gamma: float = 0.98
    """Discount factor."""
    learning_rate: float = 3e-3
    """Adam step size for the policy and the value function (decayed linearly if anneal_lr)."""
    lam: float = 0.8
    """GAE lambda: 0 is the one-step TD residual, 1 the Monte Carlo return minus V."""
    update_epochs: int = 10
    """K, passes over the batch per rollout."""
    num_minibatches: int = 2
    """Minibatches per pass; the minibatch size is the batch size divided by this."""
    clip_coef: float = 0.2
    """epsilon of the clipped surrogate: the ratio is clipped to [1 - eps, 1 + eps]."""
    ent_coef: float = 0.0
    """beta, the weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss (it shares the gradient-norm budget with the policy)."""
    target_kl: Optional[float] = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""

    def validate(self):
        super().validate()
        check_rollout_holds_transitions(self)
        check_range("lam", self.lam, 0.0, 1.0)
        check_range("clip_coef", self.clip_coef, 0.0, 10.0)
        check_range("ent_coef", self.ent_coef, 0.0, math.inf)
        check_range("vf_coef", self.vf_coef, 0.0, math.inf)
        check_positive_int("update_epochs", self.update_epochs)
        check_positive_int("num_minibatches", self.num_minibatches)
        # One-sample minibatches train nothing: a normalised advantage of one sample is 0.
        if self.num_envs * self.num_steps < 2 * self.num_minibatches:
            raise ValueError(f"num_minibatches={self.num_minibatches} cuts a batch of "
                             f"num_envs * num_steps = {self.num_envs * self.num_steps} steps "
                             "into minibatches of fewer than 2 samples; use at most "
                             f"{self.num_envs * self.num_steps // 2}")
        if self.target_kl is not None:
            check_range("target_kl", self.target_kl, 0.0, math.inf)


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_coef):
    """L_CLIP and dL_CLIP/d log_prob (per sample), plus the ratio; a mean over the B samples.

        ratio_i = exp(log_prob_i - old_log_prob_i)
        L       = mean_i max(-A_i ratio_i, -A_i clip(ratio_i, 1 - clip_coef, 1 + clip_coef))
        dL/d log_prob_i = -A_i ratio_i / B  where the unclipped term is the max, else 0
    """
    ratio = np.exp(log_prob - old_log_prob)       # through log-probabilities: no 0/0
    unclipped = -advantages * ratio
    clipped = -advantages * np.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    loss = float(np.maximum(unclipped, clipped).mean())
    # Where both terms are equal (ratio inside the range) the gradient is the unclipped one.
    grad_log_prob = np.where(unclipped >= clipped, unclipped, 0.0) / len(ratio)
    return loss, grad_log_prob, ratio


def update(rollout, policy, value_fn, policy_optim, value_optim, config, rng):
    """One PPO update on a collected rollout; returns statistics for the log."""
    # 1. Advantages over the whole (T, N) rollout, and the value targets (lambda-returns).
    advantages = gae(rollout.rewards, rollout.values, rollout.next_values,
                     rollout.terminated, rollout.truncated, config.gamma, config.lam)
    returns = advantages + rollout.values

    # 2. Flatten the real transitions into one batch (reset steps are not transitions).
    mask = rollout.mask
    b_obs, b_actions = rollout.obs[mask], rollout.actions[mask]
    b_log_prob, b_advantages, b_returns = rollout.log_prob[mask], advantages[mask], returns[mask]
    batch_size = len(b_obs)
    minibatch_size = max(1, math.ceil(batch_size / config.num_minibatches))

    stats = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
             "clip_frac": [], "grad_norm": []}
    for epoch in range(config.update_epochs):
        order = rng.permutation(batch_size)
        for start in range(0, batch_size, minibatch_size):
            mb = order[start:start + minibatch_size]
            B = len(mb)
            mb_advantages = b_advantages[mb]
            if config.norm_adv:
                mb_advantages = normalize(mb_advantages)

            # 3. log pi_theta(a|s) under the current parameters (pi_old's is in the buffer).
            dist = policy.distribution(b_obs[mb])
            log_prob = dist.log_prob(b_actions[mb])

            # 4. Clipped surrogate and its gradient with respect to log_prob.
            policy_loss, grad_log_prob, ratio = clipped_surrogate(
                log_prob, b_log_prob[mb], mb_advantages, config.clip_coef)

            # 5. Entropy bonus: L_H = -ent_coef * mean_i H_i, so dL_H/dH_i = -ent_coef / B.
            entropy = dist.entropy().mean()
            policy_backward(policy, dist, b_actions[mb], grad_log_prob, -config.ent_coef / B)

            # 6. Value regression on the lambda-returns.
            value_loss = value_backward(value_fn, b_obs[mb], b_returns[mb], config.vf_coef)

            grad_norm = optimizer_step(policy, value_fn, policy_optim, value_optim,
                                       config.max_grad_norm)

            # KL(pi_old || pi_theta) ~ mean((ratio - 1) - log ratio): unbiased and >= 0 per sample.
            logratio = log_prob - b_log_prob[mb]
            approx_kl = float(np.mean((ratio - 1.0) - logratio))
            stats["policy_loss"].append(policy_loss)
            stats["value_loss"].append(value_loss)
            stats["entropy"].append(entropy)
            stats["approx_kl"].append(approx_kl)
            stats["clip_frac"].append(float(np.mean(np.abs(ratio - 1.0) > config.clip_coef)))
            stats["grad_norm"].append(grad_norm)
        if config.target_kl is not None and approx_kl > config.target_kl:
            break
    return {name: float(np.mean(values)) for name, values in stats.items()}

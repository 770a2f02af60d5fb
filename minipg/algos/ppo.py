"""Proximal Policy Optimization (Schulman et al. 2017), clipped-surrogate version.

The data was collected by pi_old; we want several gradient steps on it without trusting it too
far. Importance sampling turns the on-policy objective into one on old data:

    ratio_i      = pi_theta(a_i|s_i) / pi_old(a_i|s_i) = exp(log_prob_i - old_log_prob_i)
    L_CLIP       = mean_i max(-A_i * ratio_i, -A_i * clip(ratio_i, 1 - clip_coef, 1 + clip_coef))

The max (of the negated objective) is pessimistic: once the ratio has moved past the clip range
in the direction that helps, the clipped term wins and its gradient is zero, so the step stops
pushing. Differentiating, with d ratio_i / d log_prob_i = ratio_i:

    dL_CLIP/d log_prob_i = -A_i * ratio_i / B   where the unclipped term is the max,   else 0

Beside it, an entropy bonus -ent_coef * mean_i H_i keeps the policy exploring, and the value
function regresses on the GAE returns A_i + V_old(s_i). All three losses are means over the
steps of a minibatch (per step, not per trajectory). Advantages come from GAE(gamma, lam) over
the whole rollout, before it is cut into minibatches.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from minipg.core.optim import clip_and_step
from minipg.core.losses import normalize
from minipg.core.checks import check_bool, check_int, check_real
from minipg.algos.config import ActorCriticConfig
from minipg.core.losses import value_loss
from minipg.core.returns import gae, update_kernels

COLLECTS = "rollout"
"""How the run collects for this algorithm: a (T, N) rollout (minipg/envs/rollout.py)."""
# Episodes run on across rollouts (the collector keeps them going): a segment cut by the
# rollout's end bootstraps from V.


@dataclass
class Config(ActorCriticConfig):
    # Defaults tuned on CartPole-v1 (benchmarks/bench_cartpole.py, benchmarks/bench_seeds.py):
    # close to rl-zoo's tuned PPO (gamma 0.98, lam 0.8, many epochs on a small batch), with
    # twice the envs per step call and a larger learning rate.
    num_envs: int = 16
    num_steps: int = 32
    gamma: float = 0.98
    learning_rate: float = 3e-3
    lam: float = 0.8
    # Advantages are NOT normalised per minibatch: once CartPole is solved every episode runs
    # to the time limit, the critic fits the returns almost exactly and the advantages shrink
    # to the critic's noise (std ~0.005 against ~1 while learning). Normalising blew that noise
    # up to unit scale and PPO kept taking full-size steps on it (approx_kl up to 0.1, a quarter
    # of the ratios clipped) until the policy broke. Unnormalised, the step shrinks with the
    # signal (Adam's second moment still remembers the larger gradients of learning). The
    # rewards are scaled instead (norm_reward), so the critic's targets are near unit scale,
    # not up to 1 / (1 - gamma) = 50. And the learning rate stays constant: with the step
    # already shrinking with the signal, annealing it to 0 only left a slow seed unable to
    # finish (benchmarks/README.md, "Does every seed end solved?").
    norm_adv: bool = False
    norm_reward: bool = True
    anneal_lr: bool = False
    # Unnormalised advantages keep shrinking while CartPole stays solved (std 0.006 -> 0.0005
    # over 300k steps), and Adam's second moment forgets the gradients of learning within ~50
    # updates: with eps 1e-5 its steps grew back to full size on the noise (approx_kl up to 1.9
    # at 190-230k steps) and broke seeds 4 and 8 by 300k. eps 1e-4 sits above those gradients.
    adam_eps: float = 1e-4
    update_epochs: int = 10
    """K, passes over the batch per rollout."""
    num_minibatches: int = 2
    """Minibatches per pass; the minibatch size is the batch size divided by this."""
    clip_coef: float = 0.2
    """epsilon of the clipped surrogate: the ratio is clipped to [1 - eps, 1 + eps]."""
    target_kl: Optional[float] = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""
    clip_vloss: bool = False
    """Clip the value loss as OpenAI baselines' and CleanRL's PPO do (on by default there): V
    moved more than clip_coef from its value at collection gets no further pull past it."""

    def validate(self):
        super().validate()
        check_real("clip_coef", self.clip_coef, 0.0, 10.0)
        check_int("update_epochs", self.update_epochs, 1)
        check_int("num_minibatches", self.num_minibatches, 1)
        # One-sample minibatches train nothing: a normalised advantage of one sample is 0.
        if self.num_envs * self.num_steps < 2 * self.num_minibatches:
            raise ValueError(f"num_minibatches={self.num_minibatches} cuts a batch of "
                             f"num_envs * num_steps = {self.num_envs * self.num_steps} steps "
                             "into minibatches of fewer than 2 samples; use at most "
                             f"{self.num_envs * self.num_steps // 2}")
        if self.target_kl is not None:
            check_real("target_kl", self.target_kl, 0.0)
        check_bool("clip_vloss", self.clip_vloss)


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_coef):
    """L_CLIP and dL_CLIP/d log_prob (per sample), plus the ratio; a mean over the B samples.

        ratio_i = exp(log_prob_i - old_log_prob_i)
        L       = mean_i max(-A_i ratio_i, -A_i clip(ratio_i, 1 - clip_coef, 1 + clip_coef))
        dL/d log_prob_i = -A_i ratio_i / B  where the unclipped term is the max, else 0
    """
    if update_kernels is not None:
        # the NumPy lines below as one compiled call, the same numbers (ext/_update_kernels.pyx)
        computed = update_kernels.clipped_surrogate(log_prob, old_log_prob, advantages,
                                                    clip_coef)
        if computed is not None:               # None: arrays it does not take, NumPy does
            return computed
    B = len(log_prob)
    ratio = np.exp(log_prob - old_log_prob)       # through log-probabilities: no 0/0
    unclipped = -advantages * ratio
    clipped = -advantages * np.minimum(np.maximum(ratio, 1.0 - clip_coef), 1.0 + clip_coef)
    loss = float(np.maximum(unclipped, clipped).sum()) / B
    # Where both terms are equal (ratio inside the range) the gradient is the unclipped one.
    grad_log_prob = np.where(unclipped >= clipped, unclipped, 0.0) * (1.0 / B)
    return loss, grad_log_prob, ratio


def clipped_value_loss(values, old_values, targets, clip_coef):
    """The clipped value loss and its gradient with respect to the values (mean over n):

        V_clip_i = V_old_i + clip(V_i - V_old_i, -clip_coef, clip_coef)
        L        = 0.5 * mean_i max((V_i - R_i)^2, (V_clip_i - R_i)^2)
        dL/dV_i  = (V_i - R_i) / n   where the unclipped term is the max,   else 0

    Where |V_i - V_old_i| <= clip_coef the two terms are equal and the gradient is the plain
    one; past the range, V_clip_i is a constant and, when its error is the larger, V_i gets no
    gradient. Like the policy's clip, it is pessimistic: a step that has already moved V far
    is not rewarded for moving it further. (Note clip_coef is in the units of V: with rewards
    far from unit scale it clips almost everything; norm_reward keeps the returns near 1.)
    """
    error = values - targets
    clipped_error = old_values + np.clip(values - old_values, -clip_coef, clip_coef) - targets
    unclipped_sq, clipped_sq = error * error, clipped_error * clipped_error
    n = error.size
    loss = 0.5 * float(np.maximum(unclipped_sq, clipped_sq).sum()) / n
    grad = np.where(unclipped_sq >= clipped_sq, error, 0.0) * (1.0 / n)
    return loss, grad


def approx_kl(log_prob, old_log_prob):
    """KL(pi_old || pi_theta) ~ mean((ratio - 1) - log ratio): unbiased, and >= 0 per sample."""
    if update_kernels is not None:
        kl = update_kernels.approx_kl(log_prob, old_log_prob)   # the lines below, compiled
        if kl is not None:
            return kl
    log_ratio = log_prob - old_log_prob
    return float((np.expm1(log_ratio) - log_ratio).sum()) / log_ratio.size


def _clip_fraction(ratio, clip_coef):
    """The fraction of samples whose ratio is outside [1 - clip_coef, 1 + clip_coef]."""
    if update_kernels is not None:
        fraction = update_kernels.clip_fraction(ratio, clip_coef)   # the line below, compiled
        if fraction is not None:
            return fraction
    return int(np.count_nonzero(np.abs(ratio - 1.0) > clip_coef)) / ratio.size


def minibatch_step(policy, value_fn, optim, mb_obs, mb_actions, mb_old_log_prob, mb_advantages,
                   mb_returns, config, mb_values=None):
    """One gradient step of PPO on a minibatch; returns its statistics for the log."""
    B = len(mb_obs)
    if config.norm_adv:
        mb_advantages = normalize(mb_advantages)
    dist, policy_cache = policy.forward(mb_obs)
    values, value_cache = value_fn.forward(mb_obs)
    log_prob = dist.log_prob(mb_actions)

    # The losses and their gradients with respect to log pi, H and V.
    policy_loss, grad_log_prob, ratio = clipped_surrogate(log_prob, mb_old_log_prob,
                                                          mb_advantages, config.clip_coef)
    grad_entropy = -config.ent_coef / B              # L_H = -ent_coef * mean_i H_i
    if config.clip_vloss:
        v_loss, grad_values = clipped_value_loss(values, mb_values, mb_returns, config.clip_coef)
    else:
        v_loss, grad_values = value_loss(values, mb_returns)

    # The chain rule: -> distribution parameters -> both networks' parameters -> one step.
    dist_grads = dist.param_grads(mb_actions, grad_log_prob, grad_entropy)
    grad = np.concatenate([policy.backward(policy_cache, dist_grads),    # laid out like
                           value_fn.backward(value_cache, config.vf_coef * grad_values)])  # params
    grad_norm = clip_and_step(optim, grad, config.max_grad_norm)

    return {"policy_loss": policy_loss, "value_loss": v_loss,
            "entropy": float(dist.entropy().sum()) / B,
            "approx_kl": approx_kl(log_prob, mb_old_log_prob),
            "clip_frac": _clip_fraction(ratio, config.clip_coef),
            "grad_norm": grad_norm}


def update(rollout, policy, value_fn, optim, config, rng):
    """One PPO update on a collected rollout; returns statistics for the log.

    optim holds the parameters of both networks in one vector, the policy's first.
    """
    # 1. Advantages over the whole (T, N) rollout, and the value targets (lambda-returns).
    advantages = gae(rollout.rewards, rollout.values, rollout.next_values,
                     rollout.terminated, rollout.truncated, config.gamma, config.lam)
    returns = advantages + rollout.values

    # 2. Flatten the real transitions into one batch (reset steps are not transitions).
    mask = rollout.mask
    b_obs, b_actions = rollout.obs[mask], rollout.actions[mask]
    b_old_log_prob = rollout.log_prob[mask]
    b_advantages, b_returns, b_values = advantages[mask], returns[mask], rollout.values[mask]
    batch_size = len(b_obs)
    # num_minibatches slices whose sizes differ by at most one (never a trailing one-sample
    # minibatch, whose normalised advantage would be 0), fewer if the batch is that small.
    num_minibatches = max(1, min(config.num_minibatches, batch_size // 2))
    bounds = [batch_size * k // num_minibatches for k in range(num_minibatches + 1)]

    # 3. K epochs of minibatch steps on the clipped surrogate, each epoch in a new random order
    #    (shuffled once per epoch, so that each minibatch is a slice).
    stats = []
    for epoch in range(config.update_epochs):
        order = rng.permutation(batch_size)
        e_obs, e_actions, e_old_log_prob = b_obs[order], b_actions[order], b_old_log_prob[order]
        e_advantages, e_returns, e_values = b_advantages[order], b_returns[order], b_values[order]
        for start, end in zip(bounds[:-1], bounds[1:]):
            mb = slice(start, end)
            stats.append(minibatch_step(policy, value_fn, optim, e_obs[mb], e_actions[mb],
                                        e_old_log_prob[mb], e_advantages[mb], e_returns[mb],
                                        config, e_values[mb]))
        if config.target_kl is not None and stats[-1]["approx_kl"] > config.target_kl:
            break
    return {name: float(np.mean([s[name] for s in stats])) for name in stats[0]}

"""Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath; the RL of DeepSeek-R1).

PPO with the critic replaced by the group. For each of P prompts q_p, sample G responses
o_{p,1..G} ~ pi_old(.|q_p) and score each with a verifier, r_{p,g}. The advantage of a response
is its reward measured against the other responses to the same prompt,

    A_{p,g} = (r_{p,g} - b_{p,g}) / s_p          group_advantages(rewards, scale, baseline, eps)

and every token of the response gets it: the reward is a verdict on the whole sequence, and no
value network says which token earned it. Then, per token t of response i (prompt p, sample g),
with a PPO ratio clipped asymmetrically and a KL penalty to a frozen reference policy:

    ratio_{i,t} = exp(log_prob_{i,t} - old_log_prob_{i,t})
    l_{i,t}     = max(-A_i ratio_{i,t}, -A_i clip(ratio_{i,t}, 1 - eps_low, 1 + eps_high))
                  + beta * k3_{i,t}                                   clipped_token_loss, kl_k3
    k3_{i,t}    = exp(ref_{i,t} - log_prob_{i,t}) - (ref_{i,t} - log_prob_{i,t}) - 1

and the loss sums the per-token losses with aggregation weights w_{i,t} (token_weights):

    L = sum_{i,t} w_{i,t} l_{i,t}
    "grpo"      w_{i,t} = 1 / (B |o_i|)        mean over each response's tokens, then over responses
    "dapo"      w_{i,t} = 1 / sum_i |o_i|      mean over every token of the batch
    "dr_grpo"   w_{i,t} = 1 / (B T_max)        a constant: sum over tokens / (B * max length)

B = P * G responses, |o_i| the tokens response i wrote (EOS included), T_max the generation
budget, w = 0 after EOS. Every term of L is a function of log_prob (and of the entropy, for an
optional bonus), so its gradient reaches the network through the one chain of minipg:

    dL/d log_prob_{i,t} = w_{i,t} (dl_clip/d log_prob + beta (1 - exp(ref - log_prob)))
    dL/dlogits          = dist.param_grads(tokens, dL/d log_prob, -ent_coef * w)
    dL/dparams          = policy.backward(cache, dist_grads)

A group whose rewards are all equal (all right or all wrong) carries no signal: its advantages
are exactly zero and only the KL term moves its tokens. The fraction of such groups is logged
("frac_all_equal"): when it nears 1, the prompts are too easy or too hard for the policy.
"""
from dataclasses import dataclass

import numpy as np

from minipg.core.optim import clip_and_step
from minipg.core.checks import check_choice, check_int, check_real

__all__ = ["group_advantages", "all_equal_groups", "kl_k3", "clipped_token_loss",
           "token_weights", "grpo_loss", "Config", "update"]

BASELINES = ("group_mean", "leave_one_out")
SCALES = ("group", "batch", "none")
LOSS_AGGREGATIONS = ("grpo", "dapo", "dr_grpo")


def _check_rewards(rewards):
    rewards = np.asarray(rewards)
    if rewards.dtype.kind not in "fiub":
        raise TypeError(f"rewards must be a real numeric array, got dtype {rewards.dtype}")
    if rewards.ndim != 2 or rewards.shape[0] == 0 or rewards.shape[1] == 0:
        raise ValueError(f"rewards must have shape (P, G) with P, G >= 1, got {rewards.shape}")
    rewards = rewards.astype(np.float64, copy=False)
    if not np.isfinite(rewards).all():
        raise ValueError("rewards contains a non-finite value (NaN or inf)")
    return rewards


def all_equal_groups(rewards):
    """(P,) bool: True for the groups (rows of rewards (P, G)) whose rewards are all equal."""
    rewards = _check_rewards(rewards)
    return (rewards == rewards[:, :1]).all(axis=1)


def group_advantages(rewards, scale="group", baseline="group_mean", eps=1e-4):
    """Advantages (P, G) of G responses to each of P prompts, from their rewards (P, G).

    baseline  "group_mean"     b_{p,g} = (1/G) sum_k r_{p,k}           the response itself included
              "leave_one_out"  b_{p,g} = (1/(G-1)) sum_{k != g} r_{p,k} the other G - 1 only
    scale     "group"          divide by std_g(r_{p,.}) + eps           (ddof = 0, per prompt)
              "batch"          divide by std(all P * G rewards) + eps
              "none"           no division

    A group whose rewards are all equal gets exactly zero advantages under every setting (set
    explicitly: a mean of equal floats is not always bit-equal to them).

    Why these choices matter (tests/exact/test_grpo_exact.py computes it by enumerating every group):
    the group mean contains r_{p,g} itself, which scales the expected gradient by (G - 1)/G;
    leave-one-out does not, and is unbiased. Dividing by the group's std reweights prompts by
    how often the policy solves them, so the expected update is no longer parallel to grad J.
    """
    rewards = _check_rewards(rewards)
    check_choice("scale", scale, SCALES)
    check_choice("baseline", baseline, BASELINES)
    eps = check_real("eps", eps, 0.0)
    G = rewards.shape[1]
    total = rewards.sum(axis=1, keepdims=True)
    if baseline == "group_mean":
        advantages = rewards - total / G
    else:
        if G < 2:
            raise ValueError("baseline='leave_one_out' needs groups of at least 2 responses")
        advantages = rewards - (total - rewards) / (G - 1)
    if scale == "group":
        advantages /= rewards.std(axis=1, keepdims=True) + eps
    elif scale == "batch":
        advantages /= rewards.std() + eps
    advantages[all_equal_groups(rewards)] = 0.0
    return advantages


def kl_k3(log_prob, ref_log_prob):
    """(kl, dkl/d log_prob): the k3 estimator of KL(pi || pi_ref) per token, and its derivative.

        delta = ref_log_prob - log_prob = log(pi_ref(x) / pi(x))
        kl    = exp(delta) - delta - 1                     >= 0 for every token (e^d >= 1 + d)
        dkl/d log_prob = 1 - exp(delta)

    With x ~ pi, E[exp(delta)] = 1, so E[kl] = E[-delta] = KL(pi || pi_ref): unbiased, and never
    negative per sample, unlike -delta itself. Computed with expm1 so that tokens where the two
    policies agree give kl ~ delta^2 / 2 without cancellation.
    """
    log_prob, ref_log_prob = np.asarray(log_prob), np.asarray(ref_log_prob)
    if log_prob.shape != ref_log_prob.shape:
        raise ValueError(f"log_prob and ref_log_prob must have the same shape, got "
                         f"{log_prob.shape} and {ref_log_prob.shape}")
    delta = ref_log_prob - log_prob
    expm1 = np.expm1(delta)
    return expm1 - delta, -expm1


def clipped_token_loss(log_prob, old_log_prob, advantages, eps_low, eps_high):
    """Per-token clipped surrogate (loss, dloss/d log_prob, ratio), each shaped like log_prob.

        ratio = exp(log_prob - old_log_prob)
        loss  = max(-A ratio, -A clip(ratio, 1 - eps_low, 1 + eps_high))
        dloss/d log_prob = -A ratio  where the unclipped term is the max, else 0

    advantages broadcast against log_prob ((B, 1) for one advantage per response). A larger
    eps_high than eps_low ("clip higher", DAPO) lets unlikely tokens with A > 0 grow further.
    """
    ratio = np.exp(log_prob - old_log_prob)
    unclipped = -advantages * ratio
    clipped = -advantages * np.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = np.maximum(unclipped, clipped)
    return loss, np.where(unclipped >= clipped, unclipped, 0.0), ratio


def token_weights(mask, loss_agg):
    """w (B, T) with L = sum_{i,t} w_{i,t} l_{i,t}, for the response mask (B, T):

        "grpo"     mask_{i,t} / (B |o_i|)      |o_i| = sum_t mask_{i,t}
        "dapo"     mask_{i,t} / sum(mask)
        "dr_grpo"  mask_{i,t} / (B T)          T = mask.shape[1], the generation budget
    """
    mask = np.asarray(mask, bool)
    check_choice("loss_agg", loss_agg, LOSS_AGGREGATIONS)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must have shape (B, T) with B, T >= 1, got {mask.shape}")
    B, T = mask.shape
    if loss_agg == "grpo":
        lengths = mask.sum(axis=1, keepdims=True)
        if (lengths == 0).any():
            raise ValueError("mask has a response without tokens; 'grpo' divides by its length")
        return mask / (B * lengths)
    if loss_agg == "dapo":
        if not mask.any():
            raise ValueError("mask selects no token; 'dapo' divides by their number")
        return mask / np.count_nonzero(mask)
    return mask / (B * T)


def grpo_loss(log_prob, old_log_prob, advantages, weights, eps_low, eps_high, kl_coef=0.0,
              ref_log_prob=None):
    """(L, dL/d log_prob (B, T), stats) for L = sum_{i,t} w_{i,t} (l_clip + kl_coef * k3).

    advantages: (B,) one per response. stats: the mean clipped-surrogate loss and k3 KL per
    token, and the fraction of tokens whose ratio left the clip range.
    """
    loss, grad, ratio = clipped_token_loss(log_prob, old_log_prob, advantages[:, None],
                                           eps_low, eps_high)
    stats = {"policy_loss": float((weights * loss).sum())}
    if kl_coef > 0:
        kl, grad_kl = kl_k3(log_prob, ref_log_prob)
        loss = loss + kl_coef * kl
        grad = grad + kl_coef * grad_kl
        stats["kl_ref"] = float((weights * kl).sum())
    outside = (ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)
    stats["clip_frac"] = float((weights * outside).sum() / weights.sum())
    return float((weights * loss).sum()), weights * grad, stats


@dataclass
class Config:
    """GRPO on a sequence task. Defaults tuned on two-digit addition (minipg/lm/addition.py)
    from a warm start on 700 demonstrations."""
    num_prompts: int = 32
    """P, prompts per update (fresh ones each time)."""
    group_size: int = 8
    """G, responses sampled per prompt; the group is the baseline."""
    num_updates: int = 600
    """How many batches of P * G responses to sample and learn from."""
    num_iterations: int = 2
    """mu, gradient steps on each batch (1: on-policy, the ratio stays 1 and nothing clips)."""
    learning_rate: float = 1e-3
    """Adam step size."""
    temperature: float = 1.0
    """Sampling temperature of the responses; 1 samples pi itself (what the ratio assumes)."""
    baseline: str = "group_mean"
    """"group_mean" (the response included) or "leave_one_out" (the other G - 1)."""
    scale: str = "group"
    """Divide the centred rewards by the std of the "group", of the "batch", or "none"."""
    adv_eps: float = 1e-4
    """eps added to the std before dividing (an all-equal group has std 0 and gets A = 0)."""
    loss_agg: str = "grpo"
    """Token weights of the loss: "grpo" (mean per response, then over responses), "dapo"
    (mean over all tokens), "dr_grpo" (sum over tokens / (B * max length))."""
    eps_low: float = 0.2
    """The ratio is clipped below at 1 - eps_low."""
    eps_high: float = 0.2
    """The ratio is clipped above at 1 + eps_high (DAPO's "clip higher" sets it above eps_low)."""
    kl_coef: float = 0.0
    """beta, the weight of the k3 KL penalty to the frozen reference (0: no reference needed)."""
    ent_coef: float = 0.0
    """Weight of an entropy bonus, aggregated with the same token weights."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0 turns clipping off)."""
    seed: int = 0
    """Fixes the prompts, the sampled responses, and nothing else (the policy is given)."""

    def validate(self):
        """Raise TypeError (wrong type) or ValueError (wrong value) naming the first bad field."""
        for name in ("num_prompts", "num_updates"):
            check_int(name, getattr(self, name), 1)
        check_group_fields(self)
        check_real("temperature", self.temperature, 0.0, low_inclusive=False)
        check_real("kl_coef", self.kl_coef, 0.0)
        return self


def check_group_fields(config):
    """The checks of the fields every GRPO config has (this one and grpo_gym's): the group,
    the advantage, the clipped ratio, the optimizer and the seed."""
    check_int("num_iterations", config.num_iterations, 1)
    check_int("group_size", config.group_size, 2 if config.baseline == "leave_one_out" else 1)
    check_int("seed", config.seed, 0)
    check_real("learning_rate", config.learning_rate, 0.0, low_inclusive=False)
    check_choice("baseline", config.baseline, BASELINES)
    check_choice("scale", config.scale, SCALES)
    check_choice("loss_agg", config.loss_agg, LOSS_AGGREGATIONS)
    for name in ("adv_eps", "ent_coef", "max_grad_norm", "eps_high"):
        check_real(name, getattr(config, name), 0.0)
    check_real("eps_low", config.eps_low, 0.0, 1.0)


def update(policy, optim, tokens, mask, start, rewards, config, ref_policy=None):
    """num_iterations gradient steps of GRPO on one batch of responses; returns its statistics.

    tokens (B, L) prompts then responses, rows grouped by prompt (B = P * G, group p in rows
    p*G .. p*G + G - 1); mask (B, T) the written response tokens; rewards (P, G).
    """
    P, G = rewards.shape
    actions = tokens[:, start:]
    advantages = group_advantages(rewards, config.scale, config.baseline,
                                  config.adv_eps).reshape(P * G)
    weights = token_weights(mask, config.loss_agg)
    dist, _ = policy.forward(tokens, start)
    old_log_prob = dist.log_prob(actions)            # pi_old: the policy that sampled
    ref_log_prob = None
    if config.kl_coef > 0:
        ref_log_prob = ref_policy.forward(tokens, start)[0].log_prob(actions)
    stats = []
    for _ in range(config.num_iterations):
        dist, cache = policy.forward(tokens, start)
        log_prob = dist.log_prob(actions)
        loss, grad_log_prob, step_stats = grpo_loss(
            log_prob, old_log_prob, advantages, weights, config.eps_low, config.eps_high,
            config.kl_coef, ref_log_prob)
        dist_grads = dist.param_grads(actions, grad_log_prob, -config.ent_coef * weights)
        step_stats["grad_norm"] = clip_and_step(optim, policy.backward(cache, dist_grads),
                                                config.max_grad_norm)
        step_stats["entropy"] = float((weights * dist.entropy()).sum())
        stats.append(step_stats)
    record = {name: float(np.mean([s[name] for s in stats])) for name in stats[0]}
    record["frac_all_equal"] = float(all_equal_groups(rewards).mean())
    record["reward"] = float(rewards.mean())
    record["response_length"] = float(mask.sum() / len(mask))
    return record

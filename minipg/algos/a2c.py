"""Advantage actor-critic: the vanilla policy gradient with a learned critic and GAE.

The policy-gradient theorem with an advantage in place of the return:

    grad J = E[ sum_t grad log pi(a_t|s_t) * A_t ]

A_t comes from GAE(gamma, lam) with the critic V (lam = 0: the TD residual
r_t + gamma V(s_{t+1}) - V(s_t); lam = 1: the return minus V). Each rollout gives exactly one
gradient step, on the data the current policy collected, so no importance ratio is needed:

    L_pi = -mean_i A_i * log pi(a_i|s_i) - ent_coef * mean_i H_i     (mean over the batch's steps)
    dL_pi/d log_prob_i = -A_i / B

and the critic regresses on the lambda-returns A_i + V(s_i) (also a mean over steps).
"""
from dataclasses import dataclass

import numpy as np

from minipg.core.optim import clip_and_step
from minipg.core.losses import normalize, score_function_loss
from minipg.algos.config import ActorCriticConfig
from minipg.core.losses import value_loss
from minipg.core.returns import gae

COLLECTS = "rollout"
"""How the run collects for this algorithm: a (T, N) rollout (minipg/envs/rollout.py)."""
# Episodes run on across rollouts (the collector keeps them going): a segment cut by the
# rollout's end bootstraps from V.


@dataclass
class Config(ActorCriticConfig):
    num_envs: int = 16
    num_steps: int = 16
    # Tuned on CartPole-v1 (benchmarks/bench_seeds.py --algo a2c --steps 300000). As for PPO
    # (minipg/algos/ppo.py says why): advantages unnormalised, so the step shrinks with them
    # once the task is solved instead of following the critic's noise at full size; rewards
    # scaled; a constant learning rate. Normalised and annealed (2e-3), 24 of seeds 0-49 ended
    # unsolved at 300k steps, 23 of them after solving CartPole; now 3 do.
    learning_rate: float = 5e-3
    anneal_lr: bool = False
    norm_adv: bool = False
    norm_reward: bool = True


def update(rollout, policy, value_fn, optim, config, rng):
    """One gradient step of the policy and the critic on one rollout.

    optim holds the parameters of both networks in one vector, the policy's first.
    """
    advantages = gae(rollout.rewards, rollout.values, rollout.next_values,
                     rollout.terminated, rollout.truncated, config.gamma, config.lam)
    returns = advantages + rollout.values

    mask = rollout.mask                                  # reset steps are not transitions
    b_obs, b_actions = rollout.obs[mask], rollout.actions[mask]
    b_advantages, b_returns = advantages[mask], returns[mask]
    if config.norm_adv:
        b_advantages = normalize(b_advantages)
    B = len(b_obs)

    dist, policy_cache = policy.forward(b_obs)
    values, value_cache = value_fn.forward(b_obs)
    policy_loss, grad_log_prob = score_function_loss(dist.log_prob(b_actions), b_advantages, B)
    v_loss, grad_values = value_loss(values, b_returns)

    dist_grads = dist.param_grads(b_actions, grad_log_prob, -config.ent_coef / B)
    grad = np.concatenate([policy.backward(policy_cache, dist_grads),
                           value_fn.backward(value_cache, config.vf_coef * grad_values)])
    grad_norm = clip_and_step(optim, grad, config.max_grad_norm)
    return {"policy_loss": policy_loss, "value_loss": v_loss,
            "entropy": float(dist.entropy().mean()), "grad_norm": grad_norm}

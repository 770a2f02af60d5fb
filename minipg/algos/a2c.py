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
import math
from dataclasses import dataclass

from minipg.algos.common import (normalize, optimizer_step, policy_backward,
                                 score_function_loss, value_backward)
from minipg.config import TrainConfig, check_range, check_rollout_holds_transitions
from minipg.returns import gae

# Episodes run on across rollouts: a segment cut by the rollout's end bootstraps from V.
COMPLETE_EPISODES = False


@dataclass
class Config(TrainConfig):
    num_envs: int = 16
    """N, the number of environments stepped together."""
    num_steps: int = 16
    """T, steps per environment per rollout; one gradient step per rollout."""
    learning_rate: float = 2e-3
    """Adam step size for the policy and the value function."""
    lam: float = 0.95
    """GAE lambda: 0 is the one-step TD residual, 1 the Monte Carlo return minus V."""
    ent_coef: float = 0.0
    """beta, the weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss in the shared gradient-norm budget."""

    def validate(self):
        super().validate()
        check_rollout_holds_transitions(self)
        check_range("lam", self.lam, 0.0, 1.0)
        check_range("ent_coef", self.ent_coef, 0.0, math.inf)
        check_range("vf_coef", self.vf_coef, 0.0, math.inf)


def update(rollout, policy, value_fn, policy_optim, value_optim, config, rng):
    """One gradient step of the policy and the critic on one rollout."""
    advantages = gae(rollout.rewards, rollout.values, rollout.next_values,
                     rollout.terminated, rollout.truncated, config.gamma, config.lam)
    returns = advantages + rollout.values

    mask = rollout.mask                                  # reset steps are not transitions
    b_obs, b_actions = rollout.obs[mask], rollout.actions[mask]
    b_advantages, b_returns = advantages[mask], returns[mask]
    if config.norm_adv:
        b_advantages = normalize(b_advantages)
    B = len(b_obs)

    dist = policy.distribution(b_obs)
    policy_loss, grad_log_prob = score_function_loss(dist.log_prob(b_actions), b_advantages, B)
    entropy = float(dist.entropy().mean())
    policy_backward(policy, dist, b_actions, grad_log_prob, -config.ent_coef / B)
    value_loss = value_backward(value_fn, b_obs, b_returns, config.vf_coef)
    grad_norm = optimizer_step(policy, value_fn, policy_optim, value_optim, config.max_grad_norm)
    return {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
            "grad_norm": grad_norm}

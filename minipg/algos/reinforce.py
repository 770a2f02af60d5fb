"""REINFORCE (Williams 1992): the Monte Carlo policy gradient on complete episodes.

    grad J = E_tau[ sum_t grad log pi(a_t|s_t) * Psi_t ]

estimated from the |D| episodes of a batch as (1/|D|) sum_tau sum_t score_t * Psi_t: an average
PER TRAJECTORY, as in the derivation. Psi_t is selected by `psi`:

    "return"        R(tau) = sum_k gamma^k r_k from the episode's start: every action is
                    credited with every reward, even those before it.
    "reward_to_go"  G_t = sum_{k>=t} gamma^(k-t) r_k: causality, an action cannot change the
                    past, so the earlier rewards only add variance.
    "baseline"      G_t - V(s_t), with V regressed on G_t (Monte Carlo targets). A baseline that
                    depends on the state only leaves the estimate unbiased (E[score] = 0).

Episodes must be complete for R(tau) and G_t to be Monte Carlo quantities, so every rollout
starts from fresh resets and the steps of an episode still running at its end are dropped (they
would need a bootstrap, which is what A2C and PPO do instead). A time-limit end is completed with
V(final observation) when there is a critic ("baseline"), and with 0 otherwise.
"""
from dataclasses import dataclass

import numpy as np

from minipg.core.optim import clip_and_step
from minipg.core.losses import normalize, score_function_loss
from minipg.core.checks import check_choice
from minipg.algos.config import TrainConfig
from minipg.core.losses import value_loss
from minipg.core.returns import reward_to_go

COLLECTS = "rollout"
"""How the run collects for this algorithm: a (T, N) rollout (minipg/envs/rollout.py)."""
# Every rollout starts from env resets, so that each column begins with a fresh episode.
RESET_ENVS_EACH_ROLLOUT = True
PSI = ("return", "reward_to_go", "baseline")


@dataclass
class Config(TrainConfig):
    num_envs: int = 16
    num_steps: int = 512            # longer than an episode, so that most episodes complete
    learning_rate: float = 5e-3
    norm_adv: bool = False
    psi: str = "baseline"
    """What weighs the score: "return" R(tau), "reward_to_go" G_t, or "baseline" G_t - V(s_t)
    with a critic V regressed on G_t."""

    def validate(self):
        super().validate()
        check_choice("psi", self.psi, PSI)


def uses_critic(config):
    return config.psi == "baseline"


def complete_episodes(rollout):
    """True at the real steps whose episode ended inside the rollout.

    The first end at or after row t closes t's episode, so t is complete iff some row >= t ends.
    """
    done = rollout.terminated | rollout.truncated
    ends_later = np.logical_or.accumulate(done[::-1], axis=0)[::-1]
    return rollout.mask & ends_later


def episode_returns(G, mask):
    """R(tau) at every step: the reward-to-go at the first step of the step's episode.

    An episode starts at row 0 (the rollout began with resets) or right after a reset step.
    """
    T, N = G.shape
    rows = np.arange(T)[:, None]
    starts = mask & np.vstack([np.ones((1, N), bool), ~mask[:-1]])
    start_row = np.maximum.accumulate(np.where(starts, rows, 0), axis=0)
    return G[start_row, np.arange(N)]


def update(rollout, policy, value_fn, optim, config, rng):
    """One gradient step on the complete episodes of a rollout.

    optim holds the policy's parameters, followed by the critic's for "baseline".
    """
    next_values = rollout.next_values if uses_critic(config) else None
    G = reward_to_go(rollout.rewards, rollout.terminated, rollout.truncated, config.gamma,
                     next_values)
    if config.psi == "return":
        psi = episode_returns(G, rollout.mask)
    elif config.psi == "reward_to_go":
        psi = G
    else:
        psi = G - rollout.values

    mask = complete_episodes(rollout)
    done = (rollout.terminated | rollout.truncated) & rollout.mask
    num_episodes = int(done.sum())
    if num_episodes == 0:
        raise ValueError(f"no episode finished within num_steps={config.num_steps} steps; "
                         "REINFORCE needs complete episodes: raise num_steps")
    b_obs, b_actions, b_psi = rollout.obs[mask], rollout.actions[mask], psi[mask]
    if config.norm_adv:
        b_psi = normalize(b_psi)

    # L = -(1/|D|) sum_tau sum_t Psi_t log pi(a_t|s_t): a mean over episodes, a sum over steps.
    dist, policy_cache = policy.forward(b_obs)
    policy_loss, grad_log_prob = score_function_loss(dist.log_prob(b_actions), b_psi,
                                                     num_episodes)
    dist_grads = dist.param_grads(b_actions, grad_log_prob, -config.ent_coef / len(b_obs))
    grad = policy.backward(policy_cache, dist_grads)
    stats = {"policy_loss": policy_loss, "entropy": float(dist.entropy().mean()),
             "batch_episodes": num_episodes}
    if uses_critic(config):
        # The critic regresses on G_t, a mean over steps; its gradient joins the policy's.
        values, value_cache = value_fn.forward(b_obs)
        stats["value_loss"], grad_values = value_loss(values, G[mask])
        grad = np.concatenate([grad, value_fn.backward(value_cache, config.vf_coef * grad_values)])
    stats["grad_norm"] = clip_and_step(optim, grad, config.max_grad_norm)
    return stats

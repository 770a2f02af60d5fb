"""REINFORCE (Williams 1992): the Monte Carlo policy gradient on whole episodes.

    grad J = E_tau[ sum_t grad log pi(a_t|s_t) * Psi_t ]

estimated from N episodes drawn independently from fresh resets as

    g_hat = (1/N) sum_{n<N} sum_t score_t^(n) * Psi_t^(n),      score_t = grad log pi(a_t|s_t)

an average PER TRAJECTORY of N i.i.d. copies of the per-episode sum, so E[g_hat] = grad J for
any N (with gamma = 1: for gamma < 1 the exact gradient weighs step t by gamma^t, which this
estimator, like practically every implementation, drops). Psi_t is selected by `psi`:

    "return"        R(tau) = sum_k gamma^k r_k from the episode's start: every action is
                    credited with every reward, even those before it.
    "reward_to_go"  G_t = sum_{k>=t} gamma^(k-t) r_k: causality, an action cannot change the
                    past, so the earlier rewards only add variance.
    "baseline"      G_t - V(s_t), with V regressed on G_t (Monte Carlo targets). A baseline that
                    depends on the state only leaves the estimate unbiased (E[score] = 0).

The batch. Each of the num_envs envs plays exactly one episode per update, from a reset with its
own seed, to its end (minipg/envs/whole_episodes.py); the update averages over those N episodes.
The alternative, a (T, N) window of steps pooling every episode that ends inside it, is biased:
an env that finishes quickly starts another, so short episodes are over-represented, the episode
still running at the window's end is dropped, and dividing by the random number of finished
episodes makes a ratio estimator (episodes of 1 or 3 steps with equal probability in a 3-row
window: the pooled mean length is 2.25/1.25 = 1.8, not 2, the reset step after each end taking
a row). Using only each window's first episode would be
unbiased but throws the rest of the window away; whole episodes waste no step.

The time limit. An episode the env truncates, or that reaches num_steps steps, ends there. Its
return is completed with V(final observation) when there is a critic ("baseline") and with 0
otherwise. With 0, the limit is part of the problem: g_hat is unbiased for the gradient of the
time-limited objective E[sum_{t<H} gamma^t r_t] (the policy does not see the clock, which is fine:
the score of a trajectory still sums the policy's own terms). With V(final observation), the cut
return stands for the one that would have followed without the limit, as far as V is right: the
target is the objective without the limit, biased by the critic's error at the cut.
"""
from dataclasses import dataclass

import numpy as np

from minipg.core.optim import clip_and_step
from minipg.core.losses import normalize, score_function_loss
from minipg.core.checks import check_choice
from minipg.algos.config import TrainConfig
from minipg.core.losses import value_loss
from minipg.core.returns import reward_to_go

COLLECTS = "episodes"
"""How the run collects for this algorithm: one whole episode per env, each from its own reset
(minipg/envs/whole_episodes.py), as a (T, N) Rollout whose column n is episode n."""
PSI = ("return", "reward_to_go", "baseline")


@dataclass
class Config(TrainConfig):
    # Tuned on CartPole-v1 (seeds 100-104, then seeds 0-9 with benchmarks/bench_cartpole.py
    # --algo reinforce --max-steps 500000 --steps 500000): 8 episodes per update solve it sooner
    # than 16 or 32, because early episodes are short and an update costs only their steps.
    num_envs: int = 8
    num_steps: int = 1000           # a time limit above CartPole-v1's own (500)
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


def check_whole_episodes(batch):
    """ValueError unless column n of the (T, N) batch is one whole episode: steps from row 0,
    contiguous, the last one ending it (terminated or truncated), nothing after."""
    mask, done = batch.mask, batch.terminated | batch.truncated
    lengths = mask.sum(axis=0)
    T, N = mask.shape
    rows = np.arange(T)[:, None]
    contiguous = (mask == (rows < lengths)).all(axis=0)
    ends = (done & mask).sum(axis=0) == 1
    last_ends = done[np.maximum(lengths - 1, 0), np.arange(N)]
    bad = np.flatnonzero(~(contiguous & ends & last_ends & (lengths > 0)))
    if bad.size:
        raise ValueError(f"REINFORCE learns from whole episodes, one per column of the batch "
                         f"(minipg/envs/whole_episodes.py); column {bad[0]} is not one")


def update(batch, policy, value_fn, optim, config, rng):
    """One gradient step on a batch of N whole episodes, column n = episode n.

    optim holds the policy's parameters, followed by the critic's for "baseline".
    """
    check_whole_episodes(batch)
    next_values = batch.next_values if uses_critic(config) else None
    G = reward_to_go(batch.rewards, batch.terminated, batch.truncated, config.gamma,
                     next_values)
    if config.psi == "return":
        psi = np.broadcast_to(G[0], G.shape)          # R(tau): G at the episode's first step
    elif config.psi == "reward_to_go":
        psi = G
    else:
        psi = G - batch.values

    mask = batch.mask
    num_episodes = batch.num_envs
    b_obs, b_actions, b_psi = batch.obs[mask], batch.actions[mask], psi[mask]
    if config.norm_adv:
        b_psi = normalize(b_psi)

    # L = -(1/N) sum_n sum_t Psi_t log pi(a_t|s_t): a mean over episodes, a sum over steps.
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

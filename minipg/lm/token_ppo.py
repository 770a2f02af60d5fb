"""PPO on responses with a learned per-token critic: what GRPO replaces, for comparison.

The language-model reading of PPO: a response is an episode, each token a step, the state the
prompt plus the tokens so far, the reward the verifier's verdict on the last token and 0 before.
A critic V(x, y_<t) (a SequenceNet with one output, over the same window) learns to predict the
final reward from every prefix, and GAE turns its predictions into per-token advantages:

    delta_t = r_t + gamma V(s_{t+1}) [t not last] - V(s_t)
    A_t     = delta_t + gamma lam A_{t+1}                     minipg.core.returns.gae, time first

then the same clipped per-token ratio as GRPO (grpo.clipped_token_loss) and a value regression
on A_t + V_old(s_t), both as means over the batch's tokens. The critic is a second network to
train and to hold in memory, the size of the policy here and of the model in an LLM: the cost
GRPO removes by letting the other responses to the same prompt stand in for it.
"""
from dataclasses import dataclass

import numpy as np

from minipg.core.optim import Adam, clip_and_step, params_stay_finite
from minipg.core.losses import normalize
from minipg.algos.grpo import clipped_token_loss, token_weights
from minipg.core.checks import as_generator, check_int, check_real
from minipg.core.heads import join_params
from minipg.core.returns import gae
from minipg.lm.sequence import SequenceNet

__all__ = ["Config", "make_critic", "token_advantages", "update", "train"]


@dataclass
class Config:
    """PPO with a per-token critic on a sequence task; defaults match grpo.Config's budget."""
    num_responses: int = 256
    """Responses sampled per update, one per fresh prompt (GRPO's P * G)."""
    num_updates: int = 600
    """How many batches to sample and learn from."""
    num_iterations: int = 2
    """Gradient steps on each batch, each on the whole batch."""
    learning_rate: float = 1e-3
    """Adam step size for the policy and the critic."""
    gamma: float = 1.0
    """Discount over the tokens of a response (1: the verdict counts the same at every token)."""
    lam: float = 0.95
    """GAE lambda over the tokens."""
    clip_coef: float = 0.2
    """The ratio is clipped to [1 - clip_coef, 1 + clip_coef]."""
    vf_coef: float = 0.5
    """Weight of the value loss in the gradient."""
    norm_adv: bool = True
    """Normalise the token advantages to mean 0, std 1 over the batch's tokens."""
    max_grad_norm: float = 1.0
    """Clip the global norm of both networks' gradient to this (0: no clipping)."""
    critic_hidden_sizes: tuple = (128, 128)
    """Hidden widths of the critic's MLP (its window and embedding width are the policy's)."""
    seed: int = 0
    """Fixes the prompts, the sampled responses and the critic's initial weights."""

    def validate(self):
        for name in ("num_responses", "num_updates", "num_iterations"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        check_real("learning_rate", self.learning_rate, 0.0, low_inclusive=False)
        for name in ("gamma", "lam"):
            check_real(name, getattr(self, name), 0.0, 1.0)
        for name in ("clip_coef", "vf_coef", "max_grad_norm"):
            check_real(name, getattr(self, name), 0.0)
        return self


def make_critic(policy, hidden_sizes, rng):
    """V(x, y_<t): a SequenceNet with the policy's vocabulary, window and embedding width."""
    net = policy.net
    return SequenceNet(net.vocab_size, net.max_len, net.window, net.embed_dim, hidden_sizes,
                       out_dim=1, pad=net.pad, head_gain=1.0, rng=rng, dtype=net.dtype)


def token_advantages(rewards, values, mask, gamma, lam):
    """(advantages, returns), each (B, T): GAE over each response's tokens, time first inside.

    rewards (B,) the verdict, paid at the last written token; values (B, T) V(x, y_<t); the
    episode terminates after the last written token (no bootstrap after it).
    """
    B, T = mask.shape
    lengths = mask.sum(axis=1)
    last = np.arange(T) == (lengths - 1)[:, None]                       # (B, T)
    token_rewards = np.where(last, rewards[:, None], 0.0)
    next_values = np.concatenate([values[:, 1:], np.zeros((B, 1))], axis=1)
    no = np.zeros((T, B), bool)
    advantages = gae(token_rewards.T, values.T, next_values.T, last.T | ~mask.T, no, gamma,
                     lam).T
    return advantages, advantages + values


def update(policy, critic, optim, tokens, mask, start, rewards, config):
    """num_iterations clipped-surrogate and value steps on one batch; returns statistics."""
    actions = tokens[:, start:]
    dist, _ = policy.forward(tokens, start)
    old_log_prob = dist.log_prob(actions)
    values, _ = critic.forward(tokens, start)
    advantages, returns = token_advantages(rewards, values[..., 0].astype(np.float64), mask,
                                           config.gamma, config.lam)
    if config.norm_adv:
        advantages[mask] = normalize(advantages[mask])
    weights = token_weights(mask, "dapo")                             # a mean over tokens
    stats = []
    for _ in range(config.num_iterations):
        dist, policy_cache = policy.forward(tokens, start)
        values, critic_cache = critic.forward(tokens, start)
        loss, grad_log_prob, ratio = clipped_token_loss(dist.log_prob(actions), old_log_prob,
                                                        advantages, config.clip_coef,
                                                        config.clip_coef)
        error = values[..., 0] - returns                              # value loss 0.5 mean err^2
        grad = np.concatenate([
            policy.backward(policy_cache, dist.param_grads(actions, weights * grad_log_prob)),
            critic.backward(critic_cache, (config.vf_coef * weights * error)[..., None])])
        stats.append({"policy_loss": float((weights * loss).sum()),
                      "value_loss": float((weights * 0.5 * error ** 2).sum()),
                      "clip_frac": float((weights * (np.abs(ratio - 1) > config.clip_coef)).sum()),
                      "grad_norm": clip_and_step(optim, grad, config.max_grad_norm)})
    record = {name: float(np.mean([s[name] for s in stats])) for name in stats[0]}
    record["reward"] = float(rewards.mean())
    record["response_length"] = float(mask.sum() / len(mask))
    return record


def train(policy, task, config, callback=None):
    """Sample one response to each of num_responses fresh prompts, update; num_updates times.

    The task protocol is minipg.lm.grpo.train's. The critic starts fresh; its parameters and the
    policy's share one vector and one Adam. Returns the list of records.
    """
    config.validate()
    rng = as_generator(config.seed)
    critic = make_critic(policy, config.critic_hidden_sizes, rng)
    optim = Adam(join_params(policy, critic), config.learning_rate)
    history, sampled_tokens = [], 0
    for k in range(1, config.num_updates + 1):
        prompts, answers = task.sample_prompts(config.num_responses, rng)
        tokens, mask = policy.generate(prompts, task.max_new_tokens, rng=rng)
        rewards = task.reward(answers, tokens)
        sampled_tokens += int(mask.sum())
        with params_stay_finite(policy=policy.params, critic=critic.params):  # once per update
            record = update(policy, critic, optim, tokens, mask, task.prompt_len, rewards,
                            config)
        record.update(update=k, sampled_tokens=sampled_tokens)
        history.append(record)
        if callback is not None and callback(record, policy):
            break
    return history

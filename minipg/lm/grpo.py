"""GRPO on the language model: sample prompts, a group of responses each, reward, update.

The loop around minipg.algos.grpo.update (the algorithm: group advantages, the clipped token
loss, the k3 KL to a reference) for a sequence policy (minipg/lm/sequence.py) and a task with a
verifier (minipg/lm/addition.py):

    for each of config.num_updates updates:
        prompts, answers = task.sample_prompts(P, rng)
        tokens, mask     = policy.generate(each prompt G times)        the group of a prompt
        rewards          = task.reward(answers, tokens)                (P, G) verdicts
        stats            = grpo.update(policy, optim, tokens, mask, ..., rewards, config)
"""
import numpy as np

from minipg.algos.grpo import update
from minipg.core.checks import as_generator
from minipg.core.optim import Adam, params_stay_finite

__all__ = ["train"]


def train(policy, task, config, optim=None, ref_policy=None, callback=None):
    """GRPO: sample P prompts, G responses each, reward them, update; config.num_updates times.

    task: prompt_len, max_new_tokens, sample_prompts(n, rng) -> (prompts (n, prompt_len),
    answers), reward(answers, tokens) -> (n,). ref_policy defaults to a frozen copy of the
    starting policy (only used when kl_coef > 0). callback(record, policy) after each update;
    returning True stops. Returns the list of records.
    """
    config.validate()
    rng = as_generator(config.seed)
    optim = Adam(policy.params, config.learning_rate) if optim is None else optim
    if ref_policy is None and config.kl_coef > 0:
        ref_policy = policy.copy()
    P, G = config.num_prompts, config.group_size
    history, sampled_tokens = [], 0
    for k in range(1, config.num_updates + 1):
        prompts, answers = task.sample_prompts(P, rng)
        # Rows p*G .. p*G + G - 1 answer prompt p: np.repeat keeps each group contiguous.
        tokens, mask = policy.generate(np.repeat(prompts, G, axis=0), task.max_new_tokens,
                                       rng=rng, temperature=config.temperature)
        rewards = task.reward(np.repeat(answers, G, axis=0), tokens).reshape(P, G)
        sampled_tokens += int(mask.sum())
        with params_stay_finite(policy=policy.params):     # once per update, not per step
            record = update(policy, optim, tokens, mask, task.prompt_len, rewards, config,
                            ref_policy)
        record.update(update=k, sampled_tokens=sampled_tokens)
        history.append(record)
        if callback is not None and callback(record, policy):
            break
    return history

"""Imitation (supervised fine-tuning, behaviour cloning): maximum likelihood on demonstrations.

Given demonstrated responses, minimise the cross-entropy of the policy on their tokens, a mean
over the N demonstrated tokens (the mask marks them):

    L = -(1/N) sum_{b,j} mask_bj log pi(x_bj | x_<bj)
    dL/d log_prob_bj = -mask_bj / N
    dL/dlogits_bj    = -(mask_bj / N) (onehot(x_bj) - pi_bj)

That last line is the policy-gradient loss with every weight equal to one: the score of the
demonstrated token, pushed up as if its advantage were 1. Imitation is the policy gradient
with the answer given; reinforcement learning has to find the answer among its own samples, and
weighs each one by how much better than its group it did (minipg/algos/grpo.py).
"""
import numpy as np

from minipg.core.checks import as_generator, check_int, check_real
from minipg.core.optim import Adam

__all__ = ["cross_entropy", "fit", "warm_start"]


def cross_entropy(log_prob, mask):
    """(L, dL/d log_prob) for L = -(1/N) sum mask * log_prob, N = mask.sum() (the tokens)."""
    mask = np.asarray(mask, bool)
    n_tokens = int(np.count_nonzero(mask))
    if n_tokens == 0:
        raise ValueError("mask selects no token; the cross-entropy of nothing is undefined")
    weight = mask * (-1.0 / n_tokens)
    return float((weight * log_prob).sum()), weight


def fit(policy, tokens, mask, start, epochs, batch_size=64, learning_rate=3e-3, rng=None):
    """Minibatch Adam on the cross-entropy of the demonstrations (tokens (n, L), their response
    mask (n, T) after column start); returns the mean loss of each epoch."""
    epochs = check_int("epochs", epochs, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    learning_rate = check_real("learning_rate", learning_rate, 0.0, low_inclusive=False)
    rng = as_generator(rng)
    tokens, mask = np.asarray(tokens), np.asarray(mask, bool)
    optim = Adam(policy.params, learning_rate)
    history = []
    for _ in range(epochs):
        order, losses = rng.permutation(len(tokens)), []
        for first in range(0, len(tokens), batch_size):
            batch = order[first:first + batch_size]
            dist, cache = policy.forward(tokens[batch], start)
            actions = tokens[batch, start:]
            loss, grad_log_prob = cross_entropy(dist.log_prob(actions), mask[batch])
            optim.step(policy.backward(cache, dist.param_grads(actions, grad_log_prob)))
            losses.append(loss)
        history.append(float(np.mean(losses)))
    return history


def warm_start(policy, task, n_demos, rng, epochs=60, learning_rate=3e-3):
    """Imitation on n_demos demonstrations of a task (its `demonstrations(n, rng)` and
    `prompt_len`) until the training loss is near zero; returns the loss of each epoch."""
    rng = as_generator(rng)
    tokens, mask = task.demonstrations(n_demos, rng)
    return fit(policy, tokens, mask, task.prompt_len, epochs, batch_size=64,
               learning_rate=learning_rate, rng=rng)

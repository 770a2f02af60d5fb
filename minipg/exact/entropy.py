"""The entropy bonus on a bandit: what it optimises, and the collapse it prevents.

A K-armed bandit with mean rewards R_a and a softmax policy pi = softmax(z). The bonus adds
beta H(pi), H = -sum_a pi_a log pi_a, to J = sum_a pi_a R_a. Its gradient in the logits,

    d(J + beta H)/dz = pi * (R - J) - beta pi * (log pi + H)         (`regularised_gradient`)

uses the same Categorical.entropy_grad as PPO's loss. Setting it to zero gives the maximiser of
J + beta H over the simplex (`regularised_optimum`):

    pi*_a = exp(R_a / beta) / sum_b exp(R_b / beta)

a softmax at temperature beta: no arm's probability falls below exp(-(R_max - R_min)/beta) of
the best one's, and J(pi*) < R_max. Without the bonus the maximiser is a vertex, and gradient
ascent drives the other arms' probabilities to zero.

What the bonus prevents is the sampled version of that collapse on the wrong arm. REINFORCE
with one pull per update and positive rewards (`sampled_reinforce`) pushes up whichever arm it
pulled; an arm that is pulled early and often can take all the probability before the better
one has been tried enough, and once pi_best is tiny it is almost never pulled again. With the
bonus the gradient at a collapsed policy points back toward pi*: -beta pi_a (log pi_a + H)
grows like beta pi_a log(1/pi_a) for a rare arm, faster than the reward's push pi_a R_a
against it once log(1/pi_a) > R/beta.

In an MDP the bonus is taken at the visited states. What the losses differentiate is

    sum_t sum_s d_t(s) grad H(pi(.|s))                     (`entropy_bonus_gradient`)

with the visits d_t held fixed: not the gradient of the visited entropy
sum_t sum_s d_t(s) H(pi(.|s)) (`visited_entropy`), which also moves d_t. The two agree when the
actions do not change which states come next.
"""
import numpy as np

from minipg.core.checks import as_generator
from minipg.core.distributions import Categorical
from minipg.exact.mdp import _coefficient, _positive_int

__all__ = ["regularised_objective", "regularised_gradient", "regularised_optimum",
           "exact_ascent", "sampled_reinforce", "visited_entropy", "entropy_bonus_gradient"]


def _rewards(rewards):
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1 or rewards.size < 2 or not np.isfinite(rewards).all():
        raise ValueError(f"rewards must be a finite 1-d array of K >= 2 arms, got {rewards!r}")
    return rewards


def regularised_objective(rewards, logits, beta):
    """J + beta H = sum_a pi_a R_a - beta sum_a pi_a log pi_a."""
    dist = Categorical(np.asarray(logits, dtype=np.float64))
    return float(dist.probs @ _rewards(rewards) + beta * dist.entropy())


def regularised_gradient(rewards, logits, beta):
    """d(J + beta H)/dz = pi * (R - J) + beta dH/dz, dH/dz = -pi * (log pi + H)."""
    dist = Categorical(np.asarray(logits, dtype=np.float64))
    rewards = _rewards(rewards)
    return dist.probs * (rewards - dist.probs @ rewards) + beta * dist.entropy_grad()


def regularised_optimum(rewards, beta):
    """pi* = softmax(R / beta), the maximiser of J + beta H for beta > 0."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (beta = 0 has a vertex as its maximiser), got {beta}")
    z = _rewards(rewards) / beta
    z = np.exp(z - z.max())
    return z / z.sum()


def exact_ascent(rewards, logits, beta, learning_rate, steps):
    """Gradient ascent on J + beta H with the exact gradient; returns the final pi."""
    z = np.array(logits, dtype=np.float64)
    for _ in range(_positive_int("steps", steps)):
        z += learning_rate * regularised_gradient(rewards, z, beta)
    return Categorical(z).probs


def sampled_reinforce(rewards, logits, beta, learning_rate, steps, n_runs, rng):
    """n_runs independent runs of REINFORCE, one pull per update, side by side; final pi (n_runs, K).

    Each update: a ~ pi, reward R_a (deterministic), z += learning_rate * (R_a (onehot(a) - pi)
    + beta dH/dz): the score-function estimate of grad J plus the exact entropy gradient, as
    PPO's loss has them. rng: a numpy Generator or an int seed.
    """
    rewards = _rewards(rewards)
    beta = _coefficient("beta", beta, upper=np.inf)
    n_runs, rng = _positive_int("n_runs", n_runs), as_generator(rng)
    z = np.tile(np.asarray(logits, dtype=np.float64), (n_runs, 1))
    for _ in range(_positive_int("steps", steps)):
        dist = Categorical(z)
        actions = dist.sample(rng)
        z += learning_rate * (rewards[actions][:, None] * dist.score(actions)
                              + beta * dist.entropy_grad())
    return Categorical(z).probs


def visited_entropy(mdp, theta):
    """sum_t sum_s d_t(s) H(pi_theta(.|s)) on a TabularMDP: the entropy summed over the visits."""
    dist = Categorical(mdp._check_theta(theta))
    return float(mdp.state_distribution(theta).sum(axis=0) @ dist.entropy())


def entropy_bonus_gradient(mdp, theta):
    """sum_t sum_s d_t(s) grad_{theta[s]} H(pi(.|s)), (S, A): the bonus's gradient as the losses
    compute it, at the visited states, with the visits themselves held fixed."""
    dist = Categorical(mdp._check_theta(theta))
    return mdp.state_distribution(theta).sum(axis=0)[:, None] * dist.entropy_grad()

"""REINFORCE against the exact gradient of a tabular MDP whose episodes last 1 or 3 steps.

The trainer's own pieces -- EpisodeCollector on a vector env, reinforce.update -- estimate
grad J; the MDP (tabular_env.variable_length_mdp) gives grad J exactly. The policy is a tabular
softmax (one-hot observations, no hidden layer), so the exact gradient with respect to its
parameters is the table grad J(theta) carried back through the policy's own backward pass.

Each update averages N = 32 episodes; M = 400 seeded batches give M i.i.d. estimates g_m. If
E[g_m] = grad J, the mean over m is within a few standard errors of it:

    |mean_m g_m - grad J|  <=  Z * std_m(g_m) / sqrt(M)      for every parameter,

with Z = 4.5 for ten parameters (a per-parameter two-sided normal tail of 7e-6; the seeds are
fixed, so the test is deterministic). The parameters of the terminal state's row have no
variance at all (no action is taken there): they must match to rounding.

The same check rejects the estimator REINFORCE used before: every episode that ends inside a
(T, N) window of steps, pooled and divided by their number. With T = 3 a column holds either
one long episode or short ones (several) and perhaps a dropped unfinished one; the short
episodes are over-represented and the gradient is biased by over 20 standard errors here.
"""
import numpy as np
import pytest
from tabular_env import TabularVectorEnv, variable_length_mdp

from minipg.algos import reinforce
from minipg.algos.config import make_config
from minipg.core.distributions import CategoricalGrads
from minipg.core.heads import join_params
from minipg.core.policies import CategoricalPolicy
from minipg.core.returns import reward_to_go
from minipg.core.value import ValueFunction
from minipg.envs.rollout import RolloutCollector
from minipg.envs.whole_episodes import EpisodeCollector

N, M, Z = 32, 400, 4.5


class RecordingOptimizer:
    """Records each gradient and leaves the parameters alone: every batch sees one policy."""

    def __init__(self, params):
        self.params, self.grads = params, []

    def step(self, grad, grad_checked=False):
        self.grads.append(grad.copy())


def tabular_policy():
    policy = CategoricalPolicy(4, 2, (), rng=0)
    policy.params[:] = np.random.default_rng(3).normal(size=policy.params.size) * 0.5
    return policy


def exact_param_gradient(mdp, policy):
    """grad J with respect to the policy's parameters: the table grad_J(theta), theta[s] the
    logits at the one-hot state s, through the policy's backward pass (the chain rule)."""
    dist, cache = policy.forward(np.eye(mdp.n_states))
    return policy.backward(cache, CategoricalGrads(mdp.grad_J(dist.logits)))


def assert_unbiased(estimates, exact):
    """The mean of the M estimates is within Z standard errors of the exact gradient."""
    mean = estimates.mean(axis=0)
    standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    random = standard_error > 0
    assert random.sum() >= 6                       # every visited state's logits vary
    np.testing.assert_allclose(mean[~random], exact[~random], rtol=0, atol=1e-12)
    z = np.abs(mean - exact)[random] / standard_error[random]
    assert z.max() <= Z, f"bias of {z.max():.1f} standard errors"


def reinforce_estimates(mdp, terminal, policy, psi, num_steps=1000):
    """M estimates g_m: reinforce.update on batches of whole episodes (its step is -g_m)."""
    config = make_config(reinforce.Config, num_envs=N, num_steps=num_steps, gamma=1.0, psi=psi,
                         max_grad_norm=0.0, ent_coef=0.0, norm_adv=False)
    # Any state-dependent baseline leaves the estimate unbiased: an untrained linear critic.
    value_fn = ValueFunction(mdp.n_states, (), rng=1) if psi == "baseline" else None
    collector = EpisodeCollector(TabularVectorEnv(mdp, terminal, N), policy, value_fn,
                                 num_steps, np.random.default_rng(7))
    optim = RecordingOptimizer(join_params(policy, value_fn) if value_fn else policy.params)
    lengths = set()
    for _ in range(M):
        batch = collector.collect()
        lengths.update(batch.episode_lengths)
        reinforce.update(batch, policy, value_fn, optim, config, np.random.default_rng(0))
    return -np.array([grad[:policy.params.size] for grad in optim.grads]), lengths


@pytest.mark.parametrize("psi", reinforce.PSI)
def test_reinforce_is_unbiased_on_episodes_of_varying_length(psi):
    mdp, terminal = variable_length_mdp()
    policy = tabular_policy()
    estimates, lengths = reinforce_estimates(mdp, terminal, policy, psi)
    assert lengths == {1, 3}
    assert_unbiased(estimates, exact_param_gradient(mdp, policy))


@pytest.mark.parametrize("psi", ["return", "reward_to_go"])
def test_a_time_limit_of_num_steps_makes_it_the_gradient_of_the_time_limited_problem(psi):
    """num_steps = 2 cuts the 3-step episodes after 2 steps; without a critic the cut is
    completed with 0, so the target is grad J of the same MDP with horizon 2."""
    mdp, terminal = variable_length_mdp()
    policy = tabular_policy()
    estimates, lengths = reinforce_estimates(mdp, terminal, policy, psi, num_steps=2)
    assert lengths == {1, 2}
    limited, _ = variable_length_mdp(horizon=2)
    assert_unbiased(estimates, exact_param_gradient(limited, policy))
    # The check tells the two problems apart: the full-horizon gradient is far off (and has
    # a gradient at state 2, which the cut episodes never act in).
    with pytest.raises(AssertionError):
        assert_unbiased(estimates, exact_param_gradient(mdp, policy))


def pooled_window_estimates(mdp, terminal, policy, T=3):
    """The estimator REINFORCE used before, on (T, N) windows from fresh resets: every episode
    that ends inside the window (its steps with Psi = G_t), summed and divided by their
    number; an episode still running at the window's end dropped."""
    collector = RolloutCollector(TabularVectorEnv(mdp, terminal, N), policy, None, T,
                                 np.random.default_rng(7), seed=0, reset_each_rollout=True)
    estimates = []
    for _ in range(M):
        r = collector.collect()
        done = r.terminated | r.truncated
        complete = r.mask & np.logical_or.accumulate(done[::-1], axis=0)[::-1]
        G = reward_to_go(r.rewards, r.terminated, r.truncated, 1.0)
        dist, cache = policy.forward(r.obs[complete])
        weights = G[complete] / (done & r.mask).sum()
        estimates.append(policy.backward(cache, dist.param_grads(r.actions[complete], weights)))
    return np.array(estimates)


def test_the_same_check_rejects_pooling_the_episodes_that_end_in_a_window():
    mdp, terminal = variable_length_mdp()
    policy = tabular_policy()
    exact = exact_param_gradient(mdp, policy)
    estimates = pooled_window_estimates(mdp, terminal, policy)
    with pytest.raises(AssertionError, match="standard errors"):
        assert_unbiased(estimates, exact)
    # Not a rounding effect: the bias is over a third of the gradient's largest entry.
    bias = estimates.mean(axis=0) - exact
    assert np.abs(bias).max() > np.abs(exact).max() / 3


def test_a_window_of_three_rows_pools_episodes_one_point_eight_steps_long_on_average():
    """With episodes of 1 or 3 steps equally likely (a uniform policy at the start state), a
    3-row window pools sum(lengths) / count -> E[total] / E[count] = 2.25 / 1.25 = 1.8 (after a
    1-step episode the reset step takes row 1 and row 2 starts another, kept only if it is
    short); whole episodes average 2. Both within 4 standard errors (the ratio's by the delta
    method over independent columns)."""
    mdp, terminal = variable_length_mdp()
    policy = tabular_policy()
    policy.params[:] = 0.0                                     # pi(.|s) uniform
    columns = 20_000
    window = RolloutCollector(TabularVectorEnv(mdp, terminal, columns), policy, None, 3,
                              np.random.default_rng(1), seed=1, reset_each_rollout=True).collect()
    done = (window.terminated | window.truncated) & window.mask
    complete = window.mask & np.logical_or.accumulate(done[::-1], axis=0)[::-1]
    total, count = complete.sum(axis=0), done.sum(axis=0)        # per column
    pooled = total.sum() / count.sum()
    pooled_error = np.std(total - pooled * count) / (count.mean() * np.sqrt(columns))
    assert abs(pooled - 1.8) < 4 * pooled_error
    whole = EpisodeCollector(TabularVectorEnv(mdp, terminal, columns), policy, None, 1000,
                             np.random.default_rng(1)).collect()
    lengths = np.array(whole.episode_lengths)
    assert abs(lengths.mean() - 2.0) < 4 * lengths.std() / np.sqrt(columns)
    assert abs(pooled - 2.0) > 20 * pooled_error                # the bias is far from noise

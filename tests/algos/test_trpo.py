"""TRPO as a specification: conjugate gradient solves F x = g with products alone; the surrogate's
gradient is that of its formula; a kept step is the natural gradient scaled to the trust region,
stays within max_kl and improves the surrogate (both measured again here, from the parameters);
a rejected line search leaves the policy bit for bit where it was, while the natural policy
gradient (line_search=False) takes the same step regardless; and `minipg train --algo trpo`
trains and logs every update's KL and step."""
import csv
import math

import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error
from improvement import improvement_and_standard_error
from rollout_cases import expected_advantages_and_targets, fresh_networks, scramble, toy_rollout
from recording_adam import RecordingAdam

import minipg
from minipg.run.checkpoint import load_config
from minipg.algos import trpo
from minipg.algos.trpo import conjugate_gradient, fisher_vector_product, policy_step, surrogate
from minipg.tools.cli import main
from minipg.algos.config import make_config
from minipg.core.optim import Adam
from minipg.core.distributions import DiagGaussian
from minipg.core.policies import GaussianPolicy
from minipg.core.returns import gae_reference


# ------------------------------------------------------------------------------------------
# Conjugate gradient
# ------------------------------------------------------------------------------------------

def spd_matrix(n, rank=None, seed=0):
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(n, rank or n))
    return factor @ factor.T + (0.0 if rank else 0.5 * np.eye(n))


class CountingMatvec:
    def __init__(self, A):
        self.A, self.calls = A, 0

    def __call__(self, v):
        self.calls += 1
        return self.A @ v


def test_conjugate_gradient_solves_an_n_by_n_system_in_n_steps():
    A, b = spd_matrix(8), np.random.default_rng(1).normal(size=8)
    x = conjugate_gradient(CountingMatvec(A), b, iters=8, residual_tol=0.0)
    np.testing.assert_allclose(A @ x, b, rtol=0, atol=1e-9)
    # fewer steps: an approximation that improves with every step (the A-norm of the error)
    exact = np.linalg.solve(A, b)
    errors = []
    for k in range(1, 8):
        error = conjugate_gradient(A.__matmul__, b, k, residual_tol=0.0) - exact
        errors.append(error @ A @ error)
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_conjugate_gradient_reaches_the_minimum_norm_solution_of_a_singular_system():
    A = spd_matrix(8, rank=5, seed=2)                 # a 3-dimensional null space, like F's
    b = A @ np.random.default_rng(3).normal(size=8)   # in the range of A
    x = conjugate_gradient(A.__matmul__, b, iters=20, residual_tol=1e-20)
    np.testing.assert_allclose(x, np.linalg.pinv(A) @ b, rtol=0, atol=1e-8)


def test_conjugate_gradient_stops_at_the_iteration_cap_and_at_the_residual_tolerance():
    A, b = spd_matrix(8), np.random.default_rng(4).normal(size=8)
    matvec = CountingMatvec(A)
    conjugate_gradient(matvec, b, iters=3, residual_tol=0.0)
    assert matvec.calls == 3
    matvec = CountingMatvec(A)
    x = conjugate_gradient(matvec, 1e-8 * b, iters=10, residual_tol=1e-10)   # r.r < tol at once
    assert matvec.calls == 0 and not x.any()
    matvec = CountingMatvec(A)
    conjugate_gradient(matvec, b, iters=50, residual_tol=1e-12)
    assert matvec.calls <= 9                          # converged in n steps, then stopped


# ------------------------------------------------------------------------------------------
# The surrogate
# ------------------------------------------------------------------------------------------

def test_surrogate_gradient_into_params_matches_finite_differences_off_policy():
    rng = np.random.default_rng(5)
    policy = GaussianPolicy(3, 2, (5,), log_std_init=[-0.3, 0.2], rng=6)
    obs = rng.normal(size=(12, 3))
    dist_old = policy.distribution(obs)
    actions, advantages = dist_old.sample(rng), rng.normal(size=12)
    old_log_prob = dist_old.log_prob(actions)
    policy.params += 0.1 * rng.normal(size=policy.params.shape)    # ratios away from 1
    ent_coef = 0.05

    def value_and_grad():
        dist, cache = policy.forward(obs)
        value, grad_log_prob = surrogate(dist, actions, old_log_prob, advantages, ent_coef)
        return value, policy.backward(cache, dist.param_grads(actions, grad_log_prob,
                                                              ent_coef / 12))

    value, grad = value_and_grad()
    dist = policy.distribution(obs)
    ratio = np.exp(dist.log_prob(actions) - old_log_prob)
    assert value == pytest.approx(np.mean(ratio * advantages) + ent_coef * dist.entropy().mean())
    assert np.abs(ratio - 1).max() > 0.05
    numeric = numerical_gradient(lambda: value_and_grad()[0], policy.params)
    assert relative_error(grad, numeric) < 1e-6


# ------------------------------------------------------------------------------------------
# The update on a rollout
# ------------------------------------------------------------------------------------------

def trpo_config(**hp):
    return make_config(trpo.Config, num_envs=3, num_steps=8, gamma=0.9, lam=0.8, **hp)


def batch(rollout, gamma=0.9, lam=0.8):
    """The real transitions of a rollout and their normalised GAE advantages, as trpo uses them."""
    advantages, _ = expected_advantages_and_targets(rollout, gamma, lam)
    m = rollout.mask
    return rollout.obs[m], rollout.actions[m], advantages


def run_update(rollout, policy0, value0, **hp):
    policy, value_fn, _ = fresh_networks(policy0, value0, critic=False)
    optim = Adam(trpo.optimized_params(policy, value_fn), 0.01)
    theta_old = policy.params.copy()
    stats = trpo.update(rollout, policy, value_fn, optim, trpo_config(**hp),
                        np.random.default_rng(0))
    return policy, value_fn, theta_old, stats


def test_a_kept_step_stays_within_max_kl_and_improves_the_surrogate_as_measured_again():
    rollout, policy0, value0 = toy_rollout()
    policy, _, theta_old, stats = run_update(rollout, policy0, value0, max_kl=0.02)
    obs, actions, advantages = batch(rollout)
    new = policy.distribution(obs)
    policy.params[...] = theta_old
    old = policy.distribution(obs)
    kl = np.mean(np.sum(old.probs * np.log(old.probs / new.probs), axis=-1))
    improvement = np.mean((new.probs / old.probs)[np.arange(len(actions)), actions]
                          * advantages)          # L(theta_old) = mean(A) = 0 (normalised A)
    assert 0 < stats["backtrack_step"] <= 1
    assert 0 < kl <= 0.02
    assert stats["kl"] == pytest.approx(kl, rel=1e-9)
    assert improvement > 0
    assert stats["actual_improvement"] == pytest.approx(improvement, rel=1e-9, abs=1e-12)
    assert stats["expected_improvement"] > 0


def test_the_step_is_the_natural_gradient_scaled_to_the_edge_of_the_trust_region():
    """d = theta_new - theta_old solves (F + lambda I) d = c g with c > 0, and
    (1/2) d^T (F + lambda I) d = fraction^2 max_kl (conjugate gradient run to convergence)."""
    rollout, policy0, value0 = toy_rollout()
    damping, max_kl = 0.1, 0.02
    policy, _, theta_old, stats = run_update(rollout, policy0, value0, max_kl=max_kl,
                                             cg_damping=damping, cg_iters=200,
                                             cg_residual_tol=1e-30)
    d = policy.params - theta_old
    obs, actions, advantages = batch(rollout)
    policy.params[...] = theta_old
    dist, cache = policy.forward(obs)
    g = policy.backward(cache, dist.param_grads(actions, advantages / len(obs)))
    Fd = fisher_vector_product(policy, obs, d, damping)
    c = (Fd @ g) / (g @ g)
    assert c > 0
    assert relative_error(Fd, c * g) < 1e-8
    fraction = stats["backtrack_step"]
    assert 0.5 * d @ Fd == pytest.approx(fraction ** 2 * max_kl, rel=1e-8)
    assert stats["expected_improvement"] == pytest.approx(g @ d, rel=1e-8)


def log_std_case():
    """A Gaussian policy whose best step narrows the std: actions near the mean are good, far
    ones bad. The KL TRPO constrains, KL(pi_old || pi_theta), grows faster than its quadratic
    model w^2 when the std shrinks: (exp(2w) - 1)/2 - w per dimension for log_std moved by -w
    (2.19 at w = 1), so the full step overshoots max_kl. (The other direction,
    KL(pi_theta || pi_old) = w + (exp(-2w) - 1)/2, grows slower: 0.57 at w = 1.)"""
    rng = np.random.default_rng(0)
    policy = GaussianPolicy(3, 1, (4,), rng=1)
    obs = rng.normal(size=(64, 3))
    dist = policy.distribution(obs)
    z = np.tile([0.3, -0.3, 2.5, -2.5], 16)[:, None]
    actions = dist.mean + dist.std * z
    advantages = np.where(np.abs(z[:, 0]) < 1, 1.0, -1.0)
    return policy, obs, actions, advantages


def test_narrowing_a_gaussian_costs_more_kl_than_the_quadratic_model():
    # log_std moved by -w: sigma_new = sigma_old e^{-w}. Per dimension,
    #   KL(old || new) = log(sigma_new / sigma_old) + sigma_old^2 / (2 sigma_new^2) - 1/2
    #                  = (e^{2w} - 1)/2 - w = w^2 + (2/3) w^3 + ...,
    # against the Fisher model (1/2) d^T F d = (1/2) 2 w^2 = w^2; the reverse KL is w^2 - ....
    mean = np.zeros((1, 2))
    old = DiagGaussian(mean, np.zeros(2))
    for w in (0.1, 0.5, 1.0):
        new = DiagGaussian(mean, np.full(2, -w))
        forward, reverse = old.kl(new)[0] / 2, new.kl(old)[0] / 2
        assert forward == pytest.approx((np.exp(2 * w) - 1) / 2 - w, rel=1e-12)
        assert reverse == pytest.approx(w + (np.exp(-2 * w) - 1) / 2, rel=1e-12)
        assert reverse < w ** 2 < forward
    assert (round(forward, 2), round(reverse, 2)) == (2.19, 0.57)              # w = 1


def test_a_rejected_line_search_keeps_the_old_parameters_bit_for_bit():
    policy, obs, actions, advantages = log_std_case()
    theta_old = policy.params.copy()
    config = make_config(trpo.Config, max_kl=0.1, backtrack_iters=1, norm_adv=False)
    stats = policy_step(policy, obs, actions, advantages, config)
    np.testing.assert_array_equal(policy.params, theta_old)
    assert stats["backtrack_step"] == stats["kl"] == stats["actual_improvement"] == 0.0
    # The check can fail: with more trials a shorter step is kept, inside the trust region.
    config = make_config(trpo.Config, max_kl=0.1, backtrack_iters=10, norm_adv=False)
    stats = policy_step(policy, obs, actions, advantages, config)
    assert 0 < stats["backtrack_step"] < 1 and 0 < stats["kl"] <= 0.1
    assert stats["backtrack_step"] == pytest.approx(0.8)     # the 0.8 d* docs/derivation.md quotes
    assert policy.raw_log_std[0] < 0                    # it narrowed the std


def test_the_natural_policy_gradient_takes_the_full_step_whatever_its_kl():
    policy, obs, actions, advantages = log_std_case()
    theta_old = policy.params.copy()
    config = make_config(trpo.Config, max_kl=0.1, line_search=False, norm_adv=False)
    stats = policy_step(policy, obs, actions, advantages, config)
    assert stats["backtrack_step"] == 1.0
    assert stats["kl"] > 0.1                             # what the line search refused
    new = policy.distribution(obs)
    policy.params[...] = theta_old
    assert stats["kl"] == pytest.approx(policy.distribution(obs).kl(new).mean(), rel=1e-9)


def test_zero_advantages_leave_the_policy_where_it_was():
    policy, obs, actions, _ = log_std_case()
    theta_old = policy.params.copy()
    stats = policy_step(policy, obs, actions, np.zeros(len(obs)),
                        make_config(trpo.Config, norm_adv=False))
    np.testing.assert_array_equal(policy.params, theta_old)
    assert stats["grad_norm"] == 0.0 and stats["backtrack_step"] == 0.0


def test_the_optimizer_fits_the_value_function_alone():
    rollout, policy0, value0 = toy_rollout()
    policy, value_fn, _ = fresh_networks(policy0, value0, critic=False)
    value_before = value_fn.params.copy()
    optim = Adam(trpo.optimized_params(policy, value_fn), 0.01)
    assert optim.params is value_fn.params
    stats = trpo.update(rollout, policy, value_fn, optim, trpo_config(value_epochs=3,
                                                                      value_minibatches=2),
                        np.random.default_rng(0))
    assert optim.t == 3 * 2                              # value_epochs x value_minibatches
    assert not np.array_equal(value_fn.params, value_before)
    assert stats["value_loss"] > 0
    joint = Adam(np.concatenate([policy.params, value_fn.params]), 0.01)
    with pytest.raises(ValueError, match="optim"):
        trpo.update(rollout, policy, value_fn, joint, trpo_config(), np.random.default_rng(0))


def test_the_critic_fit_steps_on_shuffled_minibatches_of_the_lambda_returns():
    """value_epochs = 2 passes of value_minibatches = 3: step k of pass e fits slice k (of
    ceil(B / 3) samples) of that pass's order, rng.permutation(B) drawn from the update's
    generator, on 0.5 * mean (V(s_i) - R_i)^2 with R = GAE + V_old: each recorded gradient is
    that loss's on exactly those samples, at the parameters it was taken at."""
    rollout, policy0, value0 = toy_rollout()
    policy, value_fn, _ = fresh_networks(policy0, value0, critic=False)
    optim = RecordingAdam(trpo.optimized_params(policy, value_fn), 0.05)
    trpo.update(rollout, policy, value_fn, optim,
                trpo_config(value_epochs=2, value_minibatches=3, max_grad_norm=0.0),
                np.random.default_rng(42))
    m = rollout.mask
    R = (gae_reference(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                       rollout.truncated, 0.9, 0.8) + rollout.values)[m]
    obs = rollout.obs[m]
    B = len(obs)
    size = math.ceil(B / 3)
    rng = np.random.default_rng(42)
    slices = [order[start:start + size] for order in (rng.permutation(B) for _ in range(2))
              for start in range(0, B, size)]
    assert len(optim.grads) == len(slices) == 6
    for step, i in enumerate(slices):
        value_fn.params[...] = optim.at[step]
        numeric = numerical_gradient(lambda: 0.5 * np.mean((value_fn.predict(obs[i]) - R[i]) ** 2),
                                     value_fn.params)
        assert relative_error(optim.grads[step], numeric) < 1e-6


def test_reset_steps_change_no_update():
    rollout, policy0, value0 = toy_rollout()
    reset_rows = ~rollout.mask
    assert reset_rows.sum() >= 4

    def params_after(r):
        policy, value_fn, _, stats = run_update(r, policy0, value0)
        return np.concatenate([policy.params, value_fn.params]), stats

    params, stats = params_after(rollout)
    params_scrambled, stats_scrambled = params_after(scramble(rollout, reset_rows))
    np.testing.assert_array_equal(params_scrambled, params)
    assert stats_scrambled == stats
    real_row = np.zeros_like(reset_rows)
    real_row[0, 0] = True
    assert not np.array_equal(params_after(scramble(rollout, real_row))[0], params)


@pytest.mark.parametrize("field, value, error", [
    ("max_kl", 0.0, ValueError), ("max_kl", "0.01", TypeError), ("cg_iters", 0, ValueError),
    ("cg_damping", -0.1, ValueError), ("backtrack_coef", 1.0, ValueError),
    ("backtrack_iters", 2.5, TypeError), ("line_search", "no", TypeError),
    ("value_epochs", 0, ValueError), ("value_minibatches", 0, ValueError),
])
def test_bad_config_values_raise_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        make_config(trpo.Config, **{field: value})


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------

def test_cli_trains_trpo_and_logs_every_update_within_the_trust_region(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--algo", "trpo", "--steps", "6000", "--run-dir",
                            str(run_dir), "--max-kl", "0.02", "--log-every", "-1"]) == 0
    with open(run_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == math.ceil(6000 / (trpo.Config().num_envs * trpo.Config().num_steps))
    kept = [row for row in rows if float(row["backtrack_step"]) > 0]
    assert len(kept) >= len(rows) // 2
    assert all(0 < float(row["kl"]) <= 0.02 for row in kept)
    assert all(float(row["actual_improvement"]) > 0 for row in kept)
    assert minipg.load(str(run_dir / "checkpoint.npz")).params.size > 0
    assert load_config(str(run_dir / "checkpoint.npz")).max_kl == 0.02


def test_short_trpo_run_improves_the_return_beyond_four_standard_errors(tmp_path):
    result = minipg.train("CartPole-v1", "trpo", 16_384, 0, run_dir=str(tmp_path), log_every=-1)
    improvement, se = improvement_and_standard_error(result)
    assert improvement > 4 * se, (improvement, se)


def test_same_seed_gives_an_identical_progress_csv(tmp_path):
    for name in "ab":
        minipg.train("CartPole-v1", "trpo", 2048, 0, run_dir=str(tmp_path / name),
                     num_envs=4, num_steps=64, log_every=-1)
    a, b = ((tmp_path / name / "progress.csv").read_bytes() for name in "ab")
    assert a == b

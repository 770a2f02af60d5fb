"""Coloured exploration noise as a specification (minipg/envs/noise.py): at every step the noise is
N(0, 1) -- so the action's density is the policy's own, the one the losses use -- while its
correlation k steps apart is rho^k; it restarts independently at episode starts; a run with it
resumes bit for bit. Statistical bounds are 4 standard errors over independent envs."""
import numpy as np
import pytest
import gymnasium as gym
from toy_env import OBS_DIM, T, make_env

import minipg
from minipg.core.distributions import DiagGaussian
from minipg.envs.noise import ColouredNoise
from minipg.core.policies import GaussianPolicy
from minipg.envs.rollout import RolloutCollector

N, STEPS, RHO = 4000, 30, 0.9


def noise_paths(rho, restart_at=None):
    """eps of N independent envs over STEPS steps (one action dim), mean 0 and std 1."""
    noise, rng = ColouredNoise(N, 1, rho), np.random.default_rng(0)
    dist = DiagGaussian(np.zeros((N, 1)), np.zeros(1))
    restart = np.zeros(N, bool)
    paths = []
    for t in range(STEPS):
        restart[:] = t == restart_at
        paths.append(noise.sample(dist, rng, restart)[:, 0])
    return np.array(paths)                                   # (STEPS, N)


def test_every_step_is_standard_normal_and_correlation_decays_as_rho_to_the_k():
    eps = noise_paths(RHO)
    se_var = np.sqrt(2.0 / N)                                 # of a sample variance of N(0, 1)
    for t in (0, 1, 10, STEPS - 1):
        assert abs(eps[t].mean()) < 4 / np.sqrt(N)
        assert abs(eps[t].var() - 1.0) < 4 * se_var
    for k in (1, 5, 20):
        correlation = np.mean(eps[0] * eps[k])                # E[eps_0 eps_k] = rho^k
        se = np.sqrt((1 + RHO ** (2 * k)) / N)                # Var(eps_0 eps_k) = 1 + rho^2k
        assert abs(correlation - RHO ** k) < 4 * se


def test_rho_zero_is_independent_noise_and_a_restart_forgets_the_past():
    eps = noise_paths(0.0)
    assert abs(np.mean(eps[0] * eps[1])) < 4 / np.sqrt(N)
    eps = noise_paths(RHO, restart_at=10)
    assert abs(np.mean(eps[9] * eps[10])) < 4 / np.sqrt(N)    # was rho = 0.9 without it
    assert abs(np.mean(eps[10] * eps[11]) - RHO) < 4 * np.sqrt((1 + RHO ** 2) / N)


def test_the_collector_stores_the_actions_log_prob_under_the_policy_itself():
    env = make_env(action_space=gym.spaces.Box(-1.0, 1.0, (2,), np.float64))
    policy = GaussianPolicy(OBS_DIM, 2, (8,), log_std_init=-0.5, rng=1)
    collector = RolloutCollector(env, policy, None, T, np.random.default_rng(0), seed=0,
                                 noise=ColouredNoise(env.num_envs, 2, RHO))
    b = collector.collect()
    np.testing.assert_allclose(b.log_prob, policy.distribution(b.obs).log_prob(b.actions),
                               rtol=1e-6)
    # The stored action is mu + sigma * eps with the noise process's own eps.
    eps = (b.actions - policy.distribution(b.obs).mean) / np.exp(policy.log_std)
    np.testing.assert_allclose(collector.noise.eps, eps[-1], rtol=1e-5, atol=1e-6)


def test_noise_correlation_is_refused_for_discrete_actions_and_outside_0_1(tmp_path):
    with pytest.raises(ValueError, match="continuous"):
        minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "a"),
                     noise_correlation=0.5, log_every=-1)
    with pytest.raises(ValueError, match="noise_correlation must be in"):
        minipg.train("Pendulum-v1", "ppo", 64, 0, noise_correlation=1.0, log_every=-1)


def test_a_run_with_coloured_noise_resumes_bit_for_bit(tmp_path):
    settings = dict(num_envs=4, num_steps=32, hidden_sizes=(16,), noise_correlation=RHO,
                    log_every=-1)
    reference = minipg.train("Pendulum-v1", "ppo", 8 * 128, 0,
                             run_dir=str(tmp_path / "reference"), **settings)
    run_dir = str(tmp_path / "run")
    minipg.train("Pendulum-v1", "ppo", 8 * 128, 0, run_dir=run_dir,
                 callback=lambda record, policy: record["iteration"] == 3, **settings)
    resumed = minipg.train(resume=run_dir)
    assert (tmp_path / "run" / "progress.csv").read_bytes() == \
        (tmp_path / "reference" / "progress.csv").read_bytes()
    np.testing.assert_array_equal(resumed.policy.params, reference.policy.params)

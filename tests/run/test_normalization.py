"""Normalisation that travels with the policy, as a specification:

- the observation statistics are those of the states acted on in real transitions (reset steps
  excluded), the network sees the normalised observation, and policy.act applies the same
  statistics to raw observations without changing them (frozen at evaluation);
- rewards are scaled for training only: the episode returns the collector reports, the log and
  progress.csv are the env's own;
- a normalised run evaluates to the same returns from its checkpoint alone;
- PPO's clipped value loss has the gradient its docstring states (finite differences).
"""
import csv

import gymnasium as gym
import numpy as np
import pytest
from gradcheck import numerical_gradient
from toy_env import EXPECTED_MASK, OBS_DIM, SCRIPTS, T, make_env, transition_reward

import minipg
from minipg.algos.ppo import clipped_value_loss
from minipg.tools.cli import main
from minipg.core.normalize import RewardScaler, RunningMeanStd, normalize_obs
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction
from minipg.core.losses import value_loss
from minipg.envs.rollout import RolloutCollector
from minipg.run.checkpoint import from_state

N = len(SCRIPTS)
SMALL = dict(num_envs=4, num_steps=32, hidden_sizes=(16,), log_every=-1)


# ------------------------------------------------------------------------------------------
# The collector: statistics from real transitions, normalised network inputs, scaled rewards
# ------------------------------------------------------------------------------------------

def raw_observations(env):
    """(T, N, obs_dim) raw observations the collector acted on: the reset's, then each step's."""
    reset_obs = np.stack([0.1 * (np.arange(N) + 1), np.zeros(N), np.zeros(N)], axis=1)
    return np.stack([reset_obs] + env.returned_obs[:T - 1])


def test_observation_statistics_are_those_of_the_states_acted_on_in_real_transitions():
    env = make_env()
    policy = CategoricalPolicy(OBS_DIM, 2, (8,), rng=1, norm_obs=True, clip_obs=5.0)
    collector = RolloutCollector(env, policy, ValueFunction(OBS_DIM, (8,), rng=2), T,
                                 np.random.default_rng(0), seed=0)
    b = collector.collect()
    raw = raw_observations(env)
    real = raw[EXPECTED_MASK]                 # the final observations of reset rows are out
    assert policy.obs_rms.count == EXPECTED_MASK.sum() < T * N
    np.testing.assert_allclose(policy.obs_rms.mean, real.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(policy.obs_rms.var, real.var(axis=0), rtol=1e-9)
    # Every row holds the network's input: the raw observation normalised with the statistics
    # as they stood at the start of the rollout (updated once, after it). The first rollout's
    # are the empty statistics, mean 0 and variance 1: clipping only (none needed here).
    np.testing.assert_allclose(b.obs, normalize_obs(raw, RunningMeanStd((OBS_DIM,)), 5.0),
                               rtol=1e-12)
    # The next rollout is normalised with the first one's statistics.
    after_first = RunningMeanStd.from_state(policy.obs_rms.state("s/"), "s/")
    b = collector.collect()
    raw_next = np.stack(env.returned_obs[T - 1:2 * T - 1])
    np.testing.assert_allclose(b.obs, normalize_obs(raw_next, after_first, 5.0), rtol=1e-12)
    assert policy.obs_rms.count > after_first.count


def test_scaled_rewards_train_while_the_reported_returns_are_the_envs_own():
    env = make_env()
    policy = CategoricalPolicy(OBS_DIM, 2, (8,), rng=1)
    collector = RolloutCollector(env, policy, None, T, np.random.default_rng(0), seed=0,
                                 reward_scaler=RewardScaler(N, 0.9, clip_reward=1e9))
    b = collector.collect()
    # Replay the same rewards and ends through a fresh scaler: the stored rewards are its output.
    replay, raw = RewardScaler(N, 0.9, clip_reward=1e9), np.zeros((T, N))
    k = np.zeros(N, int)
    for t in range(T):
        raw[t] = np.where(EXPECTED_MASK[t], transition_reward(np.arange(N), k), 0.0)
        k = np.where(EXPECTED_MASK[t], k + 1, 0)
        k[b.terminated[t] | b.truncated[t]] = 0
        expected = replay.scale(raw[t], b.terminated[t] | b.truncated[t], EXPECTED_MASK[t])
        np.testing.assert_allclose(b.rewards[t], expected, rtol=1e-12)
    assert not np.allclose(b.rewards, raw)
    # Env 0 terminates after 3 transitions: its episodes return 1 + 1.5 + 2 = 4.5, unscaled.
    assert 4.5 in b.episode_returns and set(b.episode_returns) <= {4.5, 2 * (1 + 1.5)}



def test_act_normalises_raw_observations_and_never_updates_the_statistics():
    policy = GaussianPolicy(2, 1, (8,), rng=0, norm_obs=True, clip_obs=3.0)
    policy.obs_rms.update(np.array([[100.0, -5.0], [300.0, -15.0]]))
    obs = np.array([[250.0, -8.0], [10_000.0, 0.0]])
    before = policy.obs_rms.state("")
    expected = policy.distribution(normalize_obs(obs, policy.obs_rms, 3.0)).mode()
    np.testing.assert_array_equal(policy.act(obs, deterministic=True), expected)
    after = policy.obs_rms.state("")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # The statistics are part of the policy's saved state, and come back with it.
    again = from_state(policy.state("p/"), "p/")
    np.testing.assert_array_equal(again.act(obs, deterministic=True), expected)
    assert again.obs_rms.count == 2 and again.clip_obs == 3.0


# ------------------------------------------------------------------------------------------
# Whole runs: real returns in the log, the same evaluation from the checkpoint alone
# ------------------------------------------------------------------------------------------

class FarFromUnitScale(gym.Env):
    """Observations 50 + 100 x with x ~ N(0, I_2); reward 1000 for action [x_0 > 0], else 0;
    10 steps an episode. Every return is a multiple of 1000."""
    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.x = 0, self.np_random.normal(size=2)
        return 50.0 + 100.0 * self.x, {}

    def step(self, action):
        reward = 1000.0 * (int(action) == int(self.x[0] > 0))
        self.k += 1
        self.x = self.np_random.normal(size=2)
        return 50.0 + 100.0 * self.x, reward, self.k >= 10, False, {}


@pytest.fixture(scope="module")
def normalised_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("normalised") / "run"
    return minipg.train(FarFromUnitScale, "ppo", 30 * 128, 0, run_dir=str(run_dir),
                        norm_obs=True, norm_reward=True, clip_vloss=True,
                        learning_rate=3e-3, **SMALL)


def test_the_log_reports_the_envs_own_returns(normalised_run):
    with open(f"{normalised_run.run_dir}/progress.csv", newline="") as f:
        returns = [float(row["mean_return"]) for row in csv.DictReader(f)]
    # Means of 20 returns that are multiples of 1000: multiples of 50. Scaled rewards (clipped
    # at 10 per step) could not exceed 100 per episode.
    assert all(r % 50 == 0 for r in returns) and max(returns) > 5000
    assert [r["mean_return"] for r in normalised_run.history] == returns


def test_a_normalised_run_evaluates_to_the_same_returns_from_its_checkpoint_alone(
        normalised_run):
    policy = normalised_run.policy
    count = policy.obs_rms.count
    assert count > 0 and abs(policy.obs_rms.mean[0] - 50.0) < 10.0       # it saw the offset
    returns = minipg.evaluate(policy, FarFromUnitScale, 20, seed=7)
    np.testing.assert_array_equal(minipg.evaluate(normalised_run.run_dir, FarFromUnitScale,
                                                  20, seed=7), returns)
    loaded = minipg.load(normalised_run.run_dir)
    np.testing.assert_array_equal(loaded.obs_rms.mean, policy.obs_rms.mean)
    assert policy.obs_rms.count == count == loaded.obs_rms.count          # frozen
    # A random policy earns 5000 +- 1581 per episode; the trained one far more...
    assert returns.mean() > 5000 + 8 * 1581 / np.sqrt(20)
    # ...and only with its statistics: the same weights on raw observations do worse.
    loaded.obs_rms = None
    assert minipg.evaluate(loaded, FarFromUnitScale, 20, seed=7).mean() < returns.mean()


def test_minipg_eval_applies_the_saved_statistics(tmp_path, capsys):
    result = minipg.train("Pendulum-v1", "ppo", 4 * 128, 0, run_dir=str(tmp_path / "run"),
                          norm_obs=True, norm_reward=True, **SMALL)
    expected = minipg.evaluate(result.policy, "Pendulum-v1", 3, seed=5)
    capsys.readouterr()
    assert main(["eval", result.run_dir, "--episodes", "3", "--seed", "5"]) == 0
    assert f"return {expected.mean():.1f} +- {expected.std():.1f}" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# PPO's clipped value loss
# ------------------------------------------------------------------------------------------

def test_clipped_value_loss_gradient_matches_finite_differences_in_every_region():
    clip = 0.2
    old_values = np.zeros(6)
    targets = np.array([1.0, 1.0, -1.0, 0.05, -1.0, 1.0])
    # inside the range | past it toward the target (clipped error larger: no gradient) |
    # past it toward the target, other side | inside | past it, away (unclipped larger) x2
    values = np.array([0.1, 0.5, -0.6, -0.15, 0.3, -0.4])
    loss, grad = clipped_value_loss(values, old_values, targets, clip)
    numeric = numerical_gradient(
        lambda: clipped_value_loss(values, old_values, targets, clip)[0], values, 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(grad[[1, 2]], 0.0)                   # held at the clip
    np.testing.assert_allclose(grad[[0, 3, 4, 5]], (values - targets)[[0, 3, 4, 5]] / 6)
    clipped = old_values + np.clip(values - old_values, -clip, clip)
    assert loss == pytest.approx(0.5 * np.mean(np.maximum((values - targets) ** 2,
                                                          (clipped - targets) ** 2)))
    # With a range wider than any move it is the plain value loss.
    wide = clipped_value_loss(values, old_values, targets, 100.0)
    plain = value_loss(values, targets)
    assert wide[0] == pytest.approx(plain[0]) and np.allclose(wide[1], plain[1])

"""The rollout collector as a specification, on a scripted vector env with known episode ends
(tests/helpers/toy_env.py): which rows are reset steps, what next_values holds at a truncation, the
episode statistics, the unclipped stored action, and the step count."""
import copy

import gymnasium as gym
import numpy as np
import pytest
from toy_env import (EXPECTED_MASK, EXPECTED_TERMINATED, EXPECTED_TRUNCATED, OBS_DIM, SCRIPTS, T,
                     make_env, transition_reward)

from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction
from minipg.core.returns import gae
from minipg.envs.rollout import RolloutCollector

N = len(SCRIPTS)
W = np.array([1.0, 10.0, 100.0])


class LinearValue:
    """A stub critic whose predictions are known exactly: V(s) = s . W."""

    def predict(self, obs):
        return np.asarray(obs) @ W


def collector_for(env, value_fn="linear", policy=None, seed=0):
    policy = policy or CategoricalPolicy(OBS_DIM, 2, (8,), rng=1)
    if value_fn == "linear":
        value_fn = LinearValue()
    return RolloutCollector(env, policy, value_fn, T, np.random.default_rng(seed), seed=seed)


def test_mask_is_false_exactly_on_reset_rows_and_flags_are_kept_apart():
    b = collector_for(make_env()).collect()
    np.testing.assert_array_equal(b.mask, EXPECTED_MASK)
    np.testing.assert_array_equal(b.terminated, EXPECTED_TERMINATED)
    np.testing.assert_array_equal(b.truncated, EXPECTED_TRUNCATED)


def test_obs_rows_are_what_the_env_returned_and_a_reset_row_acts_from_the_final_obs():
    env = make_env()
    c = collector_for(env)
    b = c.collect()
    first_obs = np.stack([0.1 * (np.arange(N) + 1), np.zeros(N), np.zeros(N)], axis=1)
    np.testing.assert_array_equal(b.obs[0], first_obs)
    for t in range(T - 1):
        np.testing.assert_array_equal(b.obs[t + 1], env.returned_obs[t])
    np.testing.assert_array_equal(c.obs, env.returned_obs[-1])


def test_next_values_at_a_truncation_is_v_of_the_final_observation_exactly():
    """Env 1 is truncated after 2 transitions: final obs [0.2, 0.01 c, 0.05 * 2] at call c."""
    b = collector_for(make_env()).collect()
    for t in (1, 4, 7):                                  # the truncated rows of env 1
        final_obs = np.array([0.2, 0.01 * (t + 1), 0.1])
        assert b.next_values[t, 1] == pytest.approx(final_obs @ W, rel=1e-14)
        reset_obs = np.array([0.2, 0.01 * (t + 2), 0.0])  # what the next step() returns
        assert b.next_values[t, 1] != pytest.approx(reset_obs @ W, rel=1e-6)
    # Inside the rollout next_values[t] = values[t+1]; the last row is V of the current obs.
    np.testing.assert_array_equal(b.next_values[:-1], b.values[1:])
    np.testing.assert_allclose(b.values, b.obs @ W, rtol=1e-14)
    np.testing.assert_allclose(b.next_values[-1], np.array([0.1, 0.2, 0.3]) * W[0]
                               + 0.01 * T * W[1] + 0.05 * np.array([0, 2, 8]) * W[2], rtol=1e-14)


def test_next_values_with_a_real_value_function_match_predict_on_the_final_obs():
    env = make_env()
    value_fn = ValueFunction(OBS_DIM, (8, 8), rng=3)
    value_fn.params += 0.1 * np.random.default_rng(0).normal(size=value_fn.params.shape)
    c = collector_for(env, value_fn=value_fn)
    b = c.collect()
    ends = np.argwhere(b.terminated | b.truncated)
    assert len(ends) == 5
    for t, n in ends:
        final_obs = env.returned_obs[t][n]
        np.testing.assert_allclose(b.next_values[t, n], value_fn.predict(final_obs),
                                   rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.values, value_fn.predict(b.obs), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.next_values[-1], value_fn.predict(env.returned_obs[-1]),
                               rtol=1e-12, atol=1e-14)


def test_truncation_bootstraps_and_termination_does_not_in_the_td_residual():
    b = collector_for(make_env()).collect()
    gamma = 0.9
    delta = gae(b.rewards, b.values, b.next_values, b.terminated, b.truncated, gamma, 0.0)
    final_obs = np.array([0.2, 0.02, 0.1])               # env 1, truncated at row 1
    expected = transition_reward(1, 1) + gamma * (final_obs @ W) - b.obs[1, 1] @ W
    assert delta[1, 1] == pytest.approx(expected, rel=1e-12)
    # env 0 terminates at row 2: no value after it
    assert delta[2, 0] == pytest.approx(transition_reward(0, 2) - b.obs[2, 0] @ W, rel=1e-12)


def test_episode_returns_and_lengths_skip_reset_steps_even_with_a_reset_reward():
    """The reset steps here pay 100; none of it may reach the statistics."""
    c = collector_for(make_env(reset_reward=100.0))
    b = c.collect()
    # Ends in time order (env order within a row): row 1 env 1, row 2 env 0, 4 env 1, 6 env 0, 7 env 1.
    assert b.episode_returns == [5.0, 4.5, 5.0, 4.5, 5.0]
    assert b.episode_lengths == [2, 3, 2, 3, 2]
    assert (b.rewards[~b.mask] == 100.0).all()           # recorded raw, masked out of the rest

    # The next collection continues the episodes across the boundary: env 1 starts with a
    # reset row; env 2's first episode (11 transitions, rows 0-10) ends at local row 2.
    b = c.collect()
    np.testing.assert_array_equal(b.mask[0], [True, False, True])
    env2_return = sum(transition_reward(2, k) for k in range(11))
    assert b.episode_returns == [4.5, 5.0, env2_return, 5.0, 4.5]
    assert b.episode_lengths == [3, 2, 11, 2, 3]


def test_global_step_counts_every_env_step_of_every_collection():
    c = collector_for(make_env())
    assert c.global_step == 0
    c.collect()
    assert c.global_step == T * N
    c.collect()
    assert c.global_step == 2 * T * N


def test_reset_true_restarts_every_episode_and_seeds_only_once():
    env = make_env()
    seeds = []
    original_reset = env.reset

    def recording_reset(*, seed=None, options=None):
        seeds.append(seed)
        return original_reset(seed=seed, options=options)

    env.reset = recording_reset
    c = collector_for(env, seed=7)
    c.collect()
    b = c.collect(reset=True)
    assert seeds == [7, None]
    np.testing.assert_array_equal(b.mask, EXPECTED_MASK)     # the same script from the start


def test_categorical_actions_sent_as_sampled_and_log_prob_of_the_stored_action():
    env = make_env()
    policy = CategoricalPolicy(OBS_DIM, 2, (8,), rng=1)
    policy.params += np.random.default_rng(1).normal(size=policy.params.shape)
    b = collector_for(env, policy=policy).collect()
    assert b.actions.shape == (T, N) and b.actions.dtype.kind == "i"
    np.testing.assert_array_equal(np.array(env.received), b.actions)
    np.testing.assert_allclose(b.log_prob, policy.distribution(b.obs).log_prob(b.actions),
                               rtol=1e-12)


def test_gaussian_stores_the_unclipped_sample_and_sends_the_clipped_copy():
    env = make_env(action_space=gym.spaces.Box(-0.5, 0.5, (2,), np.float64))
    policy = GaussianPolicy(OBS_DIM, 2, (8,), log_std_init=0.5, action_low=-0.5,
                            action_high=0.5, rng=1)
    b = collector_for(env, policy=policy).collect()
    assert b.actions.shape == (T, N, 2) and b.actions.dtype == np.float64
    assert (np.abs(b.actions) > 0.5).sum() > 5               # std 1.6: many samples outside
    received = np.array(env.received)
    np.testing.assert_array_equal(received, np.clip(b.actions, -0.5, 0.5))
    assert (np.abs(received) <= 0.5).all()
    # log_prob is of the stored (unclipped) action
    np.testing.assert_allclose(b.log_prob, policy.distribution(b.obs).log_prob(b.actions),
                               rtol=1e-12)


def test_without_a_value_function_values_are_zero():
    b = collector_for(make_env(), value_fn=None).collect()
    assert not b.values.any() and not b.next_values.any()


def test_a_vector_env_with_same_step_autoreset_is_refused():
    """SAME_STEP autoreset puts the final observation in `info` and has no reset step; the
    masking here would be silently wrong, so the collector refuses it up front."""
    from gymnasium.vector import AutoresetMode

    env = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    policy = CategoricalPolicy(4, 2, hidden_sizes=(8,), rng=0)
    with pytest.raises(ValueError, match="autoreset_mode"):
        RolloutCollector(env, policy, None, 4, np.random.default_rng(0))
    env.close()


def test_a_discrete_space_with_start_receives_the_index_plus_start():
    env = make_env(action_space=gym.spaces.Discrete(3, start=-1))
    policy = CategoricalPolicy(OBS_DIM, 3, (8,), rng=1)
    b = collector_for(env, policy=policy).collect()
    assert set(np.unique(b.actions)) == {0, 1, 2}                # indices are stored
    np.testing.assert_array_equal(np.array(env.received), b.actions - 1)


def test_state_then_load_state_continues_the_same_collection():
    """Two collectors on two copies of the env: the second, loaded with the first's state after
    one collection (and its env in the same place), collects exactly what the first does."""
    first, second = collector_for(make_env(), seed=3), collector_for(make_env(), seed=99)
    first.collect()
    second.collect()                    # any other state: load_state must replace all of it
    second.env = copy.deepcopy(first.env)
    second.load_state(first.state())
    a = {k: v.copy() for k, v in vars(first.collect()).items() if isinstance(v, np.ndarray)}
    b = vars(second.collect())
    for name, array in a.items():
        np.testing.assert_array_equal(b[name], array, err_msg=name)
    assert first.global_step == second.global_step == 2 * T * N


def test_an_exception_or_a_nan_from_the_env_is_named_as_the_envs():
    from minipg.envs.rollout import EnvError

    env = make_env()
    env.step = lambda actions: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(EnvError, match=r"the environment raised RuntimeError in step\(\): boom"):
        collector_for(env).collect()
    env = make_env()
    real_step = env.step

    def nan_at_env_2(actions):
        obs, rewards, terminated, truncated, info = real_step(actions)
        obs[2, 1] = np.nan
        return obs, rewards, terminated, truncated, info

    env.step = nan_at_env_2
    with pytest.raises(FloatingPointError, match=r"observations\[\(0, 2, 1\)\] = nan \(env 2\)"):
        collector_for(env).collect()


def test_stepping_a_sync_vector_envs_copies_directly_is_its_step_exactly(monkeypatch):
    """The collector steps a SyncVectorEnv's copies itself (no infos dict, no stacked copy per
    step); the rollouts, the episodes and the vector env's own state are what its step() gives."""
    from minipg.envs import rollout as rollout_module

    def collect_twice(direct):
        monkeypatch.setattr(rollout_module, "_steps_its_envs_itself",
                            lambda env: direct and type(env) is gym.vector.SyncVectorEnv)
        env = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
        policy = CategoricalPolicy(4, 2, (8,), rng=1)
        collector = RolloutCollector(env, policy, ValueFunction(4, (8,), rng=2), 40,
                                     np.random.default_rng(0), seed=0)
        buffers = []
        for _ in range(2):                   # episodes end and reset inside the rollouts
            b = collector.collect()
            buffers.append({name: np.copy(getattr(b, name)) for name in
                            ("obs", "actions", "log_prob", "rewards", "terminated", "truncated",
                             "mask", "values", "next_values")})
            buffers[-1]["episodes"] = (list(b.episode_returns), list(b.episode_lengths))
        return buffers, env._autoreset_envs.copy(), np.stack(env._env_obs)

    (direct, direct_reset, direct_obs), (stepped, stepped_reset, stepped_obs) = (
        collect_twice(True), collect_twice(False))
    assert any(len(d["episodes"][0]) for d in direct)
    for d, s in zip(direct, stepped):
        for name in d:
            np.testing.assert_array_equal(d[name], s[name], err_msg=name)
    np.testing.assert_array_equal(direct_reset, stepped_reset)
    np.testing.assert_array_equal(direct_obs, stepped_obs)

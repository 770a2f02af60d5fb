"""The whole-episode collector (REINFORCE's) as a specification, on the scripted vector env
(tests/helpers/toy_env.py): column n is one episode of env n from a reset, from row 0 to its
end and nothing after; a time limit of its own truncates; next_values at the last step is
V(final observation); the steps counted are the episodes' transitions; state() continues it."""
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from toy_env import OBS_DIM, make_env, transition_reward

from minipg.core.normalize import RewardScaler
from minipg.core.policies import CategoricalPolicy
from minipg.envs.make import make_env as make_gym_env
from minipg.envs.whole_episodes import EpisodeCollector

W = np.array([1.0, 10.0, 100.0])


class LinearValue:
    """A stub critic whose predictions are known exactly: V(s) = s . W."""

    def predict(self, obs):
        return np.asarray(obs) @ W


def collect(max_episode_steps=8, value_fn=None, env=None, **kwargs):
    env = env or make_env()
    policy = CategoricalPolicy(OBS_DIM, 2, (8,), rng=1)
    collector = EpisodeCollector(env, policy, value_fn or LinearValue(), max_episode_steps,
                                 np.random.default_rng(0), **kwargs)
    return collector, collector.collect(), env


def test_each_column_is_one_whole_episode_from_a_reset():
    # Scripts: env 0 terminates after 3 steps, env 1 is truncated after 2, env 2 runs 11
    # (cut at max_episode_steps = 8).
    collector, b, env = collect()
    assert env.reset_calls == 1
    lengths = np.array([3, 2, 8])
    assert b.mask.shape == (8, 3)
    np.testing.assert_array_equal(b.mask, np.arange(8)[:, None] < lengths)
    terminated, truncated = np.zeros((8, 3), bool), np.zeros((8, 3), bool)
    terminated[2, 0] = truncated[1, 1] = truncated[7, 2] = True
    np.testing.assert_array_equal(b.terminated, terminated)
    np.testing.assert_array_equal(b.truncated, truncated)
    for n, length in enumerate(lengths):
        expected = [transition_reward(n, k) for k in range(length)]
        np.testing.assert_array_equal(b.rewards[:length, n], expected)
        assert (b.rewards[length:, n] == 0).all() and (b.obs[length:, n] == 0).all()
        assert b.episode_returns[n] == pytest.approx(sum(expected))
    assert b.episode_lengths == lengths.tolist()
    assert collector.global_step == lengths.sum()            # transitions, not env calls


def test_next_values_are_the_next_state_values_and_v_of_the_final_observation_at_the_end():
    collector, b, env = collect()
    T = b.mask.shape[0]
    for n, length in enumerate([3, 2, 8]):
        returned = np.array([env.returned_obs[t][n] for t in range(length)])   # s_1 .. s_L
        np.testing.assert_allclose(b.next_values[:length, n], returned @ W)
        np.testing.assert_allclose(b.values[1:length, n], returned[:-1] @ W)
        np.testing.assert_allclose(b.values[0, n], b.obs[0, n] @ W)
        assert (b.values[length:, n] == 0).all() and (b.next_values[length:, n] == 0).all()
    assert T == 8


def test_every_collect_starts_fresh_episodes_and_counts_on():
    collector, first, env = collect()
    second = collector.collect()
    assert env.reset_calls == 2
    np.testing.assert_array_equal(second.mask, first.mask)   # the scripts start again
    assert collector.global_step == 2 * 13


def test_the_episodes_of_a_cartpole_batch_are_independent_and_whole():
    env = make_gym_env("CartPole-v1", 8)
    policy = CategoricalPolicy(4, 2, (8,), rng=1)
    collector = EpisodeCollector(env, policy, None, 1000, np.random.default_rng(0))
    a, b = collector.collect(), collector.collect()
    for batch in (a, b):
        assert (batch.terminated | batch.truncated)[batch.mask].sum() == 8   # one end each
        assert len(np.unique(batch.obs[0], axis=0)) == 8     # 8 different start states
        assert batch.mask.sum() == sum(batch.episode_lengths)
    assert not np.array_equal(a.obs[0], b.obs[0])           # new starts every batch
    env.close()


def test_state_and_load_state_continue_bit_for_bit():
    env = make_gym_env("CartPole-v1", 4)
    policy = CategoricalPolicy(4, 2, (8,), rng=1)
    scaler = RewardScaler(4, 0.99)
    first = EpisodeCollector(env, policy, None, 1000, np.random.default_rng(0),
                             reward_scaler=scaler)
    first.collect()
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
             for k, v in first.state().items()}
    expected = first.collect()
    other = EpisodeCollector(make_gym_env("CartPole-v1", 4), policy, None, 1000,
                             np.random.default_rng(99), reward_scaler=RewardScaler(4, 0.99))
    other.load_state(state)
    got = other.collect()
    for name in ("obs", "actions", "rewards", "mask", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert other.global_step == first.global_step
    assert not (got.rewards[got.mask] == 1.0).all()          # the scaler was at work


def test_bad_arguments_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="max_episode_steps"):
        collect(max_episode_steps=0)
    env = make_env()
    env.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
    with pytest.raises(ValueError, match="NEXT_STEP"):
        collect(env=env)

"""GRPO on gymnasium episodes and PPO with a per-token critic: the pieces that are not GRPO's
shared functions (tested in test_grpo.py): groups that share their start, masks that end with
the episode, token advantages written out by hand, and short runs that learn."""
import numpy as np
import pytest

import minipg
from minipg.envs.groups import GroupCollector
from minipg.algos import grpo_gym
from minipg.lm import token_ppo
from minipg.lm.token_ppo import token_advantages
from minipg.core.policies import CategoricalPolicy


def test_a_group_shares_its_start_state_and_the_masks_end_with_each_episode():
    import gymnasium as gym
    env = gym.make_vec("CartPole-v1", num_envs=6, vectorization_mode="sync")
    policy = CategoricalPolicy(4, 2, (8,), rng=0)
    collector = GroupCollector(env, policy, num_groups=2, group_size=3, rng=0)
    batch = collector.collect()
    env.close()
    assert collector.global_step == batch.mask.sum() == sum(batch.episode_lengths)
    np.testing.assert_array_equal(batch.obs[0, 0], batch.obs[1, 0])
    np.testing.assert_array_equal(batch.obs[0, 0], batch.obs[2, 0])
    assert not np.array_equal(batch.obs[0, 0], batch.obs[3, 0])
    lengths = batch.mask.sum(axis=1)
    np.testing.assert_array_equal(batch.returns, lengths)             # +1 per step
    assert (np.diff(batch.mask.astype(int), axis=1) <= 0).all()       # masks never restart
    assert batch.mask.shape[1] == lengths.max()
    assert (batch.obs[~batch.mask] == 0).all()
    # Same start, different sampled actions: the episodes of a group differ.
    assert len(set(lengths[:3])) > 1 or not np.array_equal(batch.actions[0], batch.actions[1])


def test_groups_bound_the_envs_outputs_as_whole_episodes_do():
    """One update sums over every transition of the batch: num_envs episodes of up to
    max_episode_steps steps, so the limits are those of a batch of that many transitions."""
    import gymnasium as gym
    from minipg.envs.outputs import output_limits
    from minipg.envs.whole_episodes import EpisodeCollector
    env = gym.make_vec("CartPole-v1", num_envs=6, vectorization_mode="sync")
    policy = CategoricalPolicy(4, 2, (8,), rng=0, dtype="float32")
    groups = GroupCollector(env, policy, num_groups=2, group_size=3, rng=0)
    episodes = EpisodeCollector(env, policy, None, 500, np.random.default_rng(0))
    env.close()
    assert groups.limits == episodes.limits == output_limits(np.float32, 6 * 500, 500)


def test_grpo_gym_learns_on_cartpole_within_a_small_budget(tmp_path):
    """From a random policy (returns ~20), 12k transitions lift the mean return of a batch of
    64 episodes above 50 (seed 0; a regression check, not a benchmark)."""
    history = minipg.train("CartPole-v1", "grpo", 12_000, 0, run_dir=tmp_path / "run",
                           log_every=-1).history
    assert history[0]["group_return"] < 30
    assert history[-1]["group_return"] > 50
    assert history[-1]["env_steps"] >= 12_000
    with pytest.raises(ValueError, match="loss_agg"):
        grpo_gym.Config(loss_agg="mean").validate()


def test_token_advantages_by_hand():
    """Two responses: lengths 3 (reward 1) and 1 (reward 0), gamma = 1, lam = 0.5.

        response 0: delta = (V1 - V0, V2 - V1, 1 - V2), A_t = delta_t + 0.5 A_{t+1}
        response 1: delta_0 = 0 - V0; nothing after its end reaches it
    """
    values = np.array([[0.2, 0.5, 0.9], [0.4, 7.0, 7.0]])
    mask = np.array([[1, 1, 1], [1, 0, 0]], bool)
    advantages, returns = token_advantages(np.array([1.0, 0.0]), values, mask, 1.0, 0.5)
    a2 = 1 - 0.9
    a1 = (0.9 - 0.5) + 0.5 * a2
    a0 = (0.5 - 0.2) + 0.5 * a1
    np.testing.assert_allclose(advantages[0], [a0, a1, a2], rtol=1e-12)
    assert advantages[1, 0] == pytest.approx(-0.4, rel=1e-12)
    np.testing.assert_allclose(returns[mask], (advantages + values)[mask])
    # lam = 1: every token's return is the final reward (gamma = 1).
    _, returns = token_advantages(np.array([1.0, 0.0]), values, mask, 1.0, 1.0)
    np.testing.assert_allclose(returns[mask], [1, 1, 1, 0], atol=1e-12)


class FirstTokenTask:
    """Reward 1 when the first response token is 3 (as in test_grpo.py)."""
    prompt_len, max_new_tokens = 2, 2

    def sample_prompts(self, n, rng):
        return np.zeros((n, 2), np.int64), np.zeros(n)

    def reward(self, answers, tokens):
        return (tokens[:, 2] == 3).astype(float)


def test_token_ppo_learns_the_first_token_task_and_its_critic_learns_the_value():
    from minipg.lm.sequence import SequencePolicy
    policy = SequencePolicy(6, 4, eos=4, pad=5, window=2, embed_dim=3, hidden_sizes=(8,), rng=0)
    config = token_ppo.Config(num_responses=16, num_updates=40, learning_rate=1e-2,
                              critic_hidden_sizes=(8,))
    history = token_ppo.train(policy, FirstTokenTask(), config)
    probability = policy.forward(np.array([[0, 0, 3]]), 2)[0].probs[0, 0, 3]
    assert probability > 0.9
    assert history[-1]["value_loss"] < 0.2 * history[0]["value_loss"]

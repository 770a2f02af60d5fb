"""The learning rate the trainer sets, read where it acts: the optimizer's learning_rate while
the algorithm's update runs. With anneal_lr it decays linearly to 0 over training, the fraction
done being that BEFORE the iteration (the first update runs at the full rate):

    rollouts:        lr_k = lr (1 - (k - 1) / K),          k = 1..K iterations of T * N steps
    whole episodes:  lr_k = lr (1 - steps before k / total_steps)

and without it every update runs at lr. progress.csv's learning_rate column is that rate."""
import numpy as np
import pytest

import minipg
from minipg.algos import ppo, reinforce

LR = 0.01


def rates_seen_by_update(monkeypatch, module):
    """Wrap module.update to record the optimizer's learning rate at each call."""
    seen = []
    original = module.update

    def update(batch, policy, value_fn, optim, config, rng):
        seen.append(optim.learning_rate)
        return original(batch, policy, value_fn, optim, config, rng)

    monkeypatch.setattr(module, "update", update)
    return seen


@pytest.mark.parametrize("anneal_lr", [True, False])
def test_ppo_updates_run_at_the_linearly_annealed_rate_of_the_iteration(tmp_path, monkeypatch,
                                                                         anneal_lr):
    seen = rates_seen_by_update(monkeypatch, ppo)
    result = minipg.train("CartPole-v1", "ppo", 5 * 2 * 16, 0, run_dir=str(tmp_path),
                          num_envs=2, num_steps=16, num_minibatches=1, update_epochs=1,
                          learning_rate=LR, anneal_lr=anneal_lr, log_every=-1)
    expected = LR * (1 - np.arange(5) / 5) if anneal_lr else np.full(5, LR)
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    np.testing.assert_allclose([r["learning_rate"] for r in result.history], expected,
                               rtol=1e-12)


@pytest.mark.parametrize("anneal_lr", [True, False])
def test_reinforce_updates_run_at_the_rate_of_the_steps_done_before_them(tmp_path, monkeypatch,
                                                                          anneal_lr):
    seen = rates_seen_by_update(monkeypatch, reinforce)
    total = 1500
    result = minipg.train("CartPole-v1", "reinforce", total, 0, run_dir=str(tmp_path),
                          num_envs=4, learning_rate=LR, anneal_lr=anneal_lr, log_every=-1)
    steps_before = [0] + [r["env_steps"] for r in result.history[:-1]]
    assert len(seen) == len(steps_before) >= 5
    expected = (LR * (1 - np.array(steps_before) / total) if anneal_lr
                else np.full(len(seen), LR))
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    np.testing.assert_allclose([r["learning_rate"] for r in result.history], expected,
                               rtol=1e-12)

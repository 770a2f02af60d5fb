"""The training loop as a specification: it learns (a bound from the standard errors), one seed
reproduces progress.csv bit for bit, non-finite values stop it with an error saying where, bad
configs raise before anything is created, and `minipg.train` returns its checkpoint and history."""
import csv
import json
import math
import os

import gymnasium as gym
import numpy as np
import pytest

from improvement import improvement_and_standard_error

import minipg
from minipg.run import build as run_build

SMALL = dict(num_envs=4, num_steps=32, log_every=-1)        # a 128-step batch


def test_short_ppo_run_improves_the_return_beyond_four_standard_errors(tmp_path):
    """~0.6 s of PPO with the defaults on CartPole-v1, seed 0; 30 evaluation episodes each of
    the trained policy and of an untrained one of the same architecture (same env seeds)."""
    result = minipg.train("CartPole-v1", "ppo", 8192, 0, run_dir=str(tmp_path), log_every=-1)
    improvement, se = improvement_and_standard_error(result)
    assert improvement > 4 * se, (improvement, se)
    # The saved checkpoint is the trained policy.
    loaded = minipg.load(result.checkpoint)
    np.testing.assert_array_equal(loaded.params, result.policy.params)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_same_seed_gives_an_identical_progress_csv_and_another_seed_does_not(tmp_path, algo):
    hp = dict(SMALL, num_steps=64) if algo == "reinforce" else SMALL
    runs = [(0, "a"), (0, "b"), (1, "c")]
    for seed, name in runs:
        minipg.train("CartPole-v1", algo, 2048, seed, run_dir=str(tmp_path / name), **hp)
    a, b, c = (read_bytes(tmp_path / name / "progress.csv") for _, name in runs)
    if algo == "ppo":
        assert len(a.splitlines()) == 1 + math.ceil(2048 / (4 * hp["num_steps"]))
    else:          # batches of whole episodes vary in size: the run ends at the one past 2048
        env_steps = [int(line.split(b",")[1]) for line in a.splitlines()[1:]]
        assert env_steps[-1] >= 2048 > env_steps[-2]
    assert a == b
    assert a != c
    # and the weights too
    wa, wb = (np.load(tmp_path / name / "checkpoint.npz")["policy/params"] for name in "ab")
    np.testing.assert_array_equal(wa, wb)


def test_result_has_the_checkpoint_and_a_record_per_iteration(tmp_path):
    result = minipg.train("CartPole-v1", "a2c", 1000, 3, run_dir=str(tmp_path), **SMALL)
    assert os.path.isfile(result.checkpoint) and result.checkpoint.endswith(".npz")
    assert result.run_dir == str(tmp_path)
    history = result.history
    assert len(history) == math.ceil(1000 / 128)
    for i, record in enumerate(history, start=1):
        assert record["env_steps"] == 128 * i
        for key in ("wall_clock", "mean_return", "policy_loss", "value_loss", "entropy"):
            assert isinstance(record[key], float)
    clocks = [r["wall_clock"] for r in history]
    assert clocks == sorted(clocks) and clocks[0] > 0
    assert any(math.isfinite(r["mean_return"]) for r in history)
    # progress.csv holds the same numbers, one row per iteration
    with open(tmp_path / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_steps"]) for r in rows] == [r["env_steps"] for r in history]
    np.testing.assert_array_equal([float(r["mean_return"]) for r in rows],
                                  [r["mean_return"] for r in history])
    with open(tmp_path / "config.json") as f:
        saved = json.load(f)
    assert saved["algo"] == "a2c" and saved["seed"] == 3 and saved["num_envs"] == 4


def test_progress_line_every_iteration_or_silent(tmp_path, capsys):
    minipg.train("CartPole-v1", "ppo", 512, 0, run_dir=str(tmp_path / "a"),
                 **dict(SMALL, log_every=0))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("minipg ppo on CartPole-v1: 4 iterations")   # a header,
    assert lines[1].startswith("minipg: preset CartPole-v1/ppo")             # the preset, then
    assert len(lines) == 2 + 4                                               # one per iteration
    for word in ("steps/s", "return", "pi_loss", "v_loss", "entropy", "kl"):
        assert word in lines[-1]
    minipg.train("CartPole-v1", "ppo", 512, 0, run_dir=str(tmp_path / "b"), **SMALL)
    assert capsys.readouterr().out == ""


def test_default_run_directory_never_overwrites_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = minipg.train("CartPole-v1", "ppo", 128, 0, **SMALL)
    second = minipg.train("CartPole-v1", "ppo", 128, 0, **SMALL)
    assert first.run_dir == os.path.join("runs", "CartPole-v1-ppo-seed0")
    assert second.run_dir != first.run_dir
    assert os.path.isfile(first.checkpoint) and os.path.isfile(second.checkpoint)


# ------------------------------------------------------------------------------------------
# Non-finite values stop training, naming where
# ------------------------------------------------------------------------------------------

class NaNRewardAt(gym.vector.VectorWrapper):
    """Returns a NaN reward for env `index` at step() call number `call` (0-based)."""

    def __init__(self, env, call, index):
        super().__init__(env)
        self.calls, self.call, self.index = 0, call, index

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if self.calls == self.call:
            rewards = np.array(rewards, dtype=np.float64)
            rewards[self.index] = np.nan
        self.calls += 1
        return obs, rewards, terminated, truncated, info


def test_a_nan_reward_raises_floating_point_error_naming_rewards_and_where(tmp_path,
                                                                         monkeypatch):
    real_make_env = run_build.make_env
    monkeypatch.setattr(run_build, "make_env",
                        lambda env_id, n, *args: NaNRewardAt(real_make_env(env_id, n, *args), 40, 1))
    # call 40 = iteration 2 (32 steps per rollout), row 8, env 1: the env's fault, not training's
    with pytest.raises(FloatingPointError, match=r"rewards\[\(8, 1\)\] = nan.*iteration 2") \
            as info:
        minipg.train("CartPole-v1", "ppo", 4096, 0, run_dir=str(tmp_path), **SMALL)
    assert "environment" in str(info.value) and "learning_rate" not in str(info.value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_a_blown_up_update_raises_floating_point_error_naming_where(tmp_path, algo):
    """learning_rate 1e300: the first Adam step overflows the parameters. The contract is a
    FloatingPointError from the trainer that says where the non-finite value first appeared
    (the parameters, after an optimizer step) and when."""
    with pytest.raises(FloatingPointError, match="parameters non-finite.*iteration 1"):
        minipg.train("CartPole-v1", algo, 4096, 0, run_dir=str(tmp_path), learning_rate=1e300,
                     **SMALL)


# ------------------------------------------------------------------------------------------
# Bad config values raise before training starts: before the env or the run directory exist
# ------------------------------------------------------------------------------------------

BAD = [
    ("ppo", dict(learning_rate=-1e-3), "learning_rate"),
    ("ppo", dict(learning_rate=float("nan")), "learning_rate"),
    ("ppo", dict(gamma=1.5), "gamma"),
    ("ppo", dict(num_envs=0), "num_envs"),
    ("ppo", dict(num_steps=2.5), "num_steps"),
    ("ppo", dict(total_steps=0), "total_steps"),
    ("ppo", dict(seed=-1), "seed"),
    ("ppo", dict(lernin_rate=1e-3), "lernin_rate"),
    ("ppo", dict(clip_coef=-0.1), "clip_coef"),
    ("ppo", dict(update_epochs=0), "update_epochs"),
    ("ppo", dict(num_minibatches=0), "num_minibatches"),
    ("ppo", dict(target_kl=-0.01), "target_kl"),
    ("ppo", dict(hidden_sizes=(64, 0)), "hidden_sizes"),
    ("ppo", dict(activation="sigmoid"), "activation"),
    ("ppo", dict(max_grad_norm=-1.0), "max_grad_norm"),
    ("ppo", dict(psi="return"), "psi"),                  # a REINFORCE field, unknown to PPO
    ("a2c", dict(lam=1.2), "lam"),
    ("a2c", dict(ent_coef=-0.01), "ent_coef"),
    ("reinforce", dict(psi="advantage"), "psi"),
    ("reinforce", dict(vf_coef=-1.0), "vf_coef"),
    ("dqn", dict(), "algo"),
    ("ppo", dict(norm_adv="false"), "norm_adv"),         # a string would silently mean True
    # Configurations that cannot train: a rollout of reset steps only, minibatches of one.
    ("ppo", dict(num_envs=1, num_steps=1), "num_steps must be >= 2"),
    ("a2c", dict(num_steps=1), "num_steps must be >= 2"),
    ("ppo", dict(num_envs=4, num_steps=8, num_minibatches=17), "num_minibatches=17"),
    ("ppo", dict(checkpoint_every=-1.0), "checkpoint_every"),
    ("ppo", dict(eval_max_episode_steps=0), "eval_max_episode_steps"),
]


@pytest.mark.parametrize("algo, hp, field", BAD, ids=[f"{a}-{f}-{list(h.values())}"
                                                      for a, h, f in BAD])
def test_bad_config_values_raise_before_anything_is_created(tmp_path, monkeypatch, algo, hp,
                                                             field):
    def no_env(*args, **kwargs):
        raise AssertionError("the env was created before the config was validated")

    monkeypatch.setattr(run_build, "make_env", no_env)
    args = dict(total_steps=1000, seed=0)
    for key in ("total_steps", "seed"):
        if key in hp:
            args[key] = hp.pop(key)
    run_dir = tmp_path / "run"
    with pytest.raises((ValueError, TypeError), match=field):
        minipg.train("CartPole-v1", algo, args["total_steps"], args["seed"], run_dir=str(run_dir),
                     **hp)
    assert not run_dir.exists()


def test_an_unknown_env_id_raises_without_leaving_a_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Exception, match="NoSuchEnv"):
        minipg.train("NoSuchEnv-v0", "ppo", 1000, 0, run_dir=str(run_dir), **SMALL)
    assert not run_dir.exists()


def test_ctrl_c_keeps_the_log_and_saves_a_checkpoint_of_the_current_policy(tmp_path):
    """Nothing lost: an interrupt between iterations ends training early but still writes the
    checkpoint of the policy at that moment, and the CSV rows so far."""
    def interrupt_after_third(record, policy):
        if record["iteration"] == 3:
            raise KeyboardInterrupt
        return False

    result = minipg.train("CartPole-v1", "ppo", 20_000, 0, run_dir=str(tmp_path),
                          callback=interrupt_after_third, **SMALL)
    assert result.interrupted
    assert len(result.history) == 3
    with open(tmp_path / "progress.csv") as f:
        assert len(f.readlines()) == 1 + 3
    np.testing.assert_array_equal(minipg.load(result.checkpoint).params, result.policy.params)


def test_eval_episodes_are_returned_with_the_result(tmp_path):
    result = minipg.train("CartPole-v1", "ppo", 1024, 0, run_dir=str(tmp_path), eval_episodes=3,
                          **SMALL)
    # CartPole pays +1 per step, and even the fastest fall (always pushing one way) lasts 8
    # steps from each of 4,000 seeded starts we tried: every return is at least 8.
    assert result.evaluation.shape == (3,) and (result.evaluation >= 8).all()


def test_the_episode_count_in_the_log_is_cumulative(tmp_path):
    """REINFORCE reports the episodes of each batch; the log's `episodes` column must still be
    the running total (a per-update statistic must not overwrite it)."""
    result = minipg.train("CartPole-v1", "reinforce", 3 * 4 * 128, 0, run_dir=str(tmp_path),
                          num_envs=4, num_steps=128, log_every=-1)
    per_batch = [record["batch_episodes"] for record in result.history]
    assert [record["episodes"] for record in result.history] == list(np.cumsum(per_batch))
    assert result.history[-1]["episodes"] > per_batch[-1]

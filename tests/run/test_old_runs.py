"""Runs saved by minipg before the layered tree (commit e7b98e2, the flat minipg/) still load,
evaluate and resume.

The fixtures in tests/run/fixtures/ were written by that code (PYTHONPATH=its tree):

    old_ppo_run/    minipg.train('CartPole-v1', 'ppo', 4096, 0, run_dir=..., num_envs=4,
                    num_steps=32, hidden_sizes=(8,), checkpoint_every=0.0, log_every=-1,
                    callback=lambda r, p: r['iteration'] >= 8)
                    -- stopped after 8 of 32 iterations: config.json, progress.csv,
                    checkpoint.npz, env_state-*.pkl
    old_ppo_run_resumed_progress.csv, old_ppo_run_resumed_policy_params.npy
                    -- a copy of old_ppo_run resumed to the end by the same old code,
                    minipg.train(resume=copy): its progress.csv and final policy.params
    old_grpo_run/   minipg.train('CartPole-v1', 'grpo', 600, 0, run_dir=..., num_groups=2,
                    group_size=2, hidden_sizes=(8,)) -- an old GRPO checkpoint: the policy and
                    the config, no training state
"""
import json
import pathlib
import pickle
import shutil

import gymnasium as gym
import numpy as np
import pytest

import minipg
import minipg.run.env_state
from minipg.run.checkpoint import CheckpointError, load_config

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
OLD_PPO, OLD_GRPO = FIXTURES / "old_ppo_run", FIXTURES / "old_grpo_run"
ITERATIONS_SAVED, ITERATIONS_TOTAL = 8, 4096 // (4 * 32)


def copy_of(run, tmp_path):
    return shutil.copytree(run, tmp_path / run.name)


def rows(path):
    return pathlib.Path(path).read_text().splitlines()


def saved_gymnasium_version(run_dir):
    """The gymnasium version the old run's env state was pickled by (the file's outer record:
    a dict of plain values, the env itself a nested pickle that is not loaded here)."""
    (path,) = run_dir.glob("env_state-*.pkl")
    return pickle.loads(path.read_bytes())["gymnasium"]


def test_an_old_ppo_run_loads_and_evaluates(tmp_path):
    run = copy_of(OLD_PPO, tmp_path)
    policy = minipg.load(run)
    with np.load(run / "checkpoint.npz") as saved:
        np.testing.assert_array_equal(policy.params, saved["policy/params"])
    assert isinstance(policy, minipg.CategoricalPolicy) and policy.params.dtype == np.float32
    returns = minipg.evaluate(run, episodes=3, seed=0)          # the env from the saved config
    assert returns.shape == (3,) and (returns >= 1).all()


def test_an_old_ppo_run_gives_its_saved_config(tmp_path):
    run = copy_of(OLD_PPO, tmp_path)
    config = load_config(run)
    saved = json.loads((run / "config.json").read_text())
    loaded = json.loads(config.to_json())
    # A field added since (Adam's eps) takes the value the old run trained with, not today's
    # PPO default (1e-4), so that the run resumes as the old code would have continued it.
    assert "adam_eps" not in saved and loaded.pop("adam_eps") == 1e-5
    assert "init" not in saved and loaded.pop("init") == "orthogonal"      # all there was
    assert loaded == saved
    assert (config.algo, config.env_id, config.total_steps, config.num_envs, config.num_steps,
            config.hidden_sizes) == ("ppo", "CartPole-v1", 4096, 4, 32, (8,))


def test_an_old_ppo_run_resumes_to_the_end_with_its_env_state_when_trusted(tmp_path, capsys):
    """The old run's env state carries no signature of this user's key (minipg/run/
    env_state.py): trust_env_state=True (--trust-env-state) says to unpickle it anyway."""
    run = copy_of(OLD_PPO, tmp_path)
    before = rows(run / "progress.csv")
    assert len(before) == 1 + ITERATIONS_SAVED                  # header + the rows it ran
    result = minipg.train(resume=str(run), trust_env_state=True)
    assert result.resumed_from == ITERATIONS_SAVED and not result.interrupted
    assert len(result.history) == ITERATIONS_TOTAL - ITERATIONS_SAVED
    after = rows(run / "progress.csv")
    assert len(after) == 1 + ITERATIONS_TOTAL
    assert after[:1 + ITERATIONS_SAVED] == before               # the old rows are kept as they were
    if saved_gymnasium_version(run) == gym.__version__:
        # The env state was restored, so the resume is exact: the whole log and the final
        # parameters are the old code's own continuation of the same run, bit for bit. (On the
        # machine the fixture was made on, gymnasium 1.4.0 wrote it and runs this test: this
        # branch is the one taken there.)
        assert "not restored" not in capsys.readouterr().out
        assert (run / "progress.csv").read_bytes() == \
            (FIXTURES / "old_ppo_run_resumed_progress.csv").read_bytes()
        np.testing.assert_array_equal(
            result.policy.params, np.load(FIXTURES / "old_ppo_run_resumed_policy_params.npy"))
    else:
        # Another gymnasium: the env's state is not restored, the resume starts fresh episodes
        # (and says so); the run still completes with every row.
        assert "not restored" in capsys.readouterr().out
    np.testing.assert_array_equal(minipg.load(run).params, result.policy.params)


def test_an_old_ppo_run_resumes_with_fresh_episodes_unless_trusted(tmp_path, capsys,
                                                                     monkeypatch):
    """Without the trust flag, the unsigned env state is never unpickled: the resume starts
    fresh episodes, says so in one line, and still runs to the end."""
    run = copy_of(OLD_PPO, tmp_path)
    before = rows(run / "progress.csv")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("an untrusted env state was unpickled")

    monkeypatch.setattr(minipg.run.env_state.pickle, "loads", no_unpickling)
    result = minipg.train(resume=str(run))
    out = capsys.readouterr().out
    (note,) = [line for line in out.splitlines() if "not restored" in line]
    assert "it is not signed" in note and "--trust-env-state" in note
    assert "resuming with fresh episodes" in note
    after = rows(run / "progress.csv")
    assert after[:1 + ITERATIONS_SAVED] == before and len(after) == 1 + ITERATIONS_TOTAL
    assert result.resumed_from == ITERATIONS_SAVED
    # Fresh episodes: not the old code's continuation, which needed the env's own state.
    assert (run / "progress.csv").read_bytes() != \
        (FIXTURES / "old_ppo_run_resumed_progress.csv").read_bytes()


def test_an_old_grpo_checkpoint_loads_and_evaluates(tmp_path):
    """Old GRPO checkpoints held the policy and the config only, no training state."""
    run = copy_of(OLD_GRPO, tmp_path)
    policy = minipg.load(run)
    with np.load(run / "checkpoint.npz") as saved:
        assert "train/state" not in saved.files
        np.testing.assert_array_equal(policy.params, saved["policy/params"])
    returns = minipg.evaluate(run / "checkpoint.npz", episodes=3, seed=0)
    assert returns.shape == (3,) and (returns >= 1).all()
    config = load_config(run)
    assert (config.algo, config.env_id, config.num_groups, config.group_size,
            config.hidden_sizes) == ("grpo", "CartPole-v1", 2, 2, (8,))
    with pytest.raises(CheckpointError, match="holds no training state"):
        minipg.train(resume=str(run))           # nothing to continue from: said, not guessed

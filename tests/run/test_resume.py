"""Resume as a specification: a run stopped -- by a callback returning True, or by Ctrl-C
(KeyboardInterrupt) -- and resumed writes the same progress.csv and ends with the same
parameters, optimizer state and collector state, bit for bit, as a run never stopped. For PPO,
A2C and REINFORCE (whose batches of whole episodes start from env resets). A resume keeps the saved config:
arguments that would change the training numbers are refused."""
import math

import numpy as np
import pytest

import minipg
from minipg.run import checkpoint as ckpt
from minipg.run.checkpoint import CheckpointError, save_policy
from minipg.run.rundir import RunDirError

STEPS = 12 * 128                                                   # 12 iterations
HP = {"ppo": dict(num_envs=4, num_steps=32), "a2c": dict(num_envs=8, num_steps=16),
      "reinforce": dict(num_envs=2, num_steps=64)}
COMMON = dict(hidden_sizes=(16,), log_every=-1)


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory):
    """{algo: run directory} of runs that were not stopped."""
    root = tmp_path_factory.mktemp("never_stopped")
    return {algo: minipg.train("CartPole-v1", algo, STEPS, 0, run_dir=str(root / algo),
                               **hp, **COMMON).run_dir
            for algo, hp in HP.items()}


def stopper(at, how):
    def callback(record, policy):
        if record["iteration"] in at:
            if how == "ctrl_c":
                raise KeyboardInterrupt
            return True
        return False
    return callback


def assert_same_run(run_dir, reference):
    with open(f"{run_dir}/progress.csv", "rb") as a, open(f"{reference}/progress.csv", "rb") as b:
        assert a.read() == b.read()
    ours, theirs = ckpt.read_checkpoint(run_dir), ckpt.read_checkpoint(reference)
    training = [name for name in theirs.arrays
                if name.split("/")[0] in ("policy", "value", "optim", "collector")]
    assert "policy/params" in training and any(n.startswith("optim/") for n in training)
    for name in training:
        np.testing.assert_array_equal(ours.arrays[name], theirs.arrays[name], err_msg=name)
    state, reference_state = ours.json("train/state"), theirs.json("train/state")
    for key in ("iteration", "env_steps", "episodes", "recent_returns", "update_rng",
                "policy_rng", "collector"):
        assert state[key] == reference_state[key], key


@pytest.mark.parametrize("how", ["callback", "ctrl_c"])
@pytest.mark.parametrize("algo", ["ppo", "a2c", "reinforce"])
def test_stopped_then_resumed_is_the_run_never_stopped(tmp_path, never_stopped, algo, how):
    run_dir = str(tmp_path / "run")
    first = minipg.train("CartPole-v1", algo, STEPS, 0, run_dir=run_dir,
                         callback=stopper({5}, how), **HP[algo], **COMMON)
    assert len(first.history) == 5 and first.interrupted == (how == "ctrl_c")
    # REINFORCE's batches start from resets seeded by its own generator: no env state to save.
    assert (ckpt.read_checkpoint(run_dir).json("train/state")["env_state"]["saved"]
            == (algo != "reinforce"))
    second = minipg.train(resume=run_dir)
    iterations = ckpt.read_checkpoint(never_stopped[algo]).json("train/state")["iteration"]
    if algo != "reinforce":                    # batches of whole episodes vary in size
        assert iterations == 12
    assert second.resumed_from == 5 and len(second.history) == iterations - 5 > 0
    assert [r["iteration"] for r in second.history] == list(range(6, iterations + 1))
    assert_same_run(run_dir, never_stopped[algo])


def test_stopped_twice_and_resumed_twice_is_still_the_same_run(tmp_path, never_stopped):
    run_dir = str(tmp_path / "run")
    minipg.train("CartPole-v1", "ppo", STEPS, 0, run_dir=run_dir, callback=stopper({2}, "callback"),
                 **HP["ppo"], **COMMON)
    minipg.train(resume=run_dir, callback=stopper({7}, "ctrl_c"))
    minipg.train(resume=run_dir)
    assert_same_run(run_dir, never_stopped["ppo"])


def test_rows_written_after_the_checkpoint_are_replaced_on_resume(tmp_path, never_stopped):
    """A kill can leave progress.csv rows newer than the checkpoint: a resume drops them and
    writes them again (the same, here, since the env state was saved)."""
    run_dir = tmp_path / "run"
    minipg.train("CartPole-v1", "ppo", STEPS, 0, run_dir=str(run_dir),
                 callback=stopper({4}, "callback"), **HP["ppo"], **COMMON)
    with open(run_dir / "progress.csv", "a", newline="") as f:
        f.write("5,640,1,1,1,1,1,1,1,1,1,1\r\n6,768,1,1")                 # a row and a half
    minipg.train(resume=str(run_dir))
    assert_same_run(run_dir, never_stopped["ppo"])


def test_periodic_checkpoints_checkpoint_every_zero_writes_one_per_iteration(tmp_path):
    on_disk = []

    def look(record, policy):
        on_disk.append(ckpt.read_checkpoint(tmp_path / "every").json("train/state")["iteration"])

    minipg.train("CartPole-v1", "ppo", 5 * 128, 0, run_dir=str(tmp_path / "every"),
                 checkpoint_every=0, callback=look, **HP["ppo"], **COMMON)
    # At the last iteration's callback the checkpoint on disk is still the 4th: the last one
    # is written once the loop is done.
    assert on_disk == [1, 2, 3, 4, 4]
    assert ckpt.read_checkpoint(tmp_path / "every").json("train/state")["iteration"] == 5

    def nothing_yet(record, policy):
        assert not (tmp_path / "rarely" / "checkpoint.npz").exists()

    minipg.train("CartPole-v1", "ppo", 5 * 128, 0, run_dir=str(tmp_path / "rarely"),
                 checkpoint_every=1e9, callback=nothing_yet, **HP["ppo"], **COMMON)
    assert ckpt.read_checkpoint(tmp_path / "rarely").json("train/state")["iteration"] == 5


@pytest.fixture
def stopped_run(tmp_path):
    run_dir = str(tmp_path / "run")
    minipg.train("CartPole-v1", "ppo", STEPS, 0, run_dir=run_dir, callback=stopper({3}, "callback"),
                 **HP["ppo"], **COMMON)
    return run_dir


@pytest.mark.parametrize("given, match", [
    (dict(learning_rate=1e-2), "learning_rate is 0.003, not 0.01"),
    (dict(total_steps=2 * STEPS), "total_steps"),
    (dict(algo="a2c"), "algo is 'ppo'"),
    (dict(env_id="Acrobot-v1"), "env_id"),
    (dict(hidden_sizes=(32,)), "hidden_sizes"),
    (dict(lernin_rate=1.0), "unknown hyperparameter"),
    (dict(overwrite=True), "exclude each other"),
    (dict(run_dir="elsewhere"), "names another"),
], ids=lambda value: str(value))
def test_a_resume_refuses_arguments_that_would_change_the_run(stopped_run, given, match):
    with pytest.raises((ValueError, TypeError), match=match):
        minipg.train(resume=stopped_run, **given)
    assert ckpt.read_checkpoint(stopped_run).json("train/state")["iteration"] == 3


def test_a_resume_accepts_the_saved_values_and_logging_changes(stopped_run, never_stopped,
                                                               capsys):
    result = minipg.train("CartPole-v1", "ppo", STEPS, 0, resume=stopped_run,
                          hidden_sizes=[16], num_envs=4, log_every=0, checkpoint_every=0,
                          eval_episodes=2)
    assert result.config.log_every == 0 and result.evaluation.shape == (2,)
    assert "resuming" in capsys.readouterr().out
    assert_same_run(stopped_run, never_stopped["ppo"])


def test_resuming_a_finished_run_does_nothing(tmp_path, never_stopped):
    run_dir = str(tmp_path / "run")
    minipg.train("CartPole-v1", "a2c", STEPS, 0, run_dir=run_dir, **HP["a2c"], **COMMON)
    result = minipg.train(resume=run_dir)
    assert result.history == [] and result.resumed_from == math.ceil(STEPS / 128)
    assert_same_run(run_dir, never_stopped["a2c"])


def test_what_cannot_be_resumed_says_why(tmp_path):
    with pytest.raises(RunDirError, match="no such run directory"):
        minipg.train(resume=str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint.npz"):
        minipg.train(resume=str(tmp_path / "empty"))
    policy_only = tmp_path / "policy_only"
    policy_only.mkdir()
    policy = minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "run"),
                          **HP["ppo"], **COMMON).policy
    save_policy(policy, policy_only / "checkpoint.npz")
    with pytest.raises(CheckpointError, match="no training config"):
        minipg.train(resume=str(policy_only))
    with pytest.raises(TypeError, match="needs env, total_steps"):
        minipg.train(algo="ppo", seed=0)


NORMALISED = dict(num_envs=4, num_steps=32, norm_obs=True, norm_reward=True, clip_vloss=True)


def test_a_normalised_run_resumes_bit_for_bit_with_its_statistics(tmp_path):
    """The observation statistics (with the policy) and the reward scaler's running returns
    and statistics (with the collector) are in the snapshot, so the resumed run is the same."""
    reference = str(tmp_path / "reference")
    minipg.train("Pendulum-v1", "ppo", STEPS, 0, run_dir=reference, **NORMALISED, **COMMON)
    run_dir = str(tmp_path / "run")
    minipg.train("Pendulum-v1", "ppo", STEPS, 0, run_dir=run_dir,
                 callback=stopper({5}, "callback"), **NORMALISED, **COMMON)
    saved = ckpt.read_checkpoint(run_dir).arrays
    assert int(saved["policy/obs_rms/count"]) > 0
    assert int(saved["collector/reward_scaler/stats/count"]) > 0
    minipg.train(resume=run_dir)
    assert_same_run(run_dir, reference)
    np.testing.assert_array_equal(minipg.load(run_dir).obs_rms.var,
                                  minipg.load(reference).obs_rms.var)

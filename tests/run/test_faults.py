"""Fault injection: whatever goes wrong, a run keeps its work and says what happened.

- An env that raises, returns a NaN observation or an infinite reward stops training with an
  error naming the env as the source, and the checkpoint holds the last good parameters.
- A training process SIGKILLed at random moments (fixed seed for the moments) always leaves a
  loadable checkpoint once the first was written, with its env state beside it, and only
  complete progress.csv rows; resumed each time, it ends with the same progress.csv and
  parameters as a run never killed.
- Ctrl-C (a real SIGINT) stops after the current iteration; a resume continues bit for bit.
- A write that fails (a full disk, monkeypatched; a real file-size limit, in a subprocess)
  stops training at that iteration and leaves the previous checkpoint intact.
- Runs started together never share a directory.
- Every kind of bad file given to minipg.load gets an error that says what is wrong with it,
  and nothing is ever unpickled.
"""
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import fault_envs  # noqa: F401  (registers the minipg-test/ envs)
import minipg
import minipg.run.snapshot
from minipg.run import checkpoint as ckpt
from minipg.envs import make as envs
from minipg.run import files, rundir
from minipg.run.env_state import is_env_state_file
from minipg.run.checkpoint import CheckpointError
from minipg.algos.registry import ALGOS
from minipg.run.build import build
from minipg.tools.cli import main
from minipg.envs.rollout import EnvError

SMALL = dict(num_envs=2, num_steps=16, hidden_sizes=(8,), log_every=-1)
CHILD_ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def minipg_process(*args, cwd=None):
    """`python -m minipg *args` as a child process (stdout and stderr captured as text)."""
    return subprocess.Popen([sys.executable, "-m", "minipg", *map(str, args)], cwd=cwd,
                            env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not become true in time")
        time.sleep(0.005)


def progress_rows(run_dir):
    """progress.csv's rows, checked: the header, then complete rows of iterations 1, 2, ..."""
    text = (run_dir / "progress.csv").read_bytes()
    lines = text.split(b"\r\n")
    assert lines[-1] == b"", "progress.csv ends inside a row"
    header, rows = lines[0].split(b","), [line.split(b",") for line in lines[1:-1]]
    assert header[:2] == [b"iteration", b"env_steps"]
    for number, row in enumerate(rows, start=1):
        assert len(row) == len(header) and int(row[0]) == number
        float(row[3])                                   # mean_return parses (may be nan)
    return rows


def saved_iteration(run_dir):
    return ckpt.read_checkpoint(run_dir).json("train/state")["iteration"]


def saved_iteration_or_0(run_dir):
    """The checkpoint's iteration, 0 while there is none (written atomically: never partial)."""
    try:
        return saved_iteration(run_dir)
    except FileNotFoundError:
        return 0


# ------------------------------------------------------------------------------------------
# An env that fails: the error names it, the checkpoint holds the last good parameters
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id, error, match", [
    ("minipg-test/Raises-v0", EnvError,
     r"the environment raised RuntimeError in step\(\): scripted failure"),
    ("minipg-test/NaNObservation-v0", FloatingPointError,
     r"non-finite value: observations\[\(\d+, 0, 1\)\] = nan \(env 0\)"),
    ("minipg-test/InfReward-v0", FloatingPointError,
     r"non-finite value: rewards\[\(\d+, 0\)\] = inf \(env 0\)"),
], ids=["raises", "nan-observation", "inf-reward"])
def test_a_failing_env_stops_training_and_the_last_good_state_is_saved(tmp_path, env_id, error,
                                                                       match):
    params = {}

    def remember(record, policy):
        params[record["iteration"]] = policy.params.copy()

    with pytest.raises(error, match=match) as info:
        minipg.train(env_id, "ppo", 4096, 0, run_dir=str(tmp_path), callback=remember,
                     checkpoint_every=1e9, **SMALL)      # no periodic checkpoint: only this one
    last = max(params)
    message = str(info.value)
    assert f"at iteration {last + 1} " in message
    assert "check the environment" in message and "learning_rate" not in message
    assert f"the last good state (iteration {last}) is saved in {tmp_path}" in message
    np.testing.assert_array_equal(minipg.load(tmp_path).params, params[last])
    assert saved_iteration(tmp_path) == last and len(progress_rows(tmp_path)) == last


def test_a_resume_that_fails_at_once_keeps_the_checkpoint_it_resumed(tmp_path):
    """The env is restored with its step counter, so the fault comes back in the resumed run's
    first iteration. The checkpoint on disk is that run's last good state, env state and all:
    it is kept, not replaced by one without the env's state."""
    iterations = []
    with pytest.raises(EnvError):
        minipg.train("minipg-test/Raises-v0", "ppo", 4096, 0, run_dir=str(tmp_path),
                     callback=lambda record, policy: iterations.append(record["iteration"]),
                     checkpoint_every=1e9, **SMALL)
    fault_iteration = iterations[-1] + 1
    shutil.rmtree(tmp_path)
    minipg.train("minipg-test/Raises-v0", "ppo", 4096, 0, run_dir=str(tmp_path),
                 callback=lambda record, policy: record["iteration"] == fault_iteration - 1,
                 **SMALL)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(EnvError, match=f"at iteration {fault_iteration} .*iteration "
                                       f"{fault_iteration - 1}\\) is saved"):
        minipg.train(resume=str(tmp_path))
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert ckpt.read_checkpoint(tmp_path).json("train/state")["env_state"]["saved"]


def test_a_blown_up_update_saves_the_parameters_before_it(tmp_path):
    """learning_rate 1e300 blows the first update up: the checkpoint holds the initial
    parameters (iteration 0), not the non-finite ones."""
    # NumPy's overflow warning, where the step runs in NumPy (the compiled Adam step overflows
    # silently); the error below is what matters either way
    with pytest.raises(FloatingPointError, match="learning_rate") as info, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        minipg.train("CartPole-v1", "a2c", 1024, 0, run_dir=str(tmp_path), learning_rate=1e300,
                     **SMALL)
    assert "the last good state (iteration 0) is saved" in str(info.value)
    loaded = minipg.load(tmp_path)
    # The same config and seed build the same initial policy.
    config = ckpt.load_config(tmp_path)
    fresh = build(config, ALGOS["a2c"])
    fresh.env.close()
    np.testing.assert_array_equal(loaded.params, fresh.policy.params)


# ------------------------------------------------------------------------------------------
# SIGKILL at random moments, and a real Ctrl-C
# ------------------------------------------------------------------------------------------

KILL_HP = dict(num_envs=4, num_steps=32, hidden_sizes=(16,))
KILL_STEPS = 12_800          # 100 iterations of ~40 ms with a checkpoint after each one
KILL_ARGS = ["train", "--steps", KILL_STEPS, "--num-envs", 4, "--num-steps", 32,
             "--hidden-sizes", 16, "--log-every", -1]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The same training, never interrupted (checkpoint_every changes no training number)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    minipg.train("CartPole-v1", "ppo", KILL_STEPS, 0, run_dir=str(run_dir), log_every=-1,
                 **KILL_HP)
    return run_dir


def test_sigkill_at_random_moments_never_loses_the_checkpoint_or_a_row(tmp_path,
                                                                        reference_run):
    run_dir = tmp_path / "run"
    moments = np.random.default_rng(20261129).uniform(0.0, 0.5, size=4)   # seconds
    args = [*KILL_ARGS, "--checkpoint-every", 0, "--run-dir", run_dir]
    iterations = [0]
    for moment in moments:
        process = minipg_process(*args)
        try:
            # Once this process has written a checkpoint (the first one of the run, or a new
            # one after the resume), a kill at any moment must leave a good one behind.
            wait_for(lambda: saved_iteration_or_0(run_dir) > iterations[-1]
                     or process.poll() is not None)
            time.sleep(moment)
        finally:
            process.kill()
        out, err = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, (out, err)
        assert "not restored" not in out                            # the env state was there
        minipg.load(run_dir)                                        # loadable
        iterations.append(saved_iteration(run_dir))
        assert len(progress_rows(run_dir)) >= iterations[-1] > iterations[-2]
        args = ["train", "--resume", run_dir]
    process = minipg_process(*args)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "not restored" not in out
    assert len(progress_rows(run_dir)) == KILL_STEPS // 128 == saved_iteration(run_dir)
    assert not [name for name in os.listdir(run_dir) if files.TEMP_MARK in name]
    assert len([name for name in os.listdir(run_dir) if is_env_state_file(name)]) == 1
    assert (run_dir / "progress.csv").read_bytes() == (reference_run / "progress.csv").read_bytes()
    np.testing.assert_array_equal(minipg.load(run_dir).params, minipg.load(reference_run).params)


def test_ctrl_c_stops_after_the_iteration_and_resume_continues_bit_for_bit(tmp_path,
                                                                          reference_run):
    run_dir = tmp_path / "run"
    process = minipg_process(*KILL_ARGS, "--run-dir", run_dir)
    try:
        wait_for(lambda: (run_dir / "progress.csv").exists()
                 and len((run_dir / "progress.csv").read_bytes().split(b"\n")) > 4)
    finally:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"continue with: minipg train --resume {run_dir}" in out
    assert len(progress_rows(run_dir)) == saved_iteration(run_dir) < KILL_STEPS // 128
    resumed = minipg_process("train", "--resume", run_dir)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert (run_dir / "progress.csv").read_bytes() == (reference_run / "progress.csv").read_bytes()
    np.testing.assert_array_equal(minipg.load(run_dir).params, minipg.load(reference_run).params)


# ------------------------------------------------------------------------------------------
# A write that fails
# ------------------------------------------------------------------------------------------

class FullDisk:
    """A file object that accepts `room` bytes, then fails as a full disk does."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_a_full_disk_stops_training_at_once_and_keeps_the_previous_checkpoint(tmp_path,
                                                                              monkeypatch):
    real_atomic_write, checkpoint_writes, params = ckpt.atomic_write, [], {}

    @contextlib.contextmanager
    def disk_full_from_the_third_checkpoint(path, mode="wb", **kwargs):
        with real_atomic_write(path, mode, **kwargs) as f:
            if path.endswith("checkpoint.npz"):
                checkpoint_writes.append(path)
                if len(checkpoint_writes) >= 3:
                    f = FullDisk(f, room=1000)
            yield f

    monkeypatch.setattr(ckpt, "atomic_write", disk_full_from_the_third_checkpoint)
    with pytest.raises(OSError, match="No space left on device") as info:
        minipg.train("CartPole-v1", "ppo", 20 * 32, 0, run_dir=str(tmp_path), checkpoint_every=0,
                     callback=lambda record, policy: params.update(
                         {record["iteration"]: policy.params.copy()}), **SMALL)
    message = str(info.value)
    assert message.startswith("could not write the checkpoint") and "at iteration 3 " in message
    assert "holds the checkpoint of iteration 2" in message
    monkeypatch.undo()
    assert saved_iteration(tmp_path) == 2                       # the good one, intact
    np.testing.assert_array_equal(minipg.load(tmp_path).params, params[2])
    assert len(progress_rows(tmp_path)) == 3                    # surfaced at iteration 3 of 20
    assert not [name for name in os.listdir(tmp_path) if files.TEMP_MARK in name]


FILE_SIZE_LIMIT_SCRIPT = """
import resource, signal, sys
import minipg
import minipg.run.snapshot
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG
def limit_files_after_third(record, policy):
    if record["iteration"] == 3:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))
try:
    minipg.train("CartPole-v1", "ppo", 20 * 32, 0, run_dir=sys.argv[1], checkpoint_every=0,
                 callback=limit_files_after_third, num_envs=2, num_steps=16,
                 hidden_sizes=(8,), log_every=-1)
except OSError as error:
    print(error)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_real_write_failure_surfaces_at_its_iteration(tmp_path):
    """RLIMIT_FSIZE makes the OS refuse writes past 2 kB from iteration 3 on (in a child
    process): the next checkpoint fails with EFBIG, the one of iteration 3 stays intact."""
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=CHILD_ENV)
    assert done.returncode == 0, done.stderr
    assert "File too large" in done.stdout and "at iteration 4 " in done.stdout
    assert "holds the checkpoint of iteration 3" in done.stdout
    assert saved_iteration(tmp_path) == 3
    assert len(progress_rows(tmp_path)) == 4


# ------------------------------------------------------------------------------------------
# Runs started together
# ------------------------------------------------------------------------------------------

def test_threads_claiming_the_same_default_name_get_distinct_directories(tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    barrier, claimed = threading.Barrier(8), []

    def claim():
        barrier.wait()
        claimed.append(rundir.claim(None, "CartPole-v1-ppo-seed0"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    paths = sorted(run.path for run in claimed)
    for run in claimed:
        run.release()
    base = os.path.join("runs", "CartPole-v1-ppo-seed0")
    assert paths == sorted([base] + [f"{base}-{k}" for k in range(1, 8)])


def test_a_run_directory_in_use_is_refused(tmp_path):
    holder = rundir.claim(tmp_path / "run")
    try:
        with pytest.raises(rundir.RunDirError, match="in use by another minipg process"):
            minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "run"), **SMALL)
        with pytest.raises(rundir.RunDirError, match="in use"):
            minipg.train(resume=str(tmp_path / "run"))
    finally:
        holder.release()
    assert os.listdir(tmp_path / "run") == [rundir.LOCK_FILE]        # nothing was written


def test_two_processes_started_together(tmp_path):
    """Same default name: two directories, two complete runs. Same --run-dir: exactly one
    runs; the other is refused (in use, or already exists if the first was done)."""
    args = ["train", "--steps", 2048, "--num-envs", 4, "--num-steps", 32, "--log-every", -1]
    pair = [minipg_process(*args, cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=60), p.communicate()) for p in pair]
    assert [code for code, _ in results] == [0, 0], results
    names = sorted(os.listdir(tmp_path / "runs"))
    assert names == ["CartPole-v1-ppo-seed0", "CartPole-v1-ppo-seed0-1"]
    for name in names:
        assert len(progress_rows(tmp_path / "runs" / name)) == 16
        assert saved_iteration(tmp_path / "runs" / name) == 16

    shared = tmp_path / "shared"
    pair = [minipg_process(*args, "--run-dir", shared) for _ in range(2)]
    results = sorted((p.wait(timeout=60), p.communicate()[1]) for p in pair)
    assert [code for code, _ in results] == [0, 1], results
    assert "in use by another minipg process" in results[1][1] or \
        "already exists" in results[1][1]
    assert len(progress_rows(shared)) == 16 and saved_iteration(shared) == 16


# ------------------------------------------------------------------------------------------
# Every bad file type at load
# ------------------------------------------------------------------------------------------

UNPICKLED = []


class Trap:
    """An object whose unpickling would be recorded: minipg must never unpickle it."""

    def __reduce__(self):
        return (UNPICKLED.append, ("unpickled!",))


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("good") / "run"
    minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(run_dir), **SMALL)
    return (run_dir / "checkpoint.npz").read_bytes()


def minipg_npz(path, **entries):
    np.savez(path, **{"minipg/format": np.array("minipg checkpoint"),
                      "minipg/format_version": np.array(1), **entries})


def write_bad_file(kind, path, good):
    if kind == "text":
        path.write_text("step,return\n1,2\n")
    elif kind == "npy":
        np.save(path, np.zeros(3))
        os.replace(str(path) + ".npy", path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind.startswith("truncated"):
        path.write_bytes(good[:int(len(good) * float(kind.split("-")[1]))])
    elif kind == "another-npz":
        np.savez(path, weights=np.ones((2, 2)), bias=np.zeros(2))
    elif kind == "pickled":
        minipg_npz(path, config=np.array([Trap()], dtype=object))
    elif kind == "newer-version":
        minipg_npz(path, **{"minipg/format_version": np.array(99)})
    elif kind == "bad-policy-config":
        minipg_npz(path, **{"policy/params": np.zeros(3), "policy/config": np.array("{oops"),
                            "config": np.array("{}")})
    elif kind == "non-finite-params":
        arrays = npz_arrays(good, path.parent)
        arrays["policy/params"] = np.full_like(arrays["policy/params"], np.nan)
        np.savez(path, **arrays)


def npz_arrays(data, folder):
    """The arrays of an .npz given as bytes."""
    path = folder / "copy.npz"
    path.write_bytes(data)
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


BAD_FILES = [
    ("text", CheckpointError, "not an .npz archive"),
    ("npy", CheckpointError, r"single NumPy array \(.npy\)"),
    ("empty", CheckpointError, r"empty \(0 bytes\)"),
    ("truncated-0.5", CheckpointError, "truncated or corrupt"),
    ("truncated-0.99", CheckpointError, "truncated or corrupt"),
    ("another-npz", CheckpointError, r"not a minipg checkpoint \(its arrays: bias, weights\)"),
    ("pickled", CheckpointError, "pickled Python objects"),
    ("newer-version", CheckpointError, "newer minipg"),
    ("bad-policy-config", CheckpointError, "cannot be rebuilt"),
    ("non-finite-params", CheckpointError, "non-finite"),
]


@pytest.mark.parametrize("kind, error, match", BAD_FILES, ids=[k for k, _, _ in BAD_FILES])
def test_every_bad_file_gets_an_error_saying_what_is_wrong(tmp_path, good_checkpoint, capsys,
                                                          kind, error, match):
    path = tmp_path / "checkpoint.npz"
    write_bad_file(kind, path, good_checkpoint)
    with pytest.raises(error, match=match) as info:
        minipg.load(path)
    assert str(path) in str(info.value)
    assert "allow_pickle" not in str(info.value)
    assert main(["eval", str(path)]) == 1                       # the CLI: one line, exit 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert UNPICKLED == []


def test_missing_paths_and_wrong_types_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        minipg.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError, match="no checkpoint.npz"):
        minipg.load(tmp_path)                                   # a directory without one
    with pytest.raises(TypeError, match="path must be"):
        minipg.load(123)


def test_a_run_directory_loads_like_its_checkpoint(tmp_path):
    result = minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "run"), **SMALL)
    np.testing.assert_array_equal(minipg.load(result.run_dir).params, result.policy.params)


def test_a_checkpoint_written_before_the_format_entries_still_loads(tmp_path, good_checkpoint):
    """The layout minipg wrote before: policy/, value/ and config, without minipg/format."""
    old = {name: array for name, array in npz_arrays(good_checkpoint, tmp_path).items()
           if name.split("/")[0] in ("policy", "value", "config")}
    np.savez(tmp_path / "old.npz", **old)
    saved = ckpt.read_checkpoint(tmp_path / "old.npz")
    assert saved.version == 0
    np.testing.assert_array_equal(saved.policy().params, old["policy/params"])
    with pytest.raises(CheckpointError, match="no training state"):
        minipg.run.snapshot.restore(None, saved, str(tmp_path))


# ------------------------------------------------------------------------------------------
# Envs minipg cannot or could not handle before
# ------------------------------------------------------------------------------------------

def test_a_dict_observation_space_is_refused_before_anything_is_created(tmp_path):
    with pytest.raises(ValueError, match="flat Box observation space.*DictObservation-v0 has "
                                         "Dict"):
        minipg.train("minipg-test/DictObservation-v0", "ppo", 64, 0,
                     run_dir=str(tmp_path / "run"), **SMALL)
    assert not (tmp_path / "run").exists()


def test_discrete_start_actions_are_shifted_into_the_env_space(tmp_path, capsys):
    """The env's actions are {-1, 0, 1} and it raises on anything else; the policy's indices
    0, 1, 2 reach it as -1, 0, 1 -- in training, evaluation and the CLI."""
    result = minipg.train("minipg-test/DiscreteStart-v0", "ppo", 32 * 32, 0,
                          run_dir=str(tmp_path / "run"), eval_episodes=3, **SMALL)
    assert len(result.history) == 32 and result.evaluation.shape == (3,)
    # Reward 1 for env action 0 (index 1): the untrained policy earns about a third per step.
    assert result.history[-1]["mean_return"] > 20 / 3
    assert main(["eval", result.run_dir, "--episodes", "3"]) == 0
    assert "3 episodes" in capsys.readouterr().out


def test_evaluation_of_a_never_ending_env_stops_at_the_step_limit_and_says_so(tmp_path,
                                                                            capsys):
    result = minipg.train("minipg-test/NeverEnds-v0", "a2c", 64, 0,
                          run_dir=str(tmp_path / "run"), eval_episodes=2,
                          eval_max_episode_steps=50, **SMALL)
    assert result.evaluation.shape == (2,) and (result.evaluation <= 50).all()
    with pytest.warns(RuntimeWarning, match="2 of 2 episodes hit the step limit of 40"):
        minipg.evaluate(result.policy, "minipg-test/NeverEnds-v0", 2, max_episode_steps=40)
    assert main(["eval", result.run_dir, "--episodes", "2"]) == 0       # the run's own limit
    assert "note: 2 of 2 episodes hit the step limit of 50 steps" in capsys.readouterr().out
    assert main(["eval", result.run_dir, "--episodes", "2", "--max-episode-steps", "30"]) == 0
    assert "step limit of 30 steps" in capsys.readouterr().out


def test_an_env_that_cannot_be_pickled_resumes_with_fresh_episodes_and_says_so(tmp_path,
                                                                              capsys):
    """Its resume cannot be bit-identical, but it is reproducible: resuming the same
    checkpoint twice gives the same numbers."""
    run_dir = tmp_path / "run"
    minipg.train("minipg-test/Unpicklable-v0", "ppo", 8 * 32, 0, run_dir=str(run_dir),
                 callback=lambda record, policy: record["iteration"] == 3, **SMALL)
    shutil.copytree(run_dir, tmp_path / "copy")
    capsys.readouterr()
    minipg.train(resume=str(run_dir))
    out = capsys.readouterr().out
    assert "cannot be pickled" in out and "fresh episodes" in out
    minipg.train(resume=str(tmp_path / "copy"))
    assert len(progress_rows(run_dir)) == 8
    assert (run_dir / "progress.csv").read_bytes() == (tmp_path / "copy" /
                                                       "progress.csv").read_bytes()
    assert json.loads((run_dir / "config.json").read_text())["env_id"] == \
        "minipg-test/Unpicklable-v0"

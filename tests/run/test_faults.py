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
import pathlib
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

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
OLD_PPO = FIXTURES / "old_ppo_run"
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
# 800 iterations of ~5 ms (a checkpoint after each one), about 4 s of training: each of the
# four processes below is killed within 0.5 s of its first checkpoint, so the run must outlast
# 4 x 0.5 s of training by a margin, or the last process finishes before its kill.
KILL_STEPS = 102_400
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


# ------------------------------------------------------------------------------------------
# Signals: SIGINT, SIGTERM and SIGHUP save the last complete iteration; a resume is bit for bit
# ------------------------------------------------------------------------------------------

def default_signals():
    """In the child, before exec: the signals' default dispositions, whatever the test runner
    inherited (a shell starts background jobs with SIGINT ignored, and Python then installs no
    Ctrl-C handler: the run would not stop and would exit 0)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


PARKED_CLI = r"""
import os, sys, time
from minipg.run import rundir
from minipg.tools.cli import main

rows, go, argv = [int(row) for row in sys.argv[1].split(",")], sys.argv[2], sys.argv[3:]
write = rundir.ProgressLog.write

def write_then_wait(self, record):
    write(self, record)
    if record["iteration"] in rows:       # parked at a known point until the test says go
        deadline = time.monotonic() + 60
        while not os.path.exists(f"{go}-{record['iteration']}") and time.monotonic() < deadline:
            time.sleep(0.005)

rundir.ProgressLog.write = write_then_wait
sys.exit(main(argv))
"""


class Parked:
    """`minipg *args` in a child process that stops, after writing progress.csv's row of each
    iteration in `rows`, until go(row) -- between writing that row and checkpointing its
    iteration: a point the test knows, where it sends its signals, deletes files or closes
    pipes (no sleeps that race)."""

    def __init__(self, tmp_path, rows, *args):
        self.rows = (rows,) if isinstance(rows, int) else tuple(rows)
        self.go_prefix = tmp_path / "go"
        self.process = subprocess.Popen(
            [sys.executable, "-c", PARKED_CLI, ",".join(map(str, self.rows)),
             str(self.go_prefix), *map(str, args)],
            env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=default_signals)

    def wait_until_parked(self, run_dir, row=None):
        row = self.rows[0] if row is None else row

        def parked():
            assert self.process.poll() is None, self.process.communicate()
            path = run_dir / "progress.csv"
            return path.exists() and path.read_bytes().count(b"\r\n") >= 1 + row
        wait_for(parked)

    def read_until(self, text):
        """stdout up to the line holding text (the child's handler said it was there)."""
        lines = []
        while not lines or text not in lines[-1]:
            lines.append(self.process.stdout.readline())
            assert lines[-1], ("the child closed stdout", lines, self.finish())
        return "".join(lines)

    def go(self, row=None):
        for row in self.rows if row is None else (row,):
            pathlib.Path(f"{self.go_prefix}-{row}").write_text("go")

    def finish(self):
        self.go()
        return self.process.communicate(timeout=60)


SIG_HP = dict(num_envs=4, num_steps=32, hidden_sizes=(16,))
SIG_ITERATIONS = 16
SIG_ARGS = ["train", "--steps", SIG_ITERATIONS * 128, "--num-envs", 4, "--num-steps", 32,
            "--hidden-sizes", 16, "--log-every", -1]
GRPO_HP = dict(num_groups=2, group_size=2, hidden_sizes=(8,))
GRPO_ARGS = ["train", "--algo", "grpo", "--steps", 1500, "--num-groups", 2, "--group-size", 2,
             "--hidden-sizes", 8, "--log-every", -1]
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, name)]


@pytest.fixture(scope="module")
def signal_references(tmp_path_factory):
    """The runs never stopped: {algo: run directory}. GRPO's with a checkpoint after every
    iteration (--checkpoint-every 0, taken by GRPO like any run), each one recorded."""
    root = tmp_path_factory.mktemp("signal_references")
    ppo = minipg.train("CartPole-v1", "ppo", SIG_ITERATIONS * 128, 0, run_dir=str(root / "ppo"),
                       log_every=-1, **SIG_HP)
    saved = []
    grpo = minipg.train("CartPole-v1", "grpo", 1500, 0, run_dir=str(root / "grpo"),
                        log_every=-1, checkpoint_every=0, **GRPO_HP,
                        callback=lambda record, policy: saved.append(
                            (record["iteration"], saved_iteration(root / "grpo"))))
    assert saved and all(iteration == on_disk for iteration, on_disk in saved[:-1])
    return {"ppo": pathlib.Path(ppo.run_dir), "grpo": pathlib.Path(grpo.run_dir)}


def assert_same_files(run_dir, reference):
    assert (run_dir / "progress.csv").read_bytes() == (reference / "progress.csv").read_bytes()
    np.testing.assert_array_equal(minipg.load(run_dir).params, minipg.load(reference).params)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs POSIX signals")
@pytest.mark.parametrize("algo, signum", [("ppo", s) for s in STOP_SIGNALS]
                         + [("grpo", signal.SIGTERM)],
                         ids=[f"ppo-{signal.Signals(s).name}" for s in STOP_SIGNALS]
                         + ["grpo-SIGTERM"])
def test_a_signal_stops_after_the_iteration_saves_and_resume_continues_bit_for_bit(
        tmp_path, signal_references, algo, signum):
    """The signal comes at iteration 5, long before the first periodic checkpoint (an hour):
    the checkpoint written is the signal's own, with the env's state, and the exit status is
    128 + the signal number; resumed, the run ends as if never stopped."""
    run_dir, stop_at = tmp_path / "run", 5
    args = SIG_ARGS if algo == "ppo" else GRPO_ARGS
    child = Parked(tmp_path, stop_at, *args, "--run-dir", run_dir, "--checkpoint-every", 3600)
    child.wait_until_parked(run_dir)
    assert not (run_dir / "checkpoint.npz").exists()
    child.process.send_signal(signum)
    out, err = child.finish()
    assert child.process.returncode == 128 + signum, err
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    stopped = "interrupted" if signum == signal.SIGINT else f"{name}: stopped"
    assert f"{name}: stopping after this iteration" in out
    assert (f"{stopped}; the checkpoint of iteration {stop_at} is saved in "
            f"{run_dir / 'checkpoint.npz'}; continue with: minipg train --resume {run_dir}") in out
    assert saved_iteration(run_dir) == stop_at == len(progress_rows(run_dir))
    state = ckpt.read_checkpoint(run_dir).json("train/state")
    assert state["env_state"]["saved"] == (algo == "ppo")    # GRPO resets from seeds: none
    resumed = minipg_process("train", "--resume", run_dir)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert "not restored" not in out
    assert_same_files(run_dir, signal_references[algo])


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs POSIX signals")
def test_a_second_sigterm_stops_at_once_with_the_last_complete_iteration(tmp_path):
    """Parked inside iteration 5 (its row written, its state not yet captured): two SIGTERMs
    stop there, saving iteration 4 -- the last complete one -- without the env's state."""
    run_dir = tmp_path / "run"
    child = Parked(tmp_path, 5, *SIG_ARGS, "--run-dir", run_dir, "--checkpoint-every", 3600)
    child.wait_until_parked(run_dir)
    child.process.send_signal(signal.SIGTERM)
    first = child.read_until("SIGTERM: stopping after this iteration")   # handled: not pending
    child.process.send_signal(signal.SIGTERM)
    out, err = child.finish()
    out = first + out
    assert child.process.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: stopped; the checkpoint of iteration 4 is saved" in out
    state = ckpt.read_checkpoint(run_dir).json("train/state")
    assert state["iteration"] == 4 and not state["env_state"]["saved"]
    assert len(progress_rows(run_dir)) == 5           # the resume drops the fifth row


PYTHON_SIGTERM = r"""
import os, signal, sys
import minipg
from minipg.run.stops import SignalStop

def terminate_at_3(record, policy):
    if record["iteration"] == 3:
        os.kill(os.getpid(), signal.SIGTERM)

try:
    minipg.train("CartPole-v1", "ppo", 2048, 0, run_dir=sys.argv[1], callback=terminate_at_3,
                 checkpoint_every=3600, num_envs=4, num_steps=32, hidden_sizes=(16,),
                 log_every=-1)
except SignalStop as stop:
    print("SignalStop", stop.code, stop.signum, stop.checkpoint, stop.run_dir)
    print("handler after", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,
          signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    raise
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs POSIX signals")
def test_sigterm_in_python_saves_then_raises_signal_stop_and_restores_the_handlers(tmp_path):
    """From Python, train saves, restores the handlers it found and raises SignalStop, a
    SystemExit: the program, not catching it, exits 143 as the SIGTERM asked."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", PYTHON_SIGTERM, str(run_dir)],
                          capture_output=True, text=True, timeout=60, env=CHILD_ENV,
                          preexec_fn=default_signals)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "Traceback" not in done.stderr               # a SystemExit ends quietly
    assert (f"SignalStop {128 + signal.SIGTERM} {int(signal.SIGTERM)} "
            f"{run_dir / 'checkpoint.npz'} {run_dir}") in done.stdout
    assert "handler after True True" in done.stdout
    assert saved_iteration(run_dir) == 3 == len(progress_rows(run_dir))


class OwnBaseException(BaseException):
    """Not an Exception: what `except Exception` does not catch."""


@pytest.mark.parametrize("leave", ["sys.exit", "own-sigterm-handler", "base-exception"])
def test_every_way_out_saves_the_last_complete_iteration(tmp_path, leave, capsys):
    """A callback calling sys.exit, a program's own SIGTERM handler raising SystemExit (it is
    left in place: train installs its handler only over the default), a BaseException: each
    leaves as it came, after saving iteration 3 with the env's state, and a resume continues
    bit for bit."""
    reference = minipg.train("CartPole-v1", "ppo", 8 * 64, 0, run_dir=str(tmp_path / "ref"),
                             **SMALL)
    previous = signal.getsignal(signal.SIGTERM)

    def own_handler(signum, frame):
        raise SystemExit(7)

    def leave_at_3(record, policy):
        if record["iteration"] == 3:
            if leave == "sys.exit":
                sys.exit(7)
            if leave == "own-sigterm-handler":
                os.kill(os.getpid(), signal.SIGTERM)
            raise OwnBaseException("gone")

    if leave == "own-sigterm-handler":
        signal.signal(signal.SIGTERM, own_handler)
    run_dir = tmp_path / "run"
    try:
        with pytest.raises(SystemExit if leave != "base-exception" else OwnBaseException) as info:
            minipg.train("CartPole-v1", "ppo", 8 * 64, 0, run_dir=str(run_dir),
                         callback=leave_at_3, checkpoint_every=3600, **SMALL)
        if leave == "own-sigterm-handler":
            assert signal.getsignal(signal.SIGTERM) is own_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    if leave != "base-exception":
        assert info.value.code == 7
    out = capsys.readouterr().out
    assert (f"stopped by {type(info.value).__name__} at iteration 3; the last good state "
            f"(iteration 3) is saved in {run_dir / 'checkpoint.npz'}") in out
    assert saved_iteration(run_dir) == 3
    assert ckpt.read_checkpoint(run_dir).json("train/state")["env_state"]["saved"]
    minipg.train(resume=str(run_dir))                   # the lock was released: it resumes
    assert_same_files(run_dir, pathlib.Path(reference.run_dir))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs POSIX signals")
def test_the_handlers_are_restored_and_left_alone_outside_the_main_thread(tmp_path):
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "main"), **SMALL)
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before
    seen = []

    def in_a_thread():
        minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "thread"),
                     callback=lambda record, policy: seen.append(
                         {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}),
                     **SMALL)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == [before, before]


# ------------------------------------------------------------------------------------------
# A closed stdout
# ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(signal, "SIGPIPE"), reason="needs POSIX pipes")
def test_a_closed_stdout_does_not_stop_or_misreport_the_run(tmp_path, signal_references):
    """`minipg train ... | head -n 3`: the reader leaves after three lines, at iteration 2 of
    16. The run goes on to the end (the progress lines are a view of it, not its record),
    exits 0, says nothing about a broken pipe or the checkpoint, and its files are those of
    the run never watched."""
    run_dir = tmp_path / "run"
    child = Parked(tmp_path, 2, *SIG_ARGS[:-1], 0, "--run-dir", run_dir)   # --log-every 0
    child.wait_until_parked(run_dir)
    head = [child.process.stdout.readline() for _ in range(3)]
    assert head[0].startswith("minipg ppo on CartPole-v1") and head[2].startswith("step")
    child.process.stdout.close()                       # head -n 3 exits
    child.go()
    child.process.wait(timeout=60)
    err = child.process.stderr.read()
    assert child.process.returncode == 0, err
    assert err == ""                                   # no "Broken pipe", no "Exception ignored"
    assert saved_iteration(run_dir) == SIG_ITERATIONS == len(progress_rows(run_dir))
    assert_same_files(run_dir, signal_references["ppo"])


# ------------------------------------------------------------------------------------------
# A full disk under progress.csv
# ------------------------------------------------------------------------------------------

PROGRESS_LIMIT_SCRIPT = r"""
import os, resource, signal, sys
import minipg
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG
run_dir = sys.argv[1]

def limit_from_iteration_2(record, policy):
    # Room for the checkpoint (14 kB with these sizes) and the env's state, not for all of
    # progress.csv's rows (about 150 bytes each).
    if record["iteration"] == 2:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, resource.RLIM_INFINITY))

try:
    minipg.train("CartPole-v1", "ppo", 160 * 32, 0, run_dir=run_dir,
                 callback=limit_from_iteration_2, checkpoint_every=3600, num_envs=2,
                 num_steps=16, hidden_sizes=(8,), log_every=-1)
except OSError as error:
    print(error)
with open(os.path.join(run_dir, "progress.csv"), "rb") as f:
    print("ends with a complete row:", f.read().endswith(b"\r\n"))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
result = minipg.train(resume=run_dir)               # the same process: the lock was released
print("resumed from", result.resumed_from)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_full_disk_under_progress_csv_keeps_the_message_and_no_partial_row(tmp_path):
    """RLIMIT_FSIZE lets the checkpoints through but stops progress.csv in the middle of a row
    (os.write writes what fits, then fails with EFBIG): the error says it was the log, at which
    iteration, and what was saved; nothing replaces that message; the partial row is cut back;
    and the same process, given room again, resumes the run to the end (its lock released). The
    rows before the failure are those of a run that never failed."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", PROGRESS_LIMIT_SCRIPT, str(run_dir)],
                          capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    first, complete, resumed = lines[0], lines[1], lines[-1]
    assert "not restored" in lines[2]                   # stopped inside an iteration
    assert first.startswith("could not write the log: [Errno 27] File too large, at iteration ")
    failed = int(first.split("at iteration ")[1].split()[0])
    assert 2 < failed < 160
    assert (f"the last good state (iteration {failed - 1}) is saved in "
            f"{run_dir / 'checkpoint.npz'}") in first
    assert complete == "ends with a complete row: True"
    assert resumed == f"resumed from {failed - 1}"
    reference = minipg.train("CartPole-v1", "ppo", 160 * 32, 0, run_dir=str(tmp_path / "ref"),
                             callback=lambda record, policy: record["iteration"] == failed,
                             **SMALL)
    assert len(progress_rows(run_dir)) == 160
    ours = (run_dir / "progress.csv").read_bytes().split(b"\r\n")
    theirs = (pathlib.Path(reference.run_dir) / "progress.csv").read_bytes().split(b"\r\n")
    assert ours[:failed] == theirs[:failed]         # the header and rows 1 .. failed - 1


# ------------------------------------------------------------------------------------------
# Folders that are not minipg's, a lost lock, a checkpoint of another run
# ------------------------------------------------------------------------------------------

def test_overwrite_refuses_a_folder_whose_files_are_not_minipgs(tmp_path, capsys):
    """A user's own config.json and progress.csv (not a minipg config, not minipg's header), or
    a folder of other files: refused, every file left as it was."""
    own = tmp_path / "own"
    own.mkdir()
    files_before = {"config.json": '{"lr": 0.1}', "progress.csv": "epoch,loss\n1,0.5\n",
                    "notes.txt": "mine"}
    for name, text in files_before.items():
        (own / name).write_text(text)
    with pytest.raises(rundir.RunDirError, match="overwrite refused: .* does not hold a minipg "
                                                 "run .*config.json is not a minipg config"):
        minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(own), overwrite=True, **SMALL)
    assert main(["train", "--steps", "64", "--run-dir", str(own), "--overwrite"]) == 1
    assert "overwrite refused" in capsys.readouterr().err
    (own / "config.json").write_text((ckpt.read_checkpoint(OLD_PPO).arrays["config"]).item())
    with pytest.raises(rundir.RunDirError, match="progress.csv does not start with minipg's"):
        rundir.claim(own, overwrite=True)               # a minipg config is not enough
    files_before["config.json"] = (own / "config.json").read_text()
    assert {p.name: p.read_text() for p in own.iterdir() if p.name != rundir.LOCK_FILE} == \
        files_before
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.bin").write_bytes(b"\0")
    with pytest.raises(rundir.RunDirError, match=f"no {rundir.MARKER_FILE}, and no minipg"):
        rundir.claim(other, overwrite=True)
    assert sorted(os.listdir(other)) == [rundir.LOCK_FILE, "data.bin"]


def test_overwrite_refuses_the_root_the_home_and_the_current_directory(tmp_path, monkeypatch):
    home, here = tmp_path / "home", tmp_path / "here"
    for folder in (home, here):
        folder.mkdir()
        rundir.claim(folder).release()                  # even a folder marked as a run
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    for run_dir, what in ((os.sep, "the root of the filesystem"), (str(home), "home directory"),
                          ("~", "home directory"), (".", "current directory"),
                          (str(here / ".." / "here"), "current directory")):
        with pytest.raises(rundir.RunDirError, match=f"overwrite refused: .* is .*{what}"):
            minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=run_dir, overwrite=True, **SMALL)
    assert sorted(os.listdir(home)) == sorted(os.listdir(here)) == \
        [rundir.LOCK_FILE, rundir.MARKER_FILE]


def test_a_run_from_before_the_marker_is_overwritten_and_resumed(tmp_path):
    """tests/run/fixtures/old_ppo_run has no marker: its config.json and progress.csv say it is
    minipg's. --overwrite replaces it; a resume continues it and marks it, and the checkpoints
    from then on record the new run id."""
    old = shutil.copytree(OLD_PPO, tmp_path / "old")
    minipg.train(resume=str(old), callback=lambda record, policy: record["iteration"] == 10)
    run_id = rundir.read_marker(old)
    assert run_id is not None and ckpt.read_checkpoint(old).run_id() == run_id
    minipg.train(resume=str(old))                       # and it goes on resuming
    grpo = shutil.copytree(FIXTURES / "old_grpo_run", tmp_path / "grpo")
    with pytest.raises(CheckpointError, match="holds no training state"):
        minipg.train(resume=str(grpo))
    assert rundir.read_marker(grpo) is None             # a refused resume marks nothing
    again = shutil.copytree(OLD_PPO, tmp_path / "again")
    result = minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(again), overwrite=True,
                          **SMALL)
    assert not [name for name in os.listdir(again) if is_env_state_file(name)
                and name in os.listdir(OLD_PPO)]        # the old env state went with the run
    assert ckpt.read_checkpoint(again).run_id() == rundir.read_marker(again)
    assert len(progress_rows(again)) == len(result.history)


@pytest.mark.skipif(rundir.fcntl is None, reason="needs POSIX file locks")
def test_a_deleted_lock_never_lets_two_processes_train_into_one_folder(tmp_path,
                                                                       signal_references):
    """Process A is parked at iteration 3; its .lock is deleted; process B resumes the folder
    (it can: the lock is gone) and finishes. A, let go, finds another file at .lock before its
    next write and stops, writing nothing: the folder holds B's run, the one never stopped."""
    run_dir = tmp_path / "run"
    a = Parked(tmp_path, 3, *SIG_ARGS, "--run-dir", run_dir, "--checkpoint-every", 0)
    a.wait_until_parked(run_dir)
    (run_dir / rundir.LOCK_FILE).unlink()
    b = minipg_process("train", "--resume", run_dir)
    out, err = b.communicate(timeout=60)
    assert b.returncode == 0, err
    out, err = a.finish()
    assert a.process.returncode == 1, (out, err)
    assert "the lock of run directory" in err and "was lost" in err
    assert "replaced by another file" in err and len(err.strip().splitlines()) == 1
    assert_same_files(run_dir, signal_references["ppo"])
    assert saved_iteration(run_dir) == SIG_ITERATIONS


@pytest.mark.skipif(rundir.fcntl is None, reason="needs POSIX file locks")
def test_a_deleted_lock_nobody_took_is_taken_again(tmp_path, signal_references):
    run_dir = tmp_path / "run"
    child = Parked(tmp_path, (3, 6), *SIG_ARGS, "--run-dir", run_dir, "--checkpoint-every", 0)
    child.wait_until_parked(run_dir, 3)
    (run_dir / rundir.LOCK_FILE).unlink()
    child.go(3)
    child.wait_until_parked(run_dir, 6)                 # the run went on, taking a new lock
    assert (run_dir / rundir.LOCK_FILE).exists()
    with pytest.raises(rundir.RunDirError, match="in use by another minipg process"):
        rundir.claim(run_dir, resume=True)
    out, err = child.finish()
    assert child.process.returncode == 0, err
    assert_same_files(run_dir, signal_references["ppo"])


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path, capsys):
    """Two runs stopped at iteration 3 (another seed, another algorithm): the checkpoint of one
    copied into the other is refused, naming both run ids, and nothing is changed."""
    runs = {}
    for name, algo, seed in (("a", "ppo", 0), ("b", "ppo", 1), ("c", "a2c", 0)):
        runs[name] = tmp_path / name
        minipg.train("CartPole-v1", algo, 8 * 32, seed, run_dir=str(runs[name]),
                     callback=lambda record, policy: record["iteration"] == 3, **SMALL)
    for other in ("b", "c"):
        target = shutil.copytree(runs["a"], tmp_path / f"a-with-{other}")
        shutil.copy(runs[other] / "checkpoint.npz", target / "checkpoint.npz")
        before = {p.name: p.read_bytes() for p in target.iterdir()}
        with pytest.raises(CheckpointError, match=(
                f"written by another run \\(run id {rundir.read_marker(runs[other])}\\) than the "
                f"one in {target} \\(run id {rundir.read_marker(runs['a'])}")):
            minipg.train(resume=str(target))
        assert main(["train", "--resume", str(target)]) == 1
        assert "another run" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    (runs["a"] / rundir.MARKER_FILE).unlink()           # the checkpoint's run, unknown here
    with pytest.raises(CheckpointError, match=f"has no {rundir.MARKER_FILE}"):
        minipg.train(resume=str(runs["a"]))


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
    marker = (tmp_path / "run" / rundir.MARKER_FILE).read_bytes()
    try:
        with pytest.raises(rundir.RunDirError, match="in use by another minipg process"):
            minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=str(tmp_path / "run"), **SMALL)
        with pytest.raises(rundir.RunDirError, match="in use"):
            minipg.train(resume=str(tmp_path / "run"))
    finally:
        holder.release()
    assert sorted(os.listdir(tmp_path / "run")) == [rundir.LOCK_FILE, rundir.MARKER_FILE]
    assert (tmp_path / "run" / rundir.MARKER_FILE).read_bytes() == marker  # nothing written


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

"""How a run stops early: on a signal between iterations, on any exception with the last complete
iteration saved, and never because the terminal went away.

Signals. SIGINT (Ctrl-C), SIGTERM (kill, docker stop, Kubernetes, SLURM) and SIGHUP (the
terminal or ssh session closed) all let the current iteration finish, so that the checkpoint
holds a state between two iterations, the env's state included (a resume is then bit for bit);
a second one of them stops at once (the checkpoint then holds the last complete iteration,
without the env's state). The handlers are installed in the main thread only, only over
Python's default disposition (a program's own handler, or a signal ignored as under nohup, is
left alone), and the previous handlers come back when training ends. SIGKILL cannot be caught:
the last periodic checkpoint is what remains.

After Ctrl-C, train returns (result.interrupted) and the CLI exits 130. After SIGTERM or SIGHUP,
train raises SignalStop once the checkpoint is saved: a SystemExit whose code is 128 + the
signal number, so a program that does not catch it ends as the signal asked, with the status a
shell reports for that signal, and the CLI exits with that status.

Errors. An exception during an iteration is raised again as the same kind of exception, its
message saying what happened, at which iteration, what the checkpoint holds and how to continue.

The terminal. Progress lines are a view of the run, not the run: `minipg train ... | head -n 3`
closes the pipe after three lines, and a closed ssh session leaves a dead terminal. A failed
write to stdout silences the output for the rest of the process (stdout is pointed at os.devnull,
so nothing fails again, not even the interpreter's last flush) and training goes on: its record
is progress.csv and the checkpoint, which do not depend on anybody reading the terminal.
"""
import contextlib
import json
import os
import shlex
import signal
import sys
import threading

from minipg.envs.rollout import EnvError

__all__ = ["StopRequest", "SignalStop", "stop_after_iteration", "stopped", "save_last_state",
           "resume_hint", "say", "signal_name"]

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
"""The signals that stop training after the current iteration (Windows has no SIGHUP)."""


class SignalStop(SystemExit):
    """Training stopped by SIGTERM or SIGHUP after saving its checkpoint.

    A SystemExit with code 128 + signum: uncaught, the program exits with the status a shell
    reports for a process ended by that signal. `signum`, `checkpoint` (the saved file, or None
    when there was nothing to save) and `run_dir` say what happened and what was kept.
    """

    def __init__(self, signum, checkpoint=None, run_dir=None):
        super().__init__(128 + signum)
        self.signum, self.checkpoint, self.run_dir = signum, checkpoint, run_dir


class StopRequest:
    """What the signal handlers saw: `signum` of the last stop signal received, or None."""

    def __init__(self):
        self.signum = None

    @property
    def pressed(self):
        return self.signum is not None


def signal_name(signum):
    """'SIGTERM' for signal.SIGTERM (Ctrl-C for SIGINT: what the user did)."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _default_handler(signum):
    return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL


@contextlib.contextmanager
def stop_after_iteration(request=None):
    """The first SIGINT, SIGTERM or SIGHUP sets request.signum (the loop stops after the current
    iteration); a second one stops at once: KeyboardInterrupt for SIGINT, SignalStop for the
    others. Yields the StopRequest.

    Only in the main thread (Python runs handlers there, and only there can they be installed),
    and only over the default disposition of each signal; the previous handlers are restored.
    """
    request = StopRequest() if request is None else request
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        again = request.pressed
        request.signum = signum
        if again:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SignalStop(signum)
        name = signal_name(signum)
        how = "Ctrl-C" if signum == signal.SIGINT else f"send {name}"
        say(f"\n{name}: stopping after this iteration ({how} again to stop at once)")

    previous = {}
    try:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is _default_handler(signum):
                previous[signum] = signal.signal(signum, handler)
        yield request
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


def say(text):
    """print(text) to stdout, for the user watching: a closed or broken stdout (a pipe whose
    reader left, a terminal hung up) silences the output instead of stopping anything."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):          # EPIPE, EIO, a closed file object
        _silence_stdout()
    except RuntimeError:                   # a signal handler's line inside another print
        pass


def _silence_stdout():
    """Point stdout at os.devnull (the file descriptor, so the interpreter's last flush of what
    is still buffered succeeds too); where stdout has no descriptor, replace the object."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        sys.stdout = open(os.devnull, "w", encoding="utf-8")


def stopped(error, stage, iteration, collector, checkpointer, snapshot, env, run_dir):
    """The exception to raise when training stops on `error` during `stage`: the same kind of
    exception, its message saying what happened, where, and what was saved."""
    what, advice = str(error), ""
    if stage == "collect" and isinstance(error, (EnvError, FloatingPointError)):
        advice = "; check the environment: no training setting can fix this"
    elif stage == "update" and isinstance(error, FloatingPointError):
        advice = "; try a lower learning_rate or max_grad_norm"
    elif stage in ("log", "checkpoint") and isinstance(error, OSError):
        what = f"could not write the {'checkpoint' if stage == 'checkpoint' else 'log'}: {error}"
    elif stage == "callback":
        what = f"the callback raised {type(error).__name__}: {error}"
    message = f"{what}, at iteration {iteration} (env step {collector.global_step:,}){advice}"
    message += "; " + save_last_state(checkpointer, snapshot, env, run_dir)
    try:
        error_again = type(error)(message)
        if str(error_again) != message:      # a type that formats its arguments its own way
            error_again = RuntimeError(message)
    except Exception:
        error_again = RuntimeError(message)
    return error_again


def resume_hint(run_dir):
    """The command that continues the run, its path quoted for a shell."""
    return f"continue with: minipg train --resume {shlex.quote(os.fspath(run_dir))}"


def save_last_state(checkpointer, snapshot, env, run_dir):
    """Save the snapshot unless the checkpoint holds it already; returns what was kept, to say."""
    good_iteration = json.loads(str(snapshot["train/state"]))["iteration"]
    try:
        checkpointer.save_unless_saved(snapshot, env)
        return (f"the last good state (iteration {good_iteration}) is saved in "
                f"{checkpointer.path}; {resume_hint(run_dir)}")
    except Exception as save_error:
        held = ("no checkpoint" if checkpointer.saved_iteration is None
                else f"the checkpoint of iteration {checkpointer.saved_iteration}")
        return (f"the checkpoint could not be saved either ({type(save_error).__name__}: "
                f"{save_error}); {run_dir} holds {held}")

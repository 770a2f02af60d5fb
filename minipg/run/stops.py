"""How a run stops early: Ctrl-C between iterations, and the message of an error that stopped it.

The first Ctrl-C lets the current iteration finish, so that the checkpoint holds a state between
two iterations; a second stops at once. An exception during an iteration is raised again as the
same kind of exception, its message saying what happened, at which iteration, what the checkpoint
holds and how to continue.
"""
import contextlib
import json
import shlex
import signal
import threading

from minipg.envs.rollout import EnvError

__all__ = ["ctrl_c_after_iteration", "stopped"]


@contextlib.contextmanager
def ctrl_c_after_iteration():
    """The first Ctrl-C sets .pressed (the loop stops after the current iteration); a second
    raises KeyboardInterrupt at once.

    Only in the main thread, and only where Python's default handler is installed.
    """
    flag = type("CtrlC", (), {"pressed": False})()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield flag
        return

    def handler(signum, frame):
        if flag.pressed:
            raise KeyboardInterrupt
        flag.pressed = True
        print("\nCtrl-C: stopping after this iteration (Ctrl-C again to stop at once)",
              flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


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
    good_iteration = json.loads(str(snapshot["train/state"]))["iteration"]
    try:
        checkpointer.save_unless_saved(snapshot, env)
        message += (f"; the last good state (iteration {good_iteration}) is saved in "
                    f"{checkpointer.path}; continue with: minipg train --resume "
                    f"{shlex.quote(run_dir)}")
    except Exception as save_error:
        held = ("no checkpoint" if checkpointer.saved_iteration is None
                else f"the checkpoint of iteration {checkpointer.saved_iteration}")
        message += (f"; the checkpoint could not be saved either ({type(save_error).__name__}: "
                    f"{save_error}); {run_dir} holds {held}")
    try:
        error_again = type(error)(message)
        if str(error_again) != message:      # a type that formats its arguments its own way
            error_again = RuntimeError(message)
    except Exception:
        error_again = RuntimeError(message)
    return error_again

"""The environment's state: a separate, pickled file beside the checkpoint.

Resuming bit for bit needs the vector env exactly as it was, and an env
is a Python object: it can only be pickled. So it goes to a SEPARATE file in the run directory,
env_state-<digest>.pkl, and only `minipg train --resume RUN_DIR` of that directory reads it (a
file of your own run, like the code you run). The name holds the start of the file's SHA-256
digest; checkpoint.npz records the file's name and full digest, and a resume unpickles only a
file with that digest. The new env file is written before the checkpoint that names it, and the
older ones are deleted only after: whenever a process dies, the checkpoint on disk has its env
state beside it. Where the env cannot be pickled, no file is written and a resume starts fresh
episodes (and says so).
"""
import contextlib
import hashlib
import os
import pickle

import gymnasium as gym

from minipg.run.files import atomic_write

__all__ = ["is_env_state_file", "remove_env_states", "save_env_state", "restore_env_state"]

ENV_STATE_PREFIX, ENV_STATE_SUFFIX = "env_state-", ".pkl"
_ENV_FORMAT = "minipg env state"


def _env_payload(env):
    """(kind, bytes) of the vector env's state. Raises if the env cannot be pickled."""
    try:
        return "env", pickle.dumps(env)
    except Exception:
        # gymnasium's SyncVectorEnv keeps the functions that made its envs, closures that do
        # not pickle; the envs themselves and the rest of its state usually do.
        if type(env) is not gym.vector.SyncVectorEnv:
            raise
        state = {k: v for k, v in vars(env).items() if k != "env_fns"}
        return "sync-attributes", pickle.dumps(state)


def is_env_state_file(name):
    return name.startswith(ENV_STATE_PREFIX) and name.endswith(ENV_STATE_SUFFIX)


def remove_env_states(directory, keep=None):
    """Delete the env state files in `directory` except `keep` (the current checkpoint's)."""
    for name in os.listdir(directory):
        if is_env_state_file(name) and name != keep:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def save_env_state(directory, env):
    """Write env_state-<digest>.pkl; returns what the checkpoint records about it (JSON-able)."""
    try:
        kind, payload = _env_payload(env)
    except Exception as error:
        return {"saved": False, "reason": f"the environment cannot be pickled "
                                          f"({type(error).__name__}: {error})"}
    blob = pickle.dumps({"format": _ENV_FORMAT, "gymnasium": gym.__version__, "kind": kind,
                         "payload": payload})
    digest = hashlib.sha256(blob).hexdigest()
    name = f"{ENV_STATE_PREFIX}{digest[:16]}{ENV_STATE_SUFFIX}"
    with atomic_write(os.path.join(directory, name)) as f:
        f.write(blob)
    return {"saved": True, "file": name, "sha256": digest}


def restore_env_state(directory, record, env):
    """(env to use, None) with the saved state, or (env unchanged, why it was not restored).

    record is what save_env_state returned for the checkpoint being resumed. The file is
    unpickled only if its SHA-256 digest is the one recorded.
    """
    if not record or not record.get("saved"):
        return env, (record or {}).get("reason", "the checkpoint saved no environment state")
    if not is_env_state_file(os.path.basename(record["file"])):
        return env, f"the checkpoint names {record['file']!r}, not an env state file"
    path = os.path.join(directory, os.path.basename(record["file"]))
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as error:
        return env, f"{path} cannot be read ({error})"
    if hashlib.sha256(blob).hexdigest() != record["sha256"]:
        return env, f"{path} is not the one saved with the checkpoint"
    try:
        saved = pickle.loads(blob)
        if saved.get("format") != _ENV_FORMAT:
            return env, f"{path} is not a minipg env state"
        if saved.get("gymnasium") != gym.__version__:
            return env, (f"it was saved by gymnasium {saved.get('gymnasium')}, this is "
                         f"{gym.__version__}")
        payload = pickle.loads(saved["payload"])
    except Exception as error:        # e.g. saved by other versions of the env's libraries
        return env, f"{path} cannot be unpickled ({type(error).__name__}: {error})"
    if saved["kind"] == "env":
        env.close()
        return payload, None
    for sub_env in env.envs:          # "sync-attributes": into a fresh env of the same id
        sub_env.close()
    vars(env).update(payload)
    return env, None

"""The environment's state: a separate, pickled file beside the checkpoint, signed by this user.

Resuming bit for bit needs the vector env exactly as it was, and an env
is a Python object: it can only be pickled. So it goes to a SEPARATE file in the run directory,
env_state-<digest>.pkl, and only `minipg train --resume RUN_DIR` of that directory reads it. The
name holds the start of the file's SHA-256 digest; checkpoint.npz records the file's name and
full digest, and a resume unpickles only a file with that digest. The new env file is written
before the checkpoint that names it, and the older ones are deleted only after: whenever a
process dies, the checkpoint on disk has its env state beside it. Where the env cannot be
pickled, no file is written and a resume starts fresh episodes (and says so).

Unpickling runs code, so a run directory from somewhere else (downloaded, copied from another
user) must not be able to choose what gets unpickled. The checkpoint also records

    hmac = HMAC-SHA256(key, file's bytes)

with a key only this user can read: 32 random bytes kept in the user's own config directory
(MINIPG_CONFIG_DIR, else $XDG_CONFIG_HOME/minipg, else ~/.config/minipg; the file `key`,
created on first use with permissions 0600). Whoever lacks the key cannot make a file whose
signature checks, and editing the checkpoint does not help: the signature is over the bytes
that would be unpickled. A resume unpickles only a file signed with this user's key; any other
(another machine's or user's, an older minipg's unsigned one) is left alone, and the run
resumes with fresh episodes and says so -- unless the caller trusts it explicitly
(`--trust-env-state`, train(..., trust_env_state=True)).
"""
import contextlib
import hashlib
import hmac
import os
import pickle
import secrets
import tempfile

import gymnasium as gym

from minipg.run.files import atomic_write

__all__ = ["is_env_state_file", "remove_env_states", "save_env_state", "restore_env_state",
           "config_dir", "user_key"]

ENV_STATE_PREFIX, ENV_STATE_SUFFIX = "env_state-", ".pkl"
_ENV_FORMAT = "minipg env state"
KEY_FILE, _KEY_BYTES = "key", 32
CONFIG_DIR_VARIABLE = "MINIPG_CONFIG_DIR"
TRUST_HINT = ("pass --trust-env-state (trust_env_state=True in Python) to unpickle it if you "
              "trust where the run came from")


def config_dir():
    """The user's minipg config directory: $MINIPG_CONFIG_DIR, else $XDG_CONFIG_HOME/minipg,
    else ~/.config/minipg."""
    if os.environ.get(CONFIG_DIR_VARIABLE):
        return os.path.expanduser(os.environ[CONFIG_DIR_VARIABLE])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join("~", ".config")
    return os.path.join(os.path.expanduser(base), "minipg")


def user_key(create=True):
    """This user's signing key (bytes), read from config_dir()/key; created there on first use
    (when `create`) with permissions 0600. None if there is none and create is False.

    Creation is atomic: the key is written to a private temporary file and linked to its name,
    which fails if another process made it first (then that key is used). OSError if the
    directory cannot be made or read; ValueError if the file is not a key.
    """
    path = os.path.join(config_dir(), KEY_FILE)
    if not os.path.exists(path):
        if not create:
            return None
        _create_key(path)
    with open(path, encoding="ascii", errors="replace") as f:
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{path} is not a minipg key ({2 * _KEY_BYTES} hex digits); delete "
                         "it to make a new one (env states signed with it can then only be "
                         "resumed with --trust-env-state)")
    return key


def _create_key(path):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".key.")        # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(_KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # A link is atomic and never replaces a key another process made meanwhile (then that
        # key is the one used).
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _signature(key, blob):
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _signed_here(blob, record):
    """None if `blob` carries this user's signature in `record`, else why not."""
    try:
        key = user_key(create=False)
    except (OSError, ValueError) as error:
        return f"this user's key cannot be read ({error})"
    signature = record.get("hmac")
    if not signature:
        return "it is not signed (saved by an older minipg, or without a key)"
    if (key is None or not isinstance(signature, str)
            or not hmac.compare_digest(_signature(key, blob).encode(), signature.encode())):
        return "it is not signed with this user's key (the run was written by another user or machine)"
    return None


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
    record = {"saved": True, "file": name, "sha256": digest}
    try:
        record["hmac"] = _signature(user_key(), blob)
    except (OSError, ValueError) as error:   # saved unsigned: a resume needs the trust flag
        record["unsigned"] = f"this user's key cannot be made or read ({error})"
    return record


def restore_env_state(directory, record, env, trust=False):
    """(env to use, None) with the saved state, or (env unchanged, why it was not restored).

    record is what save_env_state returned for the checkpoint being resumed. The file is
    unpickled only if its SHA-256 digest is the one recorded and, unless `trust`, it is signed
    with this user's key (module docstring).
    """
    if not isinstance(record, dict) or not record.get("saved"):
        reason = record.get("reason") if isinstance(record, dict) else None
        return env, str(reason or "the checkpoint saved no environment state")
    if not (isinstance(record.get("file"), str) and isinstance(record.get("sha256"), str)):
        return env, "the checkpoint's record of the env state is malformed"
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
    if not trust:
        why_not = _signed_here(blob, record)
        if why_not is not None:
            return env, (f"{path} was not unpickled: {why_not}, and unpickling a file can run "
                         f"any code; {TRUST_HINT}")
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

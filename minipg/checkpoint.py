"""Checkpoint files: written atomically, recognised before they are read, never unpickled.

Writing. Every file minipg writes goes through `atomic_write`: the bytes go to a temporary file
in the same directory, which is flushed and fsynced and then renamed over the target with
os.replace. A rename within one directory is atomic, so a reader -- or whatever is left after a
crash, a full disk or a SIGKILL -- sees the old file or the new one, never part of one.

The format. A checkpoint is an .npz (a zip of .npy arrays) holding

    minipg/format          "minipg checkpoint": says what the file is
    minipg/format_version  FORMAT_VERSION; a newer version is refused, not guessed at
    config                 the training config, as JSON
    policy/params          the policy: policy.state("policy/")
    policy/config
    value/params           the value function, when the algorithm has one
    value/config
    optim/<name>/<key>     each optimizer's state()                       \\  what a resume
    collector/<key>        the rollout collector's arrays                  |  needs (the
    train/state            counters and every random generator's state,    |  trainer writes
                           as JSON (numpy's bit_generator.state is a dict) /  them)

A file written by `policy.save(path)` holds one object without a prefix (params, config) and the
same two format entries. Files written before the format entries existed read as version 0.

Reading. `read_checkpoint` checks that a path is a minipg checkpoint before reading it: an empty
file, a text file, a single .npy array, a truncated or corrupt archive, another program's .npz
and a newer format each get a CheckpointError that says which. numpy reads it with
allow_pickle=False, always: a checkpoint is data, and loading one never runs code.

The environment's state. Resuming bit for bit needs the vector env exactly as it was, and an env
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
import json
import os
import pickle
import tempfile
from dataclasses import dataclass

import numpy as np

__all__ = ["CheckpointError", "FORMAT_VERSION", "atomic_write", "write_checkpoint",
           "save_checkpoint", "read_checkpoint", "checkpoint_path", "load", "load_config"]

FORMAT = "minipg checkpoint"
FORMAT_VERSION = 1
FORMAT_KEY, VERSION_KEY = "minipg/format", "minipg/format_version"
CHECKPOINT_FILE = "checkpoint.npz"
ENV_STATE_PREFIX, ENV_STATE_SUFFIX = "env_state-", ".pkl"
TEMP_MARK = ".minipg-tmp"      # in the name of every temporary file atomic_write creates

_ENV_FORMAT = "minipg env state"
_NPZ_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


class CheckpointError(ValueError):
    """A file that is not a minipg checkpoint, is damaged, or cannot be used as asked."""


# ------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------

def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()       # read once: os.umask can only be read by setting it


@contextlib.contextmanager
def atomic_output(path):
    """A temporary file name next to `path`; on a clean exit the file is fsynced and renamed
    to `path` with os.replace (for writers that want a name, like matplotlib's).

    If the block raises (a full disk, Ctrl-C), the temporary file is removed and `path` is left
    as it was. The temporary name keeps the extension (matplotlib picks its format from it).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.",
                                     suffix=TEMP_MARK + os.path.splitext(name)[1])
    os.close(fd)
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)      # mkstemp makes it 0600; use the usual mode
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())            # the data is on disk before the rename
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)                   # and so is the rename


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a file to write `path` atomically (atomic_output):

        with atomic_write("run/checkpoint.npz") as f:
            np.savez(f, **arrays)
    """
    with atomic_output(path) as temporary:
        with open(temporary, mode, **open_kwargs) as f:
            yield f


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); not possible, nor needed, everywhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temporaries(directory):
    """Delete the temporary files a killed process left in `directory`; returns their names."""
    removed = []
    for name in os.listdir(directory):
        if name.startswith(".") and TEMP_MARK in name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
                removed.append(name)
    return removed


# ------------------------------------------------------------------------------------------
# Writing checkpoints
# ------------------------------------------------------------------------------------------

def write_checkpoint(path, arrays):
    """Write {name: array} as a minipg checkpoint .npz at exactly `path`, atomically."""
    arrays = {FORMAT_KEY: np.array(FORMAT), VERSION_KEY: np.array(FORMAT_VERSION), **arrays}
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def save_checkpoint(path, policy, value_fn, config, extra=None):
    """The policy under "policy/", the value function under "value/", the config, and `extra`."""
    arrays = policy.state("policy/")
    if value_fn is not None:
        arrays.update(value_fn.state("value/"))
    arrays["config"] = np.array(config.to_json())
    arrays.update(extra or {})
    return write_checkpoint(path, arrays)


# ------------------------------------------------------------------------------------------
# Reading checkpoints
# ------------------------------------------------------------------------------------------

def checkpoint_path(path):
    """The checkpoint file a path names: a run directory's checkpoint.npz, or the file itself."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a run directory or a checkpoint .npz path, got "
                        f"{type(path).__name__}")
    path = os.fsdecode(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, CHECKPOINT_FILE)
        if not os.path.exists(candidate):
            raise FileNotFoundError(f"no checkpoint in run directory {path!r}: it has no "
                                    f"{CHECKPOINT_FILE} (the run saved none yet)")
        return candidate
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}: no such file or directory (give "
                                f"a run directory or a checkpoint .npz)")
    return path


@dataclass
class Checkpoint:
    """The arrays of a checkpoint file that passed the format checks."""
    path: str
    version: int
    arrays: dict

    def has(self, *names):
        return all(name in self.arrays for name in names)

    def json(self, name):
        """The JSON document stored as a string under `name`, parsed."""
        if name not in self.arrays:
            raise CheckpointError(f"{self.path} has no {name!r} entry")
        try:
            return json.loads(str(self.arrays[name]))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{self.path}: entry {name!r} is not valid JSON "
                                  f"({error})") from None

    def policy(self, rng=None):
        """The policy (a file of policy.save holds it without prefix)."""
        prefix = "policy/" if self.has("policy/params") else ""
        obj = self.rebuild(prefix, rng)
        if obj.kind == "value":
            raise CheckpointError(f"{self.path} holds a value function, not a policy")
        return obj

    def value_function(self):
        """The value function, or None when the run had no critic."""
        return self.rebuild("value/", None) if self.has("value/params") else None

    def rebuild(self, prefix="", rng=None):
        """The policy or value function stored under `prefix` (minipg.policies.from_state)."""
        from minipg import policies

        try:
            return policies.from_state(self.arrays, prefix, rng)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{self.path}: the object stored under {prefix or 'no prefix'!r}"
                                  f" cannot be rebuilt: {error}") from None

    def config(self):
        """The training config (the class of its algorithm), checked like a new one."""
        from minipg.config import config_from_dict
        from minipg.trainer import ALL_ALGOS as ALGOS

        if not self.has("policy/params", "config"):    # a file of obj.save(): "params",
            raise CheckpointError(f"{self.path} holds a single object saved by its save() "
                                  "method: it has no training config")     # and its "config"
        values = self.json("config")
        algo = values.get("algo") if isinstance(values, dict) else None
        if algo not in ALGOS:
            raise CheckpointError(f"{self.path}: its config names algo {algo!r}; this minipg "
                                  f"knows {sorted(ALGOS)}")
        try:
            config = config_from_dict(ALGOS[algo].Config, values)
            config.validate()
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{self.path}: its config is not one this minipg can use: "
                                  f"{error}") from None
        return config


def read_checkpoint(path):
    """Check that `path` (a file, or a run directory) is a minipg checkpoint, then read it.

    Raises FileNotFoundError if there is nothing there, CheckpointError if the file is not a
    minipg checkpoint or is damaged; numpy never unpickles anything (allow_pickle=False).
    """
    path = checkpoint_path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes): not a minipg checkpoint")
    if head.startswith(_NPY_MAGIC):
        raise CheckpointError(f"{path} is a single NumPy array (.npy), not a minipg checkpoint "
                              "(an .npz archive)")
    if not head.startswith(_NPZ_MAGIC):
        raise CheckpointError(f"{path} is not a minipg checkpoint: not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            version = _format_version(path, data, names)
            arrays = {name: data[name] for name in names}
    except CheckpointError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise CheckpointError(f"{path} holds pickled Python objects: minipg never writes "
                                  "them and does not load them") from None
        raise CheckpointError(f"{path} is truncated or corrupt ({error})") from None
    except Exception as error:       # zipfile, zlib and numpy's header errors: a damaged file
        raise CheckpointError(f"{path} is truncated or corrupt ({type(error).__name__}: "
                              f"{error})") from None
    return Checkpoint(path, version, arrays)


def _format_version(path, data, names):
    if FORMAT_KEY not in names:
        # Written before the format entries existed: the trainer's or policy.save's layout.
        if {"policy/params", "policy/config", "config"} <= set(names) or \
                set(names) == {"params", "config"}:
            return 0
        shown = ", ".join(sorted(names)[:6]) + (", ..." if len(names) > 6 else "")
        raise CheckpointError(f"{path} is an .npz archive but not a minipg checkpoint (its "
                              f"arrays: {shown or 'none'})")
    if str(data[FORMAT_KEY]) != FORMAT:
        raise CheckpointError(f"{path} is not a minipg checkpoint ({FORMAT_KEY} is "
                              f"{str(data[FORMAT_KEY])!r})")
    version = data[VERSION_KEY] if VERSION_KEY in names else None
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise CheckpointError(f"{path} has no valid {VERSION_KEY}")
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer minipg (format version "
                              f"{int(version)}; this one reads up to {FORMAT_VERSION}): "
                              "upgrade minipg to read it")
    return int(version)


def load(path, rng=None):
    """The policy saved in a checkpoint or run directory; `policy.act(obs)` gives actions.

    rng seeds the policy's own generator, used by act(rng=None).
    """
    return read_checkpoint(path).policy(rng)


def load_config(path):
    """The training config saved in a checkpoint or run directory."""
    return read_checkpoint(path).config()


# ------------------------------------------------------------------------------------------
# The environment's state (a separate, pickled file; see the module docstring)
# ------------------------------------------------------------------------------------------

def _env_payload(env):
    """(kind, bytes) of the vector env's state. Raises if the env cannot be pickled."""
    import gymnasium as gym

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
    import gymnasium as gym

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
    import gymnasium as gym

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

"""Checkpoint files: the format, written atomically, recognised before read, never unpickled.

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
                           as JSON (numpy's bit_generator.state is a dict) |  them)
    run/id                 the run id of the run directory's marker       /
                           (minipg/run/rundir.py): a resume refuses a checkpoint of another run

A file written by `save_policy(policy, path)` holds one object without a prefix (params, config) and the
same two format entries. Files written before the format entries existed read as version 0.

Reading. `read_checkpoint` checks that a path is a minipg checkpoint before reading it: an empty
file, a text file, a single .npy array, a truncated or corrupt archive, another program's .npz
and a newer format each get a CheckpointError that says which. numpy reads it with
allow_pickle=False, always: a checkpoint is data, and loading one never runs code.

A file can be crafted, so nothing in it is trusted to be small. Before an entry is read, its
size in the archive is checked (a JSON entry holds at most MAX_METADATA_CHARS characters, all
entries together fit in memory); before a JSON entry is parsed, the nesting of its arrays and
objects (at most MAX_METADATA_DEPTH; minipg's own nest a few levels); before a network is built, the number of
parameters its config describes must be the number the file holds, and fit in memory
(minipg/core/memory.py). Each violation is a CheckpointError, never a RecursionError or a
MemoryError from deep inside numpy or json.

The environment's state, which only a resume reads, is a separate file (minipg/run/env_state.py);
writing is atomic (minipg/run/files.py).
"""
import json
import os
import re
from dataclasses import dataclass

import numpy as np

from minipg.algos.registry import ALGOS
from minipg.algos.config import config_from_dict
from minipg.core.memory import check_fits, network_params, physical_memory
from minipg.core.normalize import RunningMeanStd
from minipg.core.policies import POLICIES
from minipg.core.value import ValueFunction
from minipg.run.files import atomic_write, user_path

__all__ = ["CheckpointError", "FORMAT_VERSION", "CHECKPOINT_FILE", "write_checkpoint",
           "save_checkpoint", "save_policy", "read_checkpoint", "checkpoint_path", "from_state",
           "load", "load_config", "parse_metadata", "MAX_METADATA_CHARS", "MAX_METADATA_DEPTH"]

FORMAT = "minipg checkpoint"
FORMAT_VERSION = 1
FORMAT_KEY, VERSION_KEY = "minipg/format", "minipg/format_version"
RUN_ID_KEY = "run/id"
CHECKPOINT_FILE = "checkpoint.npz"

_NPZ_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"
_KINDS = {**POLICIES, "value": ValueFunction}


MAX_METADATA_CHARS = 8_000_000
"""The longest JSON document minipg reads from a checkpoint or a run directory (its own are a
few thousand characters)."""
MAX_METADATA_DEPTH = 64
"""The deepest nesting of arrays and objects accepted in that JSON (json recurses per level)."""
_JSON_ENTRIES = ("config", "train/state")
_JSON_TOKEN = re.compile(r'["\[\]{}]')
_JSON_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)


class CheckpointError(ValueError):
    """A file that is not a minipg checkpoint, is damaged, or cannot be used as asked."""


def json_depth(text, limit=MAX_METADATA_DEPTH):
    """The nesting depth of the arrays and objects of a JSON text, without parsing it (strings
    skipped); the scan stops as soon as the depth passes `limit`. An unterminated string ends
    the scan (json.loads then says what is wrong)."""
    depth = deepest = position = 0
    while deepest <= limit:
        token = _JSON_TOKEN.search(text, position)
        if token is None:
            break
        if token.group() == '"':
            string = _JSON_STRING_REST.match(text, token.end())
            if string is None:
                break
            position = string.end()
            continue
        depth += 1 if token.group() in "[{" else -1
        deepest = max(deepest, depth)
        position = token.end()
    return deepest


def parse_metadata(text, what):
    """json.loads(text), after the checks on its length and nesting (module docstring);
    CheckpointError naming `what` if either is beyond its limit or the text is not JSON."""
    if len(text) > MAX_METADATA_CHARS:
        raise CheckpointError(f"{what} is {len(text):,} characters long: more than the "
                              f"{MAX_METADATA_CHARS:,} minipg reads, so not minipg's")
    if json_depth(text) > MAX_METADATA_DEPTH:
        raise CheckpointError(f"{what} nests arrays or objects more than "
                              f"{MAX_METADATA_DEPTH} deep: not minipg's")
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{what} is not valid JSON ({error})") from None


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


def save_policy(policy, path):
    """Write one policy (or value function) to its own .npz, atomically; minipg.load reads it.

    Returns the path written (".npz" is appended if the name lacks it, as numpy does).
    """
    path = user_path(os.fspath(path))
    path = path if path.endswith(".npz") else path + ".npz"
    return write_checkpoint(path, policy.state())


# ------------------------------------------------------------------------------------------
# Reading checkpoints
# ------------------------------------------------------------------------------------------

def checkpoint_path(path):
    """The checkpoint file a path names: a run directory's checkpoint.npz, or the file itself."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a run directory or a checkpoint .npz path, got "
                        f"{type(path).__name__}")
    path = os.fsdecode(user_path(path))
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

    def run_id(self):
        """The id of the run that wrote this checkpoint, or None (written before run ids)."""
        if RUN_ID_KEY not in self.arrays:
            return None
        value = self.arrays[RUN_ID_KEY]
        if value.shape != () or value.dtype.kind != "U":
            raise CheckpointError(f"{self.path}: entry {RUN_ID_KEY!r} is not a run id")
        return str(value)

    def json(self, name):
        """The JSON document stored as a string under `name`, parsed."""
        if name not in self.arrays:
            raise CheckpointError(f"{self.path} has no {name!r} entry")
        return parse_metadata(str(self.arrays[name]), f"{self.path}: entry {name!r}")

    def policy(self, rng=None):
        """The policy (a file of save_policy holds it without prefix)."""
        prefix = "policy/" if self.has("policy/params") else ""
        obj = self.rebuild(prefix, rng)
        if obj.kind == "value":
            raise CheckpointError(f"{self.path} holds a value function, not a policy")
        return obj

    def value_function(self):
        """The value function, or None when the run had no critic."""
        return self.rebuild("value/", None) if self.has("value/params") else None

    def rebuild(self, prefix="", rng=None):
        """The policy or value function stored under `prefix` (from_state)."""
        try:
            return from_state(self.arrays, prefix, rng)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{self.path}: the object stored under {prefix or 'no prefix'!r}"
                                  f" cannot be rebuilt: {error}") from None

    def config(self):
        """The training config (the class of its algorithm), checked like a new one."""
        if not self.has("policy/params", "config"):    # a file of save_policy: "params",
            raise CheckpointError(f"{self.path} holds a single policy saved by save_policy: "
                                  "it has no training config")             # and its "config"
        values = self.json("config")
        algo = values.get("algo") if isinstance(values, dict) else None
        if algo not in ALGOS:
            raise CheckpointError(f"{self.path}: its config names algo {algo!r}; this minipg "
                                  f"knows {sorted(ALGOS)}")
        try:
            config = config_from_dict(ALGOS[algo].Config, values)
            config.validate()
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(f"{self.path}: its config is not one this minipg can use: "
                                  f"{error}") from None
        return config


def from_state(state, prefix="", rng=None):
    """Rebuild the policy or value function saved by obj.state(prefix) (a dict or an NpzFile).

    rng seeds the rebuilt object's own generator (used by act(rng=None)); the weights come from
    the state.
    """
    try:
        config = parse_metadata(str(np.asarray(state[prefix + "config"])), f"{prefix}config")
        params = np.asarray(state[prefix + "params"], dtype=np.float64)
    except KeyError as error:
        raise KeyError(f"state has no entry {error} (wrong prefix {prefix!r}?)") from None
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"{prefix}config must be a JSON object with a 'kind', got {config!r}")
    kind = config.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r} in state; expected one of {sorted(_KINDS)}")
    _check_network_size(kind, config, params, prefix)   # before anything is allocated
    obj = _KINDS[kind](**config, rng=rng)
    if params.shape != obj.params.shape:
        raise ValueError(f"{prefix}params has shape {params.shape}, but the config describes "
                         f"{obj.params.shape}")
    if not np.isfinite(params).all():
        raise ValueError(f"{prefix}params holds non-finite values (NaN or inf)")
    obj.params[...] = params                       # in place: the layer views stay valid
    if getattr(obj, "obs_rms", None) is not None:
        try:
            obj.obs_rms = RunningMeanStd.from_state(state, prefix + "obs_rms/")
        except KeyError as error:
            raise KeyError(f"state has no entry {error}: the policy normalises observations "
                           "but its statistics are missing") from None
        if obj.obs_rms.mean.shape != (obj.obs_dim,) or obj.obs_rms.var.shape != (obj.obs_dim,):
            raise ValueError(f"{prefix}obs_rms holds statistics of shape "
                             f"{obj.obs_rms.mean.shape}, not ({obj.obs_dim},)")
    return obj


def _parameter_count(kind, config):
    """The parameters of the network a state's config describes, or None if its sizes are not
    integers (the constructor then says what is wrong)."""
    out_dim = {"categorical": "n_actions", "gaussian": "action_dim"}.get(kind)
    sizes = [config.get("obs_dim"), *(config.get("hidden_sizes") or [None]),
             config.get(out_dim) if out_dim else 1]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
        return None
    return network_params(sizes) + (sizes[-1] if kind == "gaussian" else 0)


def _check_network_size(kind, config, params, prefix):
    count = _parameter_count(kind, config)
    if count is None:
        return
    if count != params.size:
        raise ValueError(f"{prefix}params holds {params.size:,} numbers, but {prefix}config "
                         f"describes a network of {count:,} parameters (hidden_sizes "
                         f"{config.get('hidden_sizes')})")
    # Building it holds the file's float64 copy and the network's own: two copies at least.
    check_fits(2 * count * 8, f"{prefix}config's network of {count:,} parameters")


def _check_entry_sizes(path, data, names):
    """CheckpointError if a JSON entry is longer than MAX_METADATA_CHARS (4 bytes a character
    in an .npy of str) or all entries together exceed the machine's memory: read from the
    archive's directory, before any entry is read."""
    total, members = 0, set(data.zip.namelist())
    for name in names:
        size = data.zip.getinfo(name + ".npy" if name + ".npy" in members else name).file_size
        total += size
        if (name in _JSON_ENTRIES or name.endswith("config")) and \
                size > 4 * MAX_METADATA_CHARS + 1024:        # (+ the .npy header)
            raise CheckpointError(f"{path}: entry {name!r} is {size:,} bytes: more than the "
                                  f"{MAX_METADATA_CHARS:,} characters of JSON minipg reads, so "
                                  "not minipg's")
    memory = physical_memory()
    if memory is not None and total > memory:
        raise CheckpointError(f"{path}: its entries hold {total:,} bytes, more than this "
                              f"machine's memory ({memory:,} bytes)")


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
            _check_entry_sizes(path, data, names)
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

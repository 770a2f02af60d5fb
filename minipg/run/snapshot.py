"""The training state: a snapshot of it (arrays for a checkpoint), and its restoration.

What the loop needs to continue exactly where it stopped, beyond the parameters:

    optimizer state      each optimizer's state() (Adam: m, v, t), under optim/<name>/
    normalisation        the observation statistics (with the policy, policy/obs_rms/), the
                         reward scaler's running returns and statistics (with the collector)
    collector            its observations, the returns and lengths of the episodes in
                         progress, which envs reset next, its sampling generator
    generators           the update generator (minibatch order), the policy's own
    counters             iteration, env steps, episodes, training seconds, the recent returns
                         behind mean_return
    the env              its own state, in env_state-<digest>.pkl beside the checkpoint
                         (minipg/run/env_state.py)

The learning-rate schedule needs no state of its own: it is a function of the iteration.
numpy's Generator.bit_generator.state is a dict of integers, stored as JSON (never pickled).

`capture` copies all of it after every iteration (a few small arrays); a Checkpointer writes
the latest snapshot, so a checkpoint always holds a state between two iterations.
"""
import dataclasses
import json
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from minipg.run.checkpoint import CHECKPOINT_FILE, RUN_ID_KEY, CheckpointError, write_checkpoint
from minipg.run.rundir import MARKER_FILE
from minipg.run.env_state import remove_env_states, restore_env_state, save_env_state

RECENT_EPISODES = 20
"""mean_return and mean_length are over this many most recent episodes."""
RESUME_MAY_CHANGE = ("log_every", "checkpoint_every", "eval_episodes", "eval_max_episode_steps")
"""The config fields a resume may change: they steer logging and evaluation, not training."""


@dataclass
class Progress:
    """The counters and running statistics of the loop."""
    iteration: int = 0
    episodes: int = 0
    train_seconds: float = 0.0
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))
    recent_lengths: deque = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))


def capture(parts, progress, config, config_json=None):
    """The whole training state as {name: numpy array}, ready for a checkpoint (copies).

    config_json: config.to_json(), when the caller has it already (it is the same every time).
    """
    arrays = parts.policy.state("policy/")
    if parts.value_fn is not None:
        arrays.update(parts.value_fn.state("value/"))
    arrays["config"] = np.array(config_json if config_json is not None else config.to_json())
    for name, optimizer in parts.optimizers.items():
        arrays.update({f"optim/{name}/{key}": value
                       for key, value in optimizer.state().items()})
    collector_json = {}
    for key, value in parts.collector.state().items():
        if isinstance(value, np.ndarray):
            arrays[f"collector/{key}"] = value
        else:
            collector_json[key] = value
    state = {"iteration": progress.iteration, "env_steps": parts.collector.global_step,
             "episodes": progress.episodes, "train_seconds": progress.train_seconds,
             "recent_returns": list(progress.recent_returns),
             "recent_lengths": list(progress.recent_lengths),
             "optimizers": sorted(parts.optimizers), "collector": collector_json,
             "update_rng": parts.update_rng.bit_generator.state,
             "policy_rng": parts.policy.rng.bit_generator.state}
    arrays["train/state"] = np.array(json.dumps(state))
    return arrays


def restore(parts, saved, run_dir, trust_env_state=False):
    """Load a checkpoint's training state into freshly built parts; returns (progress, note).

    note says why the env's state could not be restored (then episodes start fresh), or is None.
    trust_env_state: unpickle the env state even if this user did not sign it (env_state.py).
    """
    if not saved.has("train/state"):
        raise CheckpointError(f"{saved.path} holds no training state (it was not written by "
                              "minipg's trainer, or by an older minipg): it cannot be resumed")
    state = saved.json("train/state")
    if sorted(parts.optimizers) != state.get("optimizers"):
        raise CheckpointError(f"{saved.path} holds the state of optimizers "
                              f"{state.get('optimizers')}; this minipg trains with "
                              f"{sorted(parts.optimizers)}: it cannot be resumed")
    for prefix, obj in (("policy/", parts.policy), ("value/", parts.value_fn)):
        if obj is not None:
            rebuilt = saved.rebuild(prefix)
            obj.params[...] = rebuilt.params          # in place: the layers are views
            if getattr(obj, "obs_rms", None) is not None:
                obj.obs_rms = rebuilt.obs_rms         # the observation statistics
    try:
        for name, optimizer in parts.optimizers.items():
            prefix = f"optim/{name}/"
            optimizer.load_state({key[len(prefix):]: value for key, value in saved.arrays.items()
                                  if key.startswith(prefix)})
        collector_state = dict(state["collector"])
        collector_state.update({key[len("collector/"):]: value
                                for key, value in saved.arrays.items()
                                if key.startswith("collector/")})
        parts.update_rng.bit_generator.state = state["update_rng"]
        parts.policy.rng.bit_generator.state = state["policy_rng"]
        progress = Progress(int(state["iteration"]), int(state["episodes"]),
                             float(state["train_seconds"]))
        progress.recent_returns.extend(state["recent_returns"])
        progress.recent_lengths.extend(state["recent_lengths"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{saved.path}: its training state cannot be restored "
                              f"({type(error).__name__}: {error})") from None

    env, note = parts.env, None
    if parts.collector.keeps_env_state:
        env, note = restore_env_state(run_dir, state.get("env_state"), parts.env,
                                      trust=trust_env_state)
    parts.env = parts.collector.env = env
    # Without the env's state, start new episodes from a seed that depends on where the run
    # is, so that resuming the same checkpoint twice still gives the same numbers.
    fresh_seed = (None if note is None else
                  int(np.random.SeedSequence([state["env_steps"], state["iteration"]])
                      .generate_state(1)[0]))
    try:
        parts.collector.load_state(collector_state, fresh_episodes_seed=fresh_seed)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{saved.path}: its collector state cannot be restored "
                              f"({type(error).__name__}: {error})") from None
    return progress, note


def check_run_id(saved, run):
    """Refuse to resume a checkpoint written by another run than the one in `run` (a RunDir):
    copied in from another run directory, it would continue that run under this one's name.

    A checkpoint from before run ids resumes; so does a run directory from before the marker
    (the resume marks it, with a new id that every checkpoint records from then on).
    """
    saved_id = saved.run_id()
    if saved_id is None:
        return
    if run.run_id is None:
        raise CheckpointError(f"{saved.path} was written by run {saved_id}, but {run.path} has no "
                              f"{MARKER_FILE} saying which run it holds: a checkpoint copied "
                              "in from another run is not resumed (start a new run, or resume "
                              "the run directory the checkpoint came from)")
    if saved_id != run.run_id:
        raise CheckpointError(f"{saved.path} was written by another run (run id {saved_id}) than "
                              f"the one in {run.path} (run id {run.run_id}, in {MARKER_FILE}): "
                              "a checkpoint copied in from another run is not resumed (resume "
                              "the run directory it came from, or start a new run)")


class Checkpointer:
    """Writes snapshots to run_dir/checkpoint.npz (and the env's state beside it), each one
    with the run's id, and only while this process still holds the run directory's lock."""

    def __init__(self, run, log):
        self.run, self.log = run, log
        self.path = run.file(CHECKPOINT_FILE)
        self.saved_iteration = None           # of the checkpoint on disk, once one is written
        self.last_time = time.monotonic()

    def due(self, config):
        return time.monotonic() - self.last_time >= config.checkpoint_every

    def save(self, snapshot, env=None, why_no_env="training stopped inside an iteration"):
        """Write the snapshot; with env (in step with the snapshot), the env's state too."""
        self.run.check_lock()
        env_state = (save_env_state(self.run.path, env) if env is not None
                     else {"saved": False, "reason": why_no_env})
        state = json.loads(str(snapshot["train/state"]))
        state["env_state"] = env_state
        self.log.sync()                        # the rows this checkpoint counts are on disk
        run_id = {} if self.run.run_id is None else {RUN_ID_KEY: np.array(self.run.run_id)}
        write_checkpoint(self.path, {**snapshot, **run_id,
                                     "train/state": np.array(json.dumps(state))})
        # Only now that the checkpoint names the new env file may the older ones go.
        remove_env_states(self.run.path, keep=env_state.get("file"))
        self.saved_iteration = state["iteration"]
        self.last_time = time.monotonic()

    def save_unless_saved(self, snapshot, env=None):
        """save(), unless the checkpoint on disk holds this snapshot's iteration already (it may
        hold the env's state too, which a save from inside an iteration cannot)."""
        if json.loads(str(snapshot["train/state"]))["iteration"] != self.saved_iteration:
            self.save(snapshot, env)


def resumed_config(saved, given, algos):
    """The saved config, with the fields a resume may change replaced; the others must agree."""
    config = saved.config()
    if config.algo not in algos:
        raise ValueError(f"--resume is not supported for {config.algo} yet ({saved.path}): "
                         "start a new run")
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(f"unknown hyperparameter(s) {unknown} for {config.algo}; known: "
                        f"{sorted(known)}")
    changes = {}
    for name, value in given.items():
        if value is None:
            continue
        if name == "hidden_sizes":
            value = tuple(value)
        if name in RESUME_MAY_CHANGE:
            changes[name] = value
        elif value != getattr(config, name):
            raise ValueError(f"resume continues the saved run, whose {name} is "
                             f"{getattr(config, name)!r}, not {value!r}; only "
                             f"{', '.join(RESUME_MAY_CHANGE)} may change (start a new run "
                             "to change the others)")
    config = dataclasses.replace(config, **changes)
    config.validate()
    return config

"""The training loop, one for every algorithm: collect -> update -> log -> checkpoint.

    while env steps < total_steps:
        batch = collector.collect()       a (T, N) rollout, whole episodes, or groups of episodes
                                          (the algorithm's COLLECTS: minipg/envs/rollout.py,
                                          whole_episodes.py, groups.py)
        stats = algo.update(batch, ...)   advantages and gradient steps (minipg/algos/), then
                                          one check that the parameters are still finite
        log: env steps, steps/s, mean return of recent episodes, losses
        every checkpoint_every seconds: checkpoint

`train` returns a TrainResult whose `checkpoint` (.npz: policy, value function, config, and the
training state) is what `minipg eval`, `minipg.load` and a resume read. One seed fixes
everything, so the same call gives the same progress.csv bit for bit on the same machine
(wall-clock lives in result.history only).

Nothing is lost. After every iteration the loop keeps a snapshot of the whole training state in
memory (minipg/run/snapshot.py: parameters, optimizer state, every random generator's state, the
collector's episodes in progress, counters): a few array copies. A checkpoint writes the latest
snapshot, so it always holds a consistent, good state, even when training stops in the middle of
an iteration -- an exception from the env, a non-finite value, a failed write, a SystemExit. The
first Ctrl-C, SIGTERM or SIGHUP lets the current iteration finish, then saves (minipg/run/stops.py).
A closed stdout silences the progress lines and training goes on.

Resume. `train(resume=run_dir)` (`minipg train --resume RUN_DIR`) rebuilds everything from the
checkpoint and, where the env's state was saved, continues bit for bit: a run stopped and
resumed writes the same progress.csv and final parameters as one never stopped.
"""
import math
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from minipg.algos.config import make_config
from minipg.algos.registry import ALGOS
from minipg.core.checks import raise_if_non_finite
from minipg.core.optim import linear_schedule, params_stay_finite
from minipg.core.speed import training_speed
from minipg.envs.episodes import run_episodes
from minipg.envs.make import env_arguments, env_name, run_name
from minipg.run import presets, rundir
from minipg.run.build import build
from minipg.run.checkpoint import read_checkpoint
from minipg.run.files import atomic_write, user_path
from minipg.run.snapshot import (Checkpointer, Progress, capture, check_run_id, restore,
                                 resumed_config)
from minipg.run.stops import (SignalStop, StopRequest, resume_hint, save_last_state, say,
                              signal_name, stop_after_iteration, stopped)

__all__ = ["train", "TrainResult", "CSV_FIELDS", "csv_fields"]

RUN_FIELDS = ("iteration", "env_steps", "episodes", "mean_return", "mean_length",
              "learning_rate")
"""progress.csv's first columns, every run's."""
ROLLOUT_FIELDS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm",
                  "kl", "backtrack_step", "expected_improvement", "actual_improvement")
"""The statistics of the rollout algorithms, one set of columns for the four so that their
logs line up (a column an algorithm does not compute is empty)."""
CSV_FIELDS = RUN_FIELDS + ROLLOUT_FIELDS


def csv_fields(module):
    """progress.csv's columns for an algorithm module: the run's, then its statistics'."""
    return RUN_FIELDS + (module.LOG_FIELDS if module.COLLECTS == "groups" else ROLLOUT_FIELDS)


@dataclass
class TrainResult:
    checkpoint: str
    """Path of the saved .npz (policy, value function, full config, training state)."""
    history: list
    """One dict per iteration run by this call: env_steps, wall_clock (training seconds),
    mean_return, losses (after a resume: the iterations since the checkpoint)."""
    config: object
    run_dir: str
    policy: object = field(repr=False, default=None)
    value_fn: object = field(repr=False, default=None)
    evaluation: object = None
    """Returns of the final evaluation episodes (config.eval_episodes > 0), else None."""
    interrupted: bool = False
    """True when Ctrl-C (or a KeyboardInterrupt) stopped training early (the checkpoint holds the
    state at that point). SIGTERM and SIGHUP raise SignalStop instead (train's docstring)."""
    resumed_from: int = 0
    """The iteration this call continued from (0: a fresh run)."""


def train(env=None, algo=None, total_steps=None, seed=None, run_dir=None, callback=None,
          resume=None, overwrite=False, preset=True, trust_env_state=False, **hyperparameters):
    """Train `algo` on `env` for `total_steps` env steps; returns a TrainResult.

    env is a registered gymnasium id or a factory: a callable returning a gymnasium.Env,
    called once per parallel env (minipg.envs.make.make_env); a factory run is named after the
    factory, or after env_id=NAME when given. algo is a name of minipg.algos.registry.ALGOS
    ("reinforce", "a2c", "ppo", "trpo", "grpo"); hyperparameters are the fields of its Config
    (minipg/algos/<algo>.py), e.g. num_envs=8, learning_rate=1e-3. run_dir (default
    runs/<env>-<algo>-seed<seed>, or the first free runs/<env>-<algo>-seed<seed>-<k>) receives
    config.json, progress.csv and checkpoint.npz; an existing run_dir that holds files is
    refused unless overwrite=True. The preset of (env, algo) (minipg/run/presets.py) goes under
    the hyperparameters given; preset=False trains with the generic defaults.
    callback(record, policy) is called after every iteration outside the timed training;
    returning True stops training (the run can be resumed).

    resume=RUN_DIR continues the run saved there, with its saved config (a run whose env was
    made by a factory needs the same factory as env). Arguments given besides it must agree
    with that config, except the fields in RESUME_MAY_CHANGE (minipg/run/snapshot.py). The
    env's saved state is unpickled only if this user's key signed it (minipg/run/env_state.py),
    or with trust_env_state=True: for a run directory from elsewhere that you trust.

    Stopping early (minipg/run/stops.py). Ctrl-C lets the current iteration finish, saves the
    checkpoint and returns a result with interrupted=True. SIGTERM and SIGHUP do the same, then
    raise minipg.run.stops.SignalStop, a SystemExit with code 128 + the signal number (uncaught,
    the program ends as the signal asked, after the save); a second signal stops at once. These
    handlers are installed only when train runs in the main thread over Python's default
    handlers, and are restored when it returns. Any other way out -- an exception, SystemExit
    from a callback or from a handler of the program's own -- saves the last complete
    iteration first.
    """
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(record, policy), got "
                        f"{type(callback).__name__}")
    env, factory = env_arguments(env, hyperparameters)
    run_dir, resume = user_path(run_dir), user_path(resume)          # "~/runs/x"
    if not isinstance(trust_env_state, bool):
        raise TypeError(f"trust_env_state must be True or False, got {trust_env_state!r}")
    if resume is not None:
        given = dict(env_id=env, algo=algo, total_steps=total_steps, seed=seed,
                     **hyperparameters)
        if preset is False:              # no preset: like any setting, it must agree
            given["preset"] = ""
        return _resume(resume, run_dir, overwrite, callback, factory, given, trust_env_state)
    if trust_env_state:
        raise ValueError("trust_env_state applies to a resume (it allows unpickling the saved "
                         "env state of a run from elsewhere); a new run has none")
    if factory is not None and env is None:
        env = env_name(factory)
    missing = [name for name, value in (("env", env), ("algo", algo),
                                        ("total_steps", total_steps), ("seed", seed))
               if value is None]
    if missing:
        raise TypeError(f"train() needs {', '.join(missing)} (or resume=RUN_DIR)")
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
    if not isinstance(preset, bool):
        raise TypeError(f"preset must be True or False, got {preset!r}")
    if "preset" in hyperparameters:
        raise TypeError("preset is recorded by minipg: pass preset=True or False")
    module = ALGOS[algo]
    name = presets.preset_name(env, algo) if preset else None
    settings = presets.preset_for(env, algo) if name else {}
    config = make_config(module.Config, env_id=env, algo=algo, total_steps=total_steps,
                         seed=seed, preset=name or "", **{**settings, **hyperparameters})
    parts = build(config, module, factory)  # everything that can fail before the disk is used
    run = None
    try:
        run = rundir.claim(run_dir, f"{run_name(config.env_id)}-{algo}-seed{config.seed}",
                           overwrite=overwrite)
        with atomic_write(run.file("config.json"), "w", encoding="utf-8") as f:
            f.write(config.to_json())
        log = rundir.ProgressLog(run.file("progress.csv"), csv_fields(module))
    except BaseException:
        parts.env.close()
        if run is not None:
            run.release()
        raise
    return _run(config, module, parts, run, log, Progress(), None, callback)


def _resume(run_dir, other_run_dir, overwrite, callback, factory, given, trust_env_state):
    if overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run, or "
                         "replace it")
    if other_run_dir is not None and os.path.abspath(other_run_dir) != os.path.abspath(run_dir):
        raise ValueError(f"resume={run_dir!r} continues the run in that directory; "
                         f"run_dir={other_run_dir!r} names another")
    run = rundir.claim(run_dir, resume=True)
    parts = None
    try:
        saved = read_checkpoint(run.path)
        config = resumed_config(saved, given, ALGOS)
        check_run_id(saved, run)
        if config.env_factory and factory is None:
            raise ValueError(f"the run in {run.path} trained on an env made by the factory "
                             f"{config.env_factory}: pass that factory as env to resume it")
        module = ALGOS[config.algo]
        parts = build(config, module, factory)
        progress, note = restore(parts, saved, run.path, trust_env_state)
        log = rundir.ProgressLog(run.file("progress.csv"), csv_fields(module),
                                 keep_rows=progress.iteration)
        if run.run_id is None:              # a run from before the marker: marked from now on
            run.mark()
    except BaseException:
        if parts is not None:
            parts.env.close()
        run.release()
        raise
    return _run(config, module, parts, run, log, progress, note, callback)


def _run(config, module, parts, run, log, progress, note, callback):
    """The loop and its checkpoints; releases the env, the log and the run directory."""
    collector, optim = parts.collector, parts.optimizers["optim"]
    steps = collector.steps_per_collect        # None: batches of whole episodes vary in size
    num_iterations = math.ceil(config.total_steps / steps) if steps else None
    schedule = linear_schedule(config.learning_rate,
                               0.0 if config.anneal_lr else config.learning_rate)
    checkpointer, config_json = Checkpointer(run, log), config.to_json()
    resumed_from, verbose = progress.iteration, config.log_every >= 0
    if resumed_from:
        checkpointer.saved_iteration = resumed_from      # the checkpoint resumed from
    history, last_print, interrupted, request = [], -math.inf, False, StopRequest()
    snapshot, env_in_step = capture(parts, progress, config, config_json), True
    iteration, stage = progress.iteration, "start"
    try:
        _announce(config, run, collector, resumed_from, note, num_iterations, verbose)
        # One BLAS thread and freed memory kept for reuse: minipg/core/speed.py says why.
        with training_speed(), stop_after_iteration(request):
            while collector.global_step < config.total_steps:
                iteration, env_in_step, start = progress.iteration + 1, False, time.perf_counter()
                learning_rate = schedule((iteration - 1) / num_iterations if num_iterations
                                         else collector.global_step / config.total_steps)
                for optimizer in parts.optimizers.values():
                    optimizer.learning_rate = learning_rate
                stage = "collect"
                # An overflow or a NaN is caught by the checks here, whose errors say where it
                # came from (the env, the networks, the loss): numpy's warnings would only
                # print first, and blame a line of minipg.
                with np.errstate(all="ignore"):
                    batch = collector.collect()
                    stage = "update"
                    raise_if_non_finite(**batch.network_outputs())
                    stats = _update(module, batch, parts, optim, config)
                    raise_if_non_finite(**{f"loss {k}": v for k, v in stats.items()})
                progress.train_seconds += time.perf_counter() - start
                record = _record(progress, iteration, batch, collector, learning_rate, stats)
                history.append(record)
                stage = "log"
                run.check_lock()                  # this process still owns the directory
                log.write(record)
                snapshot, env_in_step = capture(parts, progress, config, config_json), True
                stage = "checkpoint"
                last = collector.global_step >= config.total_steps
                if not last and checkpointer.due(config):
                    checkpointer.save(snapshot, _env_state_of(parts, env_in_step))
                if verbose and (progress.train_seconds - last_print >= config.log_every or last):
                    last_print = progress.train_seconds
                    say(progress_line(record, config.total_steps))
                stage = "callback"
                if callback is not None and callback(record, parts.policy):
                    break
                if request.pressed:
                    interrupted = True
                    break
            stage = "checkpoint"                  # still under the handlers: a second signal
            if checkpointer.saved_iteration != progress.iteration:     # stops this save at once
                checkpointer.save(snapshot, _env_state_of(parts, env_in_step))
        interrupted = interrupted or request.pressed      # a signal during that save
    except (KeyboardInterrupt, SignalStop):     # a second signal, or one raised by a callback
        interrupted = True
        checkpointer.save_unless_saved(snapshot, _env_state_of(parts, env_in_step))
    except rundir.LockLost:
        raise                                   # another process owns the directory now
    except Exception as error:
        raise stopped(error, stage, iteration, collector, checkpointer, snapshot,
                      _env_state_of(parts, env_in_step), run.path) from error
    except BaseException as exit_:              # SystemExit, GeneratorExit, ...: save, go on out
        say(f"stopped by {type(exit_).__name__} at iteration {iteration}; "
            + save_last_state(checkpointer, snapshot, _env_state_of(parts, env_in_step),
                              run.path))
        raise
    finally:
        failure = _release(log, parts.env, run)
    if failure is not None:
        raise failure
    signum = request.signum if interrupted else None
    return _finish(config, parts, run, checkpointer, history, interrupted, resumed_from, verbose,
                   signum)


def _release(log, env, run):
    """Close the log and the env and unlock the run directory, all three whatever fails; returns
    the first error (raised by the caller only when nothing else is, so that the error that
    stopped training is the one reported), or None."""
    failure = None
    for close in (log.close, env.close, run.release):
        try:
            close()
        except Exception as error:
            failure = failure or error
    return failure


def _update(module, batch, parts, optim, config):
    """The algorithm's update, then the one check per iteration that its steps left the
    parameters of the policy and the value function finite (the optimizer does not scan them
    after each step): a FloatingPointError in stage "update", whose advice is a lower
    learning_rate (minipg/core/optim.py, params_stay_finite)."""
    params = {"policy params": parts.policy.params}
    if parts.value_fn is not None:
        params["value function params"] = parts.value_fn.params
    with params_stay_finite(**params):
        return module.update(batch, parts.policy, parts.value_fn, optim, config,
                             parts.update_rng)


def _record(progress, iteration, batch, collector, learning_rate, stats):
    """The iteration's row of progress.csv (and of result.history): counters, the mean return
    and length of the last RECENT_EPISODES episodes, the learning rate and the update's stats."""
    progress.iteration = iteration
    progress.recent_returns.extend(batch.episode_returns)
    progress.recent_lengths.extend(batch.episode_lengths)
    progress.episodes += len(batch.episode_returns)
    return {"iteration": iteration, "env_steps": collector.global_step,
            "wall_clock": progress.train_seconds, "episodes": progress.episodes,
            "mean_return": _mean(progress.recent_returns),
            "mean_length": _mean(progress.recent_lengths),
            "learning_rate": learning_rate, **stats}


def _env_state_of(parts, env_in_step):
    """The env to save beside a checkpoint: only in step with the snapshot (between
    iterations), and only for a collector whose episodes run on across batches."""
    return parts.env if env_in_step and parts.collector.keeps_env_state else None


def _announce(config, run, collector, resumed_from, note, num_iterations, verbose):
    if resumed_from:
        if verbose:
            of = f" of {num_iterations}" if num_iterations else ""
            say(f"minipg: resuming {run.path} from iteration {resumed_from}{of} "
                f"(env step {collector.global_step:,})")
        if note:
            say(f"minipg: the environment's state is not restored ({note}); resuming with "
                "fresh episodes, so the numbers will differ from an uninterrupted run")
        return
    if not verbose:
        return
    if num_iterations:
        batches = (f"{num_iterations} iterations of {config.num_envs} envs x "
                   f"{config.num_steps} steps")
    elif ALGOS[config.algo].COLLECTS == "episodes":
        batches = (f"{config.num_envs} whole episodes per update (at most {config.num_steps} "
                   f"steps each), {config.total_steps:,} transitions")
    else:
        batches = (f"groups of {config.group_size} episodes from {config.num_groups} reset "
                   f"seeds per update, {config.total_steps:,} transitions")
    say(f"minipg {config.algo} on {config.env_id}: {batches}, seed {config.seed}; logging "
        f"to {run.path}")
    say(f"minipg: {presets.header(config)}")


def _finish(config, parts, run, checkpointer, history, interrupted, resumed_from, verbose,
            signum=None):
    """The TrainResult; after a run that was not interrupted, the final evaluation. A run
    stopped by SIGTERM or SIGHUP (signum) raises SignalStop instead, once it has said so."""
    if interrupted:
        how = ("interrupted" if signum in (None, signal.SIGINT)
               else f"{signal_name(signum)}: stopped")
        say(f"{how}; the checkpoint of iteration {checkpointer.saved_iteration} is saved in "
            f"{checkpointer.path}; {resume_hint(run.path)}")
        if signum not in (None, signal.SIGINT):
            raise SignalStop(signum, checkpointer.path, run.path)
    result = TrainResult(checkpointer.path, history, config, run.path, parts.policy,
                         parts.value_fn, interrupted=interrupted, resumed_from=resumed_from)
    if config.eval_episodes and not interrupted:
        evaluation = run_episodes(parts.policy, parts.factory or config.env_id,
                                  config.eval_episodes, seed=config.seed + 1,
                                  max_episode_steps=config.eval_max_episode_steps)
        result.evaluation = evaluation.returns
        if verbose:
            note = evaluation.limit_note()
            say(f"evaluation over {config.eval_episodes} episodes of the stochastic policy: "
                f"{evaluation.returns.mean():.1f} +- {evaluation.returns.std():.1f}"
                + (f" ({note})" if note else ""))
    return result


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


def progress_line(record, total_steps):
    """The terminal's line for an iteration's record."""
    parts = [f"step {record['env_steps']:>9,}/{total_steps:,}",
             f"{record['env_steps'] / max(record['wall_clock'], 1e-9):>9,.0f} steps/s",
             f"return {record['mean_return']:7.1f}"]
    for key, label in (("policy_loss", "pi_loss"), ("value_loss", "v_loss"),
                       ("entropy", "entropy"), ("approx_kl", "kl"), ("kl", "kl"),
                       ("frac_all_equal", "all-equal groups")):
        if key in record:
            parts.append(f"{label} {record[key]:.4g}")
    return " | ".join(parts)

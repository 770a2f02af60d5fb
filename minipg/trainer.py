"""The training loop: collect -> advantages -> update -> log / checkpoint.

    for each iteration:
        rollout = collector.collect()             (T, N) arrays from the vector env
        stats   = algo.update(rollout, ...)       advantages and gradient steps (minipg/algos/)
        log: env steps, steps/s, mean return of recent episodes, losses
        every checkpoint_every seconds: checkpoint

`train` returns a TrainResult whose `checkpoint` (.npz: policy, value function, config, and the
training state) is what `minipg eval`, `minipg.load` and a resume read. One seed fixes
everything, so the same call gives the same progress.csv bit for bit on the same machine
(wall-clock lives in result.history only).

Nothing is lost. After every iteration the trainer keeps a snapshot of the whole training state
in memory (parameters, optimizer state, every random generator's state, the collector's
episodes in progress, counters): a few array copies. A checkpoint writes the latest snapshot, so
it always holds a consistent, good state, even when training stops in the middle of an
iteration -- an exception from the env, a non-finite value, a failed write. The first Ctrl-C
lets the current iteration finish (a second one stops at once).

Resume. `train(resume=run_dir)` (`minipg train --resume RUN_DIR`) rebuilds everything from the
checkpoint and, where the env's state was saved (minipg.checkpoint), continues bit for bit: a
run stopped and resumed writes the same progress.csv and final parameters as one never stopped.
"""
import contextlib
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from minipg import checkpoint as ckpt
from minipg import grpo_trainer, policies, presets, rundir
from minipg.algos import a2c, ppo, reinforce, trpo
from minipg.checkpoint import load, load_config, save_checkpoint  # noqa: F401  (re-exported)
from minipg.checks import raise_if_non_finite
from minipg.config import make_config
from minipg.envs import (check_spaces, env_arguments, env_name, evaluate,  # noqa: F401
                         make_env, run_episodes)
from minipg.noise import ColouredNoise
from minipg.normalize import RewardScaler
from minipg.optim import Adam, linear_schedule
from minipg.rollout import EnvError, RolloutCollector
from minipg.snapshot import (RESUME_MAY_CHANGE, Checkpointer, Progress,  # noqa: F401
                             capture, restore, resumed_config)
from minipg.speed import training_speed

ALGOS = {"reinforce": reinforce, "a2c": a2c, "ppo": ppo, "trpo": trpo}
EPISODE_ALGOS = {"grpo": grpo_trainer}
"""Algorithms with a loop of their own over whole episodes (same run directory, no resume)."""
ALL_ALGOS = {**ALGOS, **EPISODE_ALGOS}
CSV_FIELDS = ("iteration", "env_steps", "episodes", "mean_return", "mean_length",
              "learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
              "grad_norm", "kl", "backtrack_step", "expected_improvement", "actual_improvement")


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
    """True when Ctrl-C stopped training early (the checkpoint holds the state at that point)."""
    resumed_from: int = 0
    """The iteration this call continued from (0: a fresh run)."""


def make_policy(env, config, rng):
    """CategoricalPolicy for a Discrete action space, GaussianPolicy for a Box."""
    check_spaces(env, config.env_id)
    obs_space, action_space = env.single_observation_space, env.single_action_space
    obs_dim = obs_space.shape[0]
    if isinstance(action_space, gym.spaces.Discrete):
        return policies.CategoricalPolicy(obs_dim, int(action_space.n), config.hidden_sizes,
                                          config.activation, rng, config.dtype,
                                          config.norm_obs, config.clip_obs)
    return policies.GaussianPolicy(
        obs_dim, action_space.shape[0], config.hidden_sizes, config.activation,
        log_std_init=config.log_std_init, action_low=action_space.low,
        action_high=action_space.high, rng=rng, dtype=config.dtype, norm_obs=config.norm_obs,
        clip_obs=config.clip_obs)


@dataclass
class _Parts:
    """Everything a run trains or steps, built from the config and its seed."""
    env: object
    policy: object
    value_fn: object
    optimizers: dict
    """{name: optimizer}, saved and restored by name (optim/<name>/... in the checkpoint)."""
    collector: object
    update_rng: object
    factory: object = None
    """The callable that made the env, or None for a registered id."""


def _build(config, module, factory=None):
    """The parts of a run; the env from `factory` when the run's env is made by one."""
    # One seed, independent streams: weights of each network, action sampling, minibatch order.
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    policy_seed, value_seed, sample_seed, update_seed = seeds
    env = make_env(factory or config.env_id, config.num_envs, config.vectorization)
    try:
        policy = make_policy(env, config, np.random.default_rng(policy_seed))
        # A2C and PPO always have a critic; REINFORCE only for its "baseline" estimator.
        uses_critic = getattr(module, "uses_critic", lambda config: True)(config)
        value_fn = (policies.ValueFunction(policy.obs_dim, config.hidden_sizes,
                                           config.activation, np.random.default_rng(value_seed),
                                           config.dtype)
                    if uses_critic else None)
        # Both networks' parameters in one vector (policy first): one Adam pass updates both.
        # An algorithm that moves its policy itself names the optimizer's share: optimized_params.
        optimized_params = getattr(module, "optimized_params", None)
        params = (optimized_params(policy, value_fn) if optimized_params
                  else policies.join_params(policy, value_fn) if value_fn else policy.params)
        optimizers = {"optim": Adam(params, config.learning_rate, eps=1e-5)}
        reward_scaler = (RewardScaler(config.num_envs, config.gamma, config.clip_reward)
                         if config.norm_reward else None)
        noise = None
        if config.noise_correlation > 0:
            if policy.kind != "gaussian":
                raise ValueError(f"noise_correlation applies to continuous (Box) actions; "
                                 f"{config.env_id} has {env.single_action_space}")
            noise = ColouredNoise(config.num_envs, policy.action_dim, config.noise_correlation)
        collector = RolloutCollector(env, policy, value_fn, config.num_steps,
                                     np.random.default_rng(sample_seed), seed=config.seed,
                                     reward_scaler=reward_scaler, noise=noise)
    except BaseException:
        env.close()
        raise
    return _Parts(env, policy, value_fn, optimizers, collector,
                  np.random.default_rng(update_seed), factory)


# ------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------

def train(env=None, algo=None, total_steps=None, seed=None, run_dir=None, callback=None,
          resume=None, overwrite=False, preset=True, **hyperparameters):
    """Train `algo` on `env` for `total_steps` env steps; returns a TrainResult.

    env is a registered gymnasium id or a factory: a callable returning a gymnasium.Env,
    called once per parallel env (minipg.envs.make_env); a factory run is named after the
    factory, or after env_id=NAME when given. hyperparameters are the fields of the
    algorithm's Config (minipg/algos/<algo>.py), e.g. num_envs=8, learning_rate=1e-3. run_dir
    (default runs/<env>-<algo>-seed<seed>, or the first free runs/<env>-<algo>-seed<seed>-<k>)
    receives config.json, progress.csv and checkpoint.npz; an existing run_dir that holds files
    is refused unless overwrite=True. The preset of (env, algo) (minipg/presets.py) goes under
    the hyperparameters given; preset=False trains with the generic defaults.
    callback(record, policy) is called after every iteration outside the timed training;
    returning True stops training (the run can be resumed).

    algo="grpo" runs GRPO's own loop over groups of episodes (minipg/grpo_trainer.py) into the
    same kind of run directory: a registered env id only, no preset, no resume.

    resume=RUN_DIR continues the run saved there, with its saved config (a run whose env was
    made by a factory needs the same factory as env). Arguments given besides it must agree
    with that config, except the fields in RESUME_MAY_CHANGE.
    """
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(record, policy), got "
                        f"{type(callback).__name__}")
    env, factory = env_arguments(env, hyperparameters)
    if resume is not None:
        return _resume(resume, run_dir, overwrite, callback, factory,
                       dict(env_id=env, algo=algo, total_steps=total_steps, seed=seed,
                            **hyperparameters))
    if factory is not None and env is None:
        env = env_name(factory)
    missing = [name for name, value in (("env", env), ("algo", algo),
                                        ("total_steps", total_steps), ("seed", seed))
               if value is None]
    if missing:
        raise TypeError(f"train() needs {', '.join(missing)} (or resume=RUN_DIR)")
    if algo not in ALL_ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALL_ALGOS)}, got {algo!r}")
    if not isinstance(preset, bool):
        raise TypeError(f"preset must be True or False, got {preset!r}")
    if "preset" in hyperparameters:
        raise TypeError("preset is recorded by minipg: pass preset=True or False")
    if algo in EPISODE_ALGOS:               # no presets for these (yet)
        return EPISODE_ALGOS[algo].train(env, total_steps, seed, run_dir, callback, overwrite,
                                         factory, **hyperparameters)
    module = ALGOS[algo]
    name = presets.preset_name(env, algo) if preset else None
    settings = presets.preset_for(env, algo) if name else {}
    config = make_config(module.Config, env_id=env, algo=algo, total_steps=total_steps,
                         seed=seed, preset=name or "", **{**settings, **hyperparameters})
    parts = _build(config, module, factory)  # everything that can fail before the disk is used
    run = None
    try:
        run = rundir.claim(run_dir, f"{config.env_id}-{algo}-seed{config.seed}",
                           overwrite=overwrite)
        with ckpt.atomic_write(run.file("config.json"), "w", encoding="utf-8") as f:
            f.write(config.to_json())
        log = rundir.ProgressLog(run.file("progress.csv"), CSV_FIELDS)
    except BaseException:
        parts.env.close()
        if run is not None:
            run.release()
        raise
    return _run(config, module, parts, run, log, Progress(), None, callback)


def _resume(run_dir, other_run_dir, overwrite, callback, factory, given):
    if overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run, or "
                         "replace it")
    if other_run_dir is not None and os.path.abspath(other_run_dir) != os.path.abspath(run_dir):
        raise ValueError(f"resume={run_dir!r} continues the run in that directory; "
                         f"run_dir={other_run_dir!r} names another")
    run = rundir.claim(run_dir, resume=True)
    parts = None
    try:
        saved = ckpt.read_checkpoint(run.path)
        config = resumed_config(saved, given, ALGOS)
        if config.env_factory and factory is None:
            raise ValueError(f"the run in {run.path} trained on an env made by the factory "
                             f"{config.env_factory}: pass that factory as env to resume it")
        module = ALGOS[config.algo]
        parts = _build(config, module, factory)
        progress, note = restore(parts, saved, run.path)
        log = rundir.ProgressLog(run.file("progress.csv"), CSV_FIELDS,
                                 keep_rows=progress.iteration)
    except BaseException:
        if parts is not None:
            parts.env.close()
        run.release()
        raise
    return _run(config, module, parts, run, log, progress, note, callback)


def _run(config, module, parts, run, log, progress, note, callback):
    """The loop and its checkpoints; releases the env, the log and the run directory."""
    policy, value_fn, collector = parts.policy, parts.value_fn, parts.collector
    batch = config.num_envs * config.num_steps
    num_iterations = math.ceil(config.total_steps / batch)
    schedule = linear_schedule(config.learning_rate, 0.0 if config.anneal_lr
                               else config.learning_rate)
    checkpointer = Checkpointer(run, log)
    config_json = config.to_json()
    resumed_from = progress.iteration
    history, last_print, interrupted = [], -math.inf, False
    verbose = config.log_every >= 0
    if resumed_from:
        checkpointer.saved_iteration = resumed_from
        if verbose:
            print(f"minipg: resuming {run.path} from iteration {resumed_from} of "
                  f"{num_iterations} (env step {collector.global_step:,})", flush=True)
        if note:
            print(f"minipg: the environment's state is not restored ({note}); resuming with "
                  "fresh episodes, so the numbers will differ from an uninterrupted run",
                  flush=True)
    elif verbose:
        print(f"minipg {config.algo} on {config.env_id}: {num_iterations} iterations of "
              f"{config.num_envs} envs x {config.num_steps} steps, seed {config.seed}; "
              f"logging to {run.path}", flush=True)
        print(f"minipg: {presets.header(config)}", flush=True)

    snapshot, env_in_step = capture(parts, progress, config, config_json), True
    iteration, stage = progress.iteration, "start"
    try:
        # One BLAS thread and freed memory kept for reuse: minipg/speed.py says why.
        with training_speed(), _ctrl_c_after_iteration() as ctrl_c:
            for iteration in range(progress.iteration + 1, num_iterations + 1):
                env_in_step = False
                start = time.perf_counter()
                learning_rate = schedule((iteration - 1) / num_iterations)
                for optimizer in parts.optimizers.values():
                    optimizer.learning_rate = learning_rate
                stage = "collect"
                rollout = collector.collect(reset=module.RESET_ENVS_EACH_ROLLOUT)
                stage = "update"
                raise_if_non_finite(values=rollout.values, next_values=rollout.next_values,
                                    log_prob=rollout.log_prob)
                stats = module.update(rollout, policy, value_fn, parts.optimizers["optim"],
                                      config, parts.update_rng)
                raise_if_non_finite(**{f"loss {k}": v for k, v in stats.items()})
                progress.train_seconds += time.perf_counter() - start

                progress.iteration = iteration
                progress.recent_returns.extend(rollout.episode_returns)
                progress.recent_lengths.extend(rollout.episode_lengths)
                progress.episodes += len(rollout.episode_returns)
                record = {"iteration": iteration, "env_steps": collector.global_step,
                          "wall_clock": progress.train_seconds, "episodes": progress.episodes,
                          "mean_return": _mean(progress.recent_returns),
                          "mean_length": _mean(progress.recent_lengths),
                          "learning_rate": learning_rate, **stats}
                history.append(record)
                stage = "log"
                log.write(record)
                snapshot, env_in_step = capture(parts, progress, config, config_json), True
                stage = "checkpoint"
                if iteration < num_iterations and checkpointer.due(config):
                    checkpointer.save(snapshot, parts.env)
                if verbose and (progress.train_seconds - last_print >= config.log_every
                                or iteration == num_iterations):
                    last_print = progress.train_seconds
                    print(_progress_line(record, config.total_steps), flush=True)
                stage = "callback"
                if callback is not None and callback(record, policy):
                    break
                if ctrl_c.pressed:
                    interrupted = True
                    break
        stage = "checkpoint"
        if checkpointer.saved_iteration != progress.iteration:
            checkpointer.save(snapshot, parts.env)
    except KeyboardInterrupt:
        interrupted = True
        checkpointer.save_unless_saved(snapshot, parts.env if env_in_step else None)
    except Exception as error:
        raise _stopped(error, stage, iteration, collector, checkpointer, snapshot,
                       parts.env if env_in_step else None, run.path) from error
    finally:
        log.close()
        parts.env.close()
        run.release()

    if interrupted:
        print(f"interrupted; the checkpoint of iteration {checkpointer.saved_iteration} is saved "
              f"in {checkpointer.path}; continue with: minipg train --resume {run.path}",
              flush=True)
    result = TrainResult(checkpointer.path, history, config, run.path, policy, value_fn,
                         interrupted=interrupted, resumed_from=resumed_from)
    if config.eval_episodes and not interrupted:
        evaluation = run_episodes(policy, parts.factory or config.env_id, config.eval_episodes,
                                  seed=config.seed + 1,
                                  max_episode_steps=config.eval_max_episode_steps)
        result.evaluation = evaluation.returns
        if verbose:
            note = evaluation.limit_note()
            print(f"evaluation over {config.eval_episodes} episodes of the stochastic policy: "
                  f"{evaluation.returns.mean():.1f} +- {evaluation.returns.std():.1f}"
                  + (f" ({note})" if note else ""))
    return result


def _stopped(error, stage, iteration, collector, checkpointer, snapshot, env, run_dir):
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
                    f"{checkpointer.path}; continue with: minipg train --resume {run_dir}")
    except Exception as save_error:
        held = ("no checkpoint" if checkpointer.saved_iteration is None
                else f"the checkpoint of iteration {checkpointer.saved_iteration}")
        message += (f"; the checkpoint could not be saved either ({type(save_error).__name__}: "
                    f"{save_error}); {run_dir} holds {held}")
    try:
        stopped = type(error)(message)
        if str(stopped) != message:          # a type that formats its arguments its own way
            stopped = RuntimeError(message)
    except Exception:
        stopped = RuntimeError(message)
    return stopped


@contextlib.contextmanager
def _ctrl_c_after_iteration():
    """The first Ctrl-C sets .pressed (the loop stops after the current iteration, so the
    checkpoint holds a state between iterations); a second raises KeyboardInterrupt at once.

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


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


def _progress_line(record, total_steps):
    parts = [f"step {record['env_steps']:>9,}/{total_steps:,}",
             f"{record['env_steps'] / max(record['wall_clock'], 1e-9):>9,.0f} steps/s",
             f"return {record['mean_return']:7.1f}"]
    for key, label in (("policy_loss", "pi_loss"), ("value_loss", "v_loss"),
                       ("entropy", "entropy"), ("approx_kl", "kl"), ("kl", "kl")):
        if key in record:
            parts.append(f"{label} {record[key]:.4g}")
    return " | ".join(parts)

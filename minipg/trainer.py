"""The training loop: collect -> advantages -> update -> log / checkpoint.

    for each iteration:
        rollout = collector.collect()             (T, N) arrays from the vector env
        stats   = algo.update(rollout, ...)       advantages and gradient steps (minipg/algos/)
        log: env steps, steps/s, mean return of recent episodes, losses

`train` returns a TrainResult whose `checkpoint` (.npz: policy, value function, config) is what
`minipg eval` and `minipg.load` read. One seed fixes everything, so the same call gives the same
progress.csv bit for bit on the same machine (wall-clock lives in result.history only).
"""
import csv
import json
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

from minipg import policies
from minipg.algos import a2c, ppo, reinforce
from minipg.checks import raise_if_non_finite
from minipg.config import config_from_dict, make_config
from minipg.optim import Adam, linear_schedule
from minipg.rollout import RolloutCollector

ALGOS = {"reinforce": reinforce, "a2c": a2c, "ppo": ppo}
CSV_FIELDS = ("iteration", "env_steps", "episodes", "mean_return", "mean_length",
              "learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
              "grad_norm")
RECENT_EPISODES = 20


@dataclass
class TrainResult:
    checkpoint: str
    """Path of the saved .npz (policy, value function, full config)."""
    history: list
    """One dict per iteration: env_steps, wall_clock (training seconds), mean_return, losses."""
    config: object
    run_dir: str
    policy: object = field(repr=False, default=None)
    value_fn: object = field(repr=False, default=None)
    evaluation: object = None
    """Returns of the final evaluation episodes (config.eval_episodes > 0), else None."""
    interrupted: bool = False
    """True when Ctrl-C stopped training early (the checkpoint holds the policy at that point)."""


def make_env(env_id, num_envs):
    """A gymnasium VectorEnv: the NumPy-vectorized one where the env has it, else sync."""
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    except Exception:
        # Most envs register no vector entry point; N copies stepped in turn always work.
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")


def make_policy(env, config, rng):
    """CategoricalPolicy for a Discrete action space, GaussianPolicy for a Box."""
    obs_space, action_space = env.single_observation_space, env.single_action_space
    if len(obs_space.shape) != 1:
        raise ValueError(f"minipg's MLP policies need flat observations; {config.env_id} has "
                         f"observation shape {obs_space.shape}")
    obs_dim = obs_space.shape[0]
    if isinstance(action_space, gym.spaces.Discrete):
        return policies.CategoricalPolicy(obs_dim, int(action_space.n), config.hidden_sizes,
                                          config.activation, rng, config.dtype)
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return policies.GaussianPolicy(
            obs_dim, action_space.shape[0], config.hidden_sizes, config.activation,
            log_std_init=config.log_std_init, action_low=action_space.low,
            action_high=action_space.high, rng=rng, dtype=config.dtype)
    raise ValueError(f"unsupported action space {action_space} for {config.env_id}: minipg "
                     "handles Discrete and 1-d Box actions")


def train(env_id, algo, total_steps, seed, run_dir=None, callback=None, **hyperparameters):
    """Train `algo` on `env_id` for `total_steps` env steps; returns a TrainResult.

    hyperparameters are the fields of the algorithm's Config (minipg/algos/<algo>.py), e.g.
    num_envs=8, learning_rate=1e-3. run_dir (default runs/<env>-<algo>-seed<seed>, never
    overwritten) receives config.json, progress.csv and checkpoint.npz. callback(record, policy)
    is called after every iteration outside the timed training; returning True stops training.
    """
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
    module = ALGOS[algo]
    config = make_config(module.Config, env_id=env_id, algo=algo, total_steps=total_steps,
                         seed=seed, **hyperparameters)

    # One seed, independent streams: weights of each network, action sampling, minibatch order.
    policy_seed, value_seed, sample_seed, update_seed = np.random.SeedSequence(seed).spawn(4)
    try:
        env = make_env(env_id, config.num_envs)
    except gym.error.Error as error:
        raise ValueError(f"env_id {env_id!r} cannot be made: {error}") from error
    try:
        policy = make_policy(env, config, np.random.default_rng(policy_seed))
    except ValueError:
        env.close()
        raise
    run_dir = _new_run_dir(run_dir, config)     # only once everything before could be built
    # A2C and PPO always have a critic; REINFORCE only for its "baseline" estimator.
    uses_critic = getattr(module, "uses_critic", lambda config: True)(config)
    value_fn = (policies.ValueFunction(policy.obs_dim, config.hidden_sizes, config.activation,
                                       np.random.default_rng(value_seed), config.dtype)
                if uses_critic else None)
    # Both networks' parameters in one vector (policy first): one Adam pass updates them all.
    params = policies.join_params(policy, value_fn) if value_fn else policy.params
    optim = Adam(params, config.learning_rate, eps=1e-5)
    schedule = linear_schedule(config.learning_rate, 0.0 if config.anneal_lr
                               else config.learning_rate)
    collector = RolloutCollector(env, policy, value_fn, config.num_steps,
                                 np.random.default_rng(sample_seed), seed=seed)
    update_rng = np.random.default_rng(update_seed)

    batch = config.num_envs * config.num_steps
    num_iterations = math.ceil(config.total_steps / batch)
    recent_returns = deque(maxlen=RECENT_EPISODES)
    recent_lengths = deque(maxlen=RECENT_EPISODES)
    history, episodes, train_seconds, last_print = [], 0, 0.0, -math.inf
    interrupted = False
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        f.write(config.to_json())
    csv_file = open(os.path.join(run_dir, "progress.csv"), "w", newline="")
    writer = csv.DictWriter(csv_file, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    if config.log_every >= 0:
        print(f"minipg {algo} on {env_id}: {num_iterations} iterations of {config.num_envs} envs "
              f"x {config.num_steps} steps, seed {seed}; logging to {run_dir}", flush=True)
    try:
        # BLAS threads buy nothing on these small matrices and, when another process is busy,
        # cost 3-20x (docs/design.md); the thread count also changes summation order, so one thread
        # is also what makes a seed reproduce bit for bit.
        with threadpool_limits(limits=1, user_api="blas"):
            for iteration in range(1, num_iterations + 1):
                start = time.perf_counter()
                learning_rate = schedule((iteration - 1) / num_iterations)
                optim.learning_rate = learning_rate
                rollout = collector.collect(reset=module.RESET_ENVS_EACH_ROLLOUT)
                try:
                    raise_if_non_finite(rewards=rollout.rewards, values=rollout.values,
                                        next_values=rollout.next_values, log_prob=rollout.log_prob)
                    stats = module.update(rollout, policy, value_fn, optim, config, update_rng)
                    raise_if_non_finite(**{f"loss {k}": v for k, v in stats.items()})
                except FloatingPointError as error:   # the rollout, a gradient or parameter step,
                    raise FloatingPointError(          # or a loss: say when it happened
                        f"{error} at iteration {iteration} (env step {collector.global_step}); "
                        "try a lower learning_rate or max_grad_norm") from None
                train_seconds += time.perf_counter() - start

                recent_returns.extend(rollout.episode_returns)
                recent_lengths.extend(rollout.episode_lengths)
                episodes += len(rollout.episode_returns)
                record = {"iteration": iteration, "env_steps": collector.global_step,
                          "wall_clock": train_seconds, "episodes": episodes,
                          "mean_return": _mean(recent_returns),
                          "mean_length": _mean(recent_lengths),
                          "learning_rate": learning_rate, **stats}
                history.append(record)
                writer.writerow(record)
                if config.log_every >= 0 and (train_seconds - last_print >= config.log_every
                                              or iteration == num_iterations):
                    last_print = train_seconds
                    print(_progress_line(record, config.total_steps), flush=True)
                if callback is not None and callback(record, policy):
                    break
    except KeyboardInterrupt:
        # Nothing lost: the CSV so far is kept and the current policy is still checkpointed.
        interrupted = True
        print(f"interrupted at env step {collector.global_step:,}; saving the checkpoint",
              flush=True)
    finally:
        csv_file.close()
        env.close()

    checkpoint = os.path.join(run_dir, "checkpoint.npz")
    save_checkpoint(checkpoint, policy, value_fn, config)
    result = TrainResult(checkpoint, history, config, run_dir, policy, value_fn,
                         interrupted=interrupted)
    if config.eval_episodes and not interrupted:
        result.evaluation = evaluate(policy, env_id, config.eval_episodes, seed=seed + 1)
        print(f"evaluation over {config.eval_episodes} episodes of the stochastic policy: "
              f"{result.evaluation.mean():.1f} +- {result.evaluation.std():.1f}")
    return result


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


def _progress_line(record, total_steps):
    parts = [f"step {record['env_steps']:>9,}/{total_steps:,}",
             f"{record['env_steps'] / max(record['wall_clock'], 1e-9):>9,.0f} steps/s",
             f"return {record['mean_return']:7.1f}"]
    for key, label in (("policy_loss", "pi_loss"), ("value_loss", "v_loss"),
                       ("entropy", "entropy"), ("approx_kl", "kl")):
        if key in record:
            parts.append(f"{label} {record[key]:.4g}")
    return " | ".join(parts)


def _new_run_dir(run_dir, config):
    """Create the run directory; a default name gets a suffix rather than overwrite a run."""
    if run_dir is None:
        base = os.path.join("runs", f"{config.env_id}-{config.algo}-seed{config.seed}")
        run_dir, k = base, 1
        while os.path.exists(run_dir):
            run_dir, k = f"{base}-{k}", k + 1
    os.makedirs(run_dir, exist_ok=True)
    return run_dir


def save_checkpoint(path, policy, value_fn, config):
    """One .npz: the policy under "policy/", the value function under "value/", the config."""
    arrays = policy.state("policy/")
    if value_fn is not None:
        arrays.update(value_fn.state("value/"))
    arrays["config"] = np.array(config.to_json())
    np.savez(path, **arrays)


def load(path):
    """The policy saved in a checkpoint; `policy.act(obs, deterministic=False, rng=None)`."""
    with np.load(path) as data:
        return policies.from_state(data, "policy/")


def load_config(path):
    """The training config saved in a checkpoint."""
    with np.load(path) as data:
        values = json.loads(str(data["config"]))
    return config_from_dict(ALGOS[values["algo"]].Config, values)


def evaluate(policy, env_id, episodes, seed=0, deterministic=False, rng=None):
    """Undiscounted returns of `episodes` episodes, one per env of a vector env run together."""
    env = make_env(env_id, episodes)
    rng = np.random.default_rng(seed) if rng is None else rng
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, bool)          # each env counts only its first episode
    with threadpool_limits(limits=1, user_api="blas"):
        while running.any():
            actions = policy.act(obs, deterministic=deterministic, rng=rng)
            obs, rewards, terminated, truncated, _ = env.step(actions)
            returns += np.where(running, rewards, 0.0)
            running &= ~(terminated | truncated)
    env.close()
    return returns


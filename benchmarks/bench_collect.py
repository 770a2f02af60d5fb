"""Does training keep up with the environment? Training and collection steps/s against the bare env.

For each env, in one process, in alternating rounds (so that a change in the machine's load hits
every column alike), with one BLAS thread:

    bare env      one env (gymnasium.make(id)) stepped with random actions: the most one env
                  gives in a Python process, before any policy or learning
    bare vec env  the vector env training steps (minipg.envs.make.make_env with the preset's
                  num_envs and vectorization), stepped with random actions
    collect       minipg's RolloutCollector.collect() alone with the preset: the policy acting,
                  the observation and reward statistics, the bookkeeping; no update
    train         minipg.train with the preset (collection and updates), env steps per second of
                  the whole train() call (building the run and writing its files included)

and the ratios train / bare env and collect / bare vec env. Each column's figure is the median
over the rounds; each round's ratio uses that round's own pair. Env steps count every env step
(the one reset step per episode included), as minipg counts them.

    python benchmarks/bench_collect.py                         # CartPole-v1 and HalfCheetah-v5
    python benchmarks/bench_collect.py --envs HalfCheetah-v5 --vectorization async
    python benchmarks/bench_collect.py --envs HalfCheetah-v5 --hp num_steps=2048 \
        num_minibatches=32 update_epochs=10 hidden_sizes=64,64 activation=tanh   # another update
    python benchmarks/bench_collect.py --smoke                 # seconds: CI's check that it runs

Seconds are this process's CPU time (time.process_time; one BLAS thread), which a machine shared
with other processes disturbs far less than wall-clock (time waiting for a core is not counted);
with --vectorization async the envs step in other processes, so wall-clock is used instead.

HalfCheetah-v5 needs MuJoCo (pip install -e ".[envs]"); without it that env is skipped with a
line saying so. Target: HalfCheetah-v5 training at >= 0.35x the bare env. What training costs
beside collection is the update, which the preset sets: HalfCheetah-v5's (rl-zoo's: 256x256
networks, 20 epochs on every 512 steps: 20 rows through both networks per env step) does about
26 times the multiply-adds per env step of CleanRL's MuJoCo settings (64x64 networks, 10 epochs
on every 2048 steps: 10 rows per env step), the preset when the target was set; --hp measures
any other update.
"""
import argparse
import os
import sys
import tempfile
import time

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

import minipg
from minipg.algos import ppo
from minipg.algos.config import make_config
from minipg.envs.make import make_env
from minipg.run import presets
from minipg.run.build import build

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cartpole import parse_hyperparameters  # noqa: E402  (beside this script)

TARGETS = {"HalfCheetah-v5": 0.35}
clock = time.process_time            # wall-clock (time.perf_counter) with --vectorization async
TRAIN_STEPS = {"CartPole-v1": 32_768, "HalfCheetah-v5": 20_480}


def available(env_id):
    """None if gymnasium can make env_id here, else the reason it cannot."""
    try:
        gym.make(env_id).close()
    except Exception as error:          # a missing optional dependency (mujoco, box2d)
        return f"{type(error).__name__}: {error}"
    return None


def bare_env(env_id, seconds):
    """Steps/s of one env with random actions (resets included)."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    steps, start = 0, clock()
    while clock() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    rate = steps / (clock() - start)
    env.close()
    return rate


def bare_vector_env(env_id, num_envs, vectorization, seconds):
    """Steps/s (counted over the envs) of the vector env training makes, random actions."""
    env = make_env(env_id, num_envs, vectorization)
    env.action_space.seed(0)
    env.reset(seed=0)
    steps, start = 0, clock()
    while clock() - start < seconds:
        env.step(env.action_space.sample())
        steps += num_envs
    rate = steps / (clock() - start)
    env.close()
    return rate


def config_for(env_id, vectorization, hyperparameters, total_steps=100_000):
    settings = {**presets.preset_for(env_id, "ppo"), **hyperparameters}
    if vectorization:
        settings["vectorization"] = vectorization
    return make_config(ppo.Config, env_id=env_id, algo="ppo", total_steps=total_steps,
                       **settings)


def collect_only(config, seconds):
    """Steps/s of RolloutCollector.collect() with the preset's policy (no update)."""
    parts = build(config, ppo)
    collector = parts.collector
    try:
        collector.collect()                            # the first reset is not a step
        steps, start = 0, clock()
        while clock() - start < seconds:
            collector.collect()
            steps += collector.steps_per_collect
        return steps / (clock() - start)
    finally:
        parts.env.close()


def train_rate(env_id, vectorization, hyperparameters, steps, run_dir):
    """Env steps per second of a whole minipg.train call with the preset (and --hp)."""
    extra = {**hyperparameters, **({"vectorization": vectorization} if vectorization else {})}
    start = clock()
    result = minipg.train(env_id, "ppo", steps, 0, run_dir=run_dir, overwrite=True,
                          log_every=-1, **extra)
    return result.history[-1]["env_steps"] / (clock() - start)


def measure(env_id, rounds, seconds, train_steps, vectorization, hyperparameters, scratch):
    config = config_for(env_id, vectorization, hyperparameters)
    print(f"\n{env_id}: preset {presets.preset_name(env_id, 'ppo') or 'none (defaults)'}"
          + (f" under {presets.describe(hyperparameters)}" if hyperparameters else "") + ", "
          f"num_envs {config.num_envs} x num_steps {config.num_steps}, vectorization "
          f"{config.vectorization}; train runs of {train_steps:,} env steps")
    print(f"{'round':>5} {'bare env':>9} {'bare vec':>9} {'collect':>9} {'train':>9} "
          f"{'collect/vec':>11} {'train/bare':>10}")
    rows = []
    for round_ in range(rounds):
        row = dict(bare=bare_env(env_id, seconds),
                   vec=bare_vector_env(env_id, config.num_envs, config.vectorization, seconds),
                   collect=collect_only(config, seconds),
                   train=train_rate(env_id, vectorization, hyperparameters, train_steps,
                                    os.path.join(scratch, f"{env_id}-{round_}")))
        rows.append(row)
        print(f"{round_:>5} {row['bare']:>9,.0f} {row['vec']:>9,.0f} {row['collect']:>9,.0f} "
              f"{row['train']:>9,.0f} {row['collect'] / row['vec']:>11.2f} "
              f"{row['train'] / row['bare']:>10.2f}", flush=True)
    median = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    per_round = [r["train"] / r["bare"] for r in rows]
    line = (f"median steps/s: bare env {median['bare']:,.0f}, bare vec env {median['vec']:,.0f}, "
            f"collect {median['collect']:,.0f}, train {median['train']:,.0f}; "
            f"train/bare env {median['train'] / median['bare']:.2f} (rounds "
            f"{min(per_round):.2f}-{max(per_round):.2f}), collect/bare vec env "
            f"{median['collect'] / median['vec']:.2f}")
    if env_id in TARGETS:
        ratio = median["train"] / median["bare"]
        line += (f"; target train/bare >= {TARGETS[env_id]}: "
                 f"{'met' if ratio >= TARGETS[env_id] else 'not met'}")
    print(line)
    return median


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "HalfCheetah-v5"])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="seconds of each bare-env and collect-only measurement")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="env steps of each training run (default: per env, 10+ updates)")
    parser.add_argument("--vectorization", choices=("auto", "sync", "async"), default=None,
                        help="override the preset's vectorization")
    parser.add_argument("--hp", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings over the preset (e.g. another preset's update)")
    parser.add_argument("--smoke", action="store_true",
                        help="one short round per env: checks that the script runs (envs whose "
                             "dependency is missing are skipped)")
    args = parser.parse_args(argv)
    global clock
    if args.vectorization == "async":
        clock = time.perf_counter
    if args.smoke:
        args.rounds, args.seconds = 1, 0.2
    hyperparameters = parse_hyperparameters(args.hp)
    print(f"minipg {minipg.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}; "
          f"1 BLAS thread; {'wall-clock' if clock is time.perf_counter else 'CPU'} seconds; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    results = {}
    with threadpool_limits(limits=1, user_api="blas"), tempfile.TemporaryDirectory() as scratch:
        for env_id in args.envs:
            reason = available(env_id)
            if reason is not None:
                print(f"\n{env_id}: skipped, gymnasium cannot make it here ({reason})")
                continue
            config = config_for(env_id, args.vectorization, hyperparameters)
            batch = config.num_envs * config.num_steps
            steps = (batch if args.smoke else
                     args.train_steps or TRAIN_STEPS.get(env_id, 10 * batch))
            results[env_id] = measure(env_id, args.rounds, args.seconds, steps,
                                      args.vectorization, hyperparameters, scratch)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return results


if __name__ == "__main__":
    main()

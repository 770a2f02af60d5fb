"""minipg's presets on standard benchmarks, beside the published results.

For each env: train PPO with its preset (minipg/run/presets.py) on seeds 0, 1, 2 for the env's
step budget, then evaluate each final policy on 20 episodes of the stochastic policy (the env's
own rewards, seeds 10_000 + seed). The table gives the mean +- std over the seeds of those
20-episode means, each seed's mean, the same for the deterministic policy (the mean action: how
rl-zoo evaluates), the target, and the published reference with its source.
Throughput is env steps per second of training (collection and updates), set beside the bare
env measured in the same run: one env in this process, stepped with random actions.

    python benchmarks/bench_envs.py --envs Acrobot-v1 Pendulum-v1
    python benchmarks/bench_envs.py --envs Hopper-v5 --seeds 0     # one seed of one env
    python benchmarks/bench_envs.py --table --figure docs/bench_envs.png   # what is recorded
    python benchmarks/bench_envs.py --smoke        # seconds, in a temporary directory: CI's check
    python benchmarks/bench_envs.py --envs MountainCarContinuous-v0 --no-preset \
        --hp noise_correlation=0.95 --results runs/mcc/results.json --runs-dir runs/mcc

Each finished (env, seed) is recorded in --results (JSON, written atomically) and skipped when
the script runs again: a long benchmark can be run in pieces. Learning curves: `minipg plot
RUNS/Pendulum-v1-seed* --threshold -200` (mean over seeds, min-max band, the target as a line).

The references are what their sources report, not runs of ours: rl-zoo's benchmark.md (RL
Baselines3 Zoo, Stable-Baselines3 PPO with the same hyperparameters, ONE run evaluated with the
deterministic policy, on the older -v2/-v3 envs; MountainCarContinuous with gSDE). Compare
with care: they differ from ours in seeds, evaluation and env versions.
"""
import argparse
import ast
import json
import os
import tempfile
import time

import gymnasium as gym
import numpy as np

import minipg
from minipg.run import presets
from minipg.run.files import atomic_write

EVAL_EPISODES = 20

# env: (env steps, target mean, reference mean, reference std, reference steps, source)
BENCHMARKS = {
    "Acrobot-v1": (500_000, -90, -73.5, 18.2, "1M", "rl-zoo, v1"),
    "Pendulum-v1": (300_000, -200, -172.2, 104.2, "100k", "rl-zoo, gSDE"),
    "LunarLander-v3": (1_000_000, 230, 242.1, 31.8, "1M", "rl-zoo, v2"),
    "LunarLanderContinuous-v3": (1_000_000, 230, 270.9, 32.1, "1M", "rl-zoo, v2"),
    "HalfCheetah-v5": (1_000_000, 2500, 5819.1, 663.5, "1M", "rl-zoo, v3"),
    "Hopper-v5": (1_000_000, 2200, 2410.4, 10.0, "1M", "rl-zoo, v3"),
    "Walker2d-v5": (1_000_000, 2500, 3478.8, 821.7, "1M", "rl-zoo, v3"),
    "MountainCarContinuous-v0": (100_000, 90, 88.3, 2.6, "20k", "rl-zoo, gSDE"),
}


def bare_env_steps_per_second(env_id, seconds=2.0):
    """Steps/s of one env in this process with random actions (resets included)."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def settings_of(env_id, use_preset, hyperparameters):
    """What a recorded run was trained with: the preset (if used) under the --hp values."""
    return presets.describe({**(presets.preset_for(env_id, "ppo") if use_preset else {}),
                             **hyperparameters})


def run_one(env_id, seed, runs_dir, use_preset, hyperparameters):
    steps = BENCHMARKS[env_id][0]
    run_dir = os.path.join(runs_dir, f"{env_id}-seed{seed}")
    result = minipg.train(env_id, "ppo", steps, seed, run_dir=run_dir, overwrite=True,
                          log_every=30, preset=use_preset, **hyperparameters)
    last = result.history[-1]
    returns = minipg.evaluate(result.run_dir, env_id, EVAL_EPISODES, seed=10_000 + seed)
    return {"env_steps": last["env_steps"], "train_seconds": last["wall_clock"],
            "steps_per_second": last["env_steps"] / last["wall_clock"],
            "eval_mean": float(returns.mean()), "eval_std": float(returns.std()),
            "preset": result.config.preset, "run_dir": result.run_dir,
            "settings": settings_of(env_id, use_preset, hyperparameters)}


def deterministic_mean(env_id, seed, record):
    """The 20-episode mean of the deterministic policy (the mean action, rl-zoo's evaluation),
    computed once from the saved checkpoint."""
    if "eval_deterministic_mean" not in record:
        returns = minipg.evaluate(record["run_dir"], env_id, EVAL_EPISODES,
                                  seed=10_000 + seed, deterministic=True)
        record["eval_deterministic_mean"] = float(returns.mean())
    return record["eval_deterministic_mean"]


def load(path):
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save(path, results):
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)


def print_table(results):
    print(f"{'env':<26}{'steps':>7}  {'minipg, stochastic':>18}  {'per seed':<22}"
          f"{'deterministic':>15}{'target':>8}  {'reference (source)':<40}{'steps/s':>9}"
          f"{'bare env':>10}")
    for env_id, (steps, target, ref_mean, ref_std, ref_steps, source) in BENCHMARKS.items():
        runs = results.get(env_id, {}).get("seeds", {})
        if not runs:
            continue
        means = np.array([runs[s]["eval_mean"] for s in sorted(runs)])
        rate = np.median([runs[s]["steps_per_second"] for s in runs])
        bare = results[env_id].get("bare_env_steps_per_second", float("nan"))
        met = "met" if means.mean() >= target else "not met"
        per_seed = ", ".join(f"{m:.0f}" for m in means)
        deterministic = np.array([runs[s].get("eval_deterministic_mean", np.nan)
                                  for s in sorted(runs)])
        print(f"{env_id:<26}{steps / 1e3:>6.0f}k  {means.mean():>9.1f} +- {means.std():<6.1f}  "
              f"{per_seed:<22}{deterministic.mean():>8.1f} +- {deterministic.std():<4.0f}"
              f"{target:>8}  "
              f"{f'{ref_mean:.1f} +- {ref_std:.1f} at {ref_steps} ({source})':<40}"
              f"{rate:>9,.0f}{bare:>10,.0f}   {met} ({len(means)} seed(s))")


def figure(results, path):
    """One panel per env with recorded runs: mean over seeds, min-max band, target and
    reference as dashed lines (minipg.tools.plot.draw, as `minipg plot` draws them)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minipg.run.files import atomic_output
    from minipg.tools.plot import draw

    envs = [env_id for env_id in BENCHMARKS if results.get(env_id, {}).get("seeds")]
    columns = min(3, len(envs))
    rows = -(-len(envs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax, env_id in zip(axes.flat, envs):
        _, target, reference, _, ref_steps, source = BENCHMARKS[env_id]
        runs = [results[env_id]["seeds"][seed]["run_dir"]
                for seed in sorted(results[env_id]["seeds"])]
        draw(ax, runs, [(target, f"target {target:g}"),
                        (reference, f"reference {reference:g} ({source}, {ref_steps})")])
        ax.lines[-1].set_color("tab:red")
        ax.set_title(env_id, fontsize=10)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.set_ylabel("mean return, last 20 episodes", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_output(path) as temporary:
        fig.savefig(temporary, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--runs-dir", default="runs/bench_envs")
    parser.add_argument("--results", default="runs/bench_envs/results.json")
    parser.add_argument("--table", action="store_true", help="print the recorded table only")
    parser.add_argument("--figure", default=None, metavar="PNG",
                        help="also draw the learning curves of the recorded runs")
    parser.add_argument("--no-preset", dest="preset", action="store_false",
                        help="train with minipg's generic defaults instead of the presets")
    parser.add_argument("--hp", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings over the preset (use another --results and --runs-dir)")
    parser.add_argument("--smoke", action="store_true",
                        help="Pendulum-v1, seed 0, 2,048 steps, results in a temporary directory: "
                             "checks that the script runs")
    args = parser.parse_args()
    if args.smoke:
        scratch = tempfile.mkdtemp(prefix="bench_envs_smoke")
        args.envs, args.seeds = ["Pendulum-v1"], [0]
        args.runs_dir, args.results = scratch, os.path.join(scratch, "results.json")
        BENCHMARKS["Pendulum-v1"] = (2_048,) + BENCHMARKS["Pendulum-v1"][1:]
    hyperparameters = {name: ast.literal_eval(value)
                       for name, _, value in (pair.partition("=") for pair in args.hp)}
    os.makedirs(args.runs_dir, exist_ok=True)
    results = load(args.results)
    if not args.table:
        for env_id in args.envs:
            entry = results.setdefault(env_id, {"seeds": {}})
            entry["bare_env_steps_per_second"] = bare_env_steps_per_second(env_id)
            settings = settings_of(env_id, args.preset, hyperparameters)
            for seed in args.seeds:
                record = entry["seeds"].get(str(seed))
                if record is not None and record.get("settings", settings) == settings:
                    continue                       # recorded, with the preset as it is now
                entry["seeds"][str(seed)] = run_one(env_id, seed, args.runs_dir, args.preset,
                                                    hyperparameters)
                entry["preset"] = presets.preset_name(env_id, "ppo")
                save(args.results, results)
                print(f"{env_id} seed {seed}: {entry['seeds'][str(seed)]}", flush=True)
    for env_id, entry in results.items():
        for seed, record in entry["seeds"].items():
            deterministic_mean(env_id, int(seed), record)
    save(args.results, results)
    print_table(results)
    if args.figure:
        figure(results, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()

"""minipg's presets on standard benchmarks, beside the published results.

For each env: train PPO with its preset (minipg/run/presets.py) on seeds 0, 1, 2 (or --seeds)
for the env's step budget, one process per run, --jobs of them at a time; then evaluate each
final policy on 20 episodes of the stochastic policy (the env's own rewards, seeds
10_000 + seed). Per env the table gives each seed's 20-episode mean, their mean with a 95%
bootstrap confidence interval over the seeds, their interquartile mean (IQM, the mean of the
middle half of the seeds) with its own bootstrap interval (benchmarks/stats.py), the mean of
the deterministic policy (the mean action: how rl-zoo evaluates), the target and on how many
seeds it is met, and the published reference with its source. Throughput is env steps per
second of training (collection and updates), set beside the bare env measured in the same run:
one env in this process, stepped with random actions. The wall time of the whole command is
printed at the end; the table is also written as Markdown (--out-table).

    python benchmarks/bench_envs.py --envs Acrobot-v1 Pendulum-v1 --jobs 2
    python benchmarks/bench_envs.py --envs Hopper-v5 --seeds 0     # one seed of one env
    python benchmarks/bench_envs.py --table --figure docs/bench_envs.png   # what is recorded
    python benchmarks/bench_envs.py --smoke                       # seconds: what CI runs
    python benchmarks/bench_envs.py --envs MountainCarContinuous-v0 --no-preset \
        --hp noise_correlation=0.95 --results runs/mcc/results.json --runs-dir runs/mcc

Each finished (env, seed) is recorded in --results (JSON, written atomically) and skipped when
the script runs again: a long benchmark can be run in pieces. --adopt OTHER.json counts the
runs recorded in another results file (an experiment with --hp, say) when each one's saved
config.json holds exactly the settings this command would train with: a run is deterministic
in its settings and seed, so it is the run this command would make. Learning curves: `minipg plot
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
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")     # before NumPy loads: runs in parallel, not threads

import gymnasium as gym
import numpy as np

import minipg
from minipg.run import presets
from minipg.run.files import atomic_write

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402  (benchmarks/stats.py, beside this script)

EVAL_EPISODES = 20

# env: (env steps, target mean, reference mean, reference std, reference steps, source)
BENCHMARKS = {
    "CartPole-v1": (100_000, 475, 500.0, 0.0, "100k", "rl-zoo, v1"),
    "Acrobot-v1": (1_000_000, -90, -73.5, 18.2, "1M", "rl-zoo, v1"),
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


def values_of(env_id, use_preset, hyperparameters):
    """The settings a run is trained with: the preset (if used) under the --hp values."""
    return {**(presets.preset_for(env_id, "ppo") if use_preset else {}), **hyperparameters}


def settings_of(env_id, use_preset, hyperparameters):
    """What a recorded run was trained with, in words (values_of as one line)."""
    return presets.describe(values_of(env_id, use_preset, hyperparameters))


def orphan_check():
    """A train() callback that stops the run once the process that started this worker is
    gone: killed by a signal (kill, pkill) the benchmark's parent cannot pass on to its pool,
    the worker would otherwise train on for minutes with no one to report to."""
    parent = os.getppid()

    def parent_gone(record=None, policy=None):
        return os.getppid() != parent
    return parent_gone


def run_one(env_id, seed, runs_dir, use_preset, hyperparameters, steps=None):
    """Train one (env, seed) and evaluate its final policy; runs in a worker process."""
    steps = steps or BENCHMARKS[env_id][0]
    run_dir = os.path.join(runs_dir, f"{env_id}-seed{seed}")
    parent_gone = orphan_check()
    result = minipg.train(env_id, "ppo", steps, seed, run_dir=run_dir, overwrite=True,
                          log_every=-1, preset=use_preset, callback=parent_gone,
                          **hyperparameters)
    if parent_gone():
        raise SystemExit(f"{env_id} seed {seed}: bench_envs.py is gone; stopped at "
                         f"{result.history[-1]['env_steps']:,} steps (resumable: {run_dir})")
    last = result.history[-1]
    returns = minipg.evaluate(result.run_dir, env_id, EVAL_EPISODES, seed=10_000 + seed)
    deterministic = minipg.evaluate(result.run_dir, env_id, EVAL_EPISODES, seed=10_000 + seed,
                                    deterministic=True)
    return {"env_steps": last["env_steps"], "train_seconds": last["wall_clock"],
            "eval_deterministic_mean": float(deterministic.mean()),
            "steps_per_second": last["env_steps"] / last["wall_clock"],
            "eval_mean": float(returns.mean()), "eval_std": float(returns.std()),
            "preset": result.config.preset, "run_dir": result.run_dir,
            "settings": settings_of(env_id, use_preset, hyperparameters), "budget": steps}


# What a run's config.json may differ in from another run of the same settings: bookkeeping.
NOT_SETTINGS = {"log_every", "checkpoint_every", "eval_episodes", "eval_max_episode_steps",
                "preset", "env_factory"}


def trained_settings(config):
    """The fields of a run's config that decide its training (config.json's, as a dict)."""
    return {name: value for name, value in config.items() if name not in NOT_SETTINGS}


def as_loaded(saved):
    """A config.json's values as minipg reads them back: a field added after the run was saved
    takes the value the run used (config_from_dict), so an older run of the same settings
    still matches."""
    from minipg.algos import ppo
    from minipg.algos.config import config_from_dict
    return json.loads(config_from_dict(ppo.Config, saved).to_json())


def expected_settings(env_id, seed, budget, use_preset, hyperparameters):
    """trained_settings of the run this command would train for (env_id, seed)."""
    from minipg.algos import ppo
    from minipg.algos.config import make_config
    config = make_config(ppo.Config, env_id=env_id, algo="ppo", seed=seed,
                         total_steps=budget, **values_of(env_id, use_preset, hyperparameters))
    return trained_settings(json.loads(config.to_json()))


def adopt(results, paths, envs, seeds, use_preset, hyperparameters, steps):
    """Copy into results the records of other results files (--adopt) whose runs this command
    would train identically: same env, seed and budget, and every training field of the run's
    saved config.json equal to what the preset (and --hp) give now. A run is deterministic in
    those, so it is the run this command would make; anything else is left to train."""
    adopted = 0
    for path in paths:
        for env_id, entry in load(path).items():
            if env_id not in envs:
                continue
            budget = steps or BENCHMARKS[env_id][0]
            for seed, record in entry.get("seeds", {}).items():
                if int(seed) not in seeds or record.get("budget") != budget:
                    continue
                config_path = os.path.join(record["run_dir"], "config.json")
                if not os.path.exists(config_path):
                    continue
                with open(config_path, encoding="utf-8") as f:
                    saved = trained_settings(as_loaded(json.load(f)))
                if saved != expected_settings(env_id, int(seed), budget, use_preset,
                                              hyperparameters):
                    continue
                target = results.setdefault(env_id, {"seeds": {}})
                target["seeds"][seed] = {
                    **record, "settings": settings_of(env_id, use_preset, hyperparameters)}
                for name in ("bare_env_steps_per_second", "preset"):
                    if name in entry:
                        target.setdefault(name, entry[name])
                adopted += 1
    print(f"adopted {adopted} run(s) from {', '.join(paths)}", flush=True)


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


def rows_of(results):
    """One dict per env with recorded runs: the per-seed finals and their aggregates."""
    rows = []
    for env_id, (steps, target, ref_mean, ref_std, ref_steps, source) in BENCHMARKS.items():
        runs = results.get(env_id, {}).get("seeds", {})
        if not runs:
            continue
        seeds = sorted(runs, key=int)
        means = np.array([runs[s]["eval_mean"] for s in seeds])
        deterministic = np.array([runs[s].get("eval_deterministic_mean", np.nan) for s in seeds])
        budget = runs[seeds[0]].get("budget", steps)
        # The reference's own protocol: the deterministic policy, the mean over seeds 0-2.
        first = [runs[s].get("eval_deterministic_mean", np.nan) for s in ("0", "1", "2")
                 if s in runs]
        deterministic_012 = float(np.mean(first)) if len(first) == 3 else float("nan")
        rows.append(dict(
            deterministic_012=deterministic_012,
            beaten=verdict(deterministic_012, ref_mean),
            env_id=env_id, steps=budget, seeds=seeds, means=means, target=target,
            summary=stats.summarize(means), deterministic=deterministic,
            met=int(np.sum(means >= target)),
            reference=f"{ref_mean:.1f} +- {ref_std:.1f} at {ref_steps} ({source})",
            rate=float(np.median([runs[s]["steps_per_second"] for s in seeds])),
            bare=results[env_id].get("bare_env_steps_per_second", float("nan"))))
    return rows


def verdict(ours, reference):
    """Whether our deterministic mean over seeds 0-2 beats the reference's, in words."""
    if np.isnan(ours):
        return "no seeds 0-2"
    if ours == reference:
        return f"tied ({ours:.1f})"
    word = "beaten" if ours > reference else "not beaten"
    return f"{word} ({ours:.1f} vs {reference:.1f})"


def _interval(low, high):
    return f"[{low:.1f}, {high:.1f}]"


def markdown_table(rows):
    """The table as Markdown (what --out-table writes and the READMEs show)."""
    lines = ["| env | steps | seeds | per seed (stochastic) | mean [95% CI] | IQM [95% CI] | "
             "deterministic mean | target: seeds met | reference (source) | "
             "reference beaten? (deterministic, seeds 0-2) | steps/s | bare env steps/s |",
             "|---|---:|---|---|---|---|---:|---|---|---|---:|---:|"]
    for row in rows:
        summary = row["summary"]
        lines.append(
            f"| {row['env_id']} | {row['steps'] / 1e3:.0f}k | {', '.join(row['seeds'])} | "
            f"{', '.join(f'{m:.0f}' for m in row['means'])} | "
            f"{summary['mean']:.1f} {_interval(*summary['mean_ci'])} | "
            f"{summary['iqm']:.1f} {_interval(*summary['iqm_ci'])} | "
            f"{np.mean(row['deterministic']):.1f} | "
            f"{row['target']}: {row['met']}/{len(row['means'])} | {row['reference']} | "
            f"{row['beaten']} | {row['rate']:,.0f} | {row['bare']:,.0f} |")
    return "\n".join(lines)


def print_table(results):
    print(f"{'env':<26}{'steps':>7} {'seeds':>5}  {'mean [95% CI]':<26}{'IQM [95% CI]':<26}"
          f"{'determ.':>8}{'target':>8}{'met':>7}  {'reference (source)':<40}{'steps/s':>9}"
          f"{'bare env':>10}")
    for row in rows_of(results):
        summary = row["summary"]
        met = f"{row['met']}/{len(row['means'])}"
        print(f"{row['env_id']:<26}{row['steps'] / 1e3:>6.0f}k {len(row['means']):>5}  "
              f"{summary['mean']:>8.1f} {_interval(*summary['mean_ci']):<17}"
              f"{summary['iqm']:>8.1f} {_interval(*summary['iqm_ci']):<17}"
              f"{np.mean(row['deterministic']):>8.1f}{row['target']:>8}{met:>7}  "
              f"{row['reference']:<40}{row['rate']:>9,.0f}{row['bare']:>10,.0f}")
        per_seed = ", ".join(f"{seed}: {m:.1f} ({d:.1f})" for seed, m, d
                             in zip(row["seeds"], row["means"], row["deterministic"]))
        print(f"{'':<26}per seed, stochastic (deterministic): {per_seed}")
        print(f"{'':<26}reference {row['beaten']}")


def check_with_rliable(rows):
    """One line: whether rliable (when installed) gives every row the IQM printed here."""
    try:
        from rliable import metrics
    except ImportError:
        return "rliable is not installed: the IQM was not cross-checked (pip install rliable)"
    differ = [row["env_id"] for row in rows
              if not np.isclose(metrics.aggregate_iqm(row["means"][:, None]),
                                row["summary"]["iqm"], rtol=1e-12, atol=0.0)]
    from importlib.metadata import version
    if differ:
        return f"rliable {version('rliable')} gives another IQM for {', '.join(differ)}"
    return f"rliable {version('rliable')} gives the same IQM on every row"


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at a time, one process each (default 1)")
    parser.add_argument("--runs-dir", default="runs/bench_envs")
    parser.add_argument("--results", default="runs/bench_envs/results.json")
    parser.add_argument("--out-table", default=None, metavar="MD",
                        help="write the table as Markdown here (default: table.md beside "
                             "--results)")
    parser.add_argument("--table", action="store_true", help="print the recorded table only")
    parser.add_argument("--figure", default=None, metavar="PNG",
                        help="also draw the learning curves of the recorded runs")
    parser.add_argument("--no-preset", dest="preset", action="store_false",
                        help="train with minipg's generic defaults instead of the presets")
    parser.add_argument("--hp", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings over the preset (use another --results and --runs-dir)")
    parser.add_argument("--adopt", nargs="+", default=[], metavar="RESULTS",
                        help="results files of earlier runs: a run recorded there counts here "
                             "when its config.json holds exactly the settings this command "
                             "would train with (env, seed, budget, preset and --hp)")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="train every run for N env steps instead of its env's budget "
                             "(the table gives each row's steps)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: CartPole-v1, seeds 0 1, 2,048 steps, 2 jobs, into a "
                             "temporary folder (table and figure included); what CI runs")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            return run(args, envs=["CartPole-v1"], seeds=[0, 1], jobs=2, steps=2_048,
                       runs_dir=os.path.join(tmp, "runs"),
                       results_path=os.path.join(tmp, "results.json"),
                       figure_path=os.path.join(tmp, "bench_envs.png"), bare_seconds=0.2)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    return run(args, args.envs, args.seeds, args.jobs, args.steps, args.runs_dir, args.results,
               args.figure, 2.0)


def run(args, envs, seeds, jobs, steps, runs_dir, results_path, figure_path, bare_seconds):
    start = time.perf_counter()
    hyperparameters = {name: ast.literal_eval(value)
                       for name, _, value in (pair.partition("=") for pair in args.hp)}
    os.makedirs(runs_dir, exist_ok=True)
    os.makedirs(os.path.dirname(results_path) or ".", exist_ok=True)
    results = load(results_path)
    if getattr(args, "adopt", None):
        adopt(results, args.adopt, envs, seeds, args.preset, hyperparameters, steps)
    if not args.table:
        todo = []
        for env_id in envs:
            entry = results.setdefault(env_id, {"seeds": {}})
            entry["bare_env_steps_per_second"] = bare_env_steps_per_second(env_id, bare_seconds)
            entry["preset"] = presets.preset_name(env_id, "ppo")
            settings = settings_of(env_id, args.preset, hyperparameters)
            budget = steps or BENCHMARKS[env_id][0]
            for seed in seeds:
                record = entry["seeds"].get(str(seed))
                if (record is not None and record.get("settings", settings) == settings
                        and record.get("budget", budget) == budget):
                    continue                       # recorded, with the preset as it is now
                todo.append((env_id, seed))
        print(f"{len(todo)} run(s) to train, {jobs} at a time", flush=True)
        # One fresh process per run (max_tasks_per_child=1): nothing carries between runs.
        with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1) as pool:
            futures = {pool.submit(run_one, env_id, seed, runs_dir, args.preset,
                                   hyperparameters, steps): (env_id, seed)
                       for env_id, seed in todo}
            for future, (env_id, seed) in futures.items():
                record = future.result()
                results[env_id]["seeds"][str(seed)] = record
                save(results_path, results)        # after each run: a long benchmark resumes
                print(f"{env_id} seed {seed}: stochastic {record['eval_mean']:.1f}, "
                      f"deterministic {record['eval_deterministic_mean']:.1f}, "
                      f"{record['train_seconds']:.1f} s of training", flush=True)
    for env_id, entry in results.items():
        for seed, record in entry["seeds"].items():
            deterministic_mean(env_id, int(seed), record)
    save(results_path, results)
    print_table(results)
    print(check_with_rliable(rows_of(results)))
    out_table = args.out_table or os.path.join(os.path.dirname(results_path) or ".",
                                               "table.md")
    with atomic_write(out_table, "w", encoding="utf-8") as f:
        f.write(markdown_table(rows_of(results)) + "\n")
    print(f"wrote {out_table}")
    if figure_path:
        figure(results, figure_path)
        print(f"wrote {figure_path}")
    print(f"wall time {time.perf_counter() - start:.1f} s ({jobs} job(s))")
    return True


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

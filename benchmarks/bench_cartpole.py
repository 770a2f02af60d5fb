"""How fast does minipg solve CartPole-v1? Env steps and training seconds to "solved".

For each seed: train, and after every iteration (outside the timed training) evaluate the
stochastic policy on 20 episodes; the first time their mean return reaches 475 the run counts
as solved at that many env steps and training seconds. Then a full run of --steps with the
defaults: its wall-clock, throughput and the final policy's evaluation (no late collapse).

    python benchmarks/bench_cartpole.py                      # PPO, seeds 0 1 2
    python benchmarks/bench_cartpole.py --algo a2c --max-steps 500000
    python benchmarks/bench_cartpole.py --hp num_envs=16 lam=0.8   # try hyperparameters
    python benchmarks/bench_cartpole.py --smoke              # seconds: CI's check that it runs

It prints minipg's own figures only. To set them beside another library's, run both in one
process: benchmarks/compare_sb3.py does that for Stable-Baselines3's PPO (optional install).
"""
import argparse
import ast
import os
import sys
import tempfile
import time

import numpy as np

import minipg
from minipg.algos.registry import ALGOS
from minipg.run.evaluate import evaluate

SOLVED = 475.0
EVAL_EPISODES = 20


def parse_hyperparameters(pairs):
    """["num_envs=16", "lam=0.8"] -> {"num_envs": 16, "lam": 0.8}."""
    values = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    return values


def time_to_solve(algo, seed, max_steps, hyperparameters, run_dir, eval_every=0):
    """(env steps, training seconds) at the first 20-episode mean >= 475, or None if never.

    The policy is evaluated after every iteration, or once every `eval_every` env steps.
    """
    solved = {}
    next_eval = [0]

    def check(record, policy):
        if record["env_steps"] < next_eval[0]:
            return False
        next_eval[0] = record["env_steps"] + eval_every
        returns = evaluate(policy, "CartPole-v1", EVAL_EPISODES, seed=10_000 + seed)
        if returns.mean() >= SOLVED:
            solved.update(steps=record["env_steps"], seconds=record["wall_clock"])
            return True
        return False

    result = minipg.train("CartPole-v1", algo, max_steps, seed, run_dir=run_dir, callback=check,
                          log_every=-1, **hyperparameters)
    steps_per_second = result.history[-1]["env_steps"] / result.history[-1]["wall_clock"]
    return solved.get("steps"), solved.get("seconds"), steps_per_second


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=sorted(ALGOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=None,
                        help="budget for the time-to-solve runs (default 50k for PPO, else 500k)")
    parser.add_argument("--steps", type=int, default=100_000, help="length of the full runs")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="env steps between evaluations (default 0: every iteration)")
    parser.add_argument("--no-full", action="store_true", help="skip the full-length runs")
    parser.add_argument("--hp", nargs="*", default=[], help="hyperparameters name=value")
    parser.add_argument("--smoke", action="store_true",
                        help="seed 0, 4,096-step runs: checks that the script runs (the figures "
                             "mean nothing)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.max_steps, args.steps = [0], 4_096, 4_096
    max_steps = args.max_steps or (50_000 if args.algo == "ppo" else 500_000)
    hyperparameters = parse_hyperparameters(args.hp)

    print(f"minipg {args.algo} on CartPole-v1, hyperparameters {hyperparameters or 'default'}")
    print(f"{'seed':>4} {'solved at steps':>15} {'train s':>8} {'steps/s':>9} "
          f"{'full run s':>10} {'final eval':>14}")
    rows, kept_kl = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            steps, seconds, throughput = time_to_solve(
                args.algo, seed, max_steps, hyperparameters, os.path.join(tmp, f"solve{seed}"),
                args.eval_every)
            full_seconds, final = float("nan"), np.array([np.nan])
            if not args.no_full:
                start = time.perf_counter()
                result = minipg.train("CartPole-v1", args.algo, args.steps, seed,
                                      run_dir=os.path.join(tmp, f"full{seed}"), log_every=-1,
                                      **hyperparameters)
                full_seconds = time.perf_counter() - start
                final = evaluate(result.policy, "CartPole-v1", EVAL_EPISODES, seed=20_000 + seed)
                # trust-region methods log the KL of each kept step (backtrack_step > 0)
                kept_kl += [h["kl"] for h in result.history if h.get("backtrack_step", 0) > 0]
            rows.append((seed, steps, seconds, throughput, full_seconds, final.mean()))
            print(f"{seed:>4} {steps if steps else 'not solved':>15} "
                  f"{seconds if seconds else float('nan'):>8.2f} {throughput:>9,.0f} "
                  f"{full_seconds:>10.2f} {final.mean():>7.1f} +- {final.std():5.1f}", flush=True)

    solved = [r for r in rows if r[1] is not None]
    print()
    if solved:
        median_seconds = float(np.median([r[2] for r in solved]))
        median_steps = float(np.median([r[1] for r in solved]))
        print(f"solved {len(solved)}/{len(rows)} seeds; median {median_steps:,.0f} env steps, "
              f"{median_seconds:.2f} s of training")
        print(f"max env steps to solve: {max(r[1] for r in solved):,}; "
              f"max training seconds: {max(r[2] for r in solved):.2f}")
    throughput = float(np.median([r[3] for r in rows]))
    print(f"throughput: median {throughput:,.0f} env steps/s of training")
    if not args.no_full:
        full = float(np.median([r[4] for r in rows]))
        print(f"full {args.steps:,}-step run: median {full:.2f} s wall-clock; "
              f"final eval min over seeds {min(r[5] for r in rows):.1f}")
        if kept_kl:
            print(f"full runs: {len(kept_kl)} updates kept a step; their mean KL(old || new) "
                  f"at most {max(kept_kl):.4g}")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

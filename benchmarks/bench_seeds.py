"""Does an algorithm solve CartPole-v1 on every seed, and keep it solved to the end of the run?

For each seed, one run of --steps env steps with the algorithm's defaults (the CartPole preset
included, as `minipg train` applies it), the stochastic policy evaluated on 20 episodes after
every iteration until it first averages >= 475 (outside the timed training; the evaluations do
not change the run, which is the CLI's run bit for bit), then the final policy evaluated on 20
episodes (env seeds 10_000 + seed). A seed "ends solved" when that final mean is >= 475.
It prints per seed: env steps to the first solved evaluation, the final evaluation (mean and
min over its 20 episodes), the training return of the last 20 episodes; then the count of seeds
that end solved, the median steps to the first solve, and the wall time. One process per run,
--jobs at a time (each with one BLAS thread).

    python benchmarks/bench_seeds.py --algo ppo --seeds 0-49 --jobs 2
    python benchmarks/bench_seeds.py --algo trpo --seeds 0-49 --jobs 2
    python benchmarks/bench_seeds.py --algo a2c --steps 300000 --seeds 0-49 --jobs 2
    python benchmarks/bench_seeds.py --algo ppo --seeds 0-9 --hp norm_adv=False   # try settings
    python benchmarks/bench_seeds.py --trace 0 --hp norm_adv=True norm_reward=False \
        anneal_lr=True                                       # one run, iteration by iteration
    python benchmarks/bench_seeds.py --smoke                 # seconds: what CI runs

--trace SEED (PPO, A2C, TRPO) prints one line per iteration of one run: the spread of the raw
GAE advantages (before any normalisation), how many episodes failed (terminated) and hit the
time limit (truncated) in the rollout, the update's approx_kl, clip fraction, entropy and value
loss from progress.csv, and the 20-episode evaluation every 4 iterations. That is how the late
collapse of the old PPO defaults was diagnosed (benchmarks/README.md).

Exit status 0 when every seed ends solved (--smoke: when the script ran through).
"""
import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")     # before NumPy loads: runs in parallel, not threads

import numpy as np

import minipg
from minipg.algos.registry import ALGOS
from minipg.core.returns import gae
from minipg.run.evaluate import evaluate

from bench_cartpole import parse_hyperparameters    # a sibling script: benchmarks/ is on sys.path

ENV_ID = "CartPole-v1"
SOLVED = 475.0
EVAL_EPISODES = 20
DEFAULT_STEPS = {"ppo": 100_000, "trpo": 100_000, "a2c": 300_000, "reinforce": 500_000,
                 "grpo": 300_000}


def parse_seeds(texts):
    """["0-4", "7"] -> [0, 1, 2, 3, 4, 7]."""
    seeds = []
    for text in texts:
        first, dash, last = text.partition("-")
        seeds += list(range(int(first), int(last) + 1)) if dash else [int(first)]
    return seeds


def run_seed(algo, seed, steps, hyperparameters, eval_every=0):
    """One run: {seed, solved_at (env steps or None), final_mean, final_min, train_return,
    train_seconds}. The policy is evaluated after every iteration (or every eval_every env
    steps) until its first solved evaluation, then only at the end."""
    first_solved = []
    next_eval = [0]

    def check(record, policy):
        if first_solved or record["env_steps"] < next_eval[0]:
            return False
        next_eval[0] = record["env_steps"] + eval_every
        if evaluate(policy, ENV_ID, EVAL_EPISODES, seed=10_000 + seed).mean() >= SOLVED:
            first_solved.append(record["env_steps"])
        return False

    with tempfile.TemporaryDirectory() as tmp:
        result = minipg.train(ENV_ID, algo, steps, seed, run_dir=os.path.join(tmp, "run"),
                              callback=check, log_every=-1, checkpoint_every=1e9,
                              **hyperparameters)
        final = evaluate(result.policy, ENV_ID, EVAL_EPISODES, seed=10_000 + seed)
    last = result.history[-1]
    return {"seed": seed, "solved_at": first_solved[0] if first_solved else None,
            "final_mean": float(final.mean()), "final_min": float(final.min()),
            "train_return": float(last["mean_return"]), "train_seconds": last["wall_clock"]}


def trace(algo, seed, steps, hyperparameters):
    """One run, iteration by iteration (see the module docstring); returns its final mean."""
    module = ALGOS[algo]
    if getattr(module, "COLLECTS", None) != "rollout" or not hasattr(module.Config, "lam"):
        raise SystemExit(f"--trace needs an algorithm with a critic and GAE, not {algo}")
    update, rollouts, evaluations = module.update, [], {}

    def traced_update(rollout, *args, **kwargs):
        # The measurement only reads the rollout, before the algorithm's own update runs.
        config = args[3]
        advantages = gae(rollout.rewards, rollout.values, rollout.next_values,
                         rollout.terminated, rollout.truncated, config.gamma, config.lam)
        rollouts.append((float(advantages[rollout.mask].std()), int(rollout.terminated.sum()),
                         int(rollout.truncated.sum())))
        return update(rollout, *args, **kwargs)

    def check(record, policy):
        if record["iteration"] % 4 == 0:
            evaluations[record["iteration"]] = evaluate(policy, ENV_ID, EVAL_EPISODES,
                                                        seed=10_000 + seed).mean()
        return False

    module.update = traced_update
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = minipg.train(ENV_ID, algo, steps, seed, run_dir=os.path.join(tmp, "run"),
                                  callback=check, log_every=-1, checkpoint_every=1e9,
                                  **hyperparameters)
            final = evaluate(result.policy, ENV_ID, EVAL_EPISODES, seed=10_000 + seed)
    finally:
        module.update = update
    print(f"{'iter':>4} {'env steps':>9} {'train return':>12} {'adv std':>8} {'failed':>6} "
          f"{'limit':>5} {'approx_kl':>9} {'clip frac':>9} {'entropy':>7} {'value loss':>10} "
          f"{'eval':>6}")
    for record, (spread, failed, limit) in zip(result.history, rollouts):
        shown = evaluations.get(record["iteration"])
        kl, clip_frac = record.get("approx_kl", np.nan), record.get("clip_frac", np.nan)
        print(f"{record['iteration']:>4} {record['env_steps']:>9,} "
              f"{record['mean_return']:>12.1f} {spread:>8.4f} {failed:>6} {limit:>5} "
              f"{kl:>9.4f} {clip_frac:>9.3f} {record['entropy']:>7.3f} "
              f"{record['value_loss']:>10.4g} {'' if shown is None else f'{shown:6.1f}'}")
    print(f"final {EVAL_EPISODES}-episode evaluation: {final.mean():.1f}")
    return float(final.mean())


def summary(rows):
    """(number of seeds ending solved, median env steps to the first solve over the seeds that
    solved, number of seeds that solved at some point)."""
    ended = sum(row["final_mean"] >= SOLVED for row in rows)
    reached = [row["solved_at"] for row in rows if row["solved_at"] is not None]
    return ended, (float(np.median(reached)) if reached else float("nan")), len(reached)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=sorted(ALGOS))
    parser.add_argument("--seeds", nargs="+", default=["0-9"],
                        help="seeds and ranges, e.g. 0-49 or 0 3 7 (default 0-9)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run (default: ppo and trpo 100k, a2c 300k, "
                             "reinforce 500k, grpo 300k)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process each")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="env steps between evaluations until the first solve (0: every "
                             "iteration)")
    parser.add_argument("--hp", nargs="*", default=[], metavar="NAME=VALUE",
                        help="hyperparameters over the defaults and the preset")
    parser.add_argument("--trace", type=int, default=None, metavar="SEED",
                        help="print one run iteration by iteration (advantage spread, failures, "
                             "approx_kl, clip fraction, ...) instead of the seed table")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: seeds 0 1, 3,072 steps, two jobs (checks the script)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    seeds = parse_seeds(args.seeds)
    steps = args.steps or DEFAULT_STEPS[args.algo]
    if args.smoke:
        seeds, steps, args.jobs = [0, 1], 3_072, 2
    hyperparameters = parse_hyperparameters(args.hp)
    if args.trace is not None:
        final = trace(args.algo, args.trace, 3_072 if args.smoke else steps, hyperparameters)
        return args.smoke or final >= SOLVED

    shown = " ".join(args.seeds) if not args.smoke else "0 1"
    print(f"minipg {args.algo} on {ENV_ID}: {steps:,} env steps, seeds {shown}, "
          f"hyperparameters {hyperparameters or 'default'}, {args.jobs} job(s)", flush=True)
    print(f"{'seed':>4} {'first solved at':>15} {'final eval':>10} {'min':>6} "
          f"{'train return':>12} {'train s':>8}", flush=True)
    start = time.perf_counter()
    rows = []
    # A fresh process per run (max_tasks_per_child=1): no state carries from one run to the next.
    with ProcessPoolExecutor(max_workers=args.jobs, max_tasks_per_child=1) as pool:
        futures = [pool.submit(run_seed, args.algo, seed, steps, hyperparameters,
                               args.eval_every) for seed in seeds]
        for future in futures:
            row = future.result()
            rows.append(row)
            solved_at = f"{row['solved_at']:,}" if row["solved_at"] is not None else "never"
            mark = "" if row["final_mean"] >= SOLVED else "  <- ends unsolved"
            print(f"{row['seed']:>4} {solved_at:>15} {row['final_mean']:>10.1f} "
                  f"{row['final_min']:>6.0f} {row['train_return']:>12.1f} "
                  f"{row['train_seconds']:>8.2f}{mark}", flush=True)
    wall = time.perf_counter() - start
    ended, median_steps, reached = summary(rows)
    print(f"\n{args.algo}: {ended}/{len(rows)} seeds end solved (final {EVAL_EPISODES}-episode "
          f"mean >= {SOLVED:g}); {reached}/{len(rows)} solved at some point, median "
          f"{median_steps:,.0f} env steps to the first solve; wall time {wall:.1f} s "
          f"({args.jobs} job(s))")
    unsolved = [row["seed"] for row in rows if row["final_mean"] < SOLVED]
    if unsolved:
        print(f"seeds that end unsolved: {unsolved}")
    return args.smoke or ended == len(rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

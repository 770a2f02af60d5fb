"""GRPO's targets, measured: held-out accuracy on two-digit addition, and CartPole-v1 solved.

addition   For each seed: imitation on 700 demonstrations, then GRPO (minipg.lm.grpo.train,
           minipg.algos.grpo.Config defaults) for up to --updates updates or --max-seconds of
           training, whichever comes first; greedy held-out accuracy after the warm start and
           after GRPO, the gain, training seconds (evaluation excluded) and the sampled tokens
           at which 90% was first seen (checked every 50 updates). Beside it, imitation alone
           with more demonstrations (same epochs), the labelled examples GRPO's verifier stands
           in for.
cartpole   For each seed: GRPO on episodes (minipg.train(env, "grpo", ...), the
           minipg.algos.grpo_gym.Config defaults, budget 300k transitions) and PPO
           (minipg.train defaults, budget 50k env steps), each run in a temporary run directory
           and evaluated on 20 episodes of the stochastic policy after every update (outside
           the timed training); env steps and training seconds at the first mean >= 475.

    python benchmarks/bench_grpo.py                    # both parts, seeds 0 1 2
    python benchmarks/bench_grpo.py --part addition --seeds 0
    python benchmarks/bench_grpo.py --smoke            # seconds: CI's check that it runs
"""
import argparse
import os
import sys
import tempfile
import time

from threadpoolctl import threadpool_limits

import minipg
from minipg.algos.grpo import Config
from minipg.lm import grpo
from minipg.lm.addition import AdditionTask
from minipg.lm.imitation import warm_start
from minipg.run.evaluate import evaluate

N_DEMOS = 700
MORE_DEMOS = (1000, 1500, 2000, 3000)
SMOKE_DEMOS = (100,)                   # --smoke: one small imitation run
SOLVED = 475.0
EVAL_EPISODES = 20


def addition(seed, updates, max_seconds):
    """(warm-start accuracy, final accuracy, training seconds, tokens at 90% or None)."""
    task = AdditionTask(seed)
    policy = task.make_policy(rng=seed)
    warm_start(policy, task, N_DEMOS, rng=seed)
    warm = task.accuracy(policy)
    clock = {"start": time.perf_counter(), "outside": 0.0, "trained": 0.0}
    result = {"final": warm, "at_90": None}

    def callback(record, policy):
        entered = time.perf_counter()
        clock["trained"] = entered - clock["start"] - clock["outside"]
        done = clock["trained"] >= max_seconds or record["update"] == updates
        if record["update"] % 50 == 0 or done:
            result["final"] = task.accuracy(policy)
            if result["final"] >= 0.9 and result["at_90"] is None:
                result["at_90"] = record["sampled_tokens"]
        clock["outside"] += time.perf_counter() - entered
        return done

    grpo.train(policy, task, Config(num_updates=updates, seed=seed), callback=callback)
    return warm, result["final"], clock["trained"], result["at_90"]


def imitation_only(seed, n_demos):
    task = AdditionTask(seed)
    policy = task.make_policy(rng=seed)
    warm_start(policy, task, n_demos, rng=seed)
    return task.accuracy(policy)


def until_solved(seed, solved):
    """A training callback: evaluate after every update; at the first 20-episode mean >= 475,
    record the env steps and training seconds in `solved` and stop."""
    def check(record, policy):
        if evaluate(policy, "CartPole-v1", EVAL_EPISODES, seed=10_000 + seed).mean() >= SOLVED:
            solved.update(steps=record["env_steps"], seconds=record["wall_clock"])
            return True
        return False
    return check


def solve_grpo(seed, max_steps, run_dir):
    solved = {}
    minipg.train("CartPole-v1", "grpo", max_steps, seed, run_dir=run_dir,
                 callback=until_solved(seed, solved), log_every=-1)
    return solved.get("steps"), solved.get("seconds")


def solve_ppo(seed, max_steps, run_dir):
    solved = {}
    minipg.train("CartPole-v1", "ppo", max_steps, seed, run_dir=run_dir,
                 callback=until_solved(seed, solved), log_every=-1)
    return solved.get("steps"), solved.get("seconds")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("addition", "cartpole", "all"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--no-imitation", action="store_true",
                        help="skip the imitation-only runs with more demonstrations")
    parser.add_argument("--smoke", action="store_true",
                        help="seed 0, a few updates and env steps: checks that the script runs; "
                             "the targets are not judged")
    args = parser.parse_args(argv)
    grpo_budget, ppo_budget, more_demos = 300_000, 50_000, MORE_DEMOS
    if args.smoke:
        args.seeds, args.updates, args.max_seconds = [0], 3, 10.0
        grpo_budget, ppo_budget, more_demos = 2_000, 2_048, SMOKE_DEMOS
    ok = True
    with threadpool_limits(limits=1, user_api="blas"):
        if args.part in ("addition", "all"):
            print(f"two-digit addition: imitation on {N_DEMOS} demonstrations, then GRPO "
                  f"(up to {args.updates} updates or {args.max_seconds:.0f} s)")
            print(f"{'seed':>4} {'warm start':>10} {'after GRPO':>10} {'gain':>7} "
                  f"{'train s':>8} {'tokens to 90%':>14}")
            for seed in args.seeds:
                warm, final, seconds, at_90 = addition(seed, args.updates, args.max_seconds)
                ok &= final >= 0.9 and final - warm >= 0.3
                print(f"{seed:>4} {warm:>10.1%} {final:>10.1%} {100 * (final - warm):>+6.1f}p "
                      f"{seconds:>8.1f} {f'{at_90:,}' if at_90 else 'never':>14}", flush=True)
            if not args.no_imitation:
                print("\nimitation alone (same 60 epochs), held-out accuracy by demonstrations:")
                print(f"{'demos':>6} " + " ".join(f"{'seed ' + str(s):>8}" for s in args.seeds))
                for n in more_demos:
                    accuracies = [imitation_only(seed, n) for seed in args.seeds]
                    print(f"{n:>6} " + " ".join(f"{a:>8.1%}" for a in accuracies), flush=True)
        if args.part in ("cartpole", "all"):
            print("\nCartPole-v1: env steps (training seconds) to a 20-episode mean >= 475")
            print(f"{'seed':>4} {'GRPO (300k budget)':>22} {'PPO (50k budget)':>22}")
            with tempfile.TemporaryDirectory() as tmp:
                for seed in args.seeds:
                    g_steps, g_seconds = solve_grpo(seed, grpo_budget,
                                                    os.path.join(tmp, f"grpo-{seed}"))
                    p_steps, p_seconds = solve_ppo(seed, ppo_budget,
                                                   os.path.join(tmp, f"ppo-{seed}"))
                    ok &= g_steps is not None
                    cell = lambda s, t: f"{s:,} ({t:.1f} s)" if s else "not solved"
                    grpo_cell, ppo_cell = cell(g_steps, g_seconds), cell(p_steps, p_seconds)
                    print(f"{seed:>4} {grpo_cell:>22} {ppo_cell:>22}", flush=True)
    if args.smoke:
        print("\nsmoke run: every part ran (targets not judged at this size)")
        return True
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

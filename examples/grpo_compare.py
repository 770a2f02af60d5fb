"""GRPO, REINFORCE with a leave-one-out baseline, and PPO with a per-token critic, on the same
task from the same warm start with the same budget of sampled responses.

All three start from the policy of examples/grpo_addition.py (700 demonstrations, seeded) and
sample 256 responses per update for `--updates` updates; the curves put held-out accuracy
(greedy) against the response tokens sampled so far.

- GRPO (minipg/lm/grpo.py around minipg/algos/grpo.py, defaults): 32 prompts x 8 responses, advantages
  (r - group mean) / group std, 2 clipped steps per batch.
- REINFORCE with a leave-one-out baseline (RLOO): the same code with baseline="leave_one_out",
  scale="none", one step per batch (the ratio is 1, nothing clips) and loss_agg="dr_grpo" (a
  plain sum over each response's tokens): the unbiased estimator of tests/exact/test_grpo_exact.py.
- PPO with a learned per-token critic (minipg/lm/token_ppo.py): 256 prompts x 1 response,
  GAE over the tokens from a second network V(x, y_<t), 2 clipped steps per batch.

    python examples/grpo_compare.py [--seeds 0 1 2] [--updates 600] [--plot PNG]

About 2 minutes per seed on one core.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minipg.algos.grpo import Config
from minipg.lm import grpo, token_ppo
from minipg.lm.addition import AdditionTask
from minipg.lm.imitation import warm_start

N_DEMOS = 700
EVAL_EVERY = 50
METHODS = {
    "GRPO": lambda updates, seed: (grpo.train, Config(num_updates=updates, seed=seed)),
    "REINFORCE, leave-one-out": lambda updates, seed: (grpo.train, Config(
        num_updates=updates, seed=seed, baseline="leave_one_out", scale="none",
        num_iterations=1, loss_agg="dr_grpo")),
    "PPO, per-token critic": lambda updates, seed: (token_ppo.train, token_ppo.Config(
        num_updates=updates, seed=seed)),
}


def run(method, seed, updates):
    """[(sampled tokens, held-out accuracy)] every EVAL_EVERY updates, and training seconds."""
    task = AdditionTask(seed)
    policy = task.make_policy(rng=seed)
    warm_start(policy, task, N_DEMOS, rng=seed)
    curve = [(0, task.accuracy(policy))]
    train, config = METHODS[method](updates, seed)
    clock = {"start": time.perf_counter(), "outside": 0.0}

    def callback(record, policy):
        entered = time.perf_counter()
        if record["update"] % EVAL_EVERY == 0:
            curve.append((record["sampled_tokens"], task.accuracy(policy)))
        clock["outside"] += time.perf_counter() - entered

    train(policy, task, config, callback=callback)
    return np.array(curve), time.perf_counter() - clock["start"] - clock["outside"]


def main(seeds=(0, 1, 2), updates=600, plot=None):
    curves = {method: [] for method in METHODS}
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in seeds:
            for method in METHODS:
                curve, seconds = run(method, seed, updates)
                curves[method].append(curve)
                reached = curve[curve[:, 1] >= 0.9, 0]
                at_90 = f"{reached[0]:,.0f} tokens" if len(reached) else "never"
                print(f"seed {seed} | {method:<25} | {curve[0, 1]:.1%} -> {curve[-1, 1]:.1%} "
                      f"held-out | 90% at {at_90:>14}"
                      f" | {seconds:5.1f} s of training", flush=True)
    print(f"\nmean held-out accuracy over seeds {list(seeds)} (greedy), by sampled tokens:")
    grid = curves["GRPO"][0][:, 0]
    print(f"{'tokens':>9} " + " ".join(f"{m:>26}" for m in METHODS))
    for i in range(len(grid)):
        row = [np.mean([c[min(i, len(c) - 1), 1] for c in curves[m]]) for m in METHODS]
        print(f"{grid[i]:>9,.0f} " + " ".join(f"{100 * a:>25.1f}%" for a in row))
    if plot:
        save_plot(curves, plot, seeds)
    return curves


def save_plot(curves, path, seeds):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, runs in curves.items():
        length = min(len(c) for c in runs)
        tokens = np.mean([c[:length, 0] for c in runs], axis=0)
        accuracy = 100 * np.array([c[:length, 1] for c in runs])
        line, = ax.plot(tokens, accuracy.mean(axis=0), label=method)
        ax.fill_between(tokens, accuracy.min(axis=0), accuracy.max(axis=0), alpha=0.15,
                        color=line.get_color())
    ax.axhline(90, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("sampled response tokens")
    ax.set_ylabel("held-out accuracy (%), greedy")
    ax.set_title(f"Two-digit addition from a 700-demonstration warm start (seeds "
                 f"{', '.join(map(str, seeds))}: mean, min-max)", fontsize=9)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--plot", default=None, help="write the learning curves to this PNG")
    args = parser.parse_args()
    main(tuple(args.seeds), args.updates, args.plot)

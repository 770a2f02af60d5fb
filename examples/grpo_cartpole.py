"""The group baseline without a language model: GRPO on CartPole-v1, no critic.

CartPole-v1: +1 every step including the last; terminated when the pole passes +-12 degrees or
the cart +-2.4; truncated at 500 steps; solved = mean return 475 (here: over 20 evaluation
episodes of the stochastic policy).

A group is G = 8 episodes reset with the same seed: the same start state, so that the only
difference between them is the actions sampled. Each episode's return is its reward, every
step of an episode gets A = (R - group mean) / group std, and the steps are weighted like the
tokens of a response (minipg/algos/grpo_gym.py; the groups are collected by
minipg/envs/groups.py). No value function, no GAE: the group says which episodes beat their
siblings, and nothing says which step earned it. That is why it needs 4-20 times the env steps of
PPO here (benchmarks/bench_grpo.py), while for a language model, whose one verdict comes at the
end of a response, the critic is what is hard to learn.

The run is every algorithm's run (minipg/run/loop.py): a run directory with config.json,
progress.csv and checkpoint.npz, checkpoints, and a bit-for-bit resume.

    python examples/grpo_cartpole.py [--seed 0] [--steps 300000] [--run-dir DIR]

The same run from the command line:  minipg train --env CartPole-v1 --algo grpo --steps 300000
"""
import argparse

import minipg
from minipg.run.evaluate import evaluate

SOLVED = 475.0


def main(seed=0, steps=300_000, run_dir=None):
    first_solved = []

    def check(record, policy):
        # Evaluated (outside the timed training) once the batch looks solved; training goes on.
        # group_return is the mean return of this update's P * G episodes (mean_return, as in
        # every run, is that of the last 20 episodes).
        if record["group_return"] >= 450 and not first_solved:
            if evaluate(policy, "CartPole-v1", 20, seed=10_000 + seed).mean() >= SOLVED:
                first_solved.append(record["env_steps"])
        return False

    result = minipg.train("CartPole-v1", "grpo", steps, seed, run_dir=run_dir, callback=check,
                          log_every=-1)
    history = result.history
    for update, record in enumerate(history, 1):
        if update % 4 == 1 or update == len(history):
            print(f"update {update:3d} | env steps {record['env_steps']:>7,} | mean return "
                  f"{record['group_return']:5.1f} | all-equal groups "
                  f"{record['frac_all_equal']:.2f}")
    if first_solved:
        print(f"first 20-episode evaluation >= {SOLVED:.0f} after {first_solved[0]:,} env steps")
    returns = evaluate(result.policy, "CartPole-v1", 20, seed=20_000 + seed)
    print(f"after {history[-1]['env_steps']:,} env steps ({history[-1]['wall_clock']:.1f} s of "
          f"training): 20 fresh episodes {returns.mean():.1f} +- {returns.std():.1f}")
    print(f"run directory: {result.run_dir} (minipg eval {result.run_dir}; "
          f"minipg plot {result.run_dir} --out grpo_cartpole.png)")
    return returns


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--run-dir", default=None,
                        help="output directory (default runs/CartPole-v1-grpo-seed<seed>)")
    args = parser.parse_args()
    main(args.seed, args.steps, args.run_dir)

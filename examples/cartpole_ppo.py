"""PPO solves CartPole-v1: train, evaluate, plot.

The environment, CartPole-v1 (gymnasium):
- observation s = (cart position x, cart velocity, pole angle, pole angular velocity);
  two actions: push the cart left (0) or right (1).
- reward +1 on EVERY step, the last one included, so an episode's return is its length.
- terminated when the pole leans past +-12 degrees or the cart leaves +-2.4: a real end, V = 0.
- truncated after 500 steps: a time limit, not a failure, so the return is bootstrapped with
  V(final observation) there (minipg/envs/rollout.py keeps the two flags apart to the end).
- "solved" is a mean return of 475 over 100 consecutive episodes; here we ask the same mean of
  20 evaluation episodes of the stochastic policy (the policy as trained, actions sampled).

PPO (minipg/algos/ppo.py) collects T steps from each of N environments, estimates advantages
with GAE(gamma, lambda), then takes several epochs of minibatch steps on the clipped surrogate

    L_CLIP = mean_i max(-A_i * ratio_i, -A_i * clip(ratio_i, 1 - eps, 1 + eps)),
    ratio_i = pi_theta(a_i|s_i) / pi_old(a_i|s_i),

which lets it reuse each batch without moving the policy too far from the one that collected it.
The defaults of ppo.Config are tuned for CartPole, so nothing needs to be set here.

    python examples/cartpole_ppo.py [--steps 100000] [--seed 0] [--run-dir DIR] [--plot PNG]

The same run from the command line:  minipg train --env CartPole-v1 --algo ppo --steps 100000
"""
import argparse
import time

import minipg
from minipg.run.evaluate import evaluate

ENV_ID = "CartPole-v1"
SOLVED = 475.0            # mean return that counts as solved
EVAL_EPISODES = 20


def main(steps=100_000, seed=0, run_dir=None, plot=None):
    # 1. Train. One seed fixes everything (env resets, initial weights, action sampling,
    #    minibatch order), so the same call writes the same progress.csv bit for bit.
    #    The progress line shows env steps, steps/s, the mean return of the last 20 episodes,
    #    the losses, the policy's entropy and the approximate KL between pi_old and pi_theta.
    start = time.perf_counter()
    result = minipg.train(ENV_ID, "ppo", steps, seed, run_dir=run_dir)
    seconds = time.perf_counter() - start

    # 2. Evaluate on fresh episodes (a seed the training never used for its resets). The
    #    policy stays stochastic: that is the policy the gradient optimised.
    returns = evaluate(result.policy, ENV_ID, EVAL_EPISODES, seed=10_000 + seed)
    verdict = "solved" if returns.mean() >= SOLVED else "not solved yet"
    print(f"\n{ENV_ID} after {result.history[-1]['env_steps']:,} env steps "
          f"({seconds:.1f} s): evaluation over {EVAL_EPISODES} episodes "
          f"{returns.mean():.1f} +- {returns.std():.1f}  ({verdict}: threshold {SOLVED:.0f})")

    # 3. What the run left behind, in result.run_dir:
    #    config.json     every hyperparameter, defaults included
    #    progress.csv    one row per iteration: env_steps, mean_return, losses, KL, ...
    #    checkpoint.npz  policy + value function + config; minipg.load(path) gives the policy
    print(f"checkpoint: {result.checkpoint}")
    print(f"log:        {result.run_dir}/progress.csv")
    print(f"evaluate again:  minipg eval {result.run_dir} --episodes 20")
    print(f"learning curve:  minipg plot {result.run_dir} --out cartpole_ppo.png")

    # 4. Plotting from Python is the same function `minipg plot` calls: return vs env steps.
    if plot:
        from minipg.tools.plot import plot_runs
        plot_runs([result.run_dir], plot, title=f"PPO on {ENV_ID}, seed {seed}")
        print(f"wrote {plot}")
    return result, returns


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=100_000, help="total env steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None,
                        help="output directory (default runs/CartPole-v1-ppo-seed<seed>)")
    parser.add_argument("--plot", default=None, help="also write the learning curve to this PNG")
    args = parser.parse_args()
    main(args.steps, args.seed, args.run_dir, args.plot)

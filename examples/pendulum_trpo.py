"""TRPO with a Gaussian policy swings up Pendulum-v1: a trust region over a continuous policy.

The environment is the one of examples/pendulum_ppo.py (its docstring states the facts): one
torque in [-2, 2], a dense reward in [-16.3, 0] per step, episodes truncated after 200 steps,
returns in [-3254, 0], a random policy near -1200. Our target for TRPO: a mean of at least -250
over 20 episodes of the stochastic policy within 300,000 env steps.

What the trust region means here. The policy is pi(a|s) = N(mu_theta(s), sigma^2) with one
learned log sigma, and the KL between two such Gaussians, for small moves d mu and d log sigma,
is about

    KL ~ (1/2) [ d mu^2 / sigma^2  +  2 d log_sigma^2 ]

(dist.fisher_vector_product: 1/sigma^2 on the mean, 2 on log_std). So the same max_kl allows a
large move of the mean while sigma is large (exploring), and smaller and smaller moves as sigma
shrinks: the step size in parameter space adapts itself, with no learning-rate schedule for the
policy. Each update: the natural gradient x = F^-1 g by conjugate gradient, the step
sqrt(2 max_kl / x^T F x) x, then a line search on the exact KL (dist.kl) and surrogate.

    python examples/pendulum_trpo.py [--steps 300000] [--seed 0] [--npg] [--run-dir DIR]

--npg runs the natural policy gradient instead (line_search=False): the same step, always kept.
It prints, from an evaluation of 20 episodes after every update (outside the training clock),
the first env step at which the mean reached -250, the final evaluation, and how the line
search went (updates whose full step was kept, and the largest KL of a kept step).

Measured (about 15-20 s per run on 2 shared cores, evaluations included), seeds 0, 1, 2:
- TRPO: -250 first reached at 88k, 100k, 88k env steps; after 300k steps -156, -195, -155;
  66, 64, 69 of the 75 updates kept the full step, the others a shorter one; the largest KL of a
  kept step 0.0199, 0.0198, 0.0200.
- --npg: 84k, 100k, 88k; -162, -195, -169; every full step kept, with KLs up to 0.0259, 0.0245,
  0.0244: above max_kl, which the natural policy gradient does not enforce.
"""
import argparse
import time

import numpy as np

import minipg
from minipg.run.evaluate import evaluate

ENV_ID = "Pendulum-v1"
TARGET = -250.0
EVAL_EPISODES = 20

# trpo.Config's defaults are tuned for CartPole; Pendulum needs its own:
PENDULUM_TRPO = dict(
    num_envs=16,               # a batch of 16 * 250 = 4,000 steps, 75 updates in 300k steps
    num_steps=250,
    gamma=0.9,                 # a 10-step horizon is enough for a dense reward (pendulum_ppo.py)
    lam=0.95,
    max_kl=0.02,               # the trust region: mean KL(pi_old || pi_new) per update
    value_epochs=10,           # the critic: 10 passes of Adam over each batch ...
    value_minibatches=8,       # ... in minibatches of 500
    learning_rate=1e-3,        # the critic's Adam only, decayed linearly to 0
    log_std_init=0.0,          # sigma = 1 at the start
)


def main(steps=300_000, seed=0, npg=False, run_dir=None):
    first_reached = {}

    def evaluate_each_update(record, policy):
        if not first_reached:
            returns = evaluate(policy, ENV_ID, EVAL_EPISODES, seed=10_000 + seed)
            if returns.mean() >= TARGET:
                first_reached.update(steps=record["env_steps"], mean=returns.mean())
        return False

    start = time.perf_counter()
    result = minipg.train(ENV_ID, "trpo", steps, seed, run_dir=run_dir,
                          callback=evaluate_each_update, line_search=not npg, **PENDULUM_TRPO)
    seconds = time.perf_counter() - start
    returns = evaluate(result.policy, ENV_ID, EVAL_EPISODES, seed=20_000 + seed)

    name = "natural policy gradient" if npg else "TRPO"
    reached = (f"first reached {TARGET:.0f} at {first_reached['steps']:,} env steps "
               f"({first_reached['mean']:.1f})" if first_reached else f"never reached {TARGET:.0f}")
    kept = [h for h in result.history if h["backtrack_step"] > 0]
    full = sum(h["backtrack_step"] == 1.0 for h in result.history)
    print(f"{ENV_ID}, {name}, seed {seed}: {reached}; after {result.history[-1]['env_steps']:,} "
          f"env steps ({seconds:.1f} s with the evaluations) {returns.mean():.1f} +- "
          f"{returns.std():.1f}; sigma {float(np.exp(result.policy.log_std[0])):.2f}")
    print(f"line search: {full}/{len(result.history)} updates kept the full step, "
          f"{len(result.history) - len(kept)} kept none; largest KL of a kept step "
          f"{max(h['kl'] for h in kept):.4f} (max_kl {PENDULUM_TRPO['max_kl']})")
    return result, returns, first_reached


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=300_000, help="total env steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npg", action="store_true",
                        help="natural policy gradient: no line search")
    parser.add_argument("--run-dir", default=None,
                        help="output directory (default runs/Pendulum-v1-trpo-seed<seed>)")
    args = parser.parse_args()
    main(args.steps, args.seed, args.npg, args.run_dir)

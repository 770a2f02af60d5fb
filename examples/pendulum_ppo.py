"""PPO with a Gaussian policy swings up Pendulum-v1: continuous actions.

The environment, Pendulum-v1 (gymnasium):
- observation s = (cos theta, sin theta, theta_dot), theta = 0 upright, theta_dot in [-8, 8].
- action: one torque u in [-2, 2]. That is too weak to lift the pendulum straight up from
  hanging: it has to swing back and forth to build up energy first.
- reward r = -(theta^2 + 0.1 * theta_dot^2 + 0.001 * u^2), theta wrapped to [-pi, pi], so every
  r lies in [-16.3, 0]: 0 only when upright, still, and without torque.
- starts at theta ~ U(-pi, pi), theta_dot ~ U(-1, 1); NEVER terminates; truncated after 200
  steps. Every episode ends by the time limit, so every end bootstraps from V(final
  observation): the task is really an infinite-horizon one cut into pieces of 200.
- returns lie in [-3254, 0]; a random policy scores about -1200. gymnasium sets no "solved"
  threshold; our target is a mean of at least -300 over 20 episodes of the stochastic
  policy within 300,000 env steps. A good swing-up averages about -150 to -200: episodes that
  start hanging down cost a few hundred whatever the policy.

The policy (minipg/core/policies.py, GaussianPolicy) is

    pi(a|s) = N(mu_theta(s), sigma^2),   mu from an MLP, log sigma one learned number,
    log pi(a|s) = -(a - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2,
    d log pi / d mu = (a - mu) / sigma^2,    d log pi / d log sigma = ((a - mu) / sigma)^2 - 1.

A sample may fall outside [-2, 2]. The rollout stores the UNCLIPPED sample a (its log_prob is
the one the gradient needs); only the copy sent to the env is clipped (GaussianPolicy.to_env).
Clipping the stored action would make log pi(a|s) the density of an action never drawn.

    python examples/pendulum_ppo.py [--steps 300000] [--seed 0] [--run-dir DIR] [--plot PNG]

About 10 s of training on 2 cores. Results with these settings (20 evaluation episodes at the
end): seeds 0, 1, 2 -> -145, -159, -166; the running mean of each is past -300 by 116k env steps.
"""
import argparse
import time

import numpy as np

import minipg
from minipg.run.evaluate import evaluate

ENV_ID = "Pendulum-v1"
TARGET = -300.0
EVAL_EPISODES = 20

# ppo.Config's generic defaults were tuned on CartPole; Pendulum needs its own. These are the
# Pendulum-v1/ppo preset (minipg/run/presets.py, applied automatically), spelled out with why:
PENDULUM_PPO = dict(
    # A batch of N * T = 16 * 250 = 4,000 steps; 300,000 / 4,000 = 75 updates exactly.
    # Gymnasium has no NumPy-vectorized Pendulum, so the N envs are stepped one after another
    # in Python (sync vector env: ~110k env steps/s at N = 16, about a third of training time).
    num_envs=16,
    num_steps=250,
    # gamma 0.9: an effective horizon of 1 / (1 - gamma) = 10 steps (0.5 s), enough for a dense
    # reward, and value targets within [-16.3 / (1 - gamma), 0] = [-163, 0]. With gamma 0.98
    # they reach -814: the value loss (~3,500 at the start) then dominates the gradient-norm
    # clip shared by both networks and the policy hardly moves (-895 after 300k steps, seed 0).
    # gamma 0.95 gets there too, later (seed 0: -953 at 100k steps, where 0.9 has -401).
    gamma=0.9,
    lam=0.95,                  # GAE: mostly Monte Carlo over the 10-step horizon, a bit of TD
    learning_rate=1e-3,        # Adam, ...
    anneal_lr=True,            # ... decayed linearly to 0 over training
    update_epochs=10,          # 10 passes over each batch ...
    num_minibatches=8,         # ... in minibatches of 500: 80 gradient steps per batch
    log_std_init=0.0,          # sigma = 1 at the start: half the torque bound, wide exploration;
                               # it is learned and falls to ~0.3 by the end
    ent_coef=0.0,              # no entropy bonus: sigma shrinks only as far as the return asks
    max_grad_norm=0.5,         # the global norm over policy + value gradients
    norm_adv=True,             # advantages to mean 0, std 1 per minibatch
    norm_reward=False,         # rewards as the env gives them (gamma 0.9 keeps V within [-163, 0])
    adam_eps=1e-5,             # Adam's epsilon
    hidden_sizes=(64, 64),     # tanh MLPs for mu(s) and V(s)
)


def main(steps=300_000, seed=0, run_dir=None, plot=None):
    # 1. Train. The trainer sees a Box action space and builds a GaussianPolicy whose to_env
    #    clips to the env's bounds [-2, 2].
    start = time.perf_counter()
    result = minipg.train(ENV_ID, "ppo", steps, seed, run_dir=run_dir, **PENDULUM_PPO)
    seconds = time.perf_counter() - start
    env_steps = result.history[-1]["env_steps"]

    # 2. Evaluate the stochastic policy (actions sampled, then clipped like in training) on 20
    #    fresh episodes, all 200 steps long.
    returns = evaluate(result.policy, ENV_ID, EVAL_EPISODES, seed=10_000 + seed)
    verdict = "target reached" if returns.mean() >= TARGET else "target missed"
    sigma = float(np.exp(result.policy.log_std[0]))          # the learned exploration noise
    print(f"\n{ENV_ID} after {env_steps:,} env steps ({seconds:.1f} s, "
          f"{result.history[-1]['wall_clock']:.1f} s of it training): evaluation over "
          f"{EVAL_EPISODES} episodes {returns.mean():.1f} +- {returns.std():.1f}  "
          f"({verdict}: {TARGET:.0f}); learned sigma {sigma:.2f}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"evaluate again:  minipg eval {result.run_dir} --episodes 20 "
          f"[--render pendulum.gif]")
    print(f"learning curve:  minipg plot {result.run_dir} --out pendulum_ppo.png")

    if plot:
        from minipg.tools.plot import plot_runs
        plot_runs([result.run_dir], plot, title=f"PPO on {ENV_ID}, seed {seed}")
        print(f"wrote {plot}")
    return result, returns


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=300_000, help="total env steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None,
                        help="output directory (default runs/Pendulum-v1-ppo-seed<seed>)")
    parser.add_argument("--plot", default=None, help="also write the learning curve to this PNG")
    args = parser.parse_args()
    main(args.steps, args.seed, args.run_dir, args.plot)

"""REINFORCE on CartPole-v1 with three weights Psi_t: R(tau), reward-to-go, reward-to-go - V(s).

The environment, CartPole-v1 (gymnasium):
- observation (cart position, cart velocity, pole angle, pole angular velocity); actions
  push left (0) / push right (1).
- reward +1 on EVERY step, the last one included: the return is the episode's length.
- terminated when the pole leans past +-12 degrees or the cart leaves +-2.4; truncated at 500
  steps; "solved" = mean return 475 (over 100 episodes; the curves here average the last 20).

The policy gradient, estimated from a batch of N whole episodes, one per env, each from its own
reset (minipg/algos/reinforce.py; the loss is a mean PER TRAJECTORY and a sum over its steps):

    grad J = E_tau[ sum_t score_t * Psi_t ],      score_t = grad_theta log pi(a_t|s_t)

Every Psi_t below gives the same expected gradient; they differ in how noisy one batch is:

    return        Psi_t = R(tau) = sum_k gamma^k r_k        every reward of the episode
    reward_to_go  Psi_t = G_t = sum_{k>=t} gamma^(k-t) r_k  only the rewards after a_t
    baseline      Psi_t = G_t - V(s_t)                      minus a learned state value

Why each step lowers the variance without adding bias:
- Causality. A reward r_k earned before a_t (k < t) is already fixed when a_t is drawn, so
  E[score_t * r_k] = E[r_k * E[score_t | s_0, a_0, ..., s_t]] = 0. In R(tau) those past rewards
  add terms of mean zero but of full variance; the reward-to-go simply leaves them out.
- A baseline. For any b(s) that depends on the state only,
      E_{a ~ pi}[score(a|s) * b(s)] = b(s) * sum_a grad pi(a|s) = b(s) * grad sum_a pi(a|s)
                                    = b(s) * grad 1 = 0,
  so G_t - b(s_t) is still unbiased (E[score] = 0). With b = V(s_t), close to E[G_t | s_t], the
  weight is centred on zero: better-than-expected actions are pushed up, worse ones down.
- On CartPole this matters a lot: every reward is +1, so R(tau) and G_t are positive for every
  action. Without a baseline each sampled action is made more likely, and the useful signal is
  only the small difference in how much: a difference of large, noisy numbers.
- R(tau) is discounted from the episode's start (gamma = 0.99), so it saturates near
  1 / (1 - gamma) = 100 once episodes are long: a 150-step and a 500-step episode weigh their
  actions 78 vs 99. That flattens its curve, and here it is much of the gap: with gamma = 1
  (`minipg train --algo reinforce --psi return --gamma 1 --steps 500000 --seed 0`) R(tau)
  ends with a logged mean return of 437, against the 185 the three seeds of the figure average
  with gamma = 0.99.

No advantage normalisation here (norm_adv=False, reinforce.Config's default): normalising would
itself centre the weights and hide the difference between the estimators.

    python examples/cartpole_reinforce.py [--steps 500000] [--seeds 3] [--out PNG]

By default the figure goes to docs/cartpole_reinforce.png next to this folder, wherever it is
run from. 9 runs of 500k env steps: 136 s measured on a 2-core machine busy with other jobs.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import minipg

ENV_ID = "CartPole-v1"
PSI = ("return", "reward_to_go", "baseline")
LABELS = {"return": r"$R(\tau)$: the whole return",
          "reward_to_go": r"$G_t$: reward-to-go",
          "baseline": r"$G_t - V(s_t)$: with a baseline"}
SOLVED = 475.0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "cartpole_reinforce.png"


GRID_POINTS = 200


def learning_curves(psi, steps, seeds):
    """(env steps, mean returns (seeds, GRID_POINTS)) of REINFORCE with this psi.

    Every other hyperparameter is reinforce.Config's default (num_envs whole episodes per
    update, gamma 0.99). A batch of whole episodes has as many steps as its episodes, so the
    seeds log at different env steps: each curve is read on one common grid, as the last value
    logged at or before each grid point (a step function, nothing interpolated).
    """
    env_steps = np.linspace(steps / GRID_POINTS, steps, GRID_POINTS)
    curves = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as run_dir:       # only the history is needed
            result = minipg.train(ENV_ID, "reinforce", steps, seed, run_dir=run_dir,
                                  log_every=-1, psi=psi)
        logged_at = np.array([record["env_steps"] for record in result.history])
        returns = np.array([record["mean_return"] for record in result.history])
        last_logged = np.searchsorted(logged_at, env_steps, side="right") - 1
        curves.append(np.where(last_logged >= 0, returns[np.maximum(last_logged, 0)], np.nan))
    return env_steps, np.array(curves)


def first_solved(env_steps, curve):
    """Env steps at which the mean of the last 20 episodes first reaches 475 (None: never)."""
    hits = np.flatnonzero(curve >= SOLVED)                   # NaN (nothing logged yet) is not
    return int(env_steps[hits[0]]) if len(hits) else None


def plot(results, seeds, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(PSI, ["tab:red", "tab:orange", "tab:blue"]))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for psi, (env_steps, curves) in results.items():
        # The line is the mean over seeds; the band spans the best and worst seed.
        ax.plot(env_steps, curves.mean(axis=0), color=colours[psi], label=LABELS[psi])
        if len(curves) > 1:
            ax.fill_between(env_steps, curves.min(axis=0), curves.max(axis=0),
                            color=colours[psi], alpha=0.15, lw=0)
    ax.axhline(SOLVED, color="gray", ls="--", lw=1)
    ax.text(0, SOLVED + 8, "solved (475)", color="gray", fontsize=9)
    ax.set(xlabel="environment steps", ylabel="mean return (last 20 episodes)", ylim=(0, 520),
           title=f"REINFORCE on {ENV_ID}: three choices of $\\Psi_t$ "
                 f"(mean and range over {len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(out=DEFAULT_OUT, steps=500_000, n_seeds=3):
    start = time.perf_counter()
    seeds = list(range(n_seeds))
    results = {}
    print(f"{'psi':>13} {'final mean return':>18}   first mean >= 475 at (env steps, per seed)")
    for psi in PSI:
        results[psi] = env_steps, curves = learning_curves(psi, steps, seeds)
        solved = [first_solved(env_steps, curve) for curve in curves]
        print(f"{psi:>13} {curves[:, -1].mean():>18.1f}   "
              + ", ".join("never" if s is None else f"{s:,}" for s in solved), flush=True)
    plot(results, seeds, out)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG path (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=500_000, help="env steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. seeds-1 per estimator")
    args = parser.parse_args()
    main(args.out, args.steps, args.seeds)

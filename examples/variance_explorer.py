"""The gradient-variance explorer: four unbiased estimators, and how noisy each one is.

The MDP, small enough that minipg.exact knows its gradient exactly:
- 3 steps; the state is the time step t, and the policy is pi(.|t) = softmax(theta[t]) over 3
  actions, with theta = 0 (uniform, the start of training).
- reward 1 for the step's best action (actions 2, 0, 1 at steps 0, 1, 2) and 0 otherwise, plus
  zero-mean uniform noise of width 0.6, U(-0.3, 0.3), on every reward.

Every estimator below has the form g = sum_t score_t * Psi_t with score_t = onehot(a_t) - pi, and
every one has mean grad J (tests/test_exact.py checks it). They differ only in variance:
    return        Psi_t = R(tau)              every reward, also those earned before a_t
    reward_to_go  Psi_t = G_t                 causality: drop the past
    baseline      Psi_t = G_t - V_t(s_t)      centre the weight on zero (exact V)
    gae           GAE(lambda = 0.95)          exact V, TD residuals discounted by lambda
An average over a batch of N episodes has variance Var[g_1] / N: the lines in the figure are
that exact law, drawn from minipg.exact's enumeration; the markers are measured over many
independent batches.

    python examples/variance_explorer.py [--out docs/variance.png] [--batches 2000] [--seed 0]

By default the figure goes to docs/variance.png next to this folder, wherever it is run from.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from minipg.exact import PSI, TabularMDP

BATCH_SIZES = 2 ** np.arange(9)          # N = 1, 2, 4, ..., 256
LAM = 0.95
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "variance.png"


def three_step_mdp(best_actions=(2, 0, 1), noise_width=0.6):
    """State t moves to t + 1 whatever the action; the last state loops (never used)."""
    T, K = len(best_actions), 3
    P = np.zeros((T, K, T))
    P[np.arange(T), :, np.minimum(np.arange(T) + 1, T - 1)] = 1.0
    R = np.zeros((T, K))
    R[np.arange(T), best_actions] = 1.0
    return TabularMDP(P, R, rho0=np.eye(T)[0], horizon=T, reward_noise=noise_width)


def measure_variances(mdp, theta, n_batches, rng):
    """Var of the batch-mean gradient (trace of its covariance) for each psi and batch size N.

    The four estimators are computed from the same episodes, so their differences are not
    sampling luck. Returns {psi: array over BATCH_SIZES}.
    """
    variances = {psi: [] for psi in PSI}
    for N in BATCH_SIZES:
        episodes = mdp.sample_episodes(theta, n_batches * N, rng)
        for psi in PSI:
            g = mdp.episode_grads(theta, episodes, psi, LAM)                # (batches * N, S, A)
            batch_means = g.reshape(n_batches, N, -1).mean(axis=1)          # one estimate a batch
            variances[psi].append(batch_means.var(axis=0, ddof=1).sum())
    return {psi: np.array(v) for psi, v in variances.items()}


def exact_single_sample_variances(mdp, theta):
    """Var[g_1] (trace) of each single-episode estimator, by enumerating trajectories."""
    return {psi: mdp.exact_moments(theta, psi, LAM)[1].sum() for psi in PSI}


def plot(measured, exact, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(PSI, ["tab:red", "tab:orange", "tab:blue", "tab:green"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2),
                                      gridspec_kw=dict(width_ratios=[1.6, 1]))
    for psi in PSI:
        left.plot(BATCH_SIZES, exact[psi] / BATCH_SIZES, "--", color=colours[psi], lw=1)
        left.plot(BATCH_SIZES, measured[psi], "o", color=colours[psi], label=psi)
    left.set(xscale="log", yscale="log", xlabel="batch size N (episodes)",
             ylabel="Var of the gradient estimate (trace)",
             title="measured (markers) vs exact Var[g_1] / N (dashed)")
    left.set_xticks(BATCH_SIZES, [str(n) for n in BATCH_SIZES])
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    bars = right.bar(PSI, [exact[psi] for psi in PSI], color=[colours[psi] for psi in PSI])
    right.bar_label(bars, fmt="%.3f")
    right.margins(y=0.12)                                  # room for the labels
    right.set(ylabel="Var[g_1] (trace)", title="single-episode variance (exact)")
    right.tick_params(axis="x", labelrotation=15)
    fig.suptitle("3-step MDP, uniform policy: same mean gradient, very different noise")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(out=DEFAULT_OUT, n_batches=2000, seed=0):
    start = time.perf_counter()
    mdp, theta = three_step_mdp(), np.zeros((3, 3))
    exact = exact_single_sample_variances(mdp, theta)
    measured = measure_variances(mdp, theta, n_batches, np.random.default_rng(seed))

    print(f"Variance of the batch-mean gradient over {n_batches} batches; in brackets the "
          f"ratio to the exact Var[g_1] / N")
    print(f"{'N':>5} " + " ".join(f"{psi:>22}" for psi in PSI))
    for i, N in enumerate(BATCH_SIZES):
        cells = [f"{measured[psi][i]:.5f} ({measured[psi][i] * N / exact[psi]:.2f})"
                 for psi in PSI]
        print(f"{N:>5} " + " ".join(f"{cell:>22}" for cell in cells))
    print(f"{'exact':>5} " + " ".join(f"{exact[psi]:>22.5f}" for psi in PSI) + "   (N = 1)")
    plot(measured, exact, out)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return measured, exact


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG path (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=2000, help="independent batches per N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.out, args.batches, args.seed)

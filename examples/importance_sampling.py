"""Reusing old episodes: the variance of importance sampling, and what PPO's clip does about it.

A PPO update takes many gradient steps on one batch of episodes, collected by pi_old. After
the first step the policy being improved, pi_theta, is no longer the one that acted. This
script follows theta from theta_old uphill (along grad J(theta_old)) and computes, by listing
every trajectory (minipg.exact.importance), the exact mean and variance of four estimates of
grad J(theta) made from episodes of pi_old, each with the old critic V_old as its baseline
(delta_k: its TD residuals, A_t = G_t - V_old(s_t) = sum_{k>=t} delta_k):

    trajectory     w(tau) sum_t score_t A_t,  w = prod_t rho_t       unbiased
    per-decision   sum_t score_t sum_{k>=t} rho_{0:k} delta_k        unbiased
    PPO            sum_t score_t rho_t A_t                           the surrogate's gradient
    PPO clipped    the same, zero where rho_t left [0.8, 1.2]        PPO's clipped objective
                   on the side its advantage pushes

against the on-policy estimate (fresh episodes of pi_theta, G_t - V_t) and the exact KL between
the policies. Markers are measured: 20,000 sampled episodes of pi_old at a few points.

The MDP: 6 steps, 2 states per step, 3 actions; rewards in [0, 1); the action chooses the
distribution of the next state, so a change of policy changes which states are visited.

    python examples/importance_sampling.py [--out docs/importance_sampling.png] [--seed 0]
"""
import argparse
import time
from pathlib import Path

import numpy as np

from minipg.exact import TabularMDP
from minipg.exact.examples import layered_mdp
from minipg.exact.importance import (kl, off_policy_episode_grads, off_policy_moments, ratios,
                                     weight_second_moment)

H, WIDTH, N_ACTIONS = 6, 2, 3
CLIP_COEF = 0.2
ALPHAS = np.geomspace(0.1, 10.0, 28)        # step lengths along the uphill direction
SAMPLED_ALPHAS = (0.3, 1.5, 6.0)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "importance_sampling.png"
ESTIMATES = {                                  # label: (estimator, clip_coef)
    "trajectory ratio": ("trajectory", None),
    "per-decision ratios": ("per_decision", None),
    "PPO, one-step ratio": ("ppo", None),
    f"PPO clipped (eps = {CLIP_COEF})": ("ppo", CLIP_COEF),
}
COLOURS = ["tab:red", "tab:orange", "tab:blue", "tab:green"]


def along_the_path(mdp, theta_old):
    """Exact, at each point theta = theta_old + alpha u of the uphill path (u: unit grad J):
    the per-step KL, E_old[w^2], and for each estimate (trace variance, relative bias,
    slope along the path E[g] . u). The true slope of J is grad J(theta) . u."""
    direction = mdp.grad_J(theta_old) / np.linalg.norm(mdp.grad_J(theta_old))
    rows = []
    for alpha in ALPHAS:
        theta = theta_old + alpha * direction
        grad = mdp.grad_J(theta)
        # Both directions: PPO's approx_kl estimates KL(P_old || P_theta); the bound
        # E_old[w^2] >= exp KL needs the other one, KL(P_theta || P_old).
        row = dict(alpha=alpha, kl=kl(mdp, theta_old, theta) / H,
                   kl_reverse=kl(mdp, theta, theta_old) / H,
                   second_moment=weight_second_moment(mdp, theta, theta_old),
                   on_policy=mdp.exact_moments(theta, "baseline")[1].sum(),
                   slope=np.sum(grad * direction),
                   max_ratio_gap=np.abs(ratios(mdp, theta, theta_old, mdp.trajectories()) - 1).max())
        for label, (estimator, clip_coef) in ESTIMATES.items():
            mean, variance = off_policy_moments(mdp, theta, theta_old, estimator,
                                                clip_coef=clip_coef)
            row[label] = (variance.sum(), np.linalg.norm(mean - grad) / np.linalg.norm(grad),
                          np.sum(mean * direction))
        rows.append(row)
    return rows


def sampled_variances(mdp, theta_old, rng, n_episodes=20_000):
    """{label: [(per-step KL, measured trace variance)]} at SAMPLED_ALPHAS."""
    direction = mdp.grad_J(theta_old) / np.linalg.norm(mdp.grad_J(theta_old))
    measured = {label: [] for label in ESTIMATES}
    for alpha in SAMPLED_ALPHAS:
        theta = theta_old + alpha * direction
        episodes = mdp.sample_episodes(theta_old, n_episodes, rng)
        for label, (estimator, clip_coef) in ESTIMATES.items():
            g = off_policy_episode_grads(mdp, theta, theta_old, episodes, estimator,
                                         clip_coef=clip_coef)
            measured[label].append((kl(mdp, theta_old, theta) / H, g.var(axis=0, ddof=1).sum()))
    return measured


def horizon_growth(per_step_kls=(0.02, 0.1, 0.3), horizons=np.arange(1, 17)):
    """E_old[w^2] against H when every step's policy moves by the same per-step KL.

    Two actions; pi_old = (1/2, 1/2) and pi = (p, 1 - p) with p solving KL(pi_old || pi) = kl;
    the state is the time step, so E_old[w^2] = (sum_a pi^2 / pi_old)^H (weight_second_moment).
    """
    curves = {}
    for target in per_step_kls:
        # KL((1/2, 1/2) || (p, 1 - p)) = -log 2 - (log p + log(1 - p)) / 2, solved for p > 1/2.
        p = 0.5 * (1 + np.sqrt(1 - np.exp(-2 * target)))
        curves[target] = []
        for H_ in horizons:
            P = np.zeros((H_, 2, H_))
            P[np.arange(H_), :, np.minimum(np.arange(H_) + 1, H_ - 1)] = 1.0
            chain = TabularMDP(P, np.zeros((H_, 2)), np.eye(H_)[0], H_)
            theta = np.tile(np.log([p, 1 - p]), (H_, 1))
            curves[target].append(weight_second_moment(chain, theta, np.zeros((H_, 2))))
    return horizons, curves


def plot(rows, measured, horizons, curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kls = [row["kl"] for row in rows]
    fig, axes = plt.subplots(2, 2, figsize=(12.5, 8.6))
    (variance_ax, bias_ax), (slope_ax, horizon_ax) = axes
    variance_ax.plot(kls, [row["on_policy"] for row in rows], "k--", lw=1.2,
                     label="on-policy: a fresh episode of pi_theta")
    slope_ax.plot(kls, [row["slope"] for row in rows], "k--", lw=1.2,
                  label="true slope of J, grad J(theta) . u")
    for label, colour in zip(ESTIMATES, COLOURS):
        variance_ax.plot(kls, [row[label][0] for row in rows], color=colour, label=label)
        variance_ax.plot(*zip(*measured[label]), "o", color=colour, ms=5)
        bias_ax.plot(kls, [row[label][1] for row in rows], color=colour, label=label)
        slope_ax.plot(kls, [row[label][2] for row in rows], color=colour, label=label,
                      lw=2.5 if "ratio" in label and "PPO" not in label else 1.5,
                      ls=":" if label.startswith("per") else "-")
    variance_ax.set(yscale="log", ylabel="Var of one episode's estimate (trace)",
                    title="variance: exact (lines), 20,000 sampled episodes (markers)")
    bias_ax.set(ylabel="|E[g] - grad J(theta)| / |grad J(theta)|",
                title="bias (exact): none for importance sampling")
    slope_ax.axhline(0.0, color="0.5", lw=0.8)
    slope_ax.set(ylabel="E[g] . u  (u: the path's direction)",
                 title="the slope each estimate climbs along the path")
    for ax in (variance_ax, bias_ax, slope_ax):
        ax.set_xscale("log")
        ax.set_xlabel("per-step KL(pi_old || pi_theta) along theta_old -> theta (uphill)")
        ax.legend(fontsize=8)
    for (target, values), colour in zip(curves.items(), ["tab:purple", "tab:brown", "tab:gray"]):
        horizon_ax.plot(horizons, values, "o-", ms=3, color=colour,
                        label=f"per-step KL = {target}")
    horizon_ax.set(yscale="log", xlabel="horizon H (steps)", ylabel="E_old[w^2] = 1 + chi^2",
                   title="the trajectory weight's second moment: exponential in H")
    horizon_ax.legend(fontsize=8)
    for ax in axes.ravel():
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Estimating grad J(theta) from episodes of pi_old (6-step MDP, 46,656 "
                 "trajectories, all enumerated)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(out=DEFAULT_OUT, seed=0):
    start = time.perf_counter()
    mdp, theta_old = layered_mdp(seed, width=WIDTH, A=N_ACTIONS, H=H)
    rows = along_the_path(mdp, theta_old)
    measured = sampled_variances(mdp, theta_old, np.random.default_rng(seed))
    horizons, curves = horizon_growth()

    labels = list(ESTIMATES)
    print(f"{mdp.n_trajectories:,.0f} trajectories; variance (trace) and relative bias along "
          f"the path")
    print("KL/step: KL(P_old || P_theta) / H, as approx_kl estimates it; reverse: "
          "KL(P_theta || P_old) / H, whose exp(H x) bounds E_old[w^2] from below")
    print(f"{'KL/step':>8} {'reverse':>8} {'E[w^2]':>7} {'on-pol':>7} " +
          " ".join(f"{label[:22]:>24}" for label in labels))
    for row in rows[::3]:
        cells = [f"{row[label][0]:9.3f} ({row[label][1]:5.3f})" for label in labels]
        print(f"{row['kl']:8.4f} {row['kl_reverse']:8.4f} {row['second_moment']:7.3f} "
              f"{row['on_policy']:7.3f} " +
              " ".join(f"{cell:>24}" for cell in cells))
    clipped = f"PPO clipped (eps = {CLIP_COEF})"
    first_out = next(row["kl"] for row in rows if row["max_ratio_gap"] > CLIP_COEF)
    flat = next(row["kl"] for row in rows if row[clipped][2] <= 0)
    print(f"first ratio outside [{1 - CLIP_COEF}, {1 + CLIP_COEF}] at per-step KL {first_out:.4f}; "
          f"the clipped objective stops rising along the path by per-step KL {flat:.4f}")
    print("E_old[w^2] at H = 1, 8, 16: " + "; ".join(
        f"KL {k}: " + ", ".join(f"{v[i]:.3g}" for i in (0, 7, 15)) for k, v in curves.items()))
    plot(rows, measured, horizons, curves, out)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return rows, measured, curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG path (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the MDP and the sampled episodes")
    args = parser.parse_args()
    main(args.out, args.seed)

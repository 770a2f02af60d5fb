"""Why a baseline helps: the two-state bandit.

The environment (one-step episodes, each state equally likely to start):
    state s1: action a1 pays 12, action a2 pays 7      -> a1 is optimal
    state s2: action a1 pays  2, action a2 pays 5      -> a2 is optimal
The policy is pi(.|s) = softmax(theta[s]), starting uniform (theta = 0).

REINFORCE weights each sampled score, onehot(a) - pi(.|s), by Psi. With the raw return,
Psi = r > 0 for every sample, so whatever action was sampled is made more likely; only the size
of the push tells good from bad, and the size depends more on the state than on the action: the
wrong action in s1 (7) is pushed harder than the right action in s2 (5). Subtracting a baseline
b(s), the state's mean reward (9.5 and 3.5, which is V(s) under the uniform policy), gives each
sample the sign of its merit: -2.5 for (s1, a2), +1.5 for (s2, a2). Same expected gradient
(tests/exact/test_exact.py), but every single sample now points the right way.

Training compares the two over many seeds: one episode per update, plain gradient ascent, and
the fraction of runs in which the optimal action is the more likely one.

    python examples/bandit_baseline.py [--out docs/bandit_baseline.png] [--seeds 200]

By default the figure goes to docs/bandit_baseline.png next to this folder.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from minipg.exact.mdp import Episodes, TabularMDP

REWARDS = np.array([[12.0, 7.0],       # s1: a1, a2
                    [2.0, 5.0]])       # s2: a1, a2
OPTIMAL = REWARDS.argmax(axis=1)       # a1 in s1, a2 in s2
BASELINE = REWARDS.mean(axis=1)        # b(s) = the state's mean reward: 9.5, 3.5
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "bandit_baseline.png"


def bandit():
    """Horizon 1: the next state never matters, so any valid P will do."""
    return TabularMDP(np.full((2, 2, 2), 0.5), REWARDS, rho0=[0.5, 0.5], horizon=1)


def sample_weights(mdp):
    """Psi for the two samples of the lesson, (s1, a2) and (s2, a2), raw and baselined."""
    samples = Episodes(states=np.array([[0, 1]]), actions=np.array([[1, 1]]),
                       rewards=REWARDS[[0, 1], [1, 1]][None])
    theta = np.zeros((2, 2))
    raw = mdp.psi_weights(theta, samples, "return")[0]
    # values=(S,) is a critic that ignores time; here it is the fixed b(s) of the lesson.
    baselined = mdp.psi_weights(theta, samples, "baseline", values=BASELINE)[0]
    return raw, baselined


def train(mdp, use_baseline, seed, iterations, episodes_per_update, learning_rate):
    """Gradient ascent theta <- theta + lr * g_hat; returns pi(optimal|s) per iteration (K, 2)."""
    rng = np.random.default_rng(seed)
    theta = np.zeros((2, 2))
    p_optimal = np.zeros((iterations, 2))
    for k in range(iterations):
        if use_baseline:
            grad = mdp.estimate_grad(theta, episodes_per_update, "baseline", rng, values=BASELINE)
        else:
            grad = mdp.estimate_grad(theta, episodes_per_update, "return", rng)
        theta = theta + learning_rate * grad
        p_optimal[k] = mdp.policy(theta)[[0, 1], OPTIMAL]
    return p_optimal


def plot(wins, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    iterations = np.arange(1, wins["raw"].shape[0] + 1)
    for s, ax in enumerate(axes):
        for name, style in [("raw", dict(color="tab:red", label="raw return")),
                            ("baselined", dict(color="tab:blue", label="return - b(s)"))]:
            ax.plot(iterations, wins[name][:, s], **style)
        best, other = REWARDS[s, OPTIMAL[s]], REWARDS[s, 1 - OPTIMAL[s]]
        ax.set(title=f"state s{s + 1}: optimal pays {best:g}, the other {other:g}",
               xlabel="update (one episode each)", xscale="log")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of runs where the\noptimal action is the likelier")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(out=DEFAULT_OUT, n_seeds=200, iterations=200, episodes_per_update=1,
         learning_rate=0.1):
    start = time.perf_counter()
    mdp = bandit()
    raw, baselined = sample_weights(mdp)
    print("REINFORCE weight Psi of each sampled score     raw   baselined")
    for (s, a), w, wb in zip([(1, 2), (2, 2)], raw, baselined):
        print(f"  (s{s}, a{a})  reward {REWARDS[s - 1, a - 1]:>4g}, b(s{s}) = {BASELINE[s - 1]:<4g}"
              f"        {w:>+5g}   {wb:>+9g}")

    p_optimal = {name: np.stack([train(mdp, name == "baselined", seed, iterations,
                                       episodes_per_update, learning_rate)
                                 for seed in range(n_seeds)])
                 for name in ("raw", "baselined")}                          # (seeds, K, 2)
    wins = {name: (p > 0.5).mean(axis=0) for name, p in p_optimal.items()}   # (K, 2)

    print(f"\nFraction of {n_seeds} runs in which the optimal action is the likelier one "
          f"(lr {learning_rate}, {episodes_per_update} episode per update)")
    print(f"{'update':>7} {'s1 raw':>8} {'s1 base':>8} {'s2 raw':>8} {'s2 base':>8}")
    for k in (1, 3, 10, 30, 100, iterations):
        if k <= iterations:
            row = [wins[name][k - 1, s] for s in (0, 1) for name in ("raw", "baselined")]
            print(f"{k:>7} " + " ".join(f"{x:>8.2f}" for x in row))
    plot(wins, out)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return wins


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG path (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=200, help="independent training runs")
    parser.add_argument("--iterations", type=int, default=200, help="updates per run")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
    args = parser.parse_args()
    main(args.out, args.seeds, args.iterations, learning_rate=args.lr)

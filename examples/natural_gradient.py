"""Exact vanilla vs exact natural gradient ascent on a small MDP: the plateau of a
near-deterministic policy, and how the natural gradient crosses it.

The MDP (minipg.exact.TabularMDP, every trajectory enumerated, so J and its gradients are exact):
a chain of 4 states, start in state 0, horizon 8, no discount. Action "right" moves one state
along (and stays in the last one), action "back" returns to state 0. The only reward is 1 for
"right" in the last state, so the best policy walks right: J = 5 (three steps to the end, then
five rewarded steps). The policy is a softmax table, pi(a|s) = softmax(theta[s]).

Two starts:
- near-deterministic: theta[s] = (2, -2) for (back, right), so pi(right) = 0.018 everywhere; the
  first reward needs four "right"s in a row (probability 1e-7): J = 5.2e-7.
- uniform: theta = 0, J = 0.31.

Two ascents, theta <- theta + learning_rate * direction:
- vanilla: direction = grad J. In state s it is sum_t d_t(s) pi_s * A_t(s, .), multiplied by the
  probability of the rare action AND by the rare visits to the states where it pays: from the
  near-deterministic start no entry exceeds 5.2e-7. A plateau, crossed in a number of iterations
  that grows like 1 / learning_rate.
- natural: direction = pinv(F) grad J (minipg.exact.fisher.natural_gradient), F the Fisher of
  the trajectory distribution. It is the visit-weighted advantage, centred per state: the visits
  and pi cancel. In the last state, where "right" pays, it moves theta by 0.51 in the first
  iteration, though that state is almost never reached; then the state before it, and so on
  back to the start.

    python examples/natural_gradient.py [--iterations 3000] [--out docs/natural_gradient.png]

It prints, for each start and method, the first iteration at which J reaches 90% of its best
value (4.5), and draws J per iteration (log scale) for both starts side by side (about 5 s).
From the near-deterministic start: vanilla at learning rates 1 and 10 stays on the plateau for
all 3000 iterations, at 100 it leaves it after 2513, at 1000 after 256; natural gradient ascent
takes 101 iterations at 0.1 and 12 at 1. From the uniform start every one takes 1 to 22.
"""
import argparse

import numpy as np

from minipg.exact import TabularMDP
from minipg.exact.fisher import natural_gradient

N_STATES, HORIZON = 4, 8
BACK, RIGHT = 0, 1
METHODS = [("vanilla", 1.0), ("vanilla", 10.0), ("vanilla", 100.0), ("vanilla", 1000.0),
           ("natural", 0.1), ("natural", 1.0)]


def chain_mdp():
    S, A = N_STATES, 2
    P, R = np.zeros((S, A, S)), np.zeros((S, A))
    for s in range(S):
        P[s, BACK, 0] = 1.0
        P[s, RIGHT, min(s + 1, S - 1)] = 1.0
    R[S - 1, RIGHT] = 1.0
    return TabularMDP(P, R, np.eye(S)[0], HORIZON)


def ascend(mdp, theta, method, learning_rate, iterations):
    """J at every iteration 0 .. iterations of theta <- theta + learning_rate * direction."""
    theta = theta.copy()
    J = [mdp.J(theta)]
    for _ in range(iterations):
        direction = mdp.grad_J(theta) if method == "vanilla" else natural_gradient(mdp, theta)
        theta += learning_rate * direction
        J.append(mdp.J(theta))
    return np.array(J)


def main(iterations=3000, out=None):
    mdp = chain_mdp()
    best = 5.0
    starts = {"near-deterministic start": np.tile([2.0, -2.0], (N_STATES, 1)),
              "uniform start": np.zeros((N_STATES, 2))}
    curves = {}
    print(f"iterations until J >= {0.9 * best} (90% of the best J = {best}), of {iterations}:")
    for start, theta in starts.items():
        print(f"  {start} (J = {mdp.J(theta):.2g}):")
        for method, learning_rate in METHODS:
            J = ascend(mdp, theta, method, learning_rate, iterations)
            curves[start, method, learning_rate] = J
            reached = np.flatnonzero(J >= 0.9 * best)
            print(f"    {method:>8} ascent, learning rate {learning_rate:>5}: "
                  f"{reached[0] if reached.size else 'not reached':>11}")
    if out:
        plot(curves, starts, iterations, out)
        print(f"wrote {out}")
    return curves


def plot(curves, starts, iterations, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    steps = np.arange(iterations + 1) + 1                 # iteration k drawn at k + 1 (log axis)
    colours = {("vanilla", 1.0): "#c6dbef", ("vanilla", 10.0): "#6baed6",
               ("vanilla", 100.0): "#2171b5", ("vanilla", 1000.0): "#08306b",
               ("natural", 0.1): "#fd8d3c", ("natural", 1.0): "#d94801"}
    for ax, start in zip(axes, starts):
        for method, learning_rate in METHODS:
            ax.plot(steps, curves[start, method, learning_rate],
                    color=colours[method, learning_rate],
                    label=f"{method}, learning rate {learning_rate:g}")
        ax.set_xscale("log")
        ax.set_title(start)
        ax.set_xlabel("iteration + 1")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("J(theta), exact")
    axes[1].legend(loc="lower right", fontsize=8)
    figure.suptitle("Exact gradient ascent on a 4-state chain: vanilla vs natural gradient")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--out", default=None, help="write the figure to this PNG")
    args = parser.parse_args()
    main(args.iterations, args.out)

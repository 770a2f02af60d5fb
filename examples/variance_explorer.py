"""The gradient-variance explorer: unbiased estimators of one gradient, and how noisy each one is.

The MDP, small enough that minipg.exact knows its gradient exactly:
- 3 steps; the state is the time step t, and the policy is pi(.|t) = softmax(theta[t]) over 3
  actions. theta = 0 (uniform, the start of training) unless --confidence c puts logit c on
  each step's best action.
- reward 1 for the step's best action (actions 2, 0, 1 at steps 0, 1, 2) and 0 otherwise, plus
  zero-mean uniform noise of width 0.6, U(-0.3, 0.3), on every reward.

Every estimator below has the form g = sum_t score_t * Psi_t with score_t = onehot(a_t) - pi, and
every one has mean grad J (tests/exact/test_exact.py and tests/exact/test_exact_baseline.py check
it). They differ only in variance:
    return            Psi_t = R(tau)              every reward, also those earned before a_t
    reward_to_go      Psi_t = G_t                 causality: drop the past
    baseline          Psi_t = G_t - V_t(s_t)      centre the weight (exact V)
    optimal_baseline  Psi_t = G_t - b*_k(t, s_t)  the variance-minimising baseline, per logit k
    gae               GAE(lambda = 0.95)          exact V, TD residuals discounted by lambda
An average over a batch of N episodes has variance Var[g_1] / N.

Two ways to run it:

    python examples/variance_explorer.py [--out docs/variance.png] [--batches 2000] [--seed 0]
        the static figure: each estimator's variance against N, measured over many independent
        batches (markers) and exact (dashed, from minipg.exact's enumeration);

    python examples/variance_explorer.py --interactive [--confidence 0] [--seed 0]
        the instrument: a window with knobs (full return or reward-to-go or GAE(lambda); no
        baseline, V, or b*; batch size N on a log slider; the policy's confidence) and a bar
        showing the variance of the batch gradient measured over 200 independent batches, with
        its exact value marked, a history of the last measurements, the ratio to vanilla
        REINFORCE at N = 1, and a breakdown of what each knob contributes.
        --screenshot PATH renders the window to a PNG instead of opening it (any backend).

By default the static figure goes to docs/variance.png next to this folder, wherever it is run from.
"""
import argparse
import collections
import time
from pathlib import Path

import numpy as np

from minipg.exact import TabularMDP

BATCH_SIZES = 2 ** np.arange(9)          # N = 1, 2, 4, ..., 256
LAM = 0.95
STATIC_PSI = ("return", "reward_to_go", "baseline", "optimal_baseline", "gae")
DOCS = Path(__file__).resolve().parent.parent / "docs"
DEFAULT_OUT = DOCS / "variance.png"


def three_step_mdp(best_actions=(2, 0, 1), noise_width=0.6):
    """State t moves to t + 1 whatever the action; the last state loops (never used)."""
    T, K = len(best_actions), 3
    P = np.zeros((T, K, T))
    P[np.arange(T), :, np.minimum(np.arange(T) + 1, T - 1)] = 1.0
    R = np.zeros((T, K))
    R[np.arange(T), best_actions] = 1.0
    return TabularMDP(P, R, rho0=np.eye(T)[0], horizon=T, reward_noise=noise_width)


def confident_theta(mdp, confidence):
    """Logit `confidence` on each step's best action, 0 elsewhere (0: the uniform policy)."""
    return confidence * (mdp.R == mdp.R.max(axis=1, keepdims=True))


def batch_variance(per_episode, N):
    """The variance (trace of the covariance) of the mean of N episodes' estimates, measured
    over the len(per_episode) // N independent batches, and its standard error.

    With q_b = |g_b - mean|^2 for batch b, the estimate is sum_b q_b / (B - 1); its standard
    error, from the spread of the q_b, is sd(q) / sqrt(B) (times B / (B - 1), negligible)."""
    B = len(per_episode) // N
    batch_means = per_episode[:B * N].reshape(B, N, -1).mean(axis=1)
    q = ((batch_means - batch_means.mean(axis=0)) ** 2).sum(axis=1)
    return q.sum() / (B - 1), q.std(ddof=1) / np.sqrt(B) * B / (B - 1)


# ------------------------------------------------------------------------------------------
# The static figure
# ------------------------------------------------------------------------------------------

def measure_variances(mdp, theta, n_batches, rng):
    """Var of the batch-mean gradient (trace of its covariance) for each psi and batch size N.

    The estimators are computed from the same episodes, so their differences are not
    sampling luck. Returns {psi: array over BATCH_SIZES}.
    """
    variances = {psi: [] for psi in STATIC_PSI}
    for N in BATCH_SIZES:
        episodes = mdp.sample_episodes(theta, n_batches * N, rng)
        for psi in STATIC_PSI:
            g = mdp.episode_grads(theta, episodes, psi, LAM)                # (batches * N, S, A)
            variances[psi].append(batch_variance(g, N)[0])
    return {psi: np.array(v) for psi, v in variances.items()}


def exact_single_sample_variances(mdp, theta):
    """Var[g_1] (trace) of each single-episode estimator, by enumerating trajectories."""
    return {psi: mdp.exact_moments(theta, psi, LAM)[1].sum() for psi in STATIC_PSI}


def plot(measured, exact, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(STATIC_PSI, ["tab:red", "tab:orange", "tab:blue", "tab:purple",
                                    "tab:green"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4),
                                      gridspec_kw=dict(width_ratios=[1.5, 1]))
    for psi in STATIC_PSI:
        left.plot(BATCH_SIZES, exact[psi] / BATCH_SIZES, "--", color=colours[psi], lw=1)
        left.plot(BATCH_SIZES, measured[psi], "o", color=colours[psi], label=psi)
    left.set(xscale="log", yscale="log", xlabel="batch size N (episodes)",
             ylabel="Var of the gradient estimate (trace)",
             title="measured (markers) vs exact Var[g_1] / N (dashed)")
    left.set_xticks(BATCH_SIZES, [str(n) for n in BATCH_SIZES])
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    bars = right.bar(STATIC_PSI, [exact[psi] for psi in STATIC_PSI],
                     color=[colours[psi] for psi in STATIC_PSI])
    right.bar_label(bars, fmt="%.3f")
    right.margins(y=0.12)                                  # room for the labels
    right.set(ylabel="Var[g_1] (trace)", title="single-episode variance (exact)")
    right.tick_params(axis="x", labelrotation=20)
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
    print(f"{'N':>5} " + " ".join(f"{psi:>22}" for psi in STATIC_PSI))
    for i, N in enumerate(BATCH_SIZES):
        cells = [f"{measured[psi][i]:.5f} ({measured[psi][i] * N / exact[psi]:.2f})"
                 for psi in STATIC_PSI]
        print(f"{N:>5} " + " ".join(f"{cell:>22}" for cell in cells))
    print(f"{'exact':>5} " + " ".join(f"{exact[psi]:>22.5f}" for psi in STATIC_PSI) +
          "   (N = 1)")
    plot(measured, exact, out)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return measured, exact


# ------------------------------------------------------------------------------------------
# The instrument
# ------------------------------------------------------------------------------------------

# Knob labels -> the arguments of TabularMDP.episode_grads / exact_moments.
WEIGHTS = {"full return R(tau)": "return", "reward-to-go G_t": "reward_to_go",
           "GAE(lambda), exact V": "gae"}
BASELINES = {"none": None, "V_t(s)": "value", "b* per parameter": "optimal",
             "b* scalar": "optimal_scalar"}
VANILLA = ("full return R(tau)", "none")

Measurement = collections.namedtuple("Measurement", "label N measured se exact")


class VarianceExplorer:
    """Knobs -> an estimator -> its batch gradient's variance, measured and exact.

    The state is four knobs (weight, baseline, log2 N, lam) and the policy's confidence. Every
    change calls refresh(): sample n_batches independent batches of N episodes, measure the
    variance of their mean gradients (trace of the covariance, with a standard error), and put
    it beside the exact Var[g_1] / N from exact_moments. The callbacks are plain methods, so
    the logic runs (and is tested) without a window.
    """

    def __init__(self, mdp, *, confidence=0.0, n_batches=200, max_log2_N=9, history=30,
                 seed=0, fig=None):
        import matplotlib.pyplot as plt
        from matplotlib.widgets import Button, RadioButtons, Slider

        self.mdp, self.n_batches = mdp, n_batches
        self.rng = np.random.default_rng(seed)
        self.weight, self.baseline, self.log2_N, self.lam = *VANILLA, 0, LAM
        self.history = collections.deque(maxlen=history)
        self._exact_cache = {}
        self.theta = confident_theta(mdp, confidence)

        self.fig = fig if fig is not None else plt.figure(figsize=(13, 7.6))
        fig = self.fig
        fig.text(0.02, 0.965, "Gradient-variance explorer: 3-step MDP, 3 actions, noisy "
                 "rewards", fontsize=13, weight="bold")
        # Controls, left column.
        self.weight_radio = RadioButtons(self._box(0.02, 0.74, 0.21, 0.14, "returns"),
                                         list(WEIGHTS))
        self.baseline_radio = RadioButtons(self._box(0.02, 0.53, 0.21, 0.17, "baseline"),
                                           list(BASELINES))
        self.N_slider = Slider(fig.add_axes([0.07, 0.46, 0.13, 0.03]), "log2 N", 0,
                               max_log2_N, valinit=0, valstep=1)
        # Steps, not a continuum: every new value measures afresh, which takes a moment.
        self.lam_slider = Slider(fig.add_axes([0.07, 0.41, 0.13, 0.03]), "GAE lam", 0.0, 1.0,
                                 valinit=LAM, valstep=0.05)
        self.confidence_slider = Slider(fig.add_axes([0.07, 0.36, 0.13, 0.03]), "policy",
                                        -2.0, 4.0, valinit=confidence, valstep=0.25)
        self.button = Button(fig.add_axes([0.04, 0.29, 0.17, 0.045]), "measure again")
        self.readout = fig.text(0.02, 0.04, "", family="monospace", fontsize=10, va="bottom")
        self.weight_radio.on_clicked(self.on_weight)
        self.baseline_radio.on_clicked(self.on_baseline)
        self.N_slider.on_changed(self.on_batch_size)
        self.lam_slider.on_changed(self.on_lam)
        self.confidence_slider.on_changed(self.on_confidence)
        self.button.on_clicked(self.on_measure)
        # Displays.
        self.bar_ax = fig.add_axes([0.31, 0.45, 0.13, 0.44])
        self.history_ax = fig.add_axes([0.52, 0.45, 0.45, 0.44])
        self.breakdown_ax = fig.add_axes([0.46, 0.07, 0.51, 0.27])
        self.refresh()

    def _box(self, x, y, w, h, title):
        ax = self.fig.add_axes([x, y, w, h])
        ax.set_title(title, fontsize=10, loc="left")
        return ax

    # --- the knobs -------------------------------------------------------------------------

    def on_weight(self, label):
        self.weight = label
        self.refresh()

    def on_baseline(self, label):
        self.baseline = label
        self.refresh()

    def on_batch_size(self, log2_N):
        self.log2_N = int(log2_N)
        self.refresh()

    def on_lam(self, lam):
        self.lam = float(lam)
        self.refresh()

    def on_confidence(self, confidence):
        self.theta = confident_theta(self.mdp, float(confidence))
        self.history.clear()                # another policy: earlier numbers are not comparable
        self.refresh()

    def on_measure(self, _event=None):
        self.refresh()

    # --- the numbers -----------------------------------------------------------------------

    @property
    def N(self):
        return 2 ** self.log2_N

    def arguments(self, weight=None, baseline=None):
        """(psi, keyword arguments) of the estimator the knobs select. GAE has V built in, so
        the baseline knob does not apply to it."""
        psi = WEIGHTS[weight or self.weight]
        if psi == "gae":
            return psi, dict(lam=self.lam)
        return psi, dict(baseline=BASELINES[baseline or self.baseline])

    def label(self):
        if WEIGHTS[self.weight] == "gae":
            return f"GAE(lam={self.lam:.2f}), N={self.N}"
        return f"{self.weight.split()[0]} - {self.baseline}, N={self.N}"

    def exact_single(self, weight=None, baseline=None):
        """Exact Var[g_1] (trace) of a single-episode estimator, cached per policy and knobs."""
        psi, options = self.arguments(weight, baseline)
        key = (self.theta.tobytes(), psi, tuple(sorted(options.items())))
        if key not in self._exact_cache:
            self._exact_cache[key] = self.mdp.exact_moments(self.theta, psi, **options)[1].sum()
        return self._exact_cache[key]

    def measure(self):
        """Measured Var of the N-episode mean gradient over n_batches fresh batches, and its
        standard error."""
        psi, options = self.arguments()
        episodes = self.mdp.sample_episodes(self.theta, self.n_batches * self.N, self.rng)
        per_episode = self.mdp.episode_grads(self.theta, episodes, psi, **options)
        return batch_variance(per_episode, self.N)

    def breakdown(self):
        """What each knob contributes, exact: [(label, variance)] from vanilla REINFORCE at
        N = 1 through the returns knob, the baseline knob, to the batch of N."""
        vanilla = self.exact_single(*VANILLA)
        with_weight = self.exact_single(self.weight, "none")
        with_baseline = self.exact_single()
        gae = WEIGHTS[self.weight] == "gae"
        return [("vanilla REINFORCE, N = 1", vanilla),
                (f"+ {self.weight}" + (" (V built in)" if gae else ""), with_weight),
                ("+ baseline: " + ("(in GAE)" if gae else self.baseline), with_baseline),
                (f"+ batch of N = {self.N}", with_baseline / self.N)]

    # --- the display -----------------------------------------------------------------------

    def refresh(self):
        measured, se = self.measure()
        exact = self.exact_single() / self.N
        vanilla = self.exact_single(*VANILLA)
        self.last = Measurement(self.label(), self.N, measured, se, exact)
        self.history.append(self.last)
        self.ratio_to_vanilla = measured / vanilla

        low = min(self.exact_single(w, b) for w in WEIGHTS for b in BASELINES) / 2 ** 9 / 3
        limits = (low, 3 * max(vanilla, measured))
        ax = self.bar_ax
        ax.clear()
        ax.bar([0], [measured], width=0.6, color="tab:blue", yerr=[2 * se], capsize=6,
               label="measured (+- 2 SE)")
        self.exact_marker, = ax.plot([-0.45, 0.45], [exact, exact], color="k", lw=2.5,
                                     label="exact Var[g_1] / N")
        ax.set(yscale="log", ylim=limits, xlim=(-0.6, 0.6), xticks=[],
               title=f"batch gradient variance\n({self.n_batches} batches of N = {self.N})")
        ax.legend(loc="upper right", fontsize=7)

        ax = self.history_ax
        ax.clear()
        steps = np.arange(len(self.history))
        ax.plot(steps, [m.exact for m in self.history], "k_", ms=14, mew=2,
                label="exact")
        ax.errorbar(steps, [m.measured for m in self.history],
                    yerr=[2 * m.se for m in self.history], fmt="o", color="tab:blue",
                    label="measured (+- 2 SE)")
        ax.set(yscale="log", ylim=limits, xlim=(-0.5, self.history.maxlen - 0.5),
               title="the last measurements (newest on the right)",
               xlabel="measurement")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(True, alpha=0.3)

        ax = self.breakdown_ax
        ax.clear()
        stages = self.breakdown()
        ax.barh(range(len(stages)), [v for _, v in stages],
                color=["tab:red", "tab:orange", "tab:purple", "tab:blue"])
        ax.set_yticks(range(len(stages)), [name for name, _ in stages], fontsize=8)
        ax.invert_yaxis()
        ax.set(xscale="log", xlim=limits, title="what each knob does (exact variance)")
        for i, (_, value) in enumerate(stages):
            factor = "" if i == 0 else f"  (/{stages[i - 1][1] / value:.3g})"
            ax.text(value, i, f" {value:.4g}{factor}", va="center", fontsize=8)
        ax.tick_params(axis="y", pad=2)

        self.readout.set_text(self.readout_text())
        self.fig.canvas.draw_idle()

    def readout_text(self):
        m = self.last
        return "\n".join([
            f"{m.label}",
            f"measured   {m.measured:.5f} +- {m.se:.5f}",
            f"exact      {m.exact:.5f}",
            f"measured / exact     {m.measured / m.exact:.3f}",
            f"vs vanilla at N = 1  {self.ratio_to_vanilla:.4g}x",
            f"  (vanilla, exact:   {self.exact_single(*VANILLA):.4f})",
        ])


def screenshot(path, confidence=0.0, seed=0):
    """The instrument, rendered off-screen after the lesson's clicks: vanilla, reward-to-go,
    V, b*, then N up."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    explorer = VarianceExplorer(three_step_mdp(), confidence=confidence, seed=seed)
    # Through the widgets, as clicks and drags would: their callbacks run.
    explorer.weight_radio.set_active(list(WEIGHTS).index("reward-to-go G_t"))
    explorer.baseline_radio.set_active(list(BASELINES).index("V_t(s)"))
    explorer.baseline_radio.set_active(list(BASELINES).index("b* per parameter"))
    for log2_N in (1, 2, 3, 4):
        explorer.N_slider.set_val(log2_N)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    explorer.fig.savefig(path, dpi=100)
    plt.close(explorer.fig)
    return explorer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG path (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=2000, help="independent batches per N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interactive", action="store_true", help="open the instrument")
    parser.add_argument("--confidence", type=float, default=0.0,
                        help="interactive: logit of each step's best action (0: uniform)")
    parser.add_argument("--screenshot", help="interactive: write the window to this PNG")
    args = parser.parse_args()
    if args.screenshot:
        screenshot(args.screenshot, args.confidence, args.seed)
        print(f"wrote {args.screenshot}")
    elif args.interactive:
        import matplotlib.pyplot as plt
        explorer = VarianceExplorer(three_step_mdp(), confidence=args.confidence,
                                    seed=args.seed)
        plt.show()
    else:
        main(args.out, args.batches, args.seed)

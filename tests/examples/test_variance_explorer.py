"""The interactive variance explorer (examples/variance_explorer.py), driven without a window.

The widgets are operated as a user would (radio buttons, sliders), their callbacks run, and the
numbers the window shows -- the bar, the exact marker, the readout, the history, the breakdown --
are checked against TabularMDP.exact_moments. Measured variances must lie within 5 of their own
standard errors of the exact ones.
"""
import importlib.util
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

PATH = Path(__file__).resolve().parents[2] / "examples" / "variance_explorer.py"
spec = importlib.util.spec_from_file_location("variance_explorer", PATH)
explorer_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(explorer_module)
WEIGHTS, BASELINES = list(explorer_module.WEIGHTS), list(explorer_module.BASELINES)


@pytest.fixture
def explorer():
    # The Agg canvas renders on every draw_idle (a window would wait for idle time); the
    # numbers are read from the artists, and one test renders the whole figure.
    fig = plt.figure(figsize=(13, 7.6))
    fig.canvas.draw_idle = lambda: None
    yield explorer_module.VarianceExplorer(explorer_module.three_step_mdp(), seed=3, fig=fig)
    plt.close(fig)


def shown(explorer):
    """The numbers on screen: bar height, exact marker, and the readout's numbers."""
    bar_height = explorer.bar_ax.patches[0].get_height()
    marker = explorer.exact_marker.get_ydata()
    assert marker[0] == marker[1]
    text = explorer.readout.get_text()
    number = r"([0-9.e+-]+)"
    measured, se = map(float, re.search(rf"measured\s+{number} \+- {number}", text).groups())
    exact = float(re.search(rf"exact\s+{number}", text).group(1))
    ratio = float(re.search(rf"vs vanilla at N = 1\s+{number}x", text).group(1))
    return dict(bar=bar_height, marker=marker[0], measured=measured, se=se, exact=exact,
                ratio=ratio)


def check(explorer, psi, N, **options):
    """The display agrees with exact_moments for this estimator and N, and the measurement
    agrees with it within 5 standard errors."""
    mdp, theta = explorer.mdp, explorer.theta
    exact = mdp.exact_moments(theta, psi, **options)[1].sum() / N
    vanilla = mdp.exact_moments(theta, "return")[1].sum()
    numbers = shown(explorer)
    assert explorer.N == N
    assert numbers["marker"] == pytest.approx(exact, rel=1e-12)
    assert numbers["exact"] == pytest.approx(exact, rel=1e-4)            # printed to 5 digits
    assert numbers["bar"] == explorer.last.measured
    assert numbers["measured"] == pytest.approx(explorer.last.measured, rel=1e-3, abs=1e-5)
    assert numbers["ratio"] == pytest.approx(explorer.last.measured / vanilla, rel=1e-3)
    assert abs(explorer.last.measured - exact) <= 5 * explorer.last.se
    assert explorer.history[-1].exact == pytest.approx(exact, rel=1e-12)


def test_the_lesson_vanilla_then_reward_to_go_then_V_then_b_star_then_N(explorer):
    # Each click lowers the exact variance on the screen, and the measurement follows it.
    check(explorer, "return", 1)
    explorer.weight_radio.set_active(WEIGHTS.index("reward-to-go G_t"))
    check(explorer, "reward_to_go", 1)
    explorer.baseline_radio.set_active(BASELINES.index("V_t(s)"))
    check(explorer, "baseline", 1)
    explorer.baseline_radio.set_active(BASELINES.index("b* per parameter"))
    check(explorer, "optimal_baseline", 1)
    explorer.N_slider.set_val(4)
    check(explorer, "optimal_baseline", 16)
    exacts = [m.exact for m in explorer.history]
    assert all(high > low for high, low in zip(exacts, exacts[1:]))
    # The breakdown shows the same chain of exact values, the last one divided by N.
    stages = [value for _, value in explorer.breakdown()]
    mdp, theta = explorer.mdp, explorer.theta
    np.testing.assert_allclose(stages, [
        mdp.exact_moments(theta, "return")[1].sum(),
        mdp.exact_moments(theta, "reward_to_go")[1].sum(),
        mdp.exact_moments(theta, "optimal_baseline")[1].sum(),
        mdp.exact_moments(theta, "optimal_baseline")[1].sum() / 16], rtol=1e-12)
    drawn = [patch.get_width() for patch in explorer.breakdown_ax.patches]
    np.testing.assert_allclose(drawn, stages, rtol=1e-12)


def test_the_full_return_takes_a_baseline_and_gae_takes_lambda(explorer):
    explorer.baseline_radio.set_active(BASELINES.index("V_t(s)"))
    check(explorer, "return", 1, baseline="value")
    explorer.baseline_radio.set_active(BASELINES.index("b* scalar"))
    explorer.N_slider.set_val(2)
    check(explorer, "return", 4, baseline="optimal_scalar")
    explorer.weight_radio.set_active(WEIGHTS.index("GAE(lambda), exact V"))
    check(explorer, "gae", 4, lam=0.95)
    explorer.lam_slider.set_val(0.5)
    check(explorer, "gae", 4, lam=0.5)
    assert "(in GAE)" in explorer.breakdown()[2][0]     # the baseline knob does not apply


def test_a_confident_policy_makes_b_star_beat_V_by_more_and_restarts_the_history(explorer):
    explorer.weight_radio.set_active(WEIGHTS.index("reward-to-go G_t"))
    explorer.confidence_slider.set_val(2.0)
    assert len(explorer.history) == 1                  # another policy: a fresh history
    mdp = explorer.mdp
    np.testing.assert_allclose(explorer.theta, 2.0 * (mdp.R == 1.0))
    explorer.baseline_radio.set_active(BASELINES.index("V_t(s)"))
    check(explorer, "baseline", 1)
    with_V = explorer.last.exact
    explorer.baseline_radio.set_active(BASELINES.index("b* per parameter"))
    check(explorer, "optimal_baseline", 1)
    assert explorer.last.exact < 0.5 * with_V


def test_measure_again_draws_fresh_batches_and_the_window_renders(explorer, tmp_path):
    first = explorer.last.measured
    explorer.on_measure()
    explorer.fig.savefig(tmp_path / "explorer.png")
    assert (tmp_path / "explorer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.last.measured != first
    assert explorer.history[-1].exact == explorer.history[-2].exact
    check(explorer, "return", 1)

"""`minipg plot` as a specification: runs that differ only in seed become one curve, their
mean, inside the min-max band; other runs stay apart; thresholds are dashed lines."""
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from minipg.tools.cli import main  # noqa: E402
from minipg.tools.plot import draw, group_by_seed, mean_and_band  # noqa: E402


def fake_run(root, name, seed, returns, steps=None, **config):
    """A run directory with a config.json and a progress.csv of the given returns."""
    run = root / name
    run.mkdir()
    values = {**dict(env_id="Pendulum-v1", algo="ppo", seed=seed, learning_rate=1e-3,
                     log_every=1.0), **config}
    (run / "config.json").write_text(json.dumps(values))
    steps = steps if steps is not None else 100 * (np.arange(len(returns)) + 1)
    rows = "".join(f"{i + 1},{s},{r}\r\n" for i, (s, r) in enumerate(zip(steps, returns)))
    (run / "progress.csv").write_text("iteration,env_steps,mean_return\r\n" + rows)
    return str(run)


def test_runs_that_differ_only_in_seed_are_one_group(tmp_path):
    a = fake_run(tmp_path, "a", 0, [1, 2])
    b = fake_run(tmp_path, "b", 1, [3, 4], log_every=-1)        # logging may differ
    c = fake_run(tmp_path, "c", 2, [5, 6], learning_rate=3e-4)  # another config
    d = fake_run(tmp_path, "d", 2, [7, 8])
    assert group_by_seed([a, b, c, d]) == [[a, b, d], [c]]
    # A config written before a field existed holds its default: the same config.
    e = fake_run(tmp_path, "e", 3, [1, 2], noise_correlation=0.0)
    f = fake_run(tmp_path, "f", 4, [1, 2], noise_correlation=0.5)
    assert group_by_seed([a, e, f]) == [[a, e], [f]]


def test_the_curve_is_the_mean_and_the_band_the_min_and_max_over_seeds():
    curves = [(np.array([100., 200., 300.]), np.array([np.nan, -300., -200.])),
              (np.array([100., 200., 300.]), np.array([-500., -100., -250.])),
              (np.array([100., 200.]), np.array([-400., -200.]))]        # stopped earlier
    steps, mean, low, high = mean_and_band(curves)
    np.testing.assert_array_equal(steps, [100., 200.])            # the steps all reached
    np.testing.assert_allclose(mean, [-450., -200.])               # NaN (no episode yet) left out
    np.testing.assert_array_equal(low, [-500., -300.])
    np.testing.assert_array_equal(high, [-400., -100.])
    # Curves logged at other steps are interpolated onto the first one's.
    steps, mean, _, _ = mean_and_band([(np.array([0., 10.]), np.array([0., 10.])),
                                       (np.array([0., 5., 10.]), np.array([2., 4., 12.]))])
    np.testing.assert_allclose(mean, [1., 11.])


def test_draw_makes_one_line_and_band_per_group_and_the_thresholds(tmp_path):
    runs = [fake_run(tmp_path, f"s{k}", k, [k, 2 * k, 3 * k]) for k in range(3)]
    other = fake_run(tmp_path, "other", 0, [9, 9, 9], learning_rate=0.5)
    fig, ax = plt.subplots()
    draw(ax, runs + [other], thresholds=[(-200.0, "target"), (5.0, None)])
    lines = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(lines) == 2 and len(ax.collections) == 1           # one band, for the seeds
    np.testing.assert_allclose(lines[0].get_ydata(), [1., 2., 3.])   # mean of k, 2k, 3k
    assert "mean of seeds 0, 1, 2" in lines[0].get_label()
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [(d.get_ydata()[0], d.get_label()) for d in dashed] == [(-200.0, "target"),
                                                                   (5.0, "threshold 5")]
    plt.close(fig)


def test_the_cli_averages_seeds_and_draws_a_threshold(tmp_path, capsys):
    runs = [fake_run(tmp_path, f"s{k}", k, [k, 2 * k]) for k in range(2)]
    out = tmp_path / "curves.png"
    assert main(["plot", *runs, "--threshold", "-200", "--threshold-label", "target",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", *runs, "--threshold-label", "x", "--out", str(out)]) == 1
    assert "more --threshold-label" in capsys.readouterr().err


@pytest.mark.parametrize("average, expected", [(True, 1), (False, 2)])
def test_no_average_draws_every_run(tmp_path, average, expected):
    runs = [fake_run(tmp_path, f"s{k}", k, [k, 2 * k]) for k in range(2)]
    fig, ax = plt.subplots()
    draw(ax, runs, average=average)
    assert len(ax.get_lines()) == expected
    plt.close(fig)

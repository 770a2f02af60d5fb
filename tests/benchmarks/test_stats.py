"""The aggregates of the benchmark tables (benchmarks/stats.py): the interquartile mean of known
arrays, and the bootstrap interval's coverage measured against the coverage the normal theory
predicts for it."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "stats.py"
spec = importlib.util.spec_from_file_location("benchmark_stats", PATH)
stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stats)


def test_iqm_of_eight_scores_is_the_mean_of_the_middle_four():
    scores = np.array([8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0])
    assert stats.iqm(scores) == pytest.approx((3 + 4 + 5 + 6) / 4)


def test_iqm_ignores_the_outer_quarters():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    wild = scores.copy()
    wild[0], wild[-1] = -1e6, 1e6             # the worst and best runs go anywhere
    assert stats.iqm(wild) == pytest.approx(stats.iqm(scores))
    assert stats.mean(wild) != pytest.approx(stats.mean(scores))


def test_iqm_drops_the_lowest_and_highest_quarter_rounded_down():
    # n = 5: floor(5 / 4) = 1 dropped at each end, the mean of the middle three.
    assert stats.iqm([16.0, 1.0, 8.0, 2.0, 4.0]) == pytest.approx((2 + 4 + 8) / 3)
    # n = 7: one at each end again; n = 3: nothing dropped.
    assert stats.iqm([7.0, 1.0, 6.0, 2.0, 5.0, 3.0, 4.0]) == pytest.approx(4.0)
    assert stats.iqm([0.0, 6.0, 12.0]) == pytest.approx(6.0)


def test_iqm_of_one_or_two_scores_is_their_mean_and_reduces_the_last_axis():
    assert stats.iqm([3.0]) == 3.0
    assert stats.iqm([3.0, 5.0]) == pytest.approx(4.0)
    rows = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 4.0, 0.0, 100.0]])
    np.testing.assert_allclose(stats.iqm(rows), [2.5, 4.0])


def test_iqm_matches_trimmed_mean_when_n_is_a_multiple_of_four():
    rng = np.random.default_rng(1)
    for n in (4, 12, 40):
        x = rng.standard_normal(n)
        k = n // 4
        assert stats.iqm(x) == pytest.approx(np.sort(x)[k:n - k].mean())


def t_cdf_interval(bound, dof):
    """P(|T| <= bound) for Student's t with dof degrees of freedom (its density integrated)."""
    t = np.linspace(0.0, bound, 200_001)
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    density = np.exp(log_c - (dof + 1) / 2 * np.log1p(t * t / dof))
    return 2.0 * float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(t)))


def test_bootstrap_interval_of_the_mean_covers_as_often_as_theory_says():
    # The percentile bootstrap interval of a mean of n normal scores is, for many resamples,
    # xbar -+ 1.96 * s_n / sqrt(n) with s_n the std with ddof 0, which covers the true mean with
    # probability P(|T_{n-1}| <= 1.96 sqrt((n - 1) / n)): 0.936 for n = 30, not 0.95.
    n, trials, confidence = 30, 500, 0.95
    expected = t_cdf_interval(1.959964 * math.sqrt((n - 1) / n), n - 1)
    assert 0.93 < expected < 0.94
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(trials):
        sample = rng.normal(2.0, 3.0, size=n)
        low, high = stats.bootstrap_ci(sample, stats.mean, confidence, 2_000, rng)
        covered += low <= 2.0 <= high
    coverage = covered / trials
    # Binomial standard error of the measured coverage over the trials, and 4 of them; the
    # bootstrap's own Monte Carlo noise in the endpoints (2,000 resamples) is far smaller.
    se = math.sqrt(expected * (1 - expected) / trials)
    assert abs(coverage - expected) <= 4 * se, (coverage, expected, se)


def test_bootstrap_interval_narrows_with_more_runs_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    few, many = rng.normal(size=10), rng.normal(size=1000)
    for statistic in (stats.mean, stats.iqm):
        low_few, high_few = stats.bootstrap_ci(few, statistic, rng=np.random.default_rng(0))
        low_many, high_many = stats.bootstrap_ci(many, statistic, rng=np.random.default_rng(0))
        assert low_few <= statistic(few) <= high_few
        assert low_many <= statistic(many) <= high_many
        # The width scales like 1 / sqrt(n): 10x for 100x the runs (a factor 3 of slack).
        assert (high_few - low_few) > 3 * (high_many - low_many)


def test_bootstrap_of_identical_scores_is_that_score_and_is_reproducible():
    assert stats.bootstrap_ci([500.0] * 7, stats.iqm) == pytest.approx((500.0, 500.0), abs=1e-9)
    scores = [1.0, 5.0, 2.0, 9.0, 4.0]
    assert (stats.bootstrap_ci(scores, rng=np.random.default_rng(4))
            == stats.bootstrap_ci(scores, rng=np.random.default_rng(4)))
    summary = stats.summarize(scores)
    assert summary["n"] == 5 and summary["mean"] == pytest.approx(4.2)
    assert summary["mean_ci"][0] <= 4.2 <= summary["mean_ci"][1]
    assert summary["iqm_ci"][0] <= summary["iqm"] <= summary["iqm_ci"][1]


@pytest.mark.parametrize("call, match", [
    (lambda: stats.iqm([]), "scores"),
    (lambda: stats.iqm([1.0, float("nan")]), "finite"),
    (lambda: stats.bootstrap_ci([1.0, 2.0], confidence=1.0), "confidence"),
    (lambda: stats.bootstrap_ci([1.0, 2.0], resamples=0), "resamples"),
    (lambda: stats.bootstrap_ci([[1.0, 2.0]]), "one-dimensional"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()

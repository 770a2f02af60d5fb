"""Aggregates over seeds for the benchmark tables: the interquartile mean and bootstrap
confidence intervals (the statistics rliable computes; Agarwal et al. 2021, "Deep RL at the Edge
of the Statistical Precipice"), written out so that a reader can check them. Tested in
tests/benchmarks/test_stats.py.

With a handful of seeds a mean +- std says little: one lucky or unlucky seed moves it, and the
std is not the uncertainty of the mean. The interquartile mean discards the best and the worst
quarter of the runs, and a bootstrap over seeds says how far either aggregate could move had
other seeds been drawn.
"""
import numpy as np


def _as_scores(scores, name="scores"):
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim < 1 or scores.shape[-1] == 0:
        raise ValueError(f"{name} must hold at least one score, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name} must be finite, got {scores}")
    return scores


def iqm(scores):
    """Interquartile mean over the last axis: the mean of the middle half of the sorted runs,

        k   = floor(n / 4)
        IQM = mean(x_(k+1), ..., x_(n-k))        x_(1) <= ... <= x_(n)

    the k lowest and k highest scores dropped. This is scipy's trim_mean(x, 0.25) and so
    rliable's aggregate_iqm, the figure other papers report (bench_envs.py checks it against
    rliable when that is installed). With fewer than 4 runs nothing is dropped: it is the mean.
    """
    scores = _as_scores(scores)
    n = scores.shape[-1]
    k = n // 4
    return np.sort(scores, axis=-1)[..., k:n - k].mean(axis=-1)


def mean(scores):
    """The mean over the last axis (so that it can be bootstrapped like iqm)."""
    return _as_scores(scores).mean(axis=-1)


def bootstrap_ci(scores, statistic=mean, confidence=0.95, resamples=10_000, rng=None):
    """Percentile bootstrap confidence interval of statistic(scores) over the runs:

        draw resamples x*_b of n scores with replacement from the n observed ones,
        theta*_b = statistic(x*_b),  b = 1..resamples,
        CI = [q_{alpha/2}(theta*), q_{1 - alpha/2}(theta*)],   alpha = 1 - confidence.

    statistic takes a (resamples, n) array and reduces its last axis. Returns (low, high).
    With one score, or scores all equal, the interval is that single value: a bootstrap over
    seeds knows nothing beyond the seeds it was given.
    """
    scores = _as_scores(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional (one score per run), got shape "
                         f"{scores.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    draws = scores[rng.integers(0, len(scores), size=(resamples, len(scores)))]
    estimates = statistic(draws)
    alpha = 1.0 - confidence
    low, high = np.quantile(estimates, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def summarize(scores, confidence=0.95, resamples=10_000, seed=0):
    """{"mean", "mean_ci", "iqm", "iqm_ci", "n"} of one-per-run scores (both CIs from the same
    resampled seeds, so they are as reproducible as the seed)."""
    scores = _as_scores(scores)
    return {"n": len(scores), "mean": float(mean(scores)), "iqm": float(iqm(scores)),
            "mean_ci": bootstrap_ci(scores, mean, confidence, resamples,
                                    np.random.default_rng(seed)),
            "iqm_ci": bootstrap_ci(scores, iqm, confidence, resamples,
                                   np.random.default_rng(seed))}

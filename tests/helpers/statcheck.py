"""Monte Carlo against exact values: the statistical yardstick of the tests of minipg.exact (the
small MDPs they use live in minipg.exact.examples)."""
import numpy as np


def standard_errors(per_episode):
    """Standard error of the mean of (N, ...) samples, per entry."""
    return per_episode.std(axis=0, ddof=1) / np.sqrt(len(per_episode))


def assert_within(estimate, target, se, k=4.0):
    """|estimate - target| <= k standard errors, entry by entry (with float slack for se=0)."""
    gap = np.abs(estimate - target)
    assert (gap <= k * se + 1e-12).all(), f"max gap {np.max(gap / (se + 1e-300)):.2f} SE"


def assert_sample_variance_within(per_episode, exact_variance, k=5.0):
    """The sample variance of (N, ...) samples against the exact one, entry by entry, with the
    standard error of a sample variance, sd((g - mean)^2) / sqrt(N)."""
    squared = (per_episode - per_episode.mean(axis=0)) ** 2
    assert_within(squared.mean(axis=0), exact_variance, standard_errors(squared), k=k)

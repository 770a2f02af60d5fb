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

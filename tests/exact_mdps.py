"""Statistical helpers shared by the tests of minipg.exact.mdp and its companions; the small MDPs
they use live in minipg.exact.examples."""
import numpy as np

from minipg.exact.examples import layered_mdp, random_mdp, stay_or_leave_mdp, three_step_mdp  # noqa: F401


def standard_errors(per_episode):
    """Standard error of the mean of (N, ...) samples, per entry."""
    return per_episode.std(axis=0, ddof=1) / np.sqrt(len(per_episode))


def assert_within(estimate, target, se, k=4.0):
    """|estimate - target| <= k standard errors, entry by entry (with float slack for se=0)."""
    gap = np.abs(estimate - target)
    assert (gap <= k * se + 1e-12).all(), f"max gap {np.max(gap / (se + 1e-300)):.2f} SE"

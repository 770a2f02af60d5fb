"""Layer 5, exact answers: tabular MDPs small enough to enumerate every trajectory, so that J,
grad J and the mean and variance of every estimator are computed exactly, not sampled.

    mdp          TabularMDP: J, grad J, V, Q, sampled estimates and their exact moments
    baseline     the variance-optimal baseline
    fisher       the Fisher matrix and the natural gradient
    importance   importance sampling: ratios, off-policy estimates and their moments
    trust_region the performance-difference lemma and the surrogate's error bound
    psi          Psi_t = Q, A, n-step advantages, and GAE as their mixture
    entropy      the entropy bonus on a bandit: its optimum, with and without beta
    groups       GRPO's group baselines, their expectation by enumerating every group
    examples     the MDPs the tests and examples use

May import minipg.core and minipg.algos (to check an algorithm's pure functions exactly).
"""
from minipg.exact.mdp import TabularMDP  # noqa: F401  (minipg.exact.TabularMDP, the public name)

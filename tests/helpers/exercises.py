"""The exercises of docs/derivation.md, as data: each is a small bug planted in one function
(`old` replaced by `new` in `path`) and the test that must then fail.

    python tests/helpers/exercises.py      # plants each bug in turn, runs its test, restores

checks that every exercise does what the text says (about 80 s). tests/test_docs.py checks, on
every run, that each exercise's line still exists once in its file and that the Exercises
section names each file and test.
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (path, old, new, test): the bug is `old` replaced by `new` in `path`.
EXERCISES = [
    ("minipg/exact/mdp.py",
     'return np.einsum("t,ts,sa,tsa->sa", self.discounts, d, pi, advantage)',
     'return np.einsum("ts,sa,tsa->sa", d, pi, advantage)',
     "tests/exact/test_exact.py::"
     "test_grad_J_equals_the_policy_gradient_theorem_with_exact_advantages"),
    ("minipg/exact/mdp.py",
     "            grad -= np.bincount(s, weight, S)[:, None] * pi                  # - pi(.|s_t)\n",
     "",
     "tests/exact/test_exact.py::test_grad_J_equals_central_finite_differences_of_J"),
    ("minipg/exact/mdp.py",
     "return np.divide((d * V).sum(axis=0), visits,",
     "return np.divide(V.sum(axis=0), len(V) + 0 * visits,",
     "tests/exact/test_exact.py::test_gae_is_biased_when_the_critic_cannot_see_time"),
    ("minipg/exact/baseline.py",
     "return Q - pi * (Q - V[:-1, :, None]) / (1 - pi)",
     "return Q - pi * (Q - V[:-1, :, None])",
     "tests/exact/test_exact_baseline.py::test_b_star_by_enumeration_equals_its_closed_form_from_Q"),
    ("minipg/exact/importance.py",
     "factor = pi ** 2 / pi_old ",
     "factor = pi / pi_old ",
     "tests/exact/test_exact_is.py::"
     "test_the_trajectory_weight_has_mean_one_and_the_second_moment_of_the_recursion"),
    ("minipg/exact/trust_region.py",
     "pi, d = mdp.policy(theta), mdp.state_distribution(theta)\n",
     "pi, d = mdp.policy(theta), mdp.state_distribution(theta_old)\n",
     "tests/exact/test_trust_region.py::test_the_performance_difference_lemma_holds_exactly"),
    ("minipg/exact/psi.py",
     "mixture[t] += lam ** (last - 1) * by_n[last - 1][t]",
     "mixture[t] += (1 - lam) * lam ** (last - 1) * by_n[last - 1][t]",
     "tests/exact/test_psi.py::"
     "test_gae_is_the_geometric_mixture_of_the_n_step_advantages_for_any_critic"),
    ("minipg/core/distributions.py",
     "return -self.probs * (self.log_probs + entropy[..., None])",
     "return -self.probs * self.log_probs",
     "tests/core/test_distributions.py::test_categorical_entropy_grad_matches_finite_differences"),
    ("minipg/exact/entropy.py",
     "+ beta * dist.entropy_grad())",
     ")",
     "tests/exact/test_entropy.py::"
     "test_the_bonus_prevents_reinforce_from_collapsing_onto_the_wrong_arm"),
    ("minipg/algos/ppo.py",
     "loss = float(np.maximum(unclipped, clipped).sum()) / B",
     "loss = float(np.minimum(unclipped, clipped).sum()) / B",
     "tests/algos/test_algos.py::"
     "test_clipped_surrogate_gradient_matches_finite_differences_in_every_region"),
    ("minipg/core/optim.py",
     "s *= learning_rate * sqrt_bias_correction2 / bias_correction1",
     "s *= learning_rate",
     "tests/core/test_optim.py::"
     "test_adam_without_bias_correction_would_take_a_first_step_3_2_times_larger"),
]


def run():
    """Plant each bug, run its test (it must fail), restore the file (its test must pass)."""
    verified = True
    for path, old, new, test in EXERCISES:
        file = ROOT / path
        text = file.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{path}: the exercise's line is not there once: {old!r}")
        file.write_text(text.replace(old, new))
        try:
            mutated = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                      "no:cacheprovider", test], cwd=ROOT, capture_output=True)
        finally:
            file.write_text(text)
        restored = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                   test], cwd=ROOT, capture_output=True)
        ok = mutated.returncode == 1 and restored.returncode == 0
        verified &= ok
        print(f"{'ok ' if ok else 'BAD'} {path}: with the bug {test.split('::')[1]} "
              f"{'fails' if mutated.returncode == 1 else 'PASSES'}")
    print("every exercise verified" if verified else "some exercise does not do what it says")
    return verified


if __name__ == "__main__":
    sys.exit(0 if run() else 1)

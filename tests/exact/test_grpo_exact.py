"""What the group does to the gradient, computed exactly by listing every group of G responses
(minipg/exact/groups.py), with Monte Carlo estimates that agree within their standard errors.

- the group-mean baseline scales the expected gradient by (G - 1)/G; leave-one-out is unbiased;
- dividing by the group's std reweights prompts by difficulty: on each prompt the expected
  update is c(p) grad J_x, with c smallest at success rate p = 1/2, so the sum over prompts is
  no longer parallel to grad J;
- per-response length normalisation ("grpo") pushes a short wrong answer down faster than a
  long one; the constant normaliser of "dr_grpo" keeps the expected update parallel to grad J.
"""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.exact.groups import ResponseBandit, binary_group_scale

A, B, EOS = 0, 1, 2


def prompt_bandit():
    """3 prompts, 4 one-token responses, rewards that are not binary."""
    table = np.array([[1.0, 0.0, 0.3, 2.0], [0.5, 0.5, -1.0, 0.0], [0.0, 3.0, 1.0, 1.0]])
    return ResponseBandit(lambda x, y: table[x, y[0]], 3, 4, 1, rho=[0.5, 0.3, 0.2])


def binary_bandit():
    """3 prompts, 3 one-token responses, response x right on prompt x; theta puts the
    success rates near 0.86 (easy), 1/3 and 0.04 (hard)."""
    bandit = ResponseBandit(lambda x, y: float(y[0] == x), 3, 3, 1)
    theta = np.array([[2.5, 0, 0], [0, 0, 0], [0, 0, -2.5]], dtype=float).ravel()
    return bandit, theta


def two_token_bandit():
    """Tokens A, B, EOS, at most two: "A EOS" is right; "EOS" (1 token) and six 2-token
    responses are wrong."""
    return ResponseBandit(lambda x, y: float(y == (A, EOS)), 1, 3, 2, eos=EOS)


def random_theta(bandit, seed):
    return np.random.default_rng(seed).normal(size=bandit.n_params)


def angle_degrees(u, v):
    cosine = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_the_bandits_are_what_they_say():
    bandit = two_token_bandit()
    assert bandit.responses == [(EOS,), (A, EOS), (B, EOS), (A, A), (A, B), (B, A), (B, B)]
    theta = random_theta(bandit, 0)
    log_p, _ = bandit.log_probs_and_scores(theta)
    assert np.exp(log_p).sum() == pytest.approx(1.0, rel=1e-12)
    for bandit in (two_token_bandit(), prompt_bandit()):
        theta = random_theta(bandit, 1)
        assert relative_error(bandit.grad_J(theta),
                              numerical_gradient(lambda: bandit.J(theta), theta)) < 1e-8


@pytest.mark.parametrize("G", [2, 3, 5])
def test_group_mean_baseline_scales_the_expected_gradient_by_G_minus_1_over_G(G):
    """A_j = r_j - mean_k r_k holds r_j / G itself, whose product with the score does not
    average to zero: E[g] = (1 - 1/G) grad J."""
    bandit = prompt_bandit()
    theta = random_theta(bandit, G)
    expected = bandit.expected_group_update(theta, G, scale="none", baseline="group_mean")
    np.testing.assert_allclose(expected, (G - 1) / G * bandit.grad_J(theta), rtol=1e-10,
                               atol=1e-14)


@pytest.mark.parametrize("G", [2, 3, 5])
def test_leave_one_out_baseline_is_unbiased(G):
    """b_j = mean of the other G - 1 rewards is independent of y_j: E[b_j score_j] = 0."""
    bandit = prompt_bandit()
    theta = random_theta(bandit, G)
    expected = bandit.expected_group_update(theta, G, scale="none", baseline="leave_one_out")
    np.testing.assert_allclose(expected, bandit.grad_J(theta), rtol=1e-10, atol=1e-14)


def test_dividing_by_the_group_std_reweights_prompts_by_difficulty():
    """Binary rewards: on each prompt the expected update is parallel to grad J_x, scaled by
    c(p) (binary_group_scale, a binomial sum: a second route to the same number). c is smallest
    at p = 1/2 and symmetric, so the easy and the hard prompt gain weight over the medium one,
    and the expected update over all prompts turns away from grad J (by 4.1 degrees here, 0
    without the division)."""
    bandit, theta = binary_bandit()
    G = 8
    log_p, _ = bandit.log_probs_and_scores(theta)
    p = np.exp(log_p)[np.arange(3), np.arange(3)]              # success rate per prompt
    assert p[0] > 0.85 and 0.3 < p[1] < 0.35 and p[2] < 0.05
    per_prompt = bandit.expected_group_update(theta, G, "group", "group_mean", per_prompt=True)
    grad_per_prompt = bandit.grad_J(theta, per_prompt=True)
    scales = []
    for x in range(3):
        assert angle_degrees(per_prompt[x], grad_per_prompt[x]) < 1e-5
        scale = per_prompt[x] @ grad_per_prompt[x] / (grad_per_prompt[x] @ grad_per_prompt[x])
        assert scale == pytest.approx(binary_group_scale(p[x], G), rel=1e-10)
        scales.append(scale)
    assert scales[0] > scales[1] * 1.1 and scales[2] > scales[1] * 1.2
    # c(p) = c(1 - p), smallest at 1/2, and (G - 1)/G for every p without the std.
    c = [binary_group_scale(q, G) for q in np.linspace(0.05, 0.95, 19)]
    np.testing.assert_allclose(c, c[::-1], rtol=1e-9)
    assert np.argmin(c) == 9
    angle = angle_degrees(per_prompt.sum(axis=0), bandit.grad_J(theta))
    assert 3.5 < angle < 5.0
    unscaled = bandit.expected_group_update(theta, G, "none", "group_mean")
    assert angle_degrees(unscaled, bandit.grad_J(theta)) < 1e-5
    # Two responses per group: (r_j - mean) / std is always +-1, the same c for every prompt.
    assert binary_group_scale(0.1, 2) == pytest.approx(binary_group_scale(0.5, 2), rel=1e-12)


def test_dr_grpo_constant_normaliser_keeps_the_expected_update_parallel_to_grad_J():
    """Weights 1/(G T_max) on every token: E[g] = grad J / T_max with leave-one-out."""
    bandit = two_token_bandit()
    theta = random_theta(bandit, 2)
    expected = bandit.expected_group_update(theta, 4, "none", "leave_one_out", "dr_grpo")
    np.testing.assert_allclose(expected, bandit.grad_J(theta) / 2, rtol=1e-10, atol=1e-14)


def test_grpo_length_normalisation_adds_a_pull_toward_longer_responses():
    """With weights 1/(G |y_j|) the baseline no longer averages out, because 1/|y_j| depends on
    y_j: E[g] = grad E[r / |y|] - J grad E[1 / |y|], exactly (right side by finite differences
    of exact expectations). The second term pushes every response's length up when J > 0."""
    bandit = two_token_bandit()
    theta = random_theta(bandit, 3)
    expected = bandit.expected_group_update(theta, 4, "none", "leave_one_out", "grpo")
    per_token = lambda values: (lambda: bandit.expected(theta, values / bandit.lengths))
    predicted = (numerical_gradient(per_token(bandit.rewards), theta)
                 - bandit.J(theta) * numerical_gradient(per_token(np.ones_like(bandit.rewards)),
                                                        theta))
    np.testing.assert_allclose(expected, predicted, rtol=1e-7, atol=1e-10)


def test_grpo_normalisation_punishes_a_short_wrong_answer_more_than_a_long_one():
    """From the uniform policy, grad J lowers the log-probabilities of the wrong answers "EOS"
    (1 token) and "B EOS" (2 tokens) at the same rate, and so does the expected "dr_grpo"
    update. The expected "grpo" update lowers the short one 2.5 times faster: its A / |y| is
    twice as large per token, on a token the long answer does not share."""
    bandit = two_token_bandit()
    theta = np.zeros(bandit.n_params)
    _, scores = bandit.log_probs_and_scores(theta)
    short = scores[0, bandit.responses.index((EOS,))]
    long = scores[0, bandit.responses.index((B, EOS))]
    rates = {}
    for name, update in (
            ("grad_J", bandit.grad_J(theta)),
            ("dr_grpo", bandit.expected_group_update(theta, 4, "none", "leave_one_out", "dr_grpo")),
            ("grpo", bandit.expected_group_update(theta, 4, "none", "leave_one_out", "grpo"))):
        rates[name] = (short @ update, long @ update)      # d log P(y) along the update
    for name in ("grad_J", "dr_grpo"):
        assert rates[name][0] < 0 and rates[name][0] == pytest.approx(rates[name][1], rel=1e-10)
    short_rate, long_rate = rates["grpo"]
    assert short_rate / long_rate == pytest.approx(2.5, rel=1e-10)


@pytest.mark.parametrize("bandit_name, G, scale, baseline, loss_agg", [
    ("prompt", 4, "none", "group_mean", "grpo"),
    ("binary", 8, "group", "group_mean", "grpo"),
    ("two_token", 4, "none", "leave_one_out", "grpo"),
    ("two_token", 3, "group", "leave_one_out", "dapo"),
])
def test_monte_carlo_group_updates_agree_with_the_exact_expectation(bandit_name, G, scale,
                                                                    baseline, loss_agg):
    """The mean of 20,000 sampled group updates lies within 4.5 standard errors (sample std /
    sqrt(n), per coordinate) of the enumerated expectation."""
    if bandit_name == "binary":
        bandit, theta = binary_bandit()
    else:
        bandit = prompt_bandit() if bandit_name == "prompt" else two_token_bandit()
        theta = random_theta(bandit, 4)
    exact = bandit.expected_group_update(theta, G, scale, baseline, loss_agg)
    samples = bandit.sample_group_updates(theta, G, 20_000, rng=5, scale=scale,
                                          baseline=baseline, loss_agg=loss_agg)
    mean = samples.mean(axis=0)
    standard_error = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert (np.abs(mean - exact) <= 4.5 * standard_error + 1e-12).all()
    assert (standard_error > 0).sum() >= bandit.n_params // 2          # not a vacuous check

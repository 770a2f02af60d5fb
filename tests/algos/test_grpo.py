"""GRPO as a specification: group advantages and the k3 KL against hand computation, every
per-token gradient against finite differences, the three loss aggregations, the whole loss into
the sequence policy's parameters, and an update that steps along that gradient."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.algos import grpo
from minipg.lm import grpo as lm_grpo
from minipg.algos.grpo import (all_equal_groups, clipped_token_loss, group_advantages, grpo_loss,
                               kl_k3, token_weights)
from minipg.core.distributions import Categorical
from minipg.core.optim import SGD
from minipg.lm.sequence import SequencePolicy

EPS = 1e-4
REWARDS = np.array([[1.0, 0.0, 0.0, 1.0],
                    [0.0, 0.0, 0.0, 0.0],
                    [1.0, 2.0, 3.0, 6.0]])


# ------------------------------------------------------------------------------------------
# group_advantages
# ------------------------------------------------------------------------------------------

def test_group_mean_baseline_by_hand():
    # Row means 0.5, 0, 3.
    np.testing.assert_allclose(group_advantages(REWARDS, "none", "group_mean"),
                               [[0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [-2, -1, 0, 3]], atol=1e-15)


def test_leave_one_out_baseline_by_hand():
    # Row 0: 1 - (0 + 0 + 1)/3 = 2/3, 0 - (1 + 0 + 1)/3 = -2/3.
    # Row 2: 1 - 11/3, 2 - 10/3, 3 - 9/3, 6 - 6/3.
    np.testing.assert_allclose(group_advantages(REWARDS, "none", "leave_one_out"),
                               [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0, 0, 0, 0],
                                [-8 / 3, -4 / 3, 0, 4]], atol=1e-15)


def test_leave_one_out_is_the_group_mean_advantage_times_G_over_G_minus_1():
    """r_g - mean_{k != g} r_k = G/(G-1) (r_g - mean_k r_k): the same direction, rescaled."""
    rewards = np.random.default_rng(0).normal(size=(5, 6))
    np.testing.assert_allclose(group_advantages(rewards, "none", "leave_one_out"),
                               6 / 5 * group_advantages(rewards, "none", "group_mean"), rtol=1e-12)


def test_group_scale_divides_by_the_groups_std_ddof0_plus_eps():
    # Row 0: std of (1, 0, 0, 1) is 0.5. Row 2: deviations (-2, -1, 0, 3), variance 14/4.
    std2 = np.sqrt(14 / 4)
    np.testing.assert_allclose(group_advantages(REWARDS, "group", "group_mean", EPS),
                               [np.array([0.5, -0.5, -0.5, 0.5]) / (0.5 + EPS), [0, 0, 0, 0],
                                np.array([-2, -1, 0, 3]) / (std2 + EPS)], rtol=1e-12)


def test_batch_scale_divides_by_the_std_of_all_rewards_plus_eps():
    flat = REWARDS.ravel()
    std = np.sqrt(((flat - flat.mean()) ** 2).mean())         # 12 rewards, mean 14/12
    expected = group_advantages(REWARDS, "none", "leave_one_out") / (std + EPS)
    np.testing.assert_allclose(group_advantages(REWARDS, "batch", "leave_one_out", EPS), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("scale", grpo.SCALES)
@pytest.mark.parametrize("baseline", grpo.BASELINES)
def test_a_group_of_equal_rewards_gets_exactly_zero_advantages(scale, baseline):
    """0.1 is not a binary fraction: the mean of (0.1, 0.1, 0.1) is 0.10000000000000002, so only
    an explicit zero makes these advantages exactly 0 (and with scale "group", 1e-17 / eps
    would not be small)."""
    rewards = np.array([[0.1, 0.1, 0.1], [0.7, 0.7, 0.7], [0.0, 1.0, 0.5]])
    assert np.sum(rewards[0]) / 3 != 0.1                       # the trap is real
    advantages = group_advantages(rewards, scale, baseline, EPS)
    assert (advantages[:2] == 0.0).all()
    assert (advantages[2] != 0.0).any()
    np.testing.assert_array_equal(all_equal_groups(rewards), [True, True, False])


def test_bad_arguments_raise_naming_them():
    with pytest.raises(ValueError, match="scale"):
        group_advantages(REWARDS, scale="prompt")
    with pytest.raises(ValueError, match="baseline"):
        group_advantages(REWARDS, baseline="median")
    with pytest.raises(ValueError, match="leave_one_out"):
        group_advantages(np.ones((3, 1)), baseline="leave_one_out")
    with pytest.raises(ValueError, match="rewards"):
        group_advantages(np.ones(4))
    with pytest.raises(ValueError, match="rewards"):
        group_advantages([[1.0, np.nan]])
    with pytest.raises(TypeError, match="rewards"):
        group_advantages(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="eps"):
        group_advantages(REWARDS, eps=-1.0)


# ------------------------------------------------------------------------------------------
# kl_k3
# ------------------------------------------------------------------------------------------

def test_k3_by_hand():
    # pi(x) = 0.5, pi_ref(x) = 0.25: delta = log 0.5, kl = 0.5 - log 0.5 - 1, dkl/dlp = 1 - 0.5.
    kl, grad = kl_k3(np.log([0.5]), np.log([0.25]))
    assert kl[0] == pytest.approx(0.5 + np.log(2) - 1, rel=1e-14)
    assert grad[0] == pytest.approx(0.5, rel=1e-14)
    kl, grad = kl_k3(np.array([-1.3]), np.array([-1.3]))        # equal policies: both zero
    assert kl[0] == 0.0 and grad[0] == 0.0


def test_k3_derivative_matches_finite_differences_and_k3_is_never_negative():
    rng = np.random.default_rng(1)
    log_prob, ref_log_prob = rng.normal(size=20) - 2, rng.normal(size=20) - 2
    kl, grad = kl_k3(log_prob, ref_log_prob)
    assert (kl >= 0).all()
    numeric = numerical_gradient(lambda: kl_k3(log_prob, ref_log_prob)[0].sum(), log_prob, 1e-5)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)
    kl_small, _ = kl_k3(np.array([0.0]), np.array([1e-9]))     # no cancellation: ~ delta^2 / 2
    assert kl_small[0] == pytest.approx(0.5e-18, rel=1e-6)


def test_k3_is_an_unbiased_estimate_of_kl_pi_to_ref():
    """sum_x pi(x) k3(x) = KL(pi || pi_ref) = sum_x pi log(pi / pi_ref), exactly."""
    pi = Categorical(np.array([0.3, -1.0, 2.0, 0.1]))
    ref = Categorical(np.array([1.0, 0.5, 0.0, -2.0]))
    kl, _ = kl_k3(pi.log_probs, ref.log_probs)
    assert pi.probs @ kl == pytest.approx(pi.probs @ (pi.log_probs - ref.log_probs), rel=1e-12)


def test_k3_in_the_loss_gives_the_gradient_of_the_reverse_kl_on_average():
    """Sampled from pi and differentiated through log pi, the k3 loss has expected gradient
    sum_x pi(x) (1 - ref/pi) dlog pi(x)/dz = -sum_x ref(x) score(x) = d KL(ref || pi)/dz: the
    KL the other way round from the one its value estimates (docs/derivation.md, GRPO)."""
    logits, ref_logits = np.array([0.3, -1.0, 2.0, 0.1]), np.array([1.0, 0.5, 0.0, -2.0])
    pi, ref = Categorical(logits), Categorical(ref_logits)
    _, grad_k3 = kl_k3(pi.log_probs, ref.log_probs)
    actions = np.arange(4)
    expected_grad = Categorical(np.tile(logits, (4, 1))).param_grads(actions, pi.probs * grad_k3)
    expected_grad = expected_grad.logits.sum(axis=0)

    def reverse_kl():
        return ref.probs @ (ref.log_probs - Categorical(logits).log_probs)

    def forward_kl():
        p = Categorical(logits)
        return p.probs @ (p.log_probs - ref.log_probs)

    np.testing.assert_allclose(expected_grad, numerical_gradient(reverse_kl, logits), rtol=1e-8)
    assert relative_error(expected_grad, numerical_gradient(forward_kl, logits)) > 0.1


# ------------------------------------------------------------------------------------------
# The clipped per-token loss and the aggregation weights
# ------------------------------------------------------------------------------------------

def test_clipped_token_loss_asymmetric_range_and_gradient_in_every_region():
    eps_low, eps_high = 0.2, 0.28
    ratio = np.array([[0.5, 0.75, 0.9, 1.0, 1.25, 1.3, 1.6]] * 2)
    advantages = np.array([[1.5], [-0.5]])
    old_log_prob = np.random.default_rng(2).normal(size=ratio.shape) - 1
    log_prob = old_log_prob + np.log(ratio)
    args = (old_log_prob, advantages, eps_low, eps_high)
    loss, grad, got_ratio = clipped_token_loss(log_prob, *args)
    np.testing.assert_allclose(got_ratio, ratio, rtol=1e-12)
    numeric = numerical_gradient(lambda: clipped_token_loss(log_prob, *args)[0].sum(), log_prob,
                                 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    # A > 0 stops above 1.28 (1.25 still moves), A < 0 stops below 0.8 (0.75 no longer moves).
    np.testing.assert_array_equal(grad[0] == 0, [0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(grad[1] == 0, [1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(loss[0, 5:], -1.5 * 1.28, rtol=1e-12)
    np.testing.assert_allclose(loss[1, :2], 0.5 * 0.8, rtol=1e-12)


def test_token_weights_by_hand():
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)            # lengths 2 and 1, B = 2, T = 3
    np.testing.assert_allclose(token_weights(mask, "grpo"), [[1 / 4, 1 / 4, 0], [1 / 2, 0, 0]])
    np.testing.assert_allclose(token_weights(mask, "dapo"), [[1 / 3, 1 / 3, 0], [1 / 3, 0, 0]])
    np.testing.assert_allclose(token_weights(mask, "dr_grpo"), [[1 / 6, 1 / 6, 0], [1 / 6, 0, 0]])
    with pytest.raises(ValueError, match="loss_agg"):
        token_weights(mask, "mean")
    with pytest.raises(ValueError, match="mask"):
        token_weights(np.array([[1, 0], [0, 0]], bool), "grpo")


def test_grpo_loss_gradient_with_kl_matches_finite_differences():
    rng = np.random.default_rng(3)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    old_log_prob = rng.normal(size=mask.shape) - 1.5
    log_prob = old_log_prob + rng.uniform(-0.15, 0.15, size=mask.shape)     # inside the clip
    log_prob[0, 0] = old_log_prob[0, 0] + 0.5                             # and one outside
    ref_log_prob = rng.normal(size=mask.shape) - 1.5
    advantages = np.array([1.0, -0.5, 0.3])
    for agg in grpo.LOSS_AGGREGATIONS:
        weights = token_weights(mask, agg)
        args = (old_log_prob, advantages, weights, 0.2, 0.3, 0.07, ref_log_prob)
        loss, grad, stats = grpo_loss(log_prob, *args)
        numeric = numerical_gradient(lambda: grpo_loss(log_prob, *args)[0], log_prob, 1e-7)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-10)
        assert (grad[~mask] == 0).all()
        assert stats["clip_frac"] == pytest.approx(weights[0, 0] / weights.sum())


# ------------------------------------------------------------------------------------------
# The whole loss into the sequence policy, and the update
# ------------------------------------------------------------------------------------------

V, EOS, PAD, START = 6, 4, 5, 2


def batch(seed=0, P=2, G=3):
    rng = np.random.default_rng(seed)
    policy = SequencePolicy(V, max_len=6, eos=EOS, pad=PAD, window=4, embed_dim=3,
                            hidden_sizes=(8,), rng=seed)
    policy.params += 0.3 * rng.normal(size=policy.params.shape)
    prompts = np.repeat(rng.integers(0, 4, size=(P, START)), G, axis=0)
    tokens, mask = policy.generate(prompts, 4, rng=seed + 1)
    rewards = rng.integers(0, 2, size=(P, G)).astype(float)
    rewards[0] = [0.0, 1.0, 1.0]                              # never all-equal in group 0
    return policy, tokens, mask, rewards


@pytest.mark.parametrize("agg", grpo.LOSS_AGGREGATIONS)
def test_whole_loss_gradient_into_the_policys_params_matches_finite_differences(agg):
    """L(theta) = sum w (clipped surrogate + beta k3) - ent_coef sum w H, the old and reference
    log-probabilities of two other parameter vectors: every term, every parameter."""
    policy, tokens, mask, rewards = batch()
    actions = tokens[:, START:]
    theta = policy.params.copy()
    rng = np.random.default_rng(4)
    log_probs = []
    for shift in (0.05, 0.4):                                 # pi_old near theta, pi_ref further
        policy.params[...] = theta + shift * rng.normal(size=theta.shape)
        log_probs.append(policy.forward(tokens, START)[0].log_prob(actions))
    old_log_prob, ref_log_prob = log_probs
    policy.params[...] = theta
    advantages = group_advantages(rewards).ravel()
    weights = token_weights(mask, agg)
    ent_coef = 0.01

    def loss():
        dist, _ = policy.forward(tokens, START)
        value = grpo_loss(dist.log_prob(actions), old_log_prob, advantages, weights, 0.2, 0.25,
                          0.1, ref_log_prob)[0]
        return value - ent_coef * float((weights * dist.entropy()).sum())

    dist, cache = policy.forward(tokens, START)
    _, grad_log_prob, _ = grpo_loss(dist.log_prob(actions), old_log_prob, advantages, weights,
                                    0.2, 0.25, 0.1, ref_log_prob)
    grad = policy.backward(cache, dist.param_grads(actions, grad_log_prob, -ent_coef * weights))
    assert relative_error(grad, numerical_gradient(loss, policy.params)) < 1e-6


def test_update_steps_along_minus_the_gradient_and_logs_the_all_equal_fraction():
    """With SGD, no clipping and one iteration, params move by -lr * dL/dtheta (finite
    differences of L at the starting parameters, where pi_old = pi_theta)."""
    policy, tokens, mask, rewards = batch(seed=5)
    rewards[1] = 1.0                                          # group 1 all-equal
    config = grpo.Config(num_iterations=1, max_grad_norm=0.0, loss_agg="dapo").validate()
    actions = tokens[:, START:]
    old_log_prob = policy.forward(tokens, START)[0].log_prob(actions)
    advantages = group_advantages(rewards).ravel()
    weights = token_weights(mask, "dapo")
    loss = lambda: grpo_loss(policy.forward(tokens, START)[0].log_prob(actions), old_log_prob,
                             advantages, weights, 0.2, 0.2)[0]
    expected_step = -0.1 * numerical_gradient(loss, policy.params)
    theta = policy.params.copy()
    record = grpo.update(policy, SGD(policy.params, 0.1), tokens, mask, START, rewards, config)
    assert relative_error(policy.params - theta, expected_step) < 1e-6
    assert record["frac_all_equal"] == 0.5
    assert record["reward"] == rewards.mean()
    assert record["clip_frac"] == 0.0                          # on-policy: ratio = 1 exactly


def test_all_equal_groups_leave_the_parameters_alone_without_kl():
    policy, tokens, mask, rewards = batch(seed=6)
    rewards[:] = 1.0
    theta = policy.params.copy()
    config = grpo.Config(num_iterations=3).validate()
    record = grpo.update(policy, SGD(policy.params, 0.1), tokens, mask, START, rewards, config)
    np.testing.assert_array_equal(policy.params, theta)
    assert record["frac_all_equal"] == 1.0 and record["grad_norm"] == 0.0


class FirstTokenTask:
    """Reward 1 when the first response token is 3: a task the group can discover."""
    prompt_len, max_new_tokens = START, 2

    def sample_prompts(self, n, rng):
        return np.zeros((n, START), np.int64), np.zeros(n)

    def reward(self, answers, tokens):
        return (tokens[:, START] == 3).astype(float)


def test_train_raises_the_reward_and_counts_sampled_tokens():
    policy = SequencePolicy(V, 4, EOS, PAD, window=2, embed_dim=3, hidden_sizes=(8,), rng=0)
    probability = lambda: float(policy.forward(np.array([[0, 0, 3]]), START)[0].probs[0, 0, 3])
    before = probability()
    config = grpo.Config(num_prompts=4, group_size=4, num_updates=30, learning_rate=1e-2,
                         kl_coef=0.01)
    history = lm_grpo.train(policy, FirstTokenTask(), config)
    assert before < 0.2 and probability() > 0.9
    assert [r["update"] for r in history] == list(range(1, 31))
    assert history[-1]["sampled_tokens"] == sum(r["response_length"] * 16 for r in history)


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="loss_agg"):
        grpo.Config(loss_agg="sum").validate()
    with pytest.raises(ValueError, match="group_size"):
        grpo.Config(group_size=1, baseline="leave_one_out").validate()
    with pytest.raises(TypeError, match="num_prompts"):
        grpo.Config(num_prompts=2.5).validate()
    with pytest.raises(ValueError, match="eps_low"):
        grpo.Config(eps_low=1.5).validate()


@pytest.mark.parametrize("module", ["algos.grpo", "algos.grpo_gym", "lm.token_ppo"])
def test_every_config_field_has_a_docstring(module):
    import dataclasses
    import importlib

    from minipg.algos.config import field_docs
    config_class = importlib.import_module(f"minipg.{module}").Config
    docs = field_docs(config_class)
    missing = [f.name for f in dataclasses.fields(config_class) if not docs.get(f.name)]
    assert missing == []

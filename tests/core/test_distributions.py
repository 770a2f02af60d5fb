"""The distributions as a specification: log-probabilities, entropies, sampling, and the
hand-written gradients (scores) checked against central finite differences."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.core.distributions import Categorical, DiagGaussian

# Critical value of the chi-square distribution with df = 3 at alpha = 0.001
# (scipy.stats.chi2.ppf(0.999, 3)); scipy is not a dependency, so it is written here.
CHI2_DF3_ALPHA_0001 = 16.266


# ------------------------------------------------------------------------------------------
# Categorical
# ------------------------------------------------------------------------------------------

def test_categorical_probs_are_softmax_and_log_prob_picks_the_action():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    dist = Categorical(logits)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dist.probs, expected, rtol=1e-12)
    np.testing.assert_allclose(dist.log_prob(np.array([2, 1])),
                               [np.log(expected[0, 2]), np.log(1 / 3)], rtol=1e-12)
    np.testing.assert_allclose(dist.entropy()[1], np.log(3), rtol=1e-12)
    np.testing.assert_array_equal(dist.mode(), [2, 0])


def test_categorical_score_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4))
    actions = rng.integers(0, 4, size=5)
    weights = rng.normal(size=5)                       # f = sum_i w_i log pi(a_i | z_i)
    f = lambda: (weights * Categorical(logits).log_prob(actions)).sum()
    analytic = weights[:, None] * Categorical(logits).score(actions)
    assert relative_error(numerical_gradient(f, logits), analytic) < 1e-6


def test_categorical_entropy_grad_matches_finite_differences():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 4)) * 2.0
    weights = rng.normal(size=5)
    f = lambda: (weights * Categorical(logits).entropy()).sum()
    analytic = weights[:, None] * Categorical(logits).entropy_grad()
    assert relative_error(numerical_gradient(f, logits), analytic) < 1e-6


def test_categorical_expected_score_is_zero_to_rounding():
    # sum_a pi(a) (onehot(a) - pi) = pi - pi = 0: the reason a baseline adds no bias. An
    # identity, computed in floating point: zero within a few units of the last place.
    logits = np.random.default_rng(2).normal(size=(3, 5))
    dist = Categorical(logits)
    expected_score = sum(dist.probs[:, [a]] * dist.score(np.full(3, a)) for a in range(5))
    np.testing.assert_allclose(expected_score, 0.0, atol=1e-15)


def test_categorical_sample_frequencies_pass_a_chi_square_test():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    n = 100_000
    dist = Categorical(np.tile(np.log(probs), (n, 1)))
    actions = dist.sample(np.random.default_rng(3))
    assert actions.dtype == np.int64 and actions.shape == (n,)
    observed = np.bincount(actions, minlength=4)
    chi2 = ((observed - n * probs) ** 2 / (n * probs)).sum()
    assert chi2 < CHI2_DF3_ALPHA_0001


def test_categorical_sample_draws_each_row_from_its_own_distribution():
    # Row 0 can only be action 0, row 1 only action 2: zero-probability actions are never drawn.
    dist = Categorical(np.array([[0.0, -1000.0, -1000.0], [-1000.0, -1000.0, 0.0]]))
    rng = np.random.default_rng(4)
    for _ in range(100):
        np.testing.assert_array_equal(dist.sample(rng), [0, 2])


def test_categorical_extreme_logits_stay_finite():
    dist = Categorical(np.array([[1000.0, -1000.0], [-1000.0, 1000.0]]))
    log_prob = dist.log_prob(np.array([1, 1]))
    np.testing.assert_allclose(log_prob, [-2000.0, 0.0])
    assert np.isfinite(dist.entropy()).all() and np.isfinite(dist.entropy_grad()).all()
    np.testing.assert_allclose(dist.score(np.array([0, 0])), [[0.0, 0.0], [1.0, -1.0]])


def test_categorical_single_distribution_without_batch_dims():
    dist = Categorical(np.array([0.0, np.log(3.0)]))
    assert dist.sample(np.random.default_rng(0)).shape == ()
    np.testing.assert_allclose(dist.log_prob(1), np.log(0.75))
    np.testing.assert_allclose(dist.score(1), [-0.25, 0.25])


@pytest.mark.parametrize("actions, error", [
    (np.array([0, 3]), ValueError),                  # out of range
    (np.array([0, -1]), ValueError),
    (np.array([0, 1, 1]), ValueError),               # wrong batch shape
    (np.array([0.5, 1.0]), ValueError),              # not an index
    (np.array(["a", "b"]), TypeError),
])
def test_categorical_rejects_bad_actions(actions, error):
    with pytest.raises(error, match="actions"):
        Categorical(np.zeros((2, 3))).log_prob(actions)


def test_categorical_rejects_bad_logits_and_rng():
    with pytest.raises(ValueError, match="logits"):
        Categorical(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="logits"):
        Categorical(np.zeros((2, 0)))
    with pytest.raises(TypeError, match="rng"):
        Categorical(np.zeros(3)).sample("seed")


# ------------------------------------------------------------------------------------------
# DiagGaussian
# ------------------------------------------------------------------------------------------

def test_gaussian_log_prob_and_entropy_match_the_formulas():
    mean = np.array([[0.0, 1.0]])
    log_std = np.array([0.0, np.log(2.0)])
    dist = DiagGaussian(mean, log_std)
    a = np.array([[1.0, 1.0]])
    # Standard normal at 1 plus N(1, 2^2) at its mean.
    expected = (-0.5 - 0.5 * np.log(2 * np.pi)) + (-np.log(2.0) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(a), [expected], rtol=1e-12)
    np.testing.assert_allclose(dist.entropy(), [1.0 + np.log(2 * np.pi) + np.log(2.0)])
    np.testing.assert_array_equal(dist.mode(), mean)


def test_gaussian_score_matches_finite_differences():
    rng = np.random.default_rng(5)
    mean = rng.normal(size=(6, 3))
    log_std = rng.normal(size=3) * 0.5
    actions = rng.normal(size=(6, 3)) * 2.0
    weights = rng.normal(size=6)
    f = lambda: (weights * DiagGaussian(mean, log_std).log_prob(actions)).sum()
    score_mean, score_log_std = DiagGaussian(mean, log_std).score(actions)
    assert score_mean.shape == score_log_std.shape == (6, 3)   # per sample, not summed
    assert relative_error(numerical_gradient(f, mean), weights[:, None] * score_mean) < 1e-6
    # log_std is shared across the batch, so its gradient is the weighted sum of the rows.
    analytic_log_std = (weights[:, None] * score_log_std).sum(axis=0)
    assert relative_error(numerical_gradient(f, log_std), analytic_log_std) < 1e-6


def test_gaussian_entropy_grad_matches_finite_differences():
    log_std = np.array([-1.0, 0.5])
    dist = DiagGaussian(np.zeros((4, 2)), log_std)
    f = lambda: DiagGaussian(np.zeros((1, 2)), log_std).entropy()[0]
    np.testing.assert_array_equal(dist.entropy_grad(), [1.0, 1.0])
    assert relative_error(numerical_gradient(f, log_std), dist.entropy_grad()) < 1e-6


def test_gaussian_expected_score_is_zero_within_four_standard_errors():
    n = 100_000
    mean, log_std = np.array([0.5, -2.0]), np.array([0.3, -1.0])
    dist = DiagGaussian(np.tile(mean, (n, 1)), log_std)
    for score in dist.score(dist.sample(np.random.default_rng(6))):
        standard_error = score.std(axis=0) / np.sqrt(n)
        assert (np.abs(score.mean(axis=0)) < 4 * standard_error).all()


def test_gaussian_samples_have_the_right_mean_and_std():
    n = 100_000
    mean, log_std = np.array([0.5, -2.0]), np.array([0.3, -1.0])
    std = np.exp(log_std)
    samples = DiagGaussian(np.tile(mean, (n, 1)), log_std).sample(np.random.default_rng(7))
    assert samples.shape == (n, 2)
    # SE of the sample mean is sigma / sqrt(n); of the sample std, about sigma / sqrt(2n).
    assert (np.abs(samples.mean(axis=0) - mean) < 4 * std / np.sqrt(n)).all()
    assert (np.abs(samples.std(axis=0) - std) < 4 * std / np.sqrt(2 * n)).all()


def test_gaussian_rejects_bad_shapes():
    with pytest.raises(ValueError, match="log_std"):
        DiagGaussian(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="log_std"):
        DiagGaussian(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="actions"):
        DiagGaussian(np.zeros((4, 2)), np.zeros(2)).log_prob(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="mean"):
        DiagGaussian(np.array([[0.0, np.inf]]), np.zeros(2))


# ------------------------------------------------------------------------------------------
# param_grads: the gradient of L = sum_i w_i log pi(a_i) + sum_i c_i H_i, one method for both
# ------------------------------------------------------------------------------------------

def categorical_case(seed, shape=(6,)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (4,)) * 1.5
    actions = rng.integers(0, 4, size=shape)
    return rng, logits, actions


@pytest.mark.parametrize("c_kind", ["zero", "scalar", "per_sample"])
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=["B", "T-N"])
def test_categorical_param_grads_match_finite_differences(c_kind, shape):
    rng, logits, actions = categorical_case(10, shape)
    w = rng.normal(size=shape)
    c = {"zero": 0.0, "scalar": -0.3, "per_sample": rng.normal(size=shape)}[c_kind]

    def loss():
        dist = Categorical(logits)
        return (w * dist.log_prob(actions)).sum() + (c * dist.entropy()).sum()

    grads = Categorical(logits).param_grads(actions, w, c)
    assert grads.logits.shape == logits.shape
    assert relative_error(numerical_gradient(loss, logits), grads.logits) < 1e-7


@pytest.mark.parametrize("c_kind", ["zero", "scalar", "per_sample"])
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=["B", "T-N"])
def test_gaussian_param_grads_match_finite_differences_including_the_shared_log_std(c_kind,
                                                                                    shape):
    rng = np.random.default_rng(11)
    mean, log_std = rng.normal(size=shape + (2,)), np.array([-0.4, 0.3])
    actions = mean + rng.normal(size=mean.shape)
    w = rng.normal(size=shape)
    c = {"zero": 0.0, "scalar": -0.3, "per_sample": rng.normal(size=shape)}[c_kind]

    def loss():
        dist = DiagGaussian(mean, log_std)
        return (w * dist.log_prob(actions)).sum() + (c * dist.entropy()).sum()

    grads = DiagGaussian(mean, log_std).param_grads(actions, w, c)
    assert grads.mean.shape == mean.shape and grads.log_std.shape == (2,)
    assert relative_error(numerical_gradient(loss, mean), grads.mean) < 1e-7
    assert relative_error(numerical_gradient(loss, log_std), grads.log_std) < 1e-7


def test_param_grads_is_the_weighted_sum_of_the_scores_and_the_entropy_gradient():
    rng, logits, actions = categorical_case(12)
    w, c = rng.normal(size=6), -0.2
    dist = Categorical(logits)
    np.testing.assert_allclose(dist.param_grads(actions, w, c).logits,
                               w[:, None] * dist.score(actions) + c * dist.entropy_grad(),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distributions_compute_in_the_dtype_of_their_parameters(dtype):
    rng, logits, actions = categorical_case(13)
    dist = Categorical(logits.astype(dtype))
    assert dist.log_prob(actions).dtype == dist.entropy().dtype == dtype
    assert dist.param_grads(actions, rng.normal(size=6), 0.1).logits.dtype == dtype
    gaussian = DiagGaussian(rng.normal(size=(6, 2)).astype(dtype), np.zeros(2, dtype))
    sample = gaussian.sample(0)
    assert gaussian.log_prob(sample).dtype == dtype
    grads = gaussian.param_grads(sample, rng.normal(size=6), 0.1)
    assert grads.mean.dtype == grads.log_std.dtype == dtype


def test_param_grads_reject_weights_of_the_wrong_shape():
    _, logits, actions = categorical_case(14)
    with pytest.raises(ValueError, match="grad_log_prob"):
        Categorical(logits).param_grads(actions, np.ones(5))
    with pytest.raises(ValueError, match="grad_entropy"):
        Categorical(logits).param_grads(actions, np.ones(6), np.ones(5))
    with pytest.raises(ValueError, match="grad_log_prob"):
        DiagGaussian(np.zeros((6, 2)), np.zeros(2)).param_grads(np.zeros((6, 2)), np.ones(7))


def test_sample_takes_a_generator_or_an_int_seed():
    dist = Categorical(np.zeros((50, 3)))
    np.testing.assert_array_equal(dist.sample(7), dist.sample(np.random.default_rng(7)))
    gaussian = DiagGaussian(np.zeros((5, 2)), np.zeros(2))
    np.testing.assert_array_equal(gaussian.sample(7), gaussian.sample(np.random.default_rng(7)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_with_log_prob_is_sample_then_log_prob(dtype):
    """The collector's one call per env step gives the numbers of the two checked calls."""
    rng = np.random.default_rng(5)
    distributions = [Categorical(rng.normal(size=(16, 3)).astype(dtype)),
                     DiagGaussian(rng.normal(size=(4, 6)).astype(dtype),
                                  rng.normal(size=6).astype(dtype))]
    for dist in distributions:
        actions, log_prob = dist.sample_with_log_prob(np.random.default_rng(7))
        expected_actions = dist.sample(np.random.default_rng(7))
        np.testing.assert_array_equal(actions, expected_actions)
        np.testing.assert_array_equal(log_prob, dist.log_prob(expected_actions))
        assert log_prob.dtype == dist.log_prob(expected_actions).dtype

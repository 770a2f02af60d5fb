"""The geometry of policies as a specification: the closed-form KL of each distribution, its
Fisher information applied to a direction, the policy's forward-mode Jacobian-vector product,
and the policy's Fisher-vector product F v = (1/B) sum_i J_i^T F_i J_i v.

Each is held to a route that shares none of its code: numeric sums and quadrature, Monte Carlo
within standard errors, central finite differences (float64) of the KL for its Hessian, and the
Fisher's definition E[g g^T] with scores g from finite differences of log pi."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.algos.trpo import fisher_vector_product
from minipg.core.distributions import Categorical, CategoricalGrads, DiagGaussian, DiagGaussianGrads
from minipg.core.policies import CategoricalPolicy, GaussianPolicy


def numerical_hessian(f, x, h=1e-4):
    """Central second differences of f() (which reads the float64 array x, moved in place and
    restored): H_ij = [f(+h e_i + h e_j) - f(+h e_i - h e_j) - f(-h e_i + h e_j)
    + f(-h e_i - h e_j)] / 4h^2, error O(h^2)."""
    n = x.size
    flat = x.reshape(-1)
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            total = 0.0
            for si, sj, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                saved_i, saved_j = flat[i], flat[j]
                flat[i] += si * h
                flat[j] += sj * h
                total += sign * f()
                flat[i], flat[j] = saved_i, saved_j
            H[i, j] = H[j, i] = total / (4 * h * h)
    return H


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------
# KL divergence in closed form
# ------------------------------------------------------------------------------------------

def test_categorical_kl_is_the_sum_over_actions_and_zero_only_against_itself():
    rng = np.random.default_rng(0)
    z_p, z_q = rng.normal(size=(4, 5)) * 2, rng.normal(size=(4, 5)) * 2
    p, q = softmax(z_p), softmax(z_q)
    by_sum = np.array([sum(p[i, k] * np.log(p[i, k] / q[i, k]) for k in range(5))
                       for i in range(4)])
    kl = Categorical(z_p).kl(Categorical(z_q))
    assert kl.shape == (4,)
    np.testing.assert_allclose(kl, by_sum, rtol=1e-12)
    assert (kl > 0).all()
    np.testing.assert_allclose(Categorical(z_p).kl(Categorical(z_p + 3.0)), 0.0, atol=1e-14)
    assert not np.allclose(Categorical(z_q).kl(Categorical(z_p)), kl)    # not symmetric


def test_categorical_kl_ignores_an_action_the_first_distribution_never_takes():
    p = Categorical(np.array([[0.0, 0.0, -2000.0]]))           # p = (1/2, 1/2, 0)
    q = Categorical(np.array([[0.0, np.log(3.0), 5.0]]))
    q_probs = softmax(np.array([0.0, np.log(3.0), 5.0]))
    expected = 0.5 * np.log(0.5 / q_probs[0]) + 0.5 * np.log(0.5 / q_probs[1])
    np.testing.assert_allclose(p.kl(q), [expected], rtol=1e-12)


def test_gaussian_kl_matches_quadrature_in_one_dimension():
    mu_p, log_std_p, mu_q, log_std_q = 0.3, -0.2, -0.5, 0.4
    a = np.linspace(-12, 12, 200_001)
    log_p = DiagGaussian(np.full((a.size, 1), mu_p), [log_std_p]).log_prob(a[:, None])
    log_q = DiagGaussian(np.full((a.size, 1), mu_q), [log_std_q]).log_prob(a[:, None])
    integrand = np.exp(log_p) * (log_p - log_q)
    by_quadrature = np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(a))
    kl = DiagGaussian([[mu_p]], [log_std_p]).kl(DiagGaussian([[mu_q]], [log_std_q]))
    assert kl == pytest.approx([by_quadrature], rel=1e-9)


def test_gaussian_kl_matches_monte_carlo_within_four_standard_errors():
    rng = np.random.default_rng(1)
    mean_p, mean_q = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    log_std_p, log_std_q = np.array([-0.3, 0.1, 0.4]), np.array([0.2, -0.4, 0.0])
    p, q = DiagGaussian(mean_p, log_std_p), DiagGaussian(mean_q, log_std_q)
    kl = p.kl(q)
    n = 200_000
    for i in range(2):
        samples = DiagGaussian(np.tile(mean_p[i], (n, 1)), log_std_p).sample(rng)
        log_ratio = (DiagGaussian(np.tile(mean_p[i], (n, 1)), log_std_p).log_prob(samples)
                     - DiagGaussian(np.tile(mean_q[i], (n, 1)), log_std_q).log_prob(samples))
        standard_error = log_ratio.std() / np.sqrt(n)
        assert abs(log_ratio.mean() - kl[i]) < 4 * standard_error
    np.testing.assert_allclose(p.kl(DiagGaussian(mean_p, log_std_p)), 0.0, atol=1e-15)


def test_kl_rejects_another_family_or_shape():
    with pytest.raises(TypeError, match="other"):
        Categorical(np.zeros((2, 3))).kl(DiagGaussian(np.zeros((2, 3)), np.zeros(3)))
    with pytest.raises(ValueError, match="other"):
        Categorical(np.zeros((2, 3))).kl(Categorical(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="other"):
        DiagGaussian(np.zeros((2, 3)), np.zeros(3)).kl(DiagGaussian(np.zeros((2, 2)), np.zeros(2)))


# ------------------------------------------------------------------------------------------
# The Fisher of each distribution: E[score score^T], and the KL's Hessian
# ------------------------------------------------------------------------------------------

def test_categorical_fisher_is_the_expected_outer_product_of_the_score():
    rng = np.random.default_rng(2)
    logits, u = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    dist = Categorical(logits)
    expected = np.zeros((4, 5))
    for a in range(5):                                          # sum_a pi_a s_a (s_a . u)
        score = dist.score(np.full(4, a))
        expected += dist.probs[:, [a]] * score * (score * u).sum(axis=1, keepdims=True)
    fisher_u = dist.fisher_vector_product(CategoricalGrads(u))
    assert isinstance(fisher_u, CategoricalGrads)
    np.testing.assert_allclose(fisher_u.logits, expected, rtol=1e-10, atol=1e-14)
    # The null direction: shifting every logit by the same amount changes no probability.
    shift = dist.fisher_vector_product(CategoricalGrads(np.ones((4, 5)))).logits
    np.testing.assert_allclose(shift, 0.0, atol=1e-15)


def test_categorical_fisher_is_the_hessian_of_the_kl_at_its_minimum():
    logits = np.random.default_rng(3).normal(size=4)
    dist = Categorical(logits[None])
    z = logits.copy()
    hessian = numerical_hessian(lambda: Categorical(logits[None]).kl(Categorical(z[None]))[0], z)
    fisher = np.stack([dist.fisher_vector_product(CategoricalGrads(e[None])).logits[0]
                       for e in np.eye(4)])
    np.testing.assert_allclose(fisher, np.diag(dist.probs[0]) - np.outer(dist.probs[0],
                                                                           dist.probs[0]),
                               rtol=1e-12, atol=1e-15)
    assert relative_error(hessian, fisher) < 1e-6


def test_gaussian_fisher_is_the_hessian_of_the_kl_in_mean_and_log_std():
    mean, log_std = np.array([[0.3, -1.2]]), np.array([-0.4, 0.5])
    dist = DiagGaussian(mean, log_std)
    theta = np.concatenate([mean[0], log_std])                  # (mu_1, mu_2, s_1, s_2)

    def kl():
        return dist.kl(DiagGaussian(theta[None, :2], theta[2:]))[0]

    hessian = numerical_hessian(kl, theta)
    fisher = []
    for e in np.eye(4):
        out = dist.fisher_vector_product(DiagGaussianGrads(e[None, :2], e[2:]))
        fisher.append(np.concatenate([out.mean[0], out.log_std]))
    fisher = np.array(fisher)
    np.testing.assert_allclose(fisher, np.diag([np.exp(0.8), np.exp(-1.0), 2.0, 2.0]),
                               rtol=1e-12)
    assert relative_error(hessian, fisher) < 1e-6


def test_gaussian_fisher_is_the_expected_outer_product_of_the_score_by_quadrature():
    """Gauss-Hermite nodes integrate polynomials of degree <= 2n - 1 against N(0, 1) exactly;
    score score^T is of degree 4 in z, so n = 3 per dimension already gives E exactly."""
    mean, log_std = np.array([[0.3, -1.2]]), np.array([-0.4, 0.5])
    dist = DiagGaussian(mean, log_std)
    nodes, weights = np.polynomial.hermite_e.hermegauss(4)
    weights = weights / weights.sum()
    expected = np.zeros((4, 4))
    for z1, w1 in zip(nodes, weights):
        for z2, w2 in zip(nodes, weights):
            action = mean + np.exp(log_std) * np.array([[z1, z2]])
            d_mean, d_log_std = dist.score(action)
            score = np.concatenate([d_mean[0], d_log_std[0]])
            expected += w1 * w2 * np.outer(score, score)
    fisher = []
    for e in np.eye(4):
        out = dist.fisher_vector_product(DiagGaussianGrads(e[None, :2], e[2:]))
        fisher.append(np.concatenate([out.mean[0], out.log_std]))
    np.testing.assert_allclose(np.array(fisher), expected, rtol=1e-12, atol=1e-12)


def test_gaussian_fisher_sums_the_shared_log_std_over_the_batch_like_param_grads():
    dist = DiagGaussian(np.zeros((2, 3, 2)), np.array([0.1, -0.2]))   # a (2, 3) batch
    out = dist.fisher_vector_product(DiagGaussianGrads(np.zeros((2, 3, 2)), np.array([1.0, 0.5])))
    np.testing.assert_allclose(out.log_std, 6 * 2 * np.array([1.0, 0.5]))
    np.testing.assert_allclose(out.mean, 0.0)


def test_fisher_vector_product_of_a_distribution_rejects_directions_of_the_wrong_shape():
    with pytest.raises(ValueError, match="directions.logits"):
        Categorical(np.zeros((2, 3))).fisher_vector_product(CategoricalGrads(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="directions.log_std"):
        DiagGaussian(np.zeros((2, 3)), np.zeros(3)).fisher_vector_product(
            DiagGaussianGrads(np.zeros((2, 3)), np.zeros(2)))


# ------------------------------------------------------------------------------------------
# The policy's Jacobian-vector product (forward mode)
# ------------------------------------------------------------------------------------------

def tiny_policy(kind, seed=0, batch=6):
    rng = np.random.default_rng(seed)
    if kind == "categorical":
        policy = CategoricalPolicy(3, 3, (4,), rng=seed + 1)
    else:
        policy = GaussianPolicy(3, 2, (4,), log_std_init=[-0.3, 0.2], rng=seed + 1)
    policy.params += 0.5 * rng.normal(size=policy.params.shape)    # away from the near-0 init
    return policy, rng.normal(size=(batch, 3)), rng


def distribution_params(policy, obs):
    """The distribution's parameters as one flat vector: logits, or (mean, log_std)."""
    dist = policy.distribution(obs)
    if isinstance(dist, Categorical):
        return dist.logits.ravel().copy()
    return np.concatenate([dist.mean.ravel(), dist.log_std])


def flat(directions):
    return np.concatenate([np.ravel(d) for d in directions])


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_policy_jvp_is_the_directional_derivative_of_the_distribution_params(kind):
    policy, obs, rng = tiny_policy(kind)
    v = rng.normal(size=policy.params.size)
    _, cache = policy.forward(obs)
    jvp = policy.jvp(cache, v)
    h, theta = 1e-6, policy.params.copy()
    policy.params[...] = theta + h * v
    plus = distribution_params(policy, obs)
    policy.params[...] = theta - h * v
    minus = distribution_params(policy, obs)
    policy.params[...] = theta
    assert relative_error(flat(jvp), (plus - minus) / (2 * h)) < 1e-8
    if kind == "gaussian":
        assert jvp.mean.shape == (6, 2) and jvp.log_std.shape == (2,)
        np.testing.assert_allclose(jvp.log_std, v[-2:])         # log_std moves with its entry


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_policy_jvp_and_backward_are_transposes(kind):
    """<J v, u> = <v, J^T u> for any direction v of params and u of the distribution params."""
    policy, obs, rng = tiny_policy(kind, seed=1)
    _, cache = policy.forward(obs)
    v = rng.normal(size=policy.params.size)
    jvp = policy.jvp(cache, v)
    u = type(jvp)(*(rng.normal(size=np.shape(d)) for d in jvp))
    assert np.dot(flat(jvp), flat(u)) == pytest.approx(np.dot(v, policy.backward(cache, u)),
                                                       rel=1e-12)


def test_gaussian_policy_jvp_does_not_move_a_clamped_log_std():
    policy = GaussianPolicy(3, 2, (4,), log_std_bounds=(-1.0, 1.0), rng=0)
    policy.raw_log_std[...] = [1.5, 0.0]                        # the first is clamped at 1
    _, cache = policy.forward(np.ones((2, 3)))
    jvp = policy.jvp(cache, np.ones(policy.params.size))
    np.testing.assert_array_equal(jvp.log_std, [0.0, 1.0])


def test_policy_jvp_rejects_a_vector_not_laid_out_like_params():
    policy, obs, _ = tiny_policy("categorical")
    _, cache = policy.forward(obs)
    with pytest.raises(ValueError, match="vector"):
        policy.jvp(cache, np.zeros(policy.params.size + 1))
    with pytest.raises(TypeError, match="vector"):
        policy.jvp(cache, np.array(["a"] * policy.params.size))


# ------------------------------------------------------------------------------------------
# The policy's Fisher-vector product
# ------------------------------------------------------------------------------------------

def fisher_matrix(policy, obs, damping=0.0):
    """F + damping I, column by column: F e_j for every basis vector e_j of params."""
    return np.column_stack([fisher_vector_product(policy, obs, e, damping)
                            for e in np.eye(policy.params.size)])


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fisher_vector_product_is_the_hessian_of_the_mean_kl_at_the_old_policy(kind):
    """d^2/dtheta^2 of mean_i KL(pi_old(.|s_i) || pi_theta(.|s_i)) at theta = theta_old."""
    policy, obs, _ = tiny_policy(kind, seed=2)
    dist_old = policy.distribution(obs)

    def mean_kl():
        return dist_old.kl(policy.distribution(obs)).mean()

    hessian = numerical_hessian(mean_kl, policy.params)
    fisher = fisher_matrix(policy, obs)
    assert relative_error(fisher, hessian) < 1e-6
    np.testing.assert_allclose(fisher, fisher.T, atol=1e-12)                  # symmetric
    assert np.linalg.eigvalsh(fisher).min() > -1e-10                          # PSD


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fisher_vector_product_is_the_expected_outer_product_of_the_score(kind):
    """F = (1/B) sum_i E_{a ~ pi(.|s_i)}[g g^T], g = d log pi(a|s_i)/d params by finite
    differences: an exact sum over actions (categorical), Gauss-Hermite quadrature (Gaussian:
    g g^T is a polynomial of degree 4 in the standard normal z)."""
    policy, obs, _ = tiny_policy(kind, seed=3, batch=4)
    expected = np.zeros((policy.params.size,) * 2)
    for i in range(len(obs)):
        s = obs[i:i + 1]
        dist = policy.distribution(s)
        if kind == "categorical":
            actions = [np.array([a]) for a in range(3)]
            weights = dist.probs[0]
        else:
            nodes, w = np.polynomial.hermite_e.hermegauss(3)
            w = w / w.sum()
            actions = [dist.mean + dist.std * np.array([[z1, z2]]) for z1 in nodes for z2 in nodes]
            weights = np.outer(w, w).ravel()
        for action, weight in zip(actions, weights):
            g = numerical_gradient(lambda: policy.distribution(s).log_prob(action)[0],
                                   policy.params, h=1e-6)
            expected += weight * np.outer(g, g) / len(obs)
    assert relative_error(fisher_matrix(policy, obs), expected) < 1e-7


def test_damping_adds_damping_times_the_vector():
    policy, obs, rng = tiny_policy("gaussian", seed=4)
    v = rng.normal(size=policy.params.size)
    np.testing.assert_allclose(fisher_vector_product(policy, obs, v, damping=0.3),
                               fisher_vector_product(policy, obs, v) + 0.3 * v, rtol=1e-12)


def test_fisher_vector_product_in_float32_agrees_with_float64():
    policy64, obs, rng = tiny_policy("categorical", seed=5, batch=32)
    policy32 = CategoricalPolicy(3, 3, (4,), dtype="float32")
    policy32.params[...] = policy64.params
    v = rng.normal(size=policy64.params.size)
    product32 = fisher_vector_product(policy32, obs, v, damping=0.1)
    assert product32.dtype == np.float32
    assert relative_error(product32, fisher_vector_product(policy64, obs, v, 0.1)) < 1e-5


def test_fisher_vector_product_rejects_bad_arguments():
    policy, obs, _ = tiny_policy("categorical")
    with pytest.raises(ValueError, match="vector"):
        fisher_vector_product(policy, obs, np.zeros(3))
    with pytest.raises(ValueError, match="damping"):
        fisher_vector_product(policy, obs, np.zeros(policy.params.size), damping=-1.0)
    with pytest.raises(TypeError, match="damping"):
        fisher_vector_product(policy, obs, np.zeros(policy.params.size), damping="0.1")

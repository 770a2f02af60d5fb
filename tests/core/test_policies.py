"""Policies and the value function as a specification: the gradient from a loss on log_prob and
entropy all the way into the flat params (finite differences), the log_std clamp, clipping only
the copy sent to the environment, shapes, persistence, and errors."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.core.distributions import CategoricalGrads, DiagGaussianGrads
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction
from minipg.run.checkpoint import from_state, load, save_policy
from minipg.core.heads import join_params
from minipg.core.losses import value_loss


ENTROPY_COEF = 0.3


# ------------------------------------------------------------------------------------------
# Gradients from the loss into params
# ------------------------------------------------------------------------------------------

def test_categorical_policy_gradient_matches_finite_differences():
    # L = sum_i w_i log pi(a_i | s_i) + c * sum_i H(pi(. | s_i)), w_i playing the advantages.
    rng = np.random.default_rng(0)
    policy = CategoricalPolicy(3, 4, hidden_sizes=(6, 5), rng=1)
    policy.params += 0.3 * rng.normal(size=policy.params.shape)   # away from the near-0 init
    obs, actions, w = rng.normal(size=(7, 3)), rng.integers(0, 4, size=7), rng.normal(size=7)

    def loss():
        dist = policy.distribution(obs)
        return (w * dist.log_prob(actions)).sum() + ENTROPY_COEF * dist.entropy().sum()

    dist, cache = policy.forward(obs)
    # Built from the scores by hand here; dist.param_grads is the same sum (test_distributions).
    grad_logits = w[:, None] * dist.score(actions) + ENTROPY_COEF * dist.entropy_grad()
    grad = policy.backward(cache, CategoricalGrads(grad_logits))
    assert relative_error(numerical_gradient(loss, policy.params), grad) < 1e-6


def gaussian_loss_and_grad(policy, obs, actions, w):
    """L = sum_i w_i log pi(a_i | s_i) + c * sum_i H: (the loss as a function, dL/dparams)."""
    def loss():
        dist = policy.distribution(obs)
        return (w * dist.log_prob(actions)).sum() + ENTROPY_COEF * dist.entropy().sum()

    dist, cache = policy.forward(obs)
    score_mean, score_log_std = dist.score(actions)
    grad_mean = w[:, None] * score_mean
    # log_std is shared: sum its per-sample gradients; each of the B entropies adds dH/dlog_std.
    grad_log_std = ((w[:, None] * score_log_std).sum(axis=0)
                    + ENTROPY_COEF * len(w) * dist.entropy_grad())
    return loss, policy.backward(cache, DiagGaussianGrads(grad_mean, grad_log_std))


def test_gaussian_policy_gradient_matches_finite_differences_including_log_std():
    rng = np.random.default_rng(2)
    policy = GaussianPolicy(3, 2, hidden_sizes=(6, 5), log_std_init=[-0.5, 0.3], rng=3)
    policy.params += 0.3 * rng.normal(size=policy.params.shape)
    obs, actions, w = rng.normal(size=(7, 3)), rng.normal(size=(7, 2)), rng.normal(size=7)
    loss, grad = gaussian_loss_and_grad(policy, obs, actions, w)
    assert np.abs(grad[-2:]).min() > 0                      # the log_std entries get a gradient
    assert relative_error(numerical_gradient(loss, policy.params), grad) < 1e-6


def test_gaussian_log_std_clamp_passes_no_gradient_where_clamped():
    rng = np.random.default_rng(4)
    policy = GaussianPolicy(3, 2, hidden_sizes=(5,), log_std_bounds=(-5.0, 2.0), rng=5)
    policy.raw_log_std[...] = [3.0, -1.0]                    # dim 0 beyond the upper bound
    np.testing.assert_array_equal(policy.log_std, [2.0, -1.0])
    obs, actions, w = rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), rng.normal(size=4)
    dist = policy.distribution(obs)
    np.testing.assert_allclose(dist.std, np.exp([2.0, -1.0]))
    loss, grad = gaussian_loss_and_grad(policy, obs, actions, w)
    assert grad[-2] == 0.0 and grad[-1] != 0.0
    assert relative_error(numerical_gradient(loss, policy.params), grad) < 1e-6


def test_value_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    value_function = ValueFunction(3, hidden_sizes=(6, 5), rng=7)
    obs, targets = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4))   # time-first (T, N)

    def loss():
        return value_loss(value_function.predict(obs), targets)[0]

    values, cache = value_function.forward(obs)
    _, grad_values = value_loss(values, targets)
    grad = value_function.backward(cache, grad_values)
    assert relative_error(numerical_gradient(loss, value_function.params), grad) < 1e-6


@pytest.mark.parametrize("make, n_actions", [
    (lambda: CategoricalPolicy(3, 4, hidden_sizes=(6, 5), rng=11), 4),
    (lambda: GaussianPolicy(3, 2, hidden_sizes=(6, 5), log_std_init=[-0.5, 0.3], rng=11), 2),
])
def test_interleaved_forwards_backwards_in_the_opposite_order_match_finite_differences(
        make, n_actions):
    """forward(obs1), forward(obs2) on batches of different sizes, an act() in between, then
    backward(cache2) before backward(cache1): each gradient is that of its own batch. (Before
    explicit caches, the policy kept "the last forward" and this failed with a shape error, or
    silently used the wrong activations when the shapes agreed.)"""
    rng = np.random.default_rng(12)
    policy = make()
    policy.params += 0.3 * rng.normal(size=policy.params.shape)
    batches = []
    for size in (5, 8):
        obs = rng.normal(size=(size, 3))
        actions = policy.distribution(obs).sample(rng)
        batches.append((obs, actions, rng.normal(size=size)))
    forwards = [policy.forward(obs) for obs, _, _ in batches]
    policy.act(rng.normal(size=(3, 3)))                          # acting in between
    grads = [None, None]
    for k in (1, 0):                                             # the opposite order
        dist, cache = forwards[k]
        _, actions, w = batches[k]
        grads[k] = policy.backward(cache, dist.param_grads(actions, w, ENTROPY_COEF))
    for (obs, actions, w), grad in zip(batches, grads):
        def loss():
            dist = policy.distribution(obs)
            return (w * dist.log_prob(actions)).sum() + ENTROPY_COEF * dist.entropy().sum()
        assert relative_error(numerical_gradient(loss, policy.params), grad) < 1e-6


def test_join_params_puts_both_networks_in_one_vector_that_they_compute_from():
    policy = GaussianPolicy(3, 2, hidden_sizes=(5,), rng=0)
    value_fn = ValueFunction(3, hidden_sizes=(4,), rng=1)
    obs = np.random.default_rng(2).normal(size=(6, 3))
    before = policy.distribution(obs).mean, value_fn.predict(obs)
    policy_params, value_params = policy.params.copy(), value_fn.params.copy()
    params = join_params(policy, value_fn)
    np.testing.assert_array_equal(params, np.concatenate([policy_params, value_params]))
    assert np.shares_memory(policy.params, params) and np.shares_memory(value_fn.params, params)
    assert np.shares_memory(policy.raw_log_std, params)
    np.testing.assert_array_equal(policy.distribution(obs).mean, before[0])
    np.testing.assert_array_equal(value_fn.predict(obs), before[1])
    params[...] += 0.1                               # an optimizer step reaches both networks
    assert not np.allclose(policy.distribution(obs).mean, before[0])
    assert not np.allclose(value_fn.predict(obs), before[1])
    np.testing.assert_allclose(policy.log_std, policy_params[-2:] + 0.1)
    with pytest.raises(ValueError, match="dtype"):
        join_params(policy, ValueFunction(3, rng=0, dtype="float32"))


def test_value_loss_is_half_the_mean_squared_error_over_all_samples():
    predictions, targets = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 2.0], [3.0, 6.0]])
    loss, grad = value_loss(predictions, targets)
    assert loss == pytest.approx(0.5 * (1.0 + 0.0 + 0.0 + 4.0) / 4)
    np.testing.assert_allclose(grad, [[0.25, 0.0], [0.0, -0.5]])       # (V - target) / n
    np.testing.assert_allclose(numerical_gradient(lambda: value_loss(predictions, targets)[0],
                                                  predictions), grad, rtol=1e-8)
    with pytest.raises(ValueError, match="same shape"):
        value_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        value_loss(np.zeros(0), np.zeros(0))


# ------------------------------------------------------------------------------------------
# Acting, shapes, the initial policy
# ------------------------------------------------------------------------------------------

def test_categorical_act_for_a_batch_a_single_observation_and_deterministically():
    policy = CategoricalPolicy(4, 3, rng=0)
    obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)   # env dtype
    actions = policy.act(obs, rng=np.random.default_rng(2))
    assert actions.shape == (5,) and actions.dtype == np.int64
    assert ((0 <= actions) & (actions < 3)).all()
    assert np.shape(policy.act(obs[0])) == ()                             # one obs, one action
    greedy = policy.act(obs, deterministic=True)
    np.testing.assert_array_equal(greedy, policy.distribution(obs).logits.argmax(axis=1))


def test_initial_categorical_policy_is_near_uniform():
    # The 0.01 output gain makes the first logits tiny: every action gets explored.
    policy = CategoricalPolicy(4, 3, rng=0)
    probs = policy.distribution(np.random.default_rng(1).normal(size=(100, 4))).probs
    assert np.abs(probs - 1 / 3).max() < 0.02


def test_time_first_batches_keep_their_leading_dims():
    policy = CategoricalPolicy(4, 2, hidden_sizes=(8,), rng=0)
    obs = np.random.default_rng(1).normal(size=(3, 5, 4))                 # (T, N, obs_dim)
    dist = policy.distribution(obs)
    assert dist.logits.shape == (3, 5, 2)
    flat = policy.distribution(obs.reshape(15, 4))
    np.testing.assert_array_equal(dist.logits.reshape(15, 2), flat.logits)
    grad = np.random.default_rng(2).normal(size=(3, 5, 2))
    _, cache = policy.forward(obs)
    time_first_grad = policy.backward(cache, CategoricalGrads(grad))
    _, cache = policy.forward(obs.reshape(15, 4))
    flat_grad = policy.backward(cache, CategoricalGrads(grad.reshape(15, 2)))
    np.testing.assert_allclose(time_first_grad, flat_grad, rtol=1e-12)


def test_gaussian_clips_only_the_copy_sent_to_the_env():
    policy = GaussianPolicy(2, 2, log_std_init=1.0, action_low=-1.0, action_high=[1.0, 0.5],
                            rng=0)
    obs = np.zeros((200, 2))
    actions = policy.distribution(obs).sample(np.random.default_rng(1))
    stored = actions.copy()
    env_actions = policy.to_env(actions)
    np.testing.assert_array_equal(actions, stored)                      # untouched
    assert (np.abs(actions) > 1.0).any()                                # std e: some fall outside
    assert (env_actions >= -1.0).all() and (env_actions <= [1.0, 0.5]).all()
    np.testing.assert_array_equal(env_actions, np.clip(stored, -1.0, [1.0, 0.5]))
    acted = policy.act(obs, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(acted, env_actions)                   # act is env-ready


def test_gaussian_log_std_lives_in_params_and_deterministic_act_is_the_mean():
    policy = GaussianPolicy(3, 2, log_std_init=-0.5, rng=0)
    assert np.shares_memory(policy.raw_log_std, policy.params)
    np.testing.assert_array_equal(policy.params[-2:], [-0.5, -0.5])
    obs = np.ones((1, 3))                                               # a batch of one
    np.testing.assert_array_equal(policy.act(obs, deterministic=True),
                                  policy.distribution(obs).mean)


# ------------------------------------------------------------------------------------------
# Persistence
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: CategoricalPolicy(4, 3, hidden_sizes=(16, 16), activation="relu", rng=0),
    lambda: GaussianPolicy(4, 2, hidden_sizes=(16,), log_std_init=-0.7,
                           action_low=-2.0, action_high=2.0, rng=0),
    lambda: CategoricalPolicy(4, 3, hidden_sizes=(16, 16), rng=0, dtype="float32"),
])
def test_save_then_load_gives_identical_actions(make, tmp_path):
    policy = make()
    policy.params += 0.1 * np.random.default_rng(1).normal(size=policy.params.shape)  # "trained"
    path = tmp_path / "policy.npz"
    save_policy(policy, path)
    loaded = load(path)
    assert type(loaded) is type(policy) and loaded.config == policy.config
    assert loaded.net.dtype == policy.net.dtype
    np.testing.assert_array_equal(loaded.params, policy.params)
    obs = np.random.default_rng(2).normal(size=(10, 4))
    np.testing.assert_array_equal(loaded.act(obs, rng=np.random.default_rng(3)),
                                  policy.act(obs, rng=np.random.default_rng(3)))


def test_one_npz_holds_policy_value_function_and_more_under_prefixes(tmp_path):
    policy = GaussianPolicy(3, 1, hidden_sizes=(8,), rng=0)
    value_function = ValueFunction(3, hidden_sizes=(8,), rng=1)
    path = tmp_path / "checkpoint.npz"
    np.savez(path, **policy.state("policy/"), **value_function.state("value/"), step=np.array(7))
    with np.load(path) as data:
        loaded_policy = from_state(data, "policy/")
        loaded_value = from_state(data, "value/")
        assert data["step"] == 7
    obs = np.random.default_rng(2).normal(size=(5, 3))
    np.testing.assert_array_equal(loaded_value.predict(obs), value_function.predict(obs))
    np.testing.assert_array_equal(loaded_policy.distribution(obs).mean,
                                  policy.distribution(obs).mean)
    with pytest.raises(KeyError, match="prefix"):
        from_state(policy.state("policy/"), "value/")


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: CategoricalPolicy(4, 2, hidden_sizes=(8,), rng=0),
    lambda: GaussianPolicy(4, 2, hidden_sizes=(8,), rng=0),
])
def test_bad_observations_raise_naming_obs(make):
    policy = make()
    with pytest.raises(ValueError, match="empty batch"):
        policy.distribution(np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"obs must have shape \(\.\.\., 4\)"):
        policy.act(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        policy.act(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="empty batch"):
        ValueFunction(4, hidden_sizes=(8,), rng=0).predict(np.zeros((0, 4)))


def test_backward_checks_the_gradient_matches_the_batch_of_its_cache():
    policy = CategoricalPolicy(4, 2, hidden_sizes=(8,), rng=0)
    _, cache = policy.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dist_grads.logits"):
        policy.backward(cache, CategoricalGrads(np.zeros((2, 2))))
    gaussian = GaussianPolicy(4, 2, hidden_sizes=(8,), rng=0)
    _, cache = gaussian.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dist_grads.log_std"):                # not summed
        gaussian.backward(cache, DiagGaussianGrads(np.zeros((3, 2)), np.zeros((3, 2))))
    value_fn = ValueFunction(4, hidden_sizes=(8,), rng=0)
    _, cache = value_fn.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="grad_values"):
        value_fn.backward(cache, np.zeros((3, 1)))


def test_gaussian_rejects_bad_log_std_settings():
    with pytest.raises(ValueError, match="log_std_bounds"):
        GaussianPolicy(3, 2, log_std_bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="log_std_init"):
        GaussianPolicy(3, 2, log_std_init=3.0, log_std_bounds=(-5.0, 2.0))
    with pytest.raises(ValueError, match="action_low"):
        GaussianPolicy(3, 2, action_low=[-1.0, -1.0, -1.0])

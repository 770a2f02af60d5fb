"""Optimizers, clipping and schedules as a specification: the textbook update rules, step by
step, convergence on a quadratic, and clear errors for bad hyperparameters."""
import numpy as np
import pytest

from minipg.core.optim import SGD, Adam, clip_grad_norm, constant_schedule, linear_schedule


def quadratic_grad(x, curvature, center):
    """Gradient of f(x) = 0.5 * sum_i curvature_i * (x_i - center_i)^2."""
    return curvature * (x - center)


# ------------------------------------------------------------------------------------------
# Adam
# ------------------------------------------------------------------------------------------

def test_adam_first_two_steps_match_the_textbook_update():
    lr, eps = 0.1, 1e-8
    params = np.array([1.0, -2.0, 0.5])
    g1, g2 = np.array([0.5, -3.0, 0.0]), np.array([-1.0, 2.0, 4.0])
    adam = Adam(params, learning_rate=lr, betas=(0.9, 0.999), eps=eps)

    # Step 1: m = 0.1 g1, v = 0.001 g1^2; bias correction gives m_hat = g1, v_hat = g1^2.
    expected = np.array([1.0, -2.0, 0.5]) - lr * g1 / (np.abs(g1) + eps)
    adam.step(g1)
    np.testing.assert_allclose(params, expected, rtol=1e-12)

    # Step 2: m = 0.9 * 0.1 g1 + 0.1 g2, v = 0.999 * 0.001 g1^2 + 0.001 g2^2,
    # m_hat = m / (1 - 0.9^2), v_hat = v / (1 - 0.999^2).
    m = 0.09 * g1 + 0.1 * g2
    v = 0.000999 * g1 ** 2 + 0.001 * g2 ** 2
    expected = expected - lr * (m / 0.19) / (np.sqrt(v / (1 - 0.999 ** 2)) + eps)
    adam.step(g2)
    np.testing.assert_allclose(params, expected, rtol=1e-12)
    assert adam.t == 2


@pytest.mark.parametrize("eps", [1e-8, 1e-5, 1e-4])
def test_adam_eps_is_the_gradient_scale_below_which_steps_shrink_with_the_gradient(eps):
    """A constant gradient g of each size: once v_hat = g^2, the step is lr * g / (|g| + eps),
    full size (lr) for |g| >> eps, and lr * g / eps (shrinking with g) for |g| << eps."""
    lr = 1e-3
    for g in (1e-2, 1e-3, 1e-6, 1e-7):
        params = np.zeros(1)
        adam = Adam(params, learning_rate=lr, eps=eps)
        for _ in range(5000):                       # bias correction long done
            before = params.copy()
            adam.step(np.array([g]))
        step = float(before[0] - params[0])
        assert step == pytest.approx(lr * g / (g + eps), rel=1e-9)
        if g >= 100 * eps:
            assert step > 0.99 * lr
        if g <= eps / 100:
            assert step < 0.011 * lr


def test_adam_without_bias_correction_would_take_a_first_step_3_2_times_larger():
    # Uncorrected, step 1 would be lr (1 - b1) g / (sqrt((1 - b2) g^2) + eps): v is biased toward
    # zero more than m, so the step is (1 - b1) / sqrt(1 - b2) = 0.1 / sqrt(0.001) = 3.16 times
    # the corrected lr g / (|g| + eps). minipg's Adam takes the corrected one.
    lr, eps, g = 0.01, 1e-8, np.array([0.5, -3.0, 0.2])
    params = np.zeros(3)
    Adam(params, learning_rate=lr, betas=(0.9, 0.999), eps=eps).step(g)
    uncorrected = -lr * 0.1 * g / (np.sqrt(0.001 * g ** 2) + eps)
    np.testing.assert_allclose(params, -lr * g / (np.abs(g) + eps), rtol=1e-12)
    np.testing.assert_allclose(uncorrected / params, 0.1 / np.sqrt(0.001), rtol=1e-5)  # eps: 1e-8 / 6e-3
    assert round(0.1 / np.sqrt(0.001), 2) == 3.16


def test_adam_converges_on_an_ill_conditioned_quadratic():
    curvature, center = np.array([1.0, 100.0]), np.array([3.0, -1.0])
    params = np.zeros(2)
    adam = Adam(params, learning_rate=0.05)
    for _ in range(3000):
        adam.step(quadratic_grad(params, curvature, center))
    np.testing.assert_allclose(params, center, atol=1e-4)


def test_adam_updates_the_array_it_was_given_in_place():
    buffer = np.zeros(4)
    view = buffer[1:3]                    # e.g. a layer's weights living inside the flat vector
    adam = Adam(buffer, learning_rate=0.1)
    adam.step(np.ones(4))
    assert adam.params is buffer
    np.testing.assert_allclose(view, [-0.1, -0.1], rtol=1e-6)


def test_learning_rate_is_a_mutable_attribute():
    params = np.zeros(2)
    adam = Adam(params, learning_rate=0.1)
    adam.learning_rate = 0.0
    adam.step(np.ones(2))
    np.testing.assert_array_equal(params, 0.0)
    adam.learning_rate = 0.01
    adam.step(np.ones(2))
    assert (params < 0).all()
    with pytest.raises(ValueError, match="learning_rate"):   # checked when set, not per step
        adam.learning_rate = -1.0
    assert adam.learning_rate == 0.01


# ------------------------------------------------------------------------------------------
# SGD
# ------------------------------------------------------------------------------------------

def test_sgd_without_momentum_is_gradient_descent():
    params = np.array([1.0, 2.0])
    SGD(params, learning_rate=0.5).step(np.array([2.0, -2.0]))
    np.testing.assert_array_equal(params, [0.0, 3.0])


def test_sgd_momentum_accumulates_velocity():
    params = np.array([0.0])
    sgd = SGD(params, learning_rate=0.1, momentum=0.9)
    sgd.step(np.array([1.0]))             # velocity 1        -> params -0.1
    sgd.step(np.array([1.0]))             # velocity 0.9 + 1  -> params -0.1 - 0.19
    np.testing.assert_allclose(params, [-0.29], rtol=1e-12)


def test_sgd_converges_on_a_quadratic():
    curvature, center = np.array([1.0, 4.0]), np.array([-2.0, 5.0])
    params = np.zeros(2)
    sgd = SGD(params, learning_rate=0.1, momentum=0.5)
    for _ in range(300):
        sgd.step(quadratic_grad(params, curvature, center))
    np.testing.assert_allclose(params, center, atol=1e-8)


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda p: Adam(p, learning_rate=-1e-3), "learning_rate"),
    (lambda p: Adam(p, learning_rate=float("nan")), "learning_rate"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: Adam(p, eps=0.0), "eps"),
    (lambda p: SGD(p, learning_rate=-0.1), "learning_rate"),
    (lambda p: SGD(p, learning_rate=0.1, momentum=1.0), "momentum"),
])
def test_bad_hyperparameters_raise_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make(np.zeros(3))


def test_bad_params_and_grads_raise():
    with pytest.raises(TypeError, match="params"):
        Adam(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="params"):
        Adam([0.0, 1.0])
    adam = Adam(np.zeros(3))
    with pytest.raises(ValueError, match="grad must have the shape"):
        adam.step(np.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        adam.step(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="non-finite"):
        SGD(np.zeros(1), learning_rate=0.1).step(np.array([np.inf]))


# ------------------------------------------------------------------------------------------
# Gradient clipping
# ------------------------------------------------------------------------------------------

def test_clip_grad_norm_scales_to_max_norm_when_above():
    grads = np.array([3.0, 4.0])
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert norm == 5.0                                   # the norm before clipping
    np.testing.assert_allclose(np.linalg.norm(grads), 1.0, rtol=1e-12)
    np.testing.assert_allclose(grads, [0.6, 0.8], rtol=1e-12)   # same direction


def test_clip_grad_norm_leaves_small_gradients_untouched():
    grads = np.array([0.3, -0.4])
    assert clip_grad_norm(grads, max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads, [0.3, -0.4])


def test_clip_grad_norm_of_a_joint_vector_is_one_global_norm_over_both_networks():
    grad = np.array([3.0, 4.0, 0.0, 0.0, 0.0])          # policy [3], value [4, 0, 0, 0]
    policy_grad, value_grad = grad[:1], grad[1:]
    norm = clip_grad_norm(grad, max_norm=2.5)
    assert norm == 5.0
    np.testing.assert_allclose(policy_grad, [1.5])       # both scaled by 2.5 / 5, in place
    np.testing.assert_allclose(value_grad, [2.0, 0.0, 0.0, 0.0])


def test_clip_grad_norm_rejects_bad_input():
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(np.ones(2), max_norm=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        clip_grad_norm(np.array([1.0, np.nan]), max_norm=1.0)
    with pytest.raises(TypeError, match="grad"):
        clip_grad_norm([1.0, 2.0], max_norm=1.0)          # a list cannot be scaled in place


# ------------------------------------------------------------------------------------------
# Schedules
# ------------------------------------------------------------------------------------------

def test_constant_schedule():
    schedule = constant_schedule(3e-4)
    assert [schedule(f) for f in (0.0, 0.5, 1.0)] == [3e-4] * 3


def test_linear_schedule_interpolates_and_clips_the_fraction():
    schedule = linear_schedule(1e-3, final=1e-4)
    assert schedule(0.0) == pytest.approx(1e-3)
    assert schedule(0.5) == pytest.approx(5.5e-4)
    assert schedule(1.0) == pytest.approx(1e-4)
    assert schedule(1.2) == pytest.approx(1e-4)           # an overshooting last iteration
    assert linear_schedule(2.0)(0.25) == pytest.approx(1.5)     # final defaults to 0


def test_schedules_reject_negative_rates():
    with pytest.raises(ValueError, match="value"):
        constant_schedule(-1.0)
    with pytest.raises(ValueError, match="final"):
        linear_schedule(1e-3, final=-1e-4)


# ------------------------------------------------------------------------------------------
# State: what a resume needs to continue exactly
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda p: Adam(p, learning_rate=0.05),
                                  lambda p: SGD(p, learning_rate=0.05, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_state_then_load_state_continues_bit_for_bit(make):
    """Three steps, a state() taken, then three more: an optimizer restored from the state on a
    copy of the parameters takes the same three steps to the same bits."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=5) for _ in range(6)]
    params = rng.normal(size=5)
    optimizer = make(params)
    for g in grads[:3]:
        optimizer.step(g)
    state, params_then = optimizer.state(), params.copy()
    for g in grads[3:]:
        optimizer.step(g)

    restored_params = params_then.copy()
    restored = make(restored_params)
    restored.learning_rate = 1.0                  # load_state restores the rate too
    restored.load_state(state)
    for g in grads[3:]:
        restored.step(g)
    np.testing.assert_array_equal(restored_params, params)
    assert all(isinstance(v, np.ndarray) for v in state.values())


def test_state_is_a_copy_and_load_state_keeps_the_arrays_in_place():
    params = np.zeros(3)
    adam = Adam(params)
    state = adam.state()
    m, v = adam.m, adam.v
    adam.step(np.ones(3))
    assert (state["m"] == 0).all() and state["t"] == 0          # unchanged by the step
    adam.load_state(state)
    assert adam.m is m and adam.v is v and (m == 0).all() and adam.t == 0


@pytest.mark.parametrize("state, match", [
    ({"m": np.zeros(3), "v": np.zeros(3), "t": np.array(1)}, "learning_rate"),
    ({"m": np.zeros(4), "v": np.zeros(3), "t": np.array(1), "learning_rate": np.array(0.1)},
     r"state\['m'\] has shape \(4,\)"),
    ({"m": np.full(3, np.nan), "v": np.zeros(3), "t": np.array(1),
      "learning_rate": np.array(0.1)}, "finite"),
    ({"m": np.zeros(3), "v": np.zeros(3), "t": np.array(-1), "learning_rate": np.array(0.1)},
     r"state\['t'\]"),
    ({"m": np.zeros(3), "v": np.zeros(3), "t": np.array(1), "learning_rate": np.array(-0.1)},
     "learning_rate"),
])
def test_load_state_rejects_a_state_that_does_not_fit_naming_the_entry(state, match):
    adam = Adam(np.zeros(3))
    with pytest.raises(ValueError, match=match):
        adam.load_state(state)
    with pytest.raises(TypeError, match="dict"):
        adam.load_state([1, 2])

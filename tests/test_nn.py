"""The MLP as a specification: the forward formula, backward against central finite differences,
orthogonal initialisation, the flat parameter layout, and clear errors for bad input."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.nn import MLP, orthogonal


def reference_forward(net, x):
    """z_l = h_{l-1} W_l + b_l, h_l = f(z_l), linear last layer; returns output and hidden z's."""
    f = np.tanh if net.activation == "tanh" else (lambda z: np.maximum(z, 0.0))
    h, pre_activations = x, []
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        z = h @ W + b
        pre_activations.append(z)
        h = f(z)
    return h @ net.weights[-1] + net.biases[-1], pre_activations


def test_forward_matches_the_layer_formula():
    net = MLP((3, 8, 5, 2), rng=0)
    net.biases[0][...] = 0.3                      # nonzero biases, so they are tested too
    x = np.random.default_rng(1).normal(size=(4, 3))
    expected, _ = reference_forward(net, x)
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_backward_matches_finite_differences(activation):
    rng = np.random.default_rng(2)
    net = MLP((3, 7, 6, 2), activation=activation, rng=3)
    net.params += 0.1 * rng.normal(size=net.params.shape)     # nonzero biases, generic weights
    x = rng.normal(size=(5, 3))
    if activation == "relu":
        # Central differences are only valid away from relu's kink at z = 0.
        _, pre_activations = reference_forward(net, x)
        assert min(np.abs(z).min() for z in pre_activations) > 1e-3
    weights = rng.normal(size=(5, 2))             # L = sum(weights * output): dL/doutput = weights
    loss = lambda: (weights * net.forward(x)).sum()

    net.forward(x)
    grad_x = net.backward(weights)
    analytic_params = net.grads.copy()

    assert relative_error(numerical_gradient(loss, x), grad_x) < 1e-6
    assert relative_error(numerical_gradient(loss, net.params), analytic_params) < 1e-6


def test_backward_overwrites_grads_instead_of_accumulating():
    net = MLP((2, 4, 1), rng=0)
    x, grad_out = np.ones((3, 2)), np.ones((3, 1))
    net.forward(x)
    net.backward(grad_out)
    first = net.grads.copy()
    net.backward(grad_out)
    np.testing.assert_array_equal(net.grads, first)


def test_backward_uses_the_most_recent_forward_whatever_its_batch_size():
    rng = np.random.default_rng(4)
    net = MLP((3, 5, 2), rng=5)
    x_small, x_big = rng.normal(size=(2, 3)), rng.normal(size=(6, 3))
    weights = rng.normal(size=(6, 2))
    net.forward(x_small)                          # a different batch size first
    net.forward(x_big)
    net.backward(weights)
    loss = lambda: (weights * net.forward(x_big)).sum()
    assert relative_error(numerical_gradient(loss, net.params), net.grads) < 1e-6


def test_forward_output_is_not_overwritten_by_the_next_call():
    net = MLP((2, 4, 3), rng=0)
    first = net.forward(np.ones((5, 2)))
    kept = first.copy()
    net.forward(-np.ones((5, 2)))
    np.testing.assert_array_equal(first, kept)


def test_batch_of_one():
    net = MLP((4, 8, 2), rng=0)
    out = net.forward(np.ones((1, 4)))
    assert out.shape == (1, 2)
    assert net.backward(np.ones((1, 2))).shape == (1, 4)


def test_parameters_are_views_into_one_flat_vector():
    net = MLP((3, 4, 2), rng=0)
    assert net.params.shape == (MLP.count_params((3, 4, 2)),) == (3 * 4 + 4 + 4 * 2 + 2,)
    for view in net.weights + net.biases:
        assert np.shares_memory(view, net.params)
    for view in net.weight_grads + net.bias_grads:
        assert np.shares_memory(view, net.grads)
    net.params[...] = 0.0                         # an in-place update reaches every layer
    np.testing.assert_array_equal(net.forward(np.ones((1, 3))), [[0.0, 0.0]])


def test_external_buffers_hold_the_network():
    n = MLP.count_params((3, 4, 2))
    params, grads = np.zeros(n + 2), np.zeros(n + 2)
    net = MLP((3, 4, 2), rng=0, params=params[:n], grads=grads[:n])
    assert np.abs(params[:n]).sum() > 0 and (params[n:] == 0).all()   # initialised in place
    net.forward(np.ones((2, 3)))
    net.backward(np.ones((2, 2)))
    np.testing.assert_array_equal(grads[:n], net.grads)
    assert (grads[n:] == 0).all()


def test_orthogonal_init_has_orthonormal_columns_times_gain_and_zero_biases():
    net = MLP((64, 16, 3), gains=(2.0, 0.01), rng=0)
    W_1, W_2 = net.weights
    np.testing.assert_allclose(W_1.T @ W_1, 4.0 * np.eye(16), atol=1e-12)      # (64, 16)
    np.testing.assert_allclose(W_2.T @ W_2, 1e-4 * np.eye(3), atol=1e-15)      # (16, 3)
    for b in net.biases:
        assert (b == 0).all()
    wide = orthogonal((3, 10), 1.5, np.random.default_rng(0))                  # rows orthonormal
    np.testing.assert_allclose(wide @ wide.T, 2.25 * np.eye(3), atol=1e-12)


def test_default_gains_are_sqrt2_hidden_and_1_output():
    net = MLP((8, 8, 8), rng=0)
    np.testing.assert_allclose(net.weights[0].T @ net.weights[0], 2.0 * np.eye(8), atol=1e-12)
    np.testing.assert_allclose(net.weights[1].T @ net.weights[1], np.eye(8), atol=1e-12)


def test_same_seed_same_weights():
    np.testing.assert_array_equal(MLP((3, 5, 2), rng=7).params, MLP((3, 5, 2), rng=7).params)
    assert not np.array_equal(MLP((3, 5, 2), rng=7).params, MLP((3, 5, 2), rng=8).params)


@pytest.mark.parametrize("x, match", [
    (np.ones((4, 2)), "x must have shape"),       # wrong input dim
    (np.ones(3), "x must have shape"),            # a single sample needs a batch dim here
    (np.ones((0, 3)), "empty batch"),
])
def test_forward_rejects_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        MLP((3, 4, 2), rng=0).forward(x)


def test_constructor_and_backward_reject_bad_arguments():
    with pytest.raises(ValueError, match="sizes"):
        MLP((3,))
    with pytest.raises(ValueError, match="sizes"):
        MLP((3, 0, 2))
    with pytest.raises(ValueError, match="activation"):
        MLP((3, 2), activation="sigmoid")
    with pytest.raises(ValueError, match="gains"):
        MLP((3, 4, 2), gains=(1.0,))
    with pytest.raises(ValueError, match="params"):
        MLP((3, 2), params=np.zeros(5))
    with pytest.raises(TypeError, match="rng"):
        MLP((3, 2), rng="seed")
    net = MLP((3, 4, 2), rng=0)
    with pytest.raises(RuntimeError, match="before forward"):
        net.backward(np.ones((1, 2)))
    net.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="grad_out"):
        net.backward(np.ones((3, 2)))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_float32_arithmetic_gives_the_float64_results_to_float32_precision(activation):
    """dtype=float32 computes in float32 on a copy of the float64 params, and writes float64
    grads. Same weights, same inputs: outputs and gradients agree to float32 rounding (~1e-7
    relative per operation, a few hundred operations deep), not bit for bit."""
    sizes = (4, 32, 32, 3)
    net64 = MLP(sizes, activation, rng=0)
    net32 = MLP(sizes, activation, rng=0, dtype=np.float32)
    np.testing.assert_array_equal(net32.params, net64.params)
    rng = np.random.default_rng(1)
    x, grad_out = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    out64, out32 = net64.forward(x), net32.forward(x)
    assert out32.dtype == np.float32
    assert relative_error(out32, out64) < 1e-5
    grad_x64, grad_x32 = net64.backward(grad_out), net32.backward(grad_out)
    assert net32.grads.dtype == np.float64
    assert relative_error(net32.grads, net64.grads) < 1e-5
    assert relative_error(grad_x32, grad_x64) < 1e-5
    # ...and float32 really is a different arithmetic: the results are not bit-identical.
    assert not np.array_equal(net32.grads, net64.grads)


def test_a_float32_network_sees_every_change_to_its_float64_params():
    net = MLP((3, 8, 2), rng=0, dtype=np.float32)
    x = np.ones((2, 3))
    before = net.forward(x).copy()
    net.params += 0.5                          # an optimizer step, in place
    after = net.forward(x)
    reference = MLP((3, 8, 2), rng=0)
    reference.params += 0.5
    np.testing.assert_allclose(after, reference.forward(x), rtol=1e-5)
    assert not np.allclose(before, after)


def test_dtype_must_be_float32_or_float64():
    with pytest.raises(ValueError, match="dtype"):
        MLP((2, 2), dtype=np.float16)

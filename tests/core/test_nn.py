"""The MLP as a specification: the forward formula, backward against central finite differences,
orthogonal initialisation, the flat parameter layout, and clear errors for bad input."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.core.nn import MLP, orthogonal


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
    out, _ = net.forward(x)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)


def generic_net(activation, seed=3, sizes=(3, 7, 6, 2)):
    net = MLP(sizes, activation=activation, rng=seed)
    net.params += 0.1 * np.random.default_rng(seed).normal(size=net.params.shape)  # nonzero biases
    return net


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_backward_matches_finite_differences(activation):
    rng = np.random.default_rng(2)
    net = generic_net(activation)
    x = rng.normal(size=(5, 3))
    if activation == "relu":
        # Central differences are only valid away from relu's kink at z = 0.
        _, pre_activations = reference_forward(net, x)
        assert min(np.abs(z).min() for z in pre_activations) > 1e-3
    weights = rng.normal(size=(5, 2))             # L = sum(weights * output): dL/doutput = weights
    loss = lambda: (weights * net.forward(x)[0]).sum()

    _, cache = net.forward(x)
    grad_x, grad_params = net.backward(cache, weights)

    assert relative_error(numerical_gradient(loss, x), grad_x) < 1e-6
    assert relative_error(numerical_gradient(loss, net.params), grad_params) < 1e-6


def test_two_forwards_alive_at_once_each_backward_uses_its_own_cache():
    """Forward on batch 1, forward on batch 2 (another size), then the backwards in the opposite
    order: each gradient is that of its own batch's loss. Nothing of a forward lives in the
    network."""
    rng = np.random.default_rng(4)
    net = generic_net("tanh", seed=5, sizes=(3, 5, 4, 2))
    x1, x2 = rng.normal(size=(2, 3)), rng.normal(size=(6, 3))
    w1, w2 = rng.normal(size=(2, 2)), rng.normal(size=(6, 2))
    _, cache1 = net.forward(x1)
    _, cache2 = net.forward(x2)
    grad_x2, grad2 = net.backward(cache2, w2)
    grad_x1, grad1 = net.backward(cache1, w1)
    for x, w, grad_x, grad in ((x1, w1, grad_x1, grad1), (x2, w2, grad_x2, grad2)):
        loss = lambda: (w * net.forward(x)[0]).sum()
        assert relative_error(numerical_gradient(loss, net.params), grad) < 1e-6
        assert relative_error(numerical_gradient(loss, x), grad_x) < 1e-6
    assert not np.allclose(grad1, grad2)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_jvp_is_the_directional_derivative_of_the_outputs(activation):
    """J v against central differences of the outputs along v: (f(p + h v) - f(p - h v)) / 2h."""
    rng = np.random.default_rng(6)
    net = generic_net(activation, seed=7)
    x = rng.normal(size=(5, 3))
    vector = rng.normal(size=net.params.shape)
    _, cache = net.forward(x)
    jvp = net.jvp(cache, vector)
    h, p0 = 1e-6, net.params.copy()
    net.params[...] = p0 + h * vector
    plus, _ = net.forward(x)
    net.params[...] = p0 - h * vector
    minus, _ = net.forward(x)
    net.params[...] = p0
    assert jvp.shape == (5, 2)
    assert relative_error(jvp, (plus - minus) / (2 * h)) < 1e-7


def test_jvp_and_backward_are_transposes():
    """<J v, u> = <v, J^T u>: forward mode and reverse mode agree on every pair (v, u)."""
    rng = np.random.default_rng(8)
    net = generic_net("tanh", seed=9)
    _, cache = net.forward(rng.normal(size=(7, 3)))
    v, u = rng.normal(size=net.params.shape), rng.normal(size=(7, 2))
    _, grad_params = net.backward(cache, u)
    assert np.dot(net.jvp(cache, v).ravel(), u.ravel()) == pytest.approx(np.dot(v, grad_params),
                                                                        rel=1e-12)


def test_backward_writes_into_out_and_accumulates_nothing():
    net = MLP((2, 4, 1), rng=0)
    _, cache = net.forward(np.ones((3, 2)))
    _, first = net.backward(cache, np.ones((3, 1)))
    buffer = np.full(net.params.size + 2, 7.0)
    _, written = net.backward(cache, np.ones((3, 1)), out=buffer[1:-1])
    assert np.shares_memory(written, buffer)
    np.testing.assert_array_equal(buffer[1:-1], first)          # overwritten, not added to
    assert buffer[0] == buffer[-1] == 7.0                       # nothing outside the slice


def test_forward_output_is_not_overwritten_by_the_next_call():
    net = MLP((2, 4, 3), rng=0)
    first, _ = net.forward(np.ones((5, 2)))
    kept = first.copy()
    net.forward(-np.ones((5, 2)))
    np.testing.assert_array_equal(first, kept)


def test_batch_of_one():
    net = MLP((4, 8, 2), rng=0)
    out, cache = net.forward(np.ones((1, 4)))
    assert out.shape == (1, 2)
    grad_x, grad_params = net.backward(cache, np.ones((1, 2)))
    assert grad_x.shape == (1, 4) and grad_params.shape == net.params.shape


def test_parameters_are_views_into_one_flat_vector():
    net = MLP((3, 4, 2), rng=0)
    assert net.params.shape == (MLP.count_params((3, 4, 2)),) == (3 * 4 + 4 + 4 * 2 + 2,)
    for view in net.weights + net.biases:
        assert np.shares_memory(view, net.params)
    net.params[...] = 0.0                         # an in-place update reaches every layer
    np.testing.assert_array_equal(net.forward(np.ones((1, 3)))[0], [[0.0, 0.0]])


def test_an_external_buffer_holds_the_network_and_live_in_moves_it():
    n = MLP.count_params((3, 4, 2))
    params = np.zeros(n + 2)
    net = MLP((3, 4, 2), rng=0, params=params[:n])
    assert np.abs(params[:n]).sum() > 0 and (params[n:] == 0).all()   # initialised in place
    out, _ = net.forward(np.ones((2, 3)))
    bigger = np.zeros(n + 5)
    net.live_in(bigger[5:])
    np.testing.assert_array_equal(bigger[5:], params[:n])             # the values moved along
    bigger[5:] += 1.0                                                 # and now the new buffer
    assert not np.allclose(net.forward(np.ones((2, 3)))[0], out)      # is the one computed from


def test_orthogonal_init_has_orthonormal_columns_times_gain_and_zero_biases():
    net = MLP((64, 16, 3), gains=(2.0, 0.01), rng=0)
    W_1, W_2 = net.weights
    np.testing.assert_allclose(W_1.T @ W_1, 4.0 * np.eye(16), atol=1e-12)      # (64, 16)
    np.testing.assert_allclose(W_2.T @ W_2, 1e-4 * np.eye(3), atol=1e-15)      # (16, 3)
    for b in net.biases:
        assert (b == 0).all()
    wide = orthogonal((3, 10), 1.5, np.random.default_rng(0))                  # rows orthonormal
    np.testing.assert_allclose(wide @ wide.T, 2.25 * np.eye(3), atol=1e-12)


def test_uniform_init_is_pytorchs_linear_default_for_weights_and_biases():
    """init="uniform": W and b of a layer with n_in inputs ~ U(-1/sqrt(n_in), 1/sqrt(n_in)),
    whose variance is 1 / (3 n_in); the gains play no part."""
    sizes = (400, 300, 2)
    net = MLP(sizes, gains=(7.0, 7.0), rng=0, init="uniform")
    for (n_in, n_out), W, b in zip(zip(sizes, sizes[1:]), net.weights, net.biases):
        bound = 1.0 / np.sqrt(n_in)
        entries = np.concatenate([W.ravel(), b])
        assert np.abs(entries).max() <= bound
        assert len(np.unique(b)) == n_out                 # drawn, not zero
        # The sample variance of n draws of U(-c, c) has mean c^2/3 and standard error
        # sqrt((E x^4 - (c^2/3)^2) / n) = c^2 sqrt(4/45 / n).
        n = entries.size
        se = bound**2 * np.sqrt(4.0 / 45.0 / n)
        assert abs(np.mean(entries**2) - bound**2 / 3.0) < 4.0 * se
    assert np.abs(net.weights[0]).max() > 0.99 / np.sqrt(400)            # the whole range


def test_init_must_be_orthogonal_or_uniform():
    with pytest.raises(ValueError, match="init"):
        MLP((3, 4, 2), init="xavier")


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
    with pytest.raises(TypeError, match="params"):
        MLP((3, 2), params=np.zeros(8, np.int64))
    with pytest.raises(TypeError, match="rng"):
        MLP((3, 2), rng="seed")
    net = MLP((3, 4, 2), rng=0)
    _, cache = net.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="grad_out"):
        net.backward(cache, np.ones((3, 2)))          # not the batch of that forward
    with pytest.raises(ValueError, match="out"):
        net.backward(cache, np.ones((2, 2)), out=np.zeros(3))
    with pytest.raises(TypeError, match="out"):
        net.backward(cache, np.ones((2, 2)), out=np.zeros(net.params.size, np.float32))
    with pytest.raises(ValueError, match="vector"):
        net.jvp(cache, np.zeros(3))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_float32_arithmetic_gives_the_float64_results_to_float32_precision(activation):
    """dtype=float32 keeps float32 parameters and computes in float32 end to end. Same weights
    (rounded to float32), same inputs: outputs and gradients agree to float32 rounding (~1e-7
    relative per operation, a few hundred operations deep), not bit for bit."""
    sizes = (4, 32, 32, 3)
    net64 = MLP(sizes, activation, rng=0)
    net32 = MLP(sizes, activation, rng=0, dtype=np.float32)
    assert net32.params.dtype == np.float32
    np.testing.assert_array_equal(net32.params, net64.params.astype(np.float32))
    net64.params[...] = net32.params                  # the same numbers in both
    rng = np.random.default_rng(1)
    x, grad_out = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    (out64, cache64), (out32, cache32) = net64.forward(x), net32.forward(x)
    assert out32.dtype == np.float32
    assert relative_error(out32, out64) < 1e-5
    (grad_x64, grad64), (grad_x32, grad32) = (net64.backward(cache64, grad_out),
                                              net32.backward(cache32, grad_out))
    assert grad32.dtype == grad_x32.dtype == np.float32
    assert relative_error(grad32, grad64) < 1e-5
    assert relative_error(grad_x32, grad_x64) < 1e-5
    # ...and float32 really is a different arithmetic: the results are not bit-identical.
    assert not np.array_equal(grad32, grad64)


def test_dtype_must_be_float32_or_float64():
    with pytest.raises(ValueError, match="dtype"):
        MLP((2, 2), dtype=np.float16)

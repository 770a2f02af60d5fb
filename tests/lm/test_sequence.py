"""The sequence policy as a specification: the windowed forward written out by hand, causality,
every gradient (embeddings included) against central finite differences in float64, sampling
with temperature, masks after the end of sequence, and clear errors for bad input."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.lm.sequence import SequenceNet, SequencePolicy, response_mask

V, PAD, EOS = 7, 6, 5          # a small vocabulary: ids 0-4 are "digits"


def small_net(out_dim=3, window=3, seed=0, activation="tanh"):
    net = SequenceNet(V, max_len=6, window=window, embed_dim=2, hidden_sizes=(5,), out_dim=out_dim,
                      pad=PAD, activation=activation, rng=seed)
    net.params += 0.1 * np.random.default_rng(seed + 1).normal(size=net.params.shape)  # biases
    return net


def small_policy(seed=0, window=3):
    policy = SequencePolicy(V, max_len=6, eos=EOS, pad=PAD, window=window, embed_dim=2,
                            hidden_sizes=(5,), rng=seed)
    policy.params += 0.5 * np.random.default_rng(seed + 1).normal(size=policy.params.shape)
    return policy


TOKENS = np.array([[0, 1, 2, 3, 4, EOS],
                   [4, 4, 0, EOS, PAD, PAD],
                   [2, 0, 1, 1, 3, 0]])


def reference_out(net, tokens, start):
    """h_t = concat_w (E[x_{t-W+w}] + P[t-W+w]), PAD at the sentinel before the start; MLP(h_t)."""
    B, L = tokens.shape
    rows = []
    for b in range(B):
        for t in range(start, L):
            slots = []
            for w in range(net.window):
                s = t - net.window + w
                token, position = (tokens[b, s], s) if s >= 0 else (net.pad, net.max_len)
                slots.append(net.token_embedding[token] + net.position_embedding[position])
            rows.append(np.concatenate(slots))
    out, _ = net.mlp.forward(np.array(rows))
    return out.reshape(B, L - start, net.out_dim)


@pytest.mark.parametrize("start", [0, 2, 5])
def test_forward_is_the_windowed_formula(start):
    net = small_net()
    out, _ = net.forward(TOKENS, start)
    assert out.shape == (3, 6 - start, 3)
    np.testing.assert_allclose(out, reference_out(net, TOKENS, start), rtol=1e-12, atol=1e-14)


def test_prediction_at_t_depends_only_on_the_window_before_t():
    """Changing x_s moves the output at t exactly when t - W <= s < t: causal, and windowed."""
    net = small_net(window=3)
    base, _ = net.forward(TOKENS, 0)
    for s in range(6):
        changed = TOKENS.copy()
        changed[:, s] = (changed[:, s] + 1) % V
        out, _ = net.forward(changed, 0)
        moved = np.abs(out - base).max(axis=(0, 2)) > 0          # (L,) which positions moved
        np.testing.assert_array_equal(moved, [(t - 3 <= s < t) for t in range(6)])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("start", [0, 3])
def test_backward_matches_finite_differences_embeddings_included(activation, start):
    net = small_net(activation=activation)
    weights = np.random.default_rng(2).normal(size=(3, 6 - start, 3))   # dL/dout
    loss = lambda: float((weights * net.forward(TOKENS, start)[0]).sum())
    _, cache = net.forward(TOKENS, start)
    grad = net.backward(cache, weights)
    numeric = numerical_gradient(loss, net.params)
    assert relative_error(grad, numeric) < 1e-7
    # Each block separately, so that a wrong embedding gradient cannot hide behind the MLP's.
    for block in (slice(0, net.n_token), slice(net.n_token, net.n_token + net.n_position)):
        assert relative_error(grad[block], numeric[block]) < 1e-7


def test_embedding_rows_never_looked_up_get_exactly_zero_gradient():
    net = small_net(window=2)
    tokens = np.array([[0, 0, 1, 1]])
    _, cache = net.forward(tokens, 2)
    grad = net.backward(cache, np.ones((1, 2, 3)))
    grad_token = grad[:net.n_token].reshape(V, 2)
    grad_position = grad[net.n_token:net.n_token + net.n_position].reshape(7, 2)
    # Predicting t = 2 (window x_0, x_1) and t = 3 (window x_1, x_2): tokens {0, 1}, positions 0-2.
    assert (grad_token[2:] == 0).all() and (grad_token[:2] != 0).all()
    assert (grad_position[3:] == 0).all() and (grad_position[:3] != 0).all()


def test_policy_loss_gradient_with_masks_matches_finite_differences():
    """L = sum_{b,j} w_bj log pi(x_bj) + sum_{b,j} c_bj H_bj with w = c = 0 at masked tokens:
    the per-token form every GRPO loss takes, into every parameter of the policy."""
    policy = small_policy()
    start = 2
    mask = response_mask(TOKENS, start, EOS)
    rng = np.random.default_rng(3)
    w = rng.normal(size=mask.shape) * mask
    c = rng.normal(size=mask.shape) * mask
    actions = TOKENS[:, start:]

    def loss():
        dist, _ = policy.forward(TOKENS, start)
        return float((w * dist.log_prob(actions)).sum() + (c * dist.entropy()).sum())

    dist, cache = policy.forward(TOKENS, start)
    grad = policy.backward(cache, dist.param_grads(actions, w, c))
    assert relative_error(grad, numerical_gradient(loss, policy.params)) < 1e-7


def test_masked_tokens_contribute_nothing():
    """Whatever follows EOS (here: changed padding) leaves a masked loss and its gradient as is."""
    policy = small_policy()
    mask = response_mask(TOKENS, 2, EOS)
    w = np.where(mask, 1.0, 0.0)
    grads = []
    for filler in (PAD, 3):
        tokens = TOKENS.copy()
        tokens[1, 4:] = filler                                 # row 1 ended at column 3
        dist, cache = policy.forward(tokens, 2)
        grads.append(policy.backward(cache, dist.param_grads(tokens[:, 2:], w)))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-15)


def test_response_mask_is_true_up_to_and_including_the_first_eos():
    tokens = np.array([[9, 1, EOS, PAD, PAD],
                       [9, EOS, 2, EOS, PAD],
                       [9, 1, 2, 3, 4]])
    np.testing.assert_array_equal(response_mask(tokens, 1, EOS),
                                  [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])


def test_generate_writes_eos_then_padding_and_greedy_is_the_argmax_chain():
    policy = small_policy(seed=4)
    prompts = np.array([[0, 1], [2, 3], [4, 4], [1, 0]])
    tokens, mask = policy.generate(prompts, max_new_tokens=4, temperature=0.0)
    assert tokens.shape == (4, 6) and mask.shape == (4, 4)
    np.testing.assert_array_equal(tokens[:, :2], prompts)
    np.testing.assert_array_equal(mask, response_mask(tokens, 2, EOS))
    # Greedy: every written token is the argmax given what precedes it.
    dist, _ = policy.forward(tokens, 2)
    np.testing.assert_array_equal(np.where(mask, dist.logits.argmax(-1), PAD), tokens[:, 2:])


def test_generate_samples_from_softmax_of_logits_over_temperature():
    """The first response token's frequencies over 20,000 draws match softmax(logits / tau)
    within 4.5 standard errors sqrt(p (1 - p) / n), at tau = 1 and at tau = 2."""
    policy = small_policy(seed=5)
    n = 20_000
    prompts = np.tile([[0, 1]], (n, 1))
    dist, _ = policy.forward(np.array([[0, 1, 0]]), 2)
    for tau in (1.0, 2.0):
        tokens, _ = policy.generate(prompts, 1, rng=6, temperature=tau)
        frequency = np.bincount(tokens[:, 2], minlength=V) / n
        p = np.exp(dist.logits[0, 0] / tau)
        p /= p.sum()
        assert (np.abs(frequency - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12).all()
    p_at_1 = np.exp(dist.logits[0, 0]) / np.exp(dist.logits[0, 0]).sum()
    assert not np.allclose(p_at_1, p, atol=0.02)          # tau = 2 did change the draws


def test_live_in_and_copy():
    policy = small_policy()
    buffer = np.zeros(policy.params.size + 3)
    policy.live_in(buffer[1:-2])
    assert np.shares_memory(policy.params, buffer)
    before, _ = policy.forward(TOKENS, 2)
    clone = policy.copy()
    np.testing.assert_array_equal(clone.forward(TOKENS, 2)[0].logits, before.logits)
    policy.params += 1.0                                         # the clone is independent
    np.testing.assert_array_equal(clone.forward(TOKENS, 2)[0].logits, before.logits)
    assert not np.allclose(policy.forward(TOKENS, 2)[0].logits, before.logits)


def test_float32_policy_stays_float32():
    policy = SequencePolicy(V, 6, EOS, PAD, window=3, embed_dim=2, hidden_sizes=(5,), rng=0,
                            dtype="float32")
    dist, cache = policy.forward(TOKENS, 2)
    grad = policy.backward(cache, dist.param_grads(TOKENS[:, 2:], np.ones((3, 4))))
    assert dist.logits.dtype == grad.dtype == policy.params.dtype == np.float32


def test_bad_input_raises_naming_the_argument():
    net = small_net()
    with pytest.raises(TypeError, match="tokens"):
        net.forward(TOKENS.astype(float), 0)
    with pytest.raises(ValueError, match="tokens"):
        net.forward(TOKENS + 5, 0)
    with pytest.raises(ValueError, match="max_len"):
        net.forward(np.zeros((1, 7), int), 0)
    with pytest.raises(ValueError, match="start"):
        net.forward(TOKENS, 6)
    with pytest.raises(ValueError, match="grad_out"):
        net.backward(net.forward(TOKENS, 0)[1], np.ones((3, 5, 3)))
    with pytest.raises(ValueError, match="pad"):
        SequenceNet(V, 6, 3, 2, (5,), 3, pad=V)
    with pytest.raises(ValueError, match="eos"):
        SequencePolicy(V, 6, eos=V, pad=PAD)
    with pytest.raises(ValueError, match="temperature"):
        small_policy().generate(np.zeros((1, 2), int), 2, temperature=-1.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        small_policy().generate(np.zeros((1, 2), int), 0)

"""A tiny autoregressive language model with a hand-written backward pass: pi(x_t | x_<t).

For a language model, policy-gradient words take new meanings: the state is the prompt plus the
tokens written so far, the action is the next token, a trajectory is a response, and the reward
is a verifier's verdict on the whole response. This module is the policy; minipg.algos.grpo
trains it.

Shapes, stated once. tokens (B, L) int: B sequences of L tokens, the prompt in columns
[0, start) and the response after it, PAD after the end-of-sequence token. Everything predicted
is per response position: (B, T, ...) with T = L - start, row j predicting tokens[:, start + j].
A mask (B, T) marks the response tokens that were actually written (up to and including EOS).

The network sees a fixed causal window of the W tokens before the one it predicts:

    e_{t,w}        = E[x_{t-W+w}] + P[t-W+w]       token embedding + position embedding, (d,)
                     (a slot before the sequence start holds PAD at the sentinel position S)
    h_t            = concat_{w=0..W-1} e_{t,w}      (W * d,)
    logits_t       = MLP(h_t)                       (V,)
    pi(x_t | x_<t) = softmax(logits_t)

so pi(x_t | x_<t) depends on x_<t only through its last W tokens; with W at least the length of
prompt plus response the model sees everything before t. Backward, given g_t = dL/dlogits_t:

    dL/dh_t        = the MLP's input gradient (MLP.backward(..., input_grad=True))
    dL/de_{t,w}    = slot w of dL/dh_t                                     (d,)
    dL/dE[v]       = sum over (t, w) whose token is v     of dL/de_{t,w}   (a scatter-add)
    dL/dP[p]       = sum over (t, w) whose position is p  of dL/de_{t,w}

An embedding row gets the sum of the gradients of every slot it filled: an embedding lookup is
a one-hot vector times the table, and the transpose of that product is the scatter-add.

Parameters, one flat vector (float32 or float64): E (V, d), P (max_len + 1, d) whose last row is
the sentinel position, then the MLP's W_1, b_1, ... `params` is updated in place (the tables and
the MLP's layers are views into it).

The policy adds sampling: `generate` writes responses token by token from softmax(logits / tau),
tau the temperature (tau -> 0 is greedy, tau = 0 taken as argmax); per-token log_prob and entropy
come from the Categorical that `forward` returns.
"""
import numpy as np

from minipg.core.checks import as_generator, check_float_dtype, check_int, check_real
from minipg.core.distributions import Categorical
from minipg.core.nn import MLP, check_flat_buffer

__all__ = ["SequenceNet", "SequencePolicy", "SequenceCache", "response_mask"]

EMBED_STD = 1.0          # embeddings start as N(0, 1) entries, the usual choice
POLICY_HEAD_GAIN = 0.01  # near-uniform first policy, as for the MLP policies


class SequenceCache:
    """What backward needs from a forward: the MLP's cache and the (N, W) token and position
    indices of every window slot (N = B * T rows)."""

    __slots__ = ("net", "token_index", "position_index", "batch_shape")

    def __init__(self, net, token_index, position_index, batch_shape):
        self.net, self.token_index, self.position_index = net, token_index, position_index
        self.batch_shape = batch_shape


class SequenceNet:
    """Token and position embeddings, a causal window of W tokens, an MLP: out (B, T, out_dim).

    vocab_size   V, the number of token ids
    max_len      longest sequence (prompt + response) the position table covers
    window       W, tokens of context before the predicted one
    embed_dim    d, the width of both embedding tables
    hidden_sizes the MLP's hidden widths; its input is W * d wide, its output out_dim
    pad          the token id that fills window slots before the start of a sequence
    head_gain    orthogonal-init gain of the output layer (0.01 for a policy, 1 for a value)
    """

    def __init__(self, vocab_size, max_len, window, embed_dim, hidden_sizes, out_dim, pad,
                 activation="tanh", head_gain=1.0, rng=None, dtype="float64"):
        self.vocab_size = check_int("vocab_size", vocab_size, 1)
        self.max_len = check_int("max_len", max_len, 1)
        self.window = check_int("window", window, 1)
        self.embed_dim = check_int("embed_dim", embed_dim, 1)
        self.out_dim = check_int("out_dim", out_dim, 1)
        self.pad = check_int("pad", pad, 0)
        if self.pad >= self.vocab_size:
            raise ValueError(f"pad must be a token id below vocab_size={vocab_size}, got {pad}")
        hidden_sizes = tuple(check_int("hidden_sizes", n, 1) for n in hidden_sizes)
        dtype = check_float_dtype("dtype", dtype)
        rng = as_generator(rng)
        self.config = dict(vocab_size=self.vocab_size, max_len=self.max_len, window=self.window,
                           embed_dim=self.embed_dim, hidden_sizes=list(hidden_sizes),
                           out_dim=self.out_dim, pad=self.pad, activation=activation,
                           head_gain=float(head_gain), dtype=dtype.name)

        d = self.embed_dim
        self.n_token = self.vocab_size * d
        self.n_position = (self.max_len + 1) * d          # + the sentinel row
        sizes = (self.window * d, *hidden_sizes, self.out_dim)
        gains = (np.sqrt(2.0),) * len(hidden_sizes) + (float(head_gain),)
        params = np.zeros(self.n_token + self.n_position + MLP.count_params(sizes), dtype)
        n_embed = self.n_token + self.n_position
        self.mlp = MLP(sizes, activation, gains, rng, params=params[n_embed:])
        self._set_views(params)
        self.token_embedding[...] = EMBED_STD * rng.standard_normal(self.token_embedding.shape)
        self.position_embedding[...] = EMBED_STD * rng.standard_normal(
            self.position_embedding.shape)

    def _set_views(self, params):
        d, n_embed = self.embed_dim, self.n_token + self.n_position
        self.params = params
        self.dtype = params.dtype
        self.token_embedding = params[:self.n_token].reshape(self.vocab_size, d)
        self.position_embedding = params[self.n_token:n_embed].reshape(self.max_len + 1, d)

    def live_in(self, buffer):
        """Copy params into buffer (1-d, same length and dtype) and compute from it from now on."""
        buffer = check_flat_buffer("buffer", buffer, self.params.size, self.dtype)
        buffer[...] = self.params
        self.mlp.live_in(buffer[self.n_token + self.n_position:])
        self._set_views(buffer)

    def check_tokens(self, tokens, start):
        """tokens as an (B, L) int array of valid ids, and start in [0, L)."""
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype}")
        if tokens.ndim != 2 or tokens.shape[0] == 0:
            raise ValueError(f"tokens must have shape (B, L) with B >= 1, got {tokens.shape}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens has length {tokens.shape[1]}, above max_len={self.max_len}")
        if tokens.min() < 0 or tokens.max() >= self.vocab_size:
            raise ValueError(f"tokens must be ids in [0, {self.vocab_size}), got values in "
                             f"[{tokens.min()}, {tokens.max()}]")
        start = check_int("start", start, 0)
        if start >= tokens.shape[1]:
            raise ValueError(f"start must be below the sequence length {tokens.shape[1]}, got "
                             f"{start}")
        return tokens, start

    def window_indices(self, tokens, start):
        """(token_index, position_index), each (B * T, W): what fills slot w for position t.

        Slot w of position t holds x_{t-W+w} at position t-W+w, or PAD at the sentinel position
        max_len when t-W+w < 0.
        """
        B, L = tokens.shape
        t = np.arange(start, L)[:, None]                      # (T, 1) predicted positions
        source = t - self.window + np.arange(self.window)     # (T, W) positions in the window
        before_start = source < 0
        padded = np.concatenate([np.full((B, self.window), self.pad, tokens.dtype), tokens], 1)
        token_index = padded[:, source + self.window]         # (B, T, W)
        position_index = np.where(before_start, self.max_len, source)
        position_index = np.broadcast_to(position_index, token_index.shape)
        W = self.window
        return token_index.reshape(-1, W), position_index.reshape(-1, W)

    def forward(self, tokens, start=0):
        """(out (B, T, out_dim), cache) for the predictions of positions start..L-1."""
        tokens, start = self.check_tokens(tokens, start)
        token_index, position_index = self.window_indices(tokens, start)
        h = self.token_embedding[token_index]                 # (N, W, d)
        h += self.position_embedding[position_index]
        out, net_cache = self.mlp.forward(h.reshape(len(h), -1))
        batch_shape = (tokens.shape[0], tokens.shape[1] - start)
        return (out.reshape(batch_shape + (self.out_dim,)),
                SequenceCache(net_cache, token_index, position_index, batch_shape))

    def backward(self, cache, grad_out, out=None):
        """dL/dparams (laid out like params) from grad_out = dL/dout (B, T, out_dim): through the
        MLP to its input, then scatter-added into the rows of both embedding tables.

        out: an optional buffer laid out like params to write into (else a new array).
        """
        grad_out = np.asarray(grad_out, dtype=self.dtype)
        if grad_out.shape != cache.batch_shape + (self.out_dim,):
            raise ValueError(f"grad_out must have shape {cache.batch_shape + (self.out_dim,)}, "
                             f"got {grad_out.shape}")
        if out is None:
            out = np.empty_like(self.params)
        else:
            out = check_flat_buffer("out", out, self.params.size, self.dtype)
        n_embed = self.n_token + self.n_position
        grad_h, _ = self.mlp.backward(cache.net, grad_out.reshape(-1, self.out_dim),
                                      out[n_embed:], input_grad=True)
        grad_e = grad_h.reshape(cache.token_index.shape + (self.embed_dim,))   # dL/de (N, W, d)
        grad_token = out[:self.n_token].reshape(self.vocab_size, self.embed_dim)
        grad_position = out[self.n_token:n_embed].reshape(self.max_len + 1, self.embed_dim)
        grad_token[...] = 0.0
        grad_position[...] = 0.0
        np.add.at(grad_token, cache.token_index, grad_e)      # dL/dE[v] = sum of its slots
        np.add.at(grad_position, cache.position_index, grad_e)
        return out


def response_mask(tokens, start, eos):
    """(B, T) bool: True at the response tokens up to and including the first EOS (all of them
    when a response never wrote EOS: it was cut at the length limit)."""
    response = np.asarray(tokens)[:, start:]
    is_eos = response == eos
    eos_before = np.cumsum(is_eos, axis=1) - is_eos           # EOS strictly before column j
    return eos_before == 0


class SequencePolicy:
    """pi(x_t | x_<t) = softmax(SequenceNet(tokens)_t): a Categorical over the next token.

    eos ends a response; pad fills what comes after it (and window slots before the start).
    """

    def __init__(self, vocab_size, max_len, eos, pad, window=8, embed_dim=16,
                 hidden_sizes=(128, 128), activation="tanh", rng=None, dtype="float64"):
        self.config = dict(vocab_size=vocab_size, max_len=max_len, eos=eos, pad=pad,
                           window=window, embed_dim=embed_dim, hidden_sizes=list(hidden_sizes),
                           activation=activation, dtype=check_float_dtype("dtype", dtype).name)
        self.rng = as_generator(rng)
        self.net = SequenceNet(vocab_size, max_len, window, embed_dim, hidden_sizes,
                               out_dim=vocab_size, pad=pad, activation=activation,
                               head_gain=POLICY_HEAD_GAIN, rng=self.rng, dtype=dtype)
        self.eos = check_int("eos", eos, 0)
        if self.eos >= vocab_size:
            raise ValueError(f"eos must be a token id below vocab_size={vocab_size}, got {eos}")
        self.pad, self.vocab_size = self.net.pad, self.net.vocab_size
        self.max_len = self.net.max_len
        self.params = self.net.params

    def live_in(self, buffer):
        """Copy params into buffer and compute from it from now on."""
        self.net.live_in(buffer)
        self.params = self.net.params

    def copy(self, rng=None):
        """An independent policy with the same weights (e.g. a frozen reference policy)."""
        clone = SequencePolicy(**self.config, rng=rng)
        clone.params[...] = self.params
        return clone

    def forward(self, tokens, start=0):
        """(dist, cache): the Categorical over the token at each position start..L-1, batch
        shape (B, T). dist.log_prob(tokens[:, start:]) is the per-token log_prob, dist.entropy()
        the per-token entropy; multiply by a response mask to keep the written tokens."""
        logits, cache = self.net.forward(tokens, start)
        return Categorical(logits), cache

    def backward(self, cache, dist_grads, out=None):
        """dL/dparams from dist_grads = dist.param_grads(...) of the forward that made cache."""
        return self.net.backward(cache, dist_grads.logits, out)

    def generate(self, prompts, max_new_tokens, rng=None, temperature=1.0):
        """(tokens (B, P + max_new_tokens), mask (B, max_new_tokens)): responses written token by
        token after the prompts (B, P), each x_t drawn from softmax(logits_t / temperature).

        temperature 0 takes the argmax (greedy decoding). After its EOS a response holds PAD,
        and mask is False there. rng (Generator or int seed) defaults to the policy's own.
        Temperature 1 samples pi itself, which is what the policy gradient needs: at any other
        temperature the log_prob of pi is not the log_prob of the sampler.
        """
        prompts = np.asarray(prompts)
        max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
        temperature = check_real("temperature", temperature, 0.0)
        rng = self.rng if rng is None else as_generator(rng)
        B, start = prompts.shape if prompts.ndim == 2 else (0, 0)
        tokens = np.full((B, start + max_new_tokens), self.pad, np.int64)
        tokens[:, :start] = prompts
        self.net.check_tokens(tokens, start)          # also checks the prompts' shape and ids
        done = np.zeros(B, bool)
        for t in range(start, start + max_new_tokens):
            # Only position t is needed: the window of t ends at t - 1.
            logits, _ = self.net.forward(tokens[:, :t + 1], start=t)
            logits = logits[:, 0]
            if temperature == 0.0:
                next_token = logits.argmax(axis=-1)
            else:
                next_token = Categorical(logits / temperature).sample(rng)
            tokens[:, t] = np.where(done, self.pad, next_token)
            done |= next_token == self.eos
            if done.all():
                break
        return tokens, response_mask(tokens, start, self.eos)

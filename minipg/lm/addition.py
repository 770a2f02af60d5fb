"""Two-digit addition, the answer written least-significant digit first: a verifiable task.

    prompt    a_1 a_0 + b_1 b_0 =          6 tokens, a and b in 0..99 with a leading zero
    answer    s_0 s_1 [s_2] EOS            the digits of s = a + b, ones first, no leading zero
    example   "07+45="  ->  "2 5 EOS"      (52 written backwards)

Writing the ones digit first is the order in which a carry is computed, so each digit needs
only the prompt and the digits already written. The reward is a verifier's verdict, 1 when the
response is exactly the answer (EOS included, within the length limit) and 0 otherwise: no
partial credit, no labelled example needed, only a program that checks.

The 10,000 pairs (a, b) are split once by the task's seed: `n_test` held-out test pairs that
no training ever sees (neither the demonstrations of the warm start nor the prompts of
reinforcement learning), the rest for training.

Token ids: the digits 0-9 are themselves, then "+", "=", EOS, PAD.
"""
import numpy as np

from minipg.core.checks import as_generator, check_int
from minipg.lm.sequence import SequencePolicy

__all__ = ["AdditionTask", "VOCAB", "PLUS", "EQUALS", "EOS", "PAD", "VOCAB_SIZE",
           "PROMPT_LEN", "MAX_ANSWER_LEN", "encode_prompts", "answer_tokens", "decode"]

VOCAB = tuple("0123456789") + ("+", "=", "<eos>", "<pad>")
PLUS, EQUALS, EOS, PAD = 10, 11, 12, 13
VOCAB_SIZE = len(VOCAB)
PROMPT_LEN = 6
MAX_ANSWER_LEN = 4          # three digits (99 + 99 = 198) and EOS
N_PAIRS = 100 * 100


def encode_prompts(pairs):
    """(n, 2) pairs (a, b) -> (n, 6) prompt tokens a_1 a_0 + b_1 b_0 =."""
    a, b = np.asarray(pairs).T
    return np.stack([a // 10, a % 10, np.full_like(a, PLUS), b // 10, b % 10,
                     np.full_like(a, EQUALS)], axis=1).astype(np.int64)


def answer_tokens(pairs):
    """(n, 4) answer tokens: the digits of a + b ones first, EOS, then PAD; and (n,) lengths
    (digits + EOS)."""
    total = np.asarray(pairs).sum(axis=1)
    n_digits = np.where(total >= 100, 3, np.where(total >= 10, 2, 1))
    tokens = np.full((len(total), MAX_ANSWER_LEN), PAD, np.int64)
    for k in range(3):
        tokens[:, k] = np.where(k < n_digits, total // 10 ** k % 10, tokens[:, k])
    tokens[np.arange(len(total)), n_digits] = EOS
    return tokens, n_digits + 1


def decode(tokens):
    """A row of token ids as text, for printing: [0, 7, 10, 4, 5, 11, 2, 5, 12] -> '07+45=25.'"""
    return "".join("." if t == EOS else "" if t == PAD else VOCAB[t] for t in tokens)


class AdditionTask:
    """The split of the 10,000 pairs and the verifier.

    seed     fixes which pairs are held out
    n_test   number of held-out test pairs
    """

    prompt_len = PROMPT_LEN
    """Tokens before the response: the columns a demonstration does not train on."""

    prompt_len = PROMPT_LEN
    max_new_tokens = MAX_ANSWER_LEN

    def __init__(self, seed=0, n_test=1000):
        n_test = check_int("n_test", n_test, 1)
        if n_test >= N_PAIRS:
            raise ValueError(f"n_test must leave training pairs (below {N_PAIRS}), got {n_test}")
        order = np.random.default_rng(check_int("seed", seed, 0)).permutation(N_PAIRS)
        pairs = np.stack([order // 100, order % 100], axis=1)
        self.test_pairs, self.train_pairs = pairs[:n_test], pairs[n_test:]

    def sample_pairs(self, n, rng):
        """n training pairs drawn uniformly with replacement (fresh prompts every step)."""
        rng = as_generator(rng)
        return self.train_pairs[rng.integers(len(self.train_pairs), size=n)]

    def sample_prompts(self, n, rng):
        """(prompts (n, 6), pairs (n, 2)): n fresh training prompts and what the verifier needs."""
        pairs = self.sample_pairs(n, rng)
        return encode_prompts(pairs), pairs

    def demonstrations(self, n, rng):
        """(tokens (n, 10), mask (n, 4)): n distinct training pairs with their answers written
        after the prompt; mask marks the answer tokens (EOS included)."""
        rng = as_generator(rng)
        pairs = self.train_pairs[rng.choice(len(self.train_pairs), size=n, replace=False)]
        answers, lengths = answer_tokens(pairs)
        tokens = np.concatenate([encode_prompts(pairs), answers], axis=1)
        return tokens, np.arange(MAX_ANSWER_LEN) < lengths[:, None]

    @staticmethod
    def reward(pairs, tokens):
        """(n,) float: 1.0 where the response after the prompt (n, 10) is exactly the answer,
        EOS included, else 0.0. What follows EOS is not read."""
        answers, lengths = answer_tokens(pairs)
        response = np.asarray(tokens)[:, PROMPT_LEN:PROMPT_LEN + MAX_ANSWER_LEN]
        written = np.arange(MAX_ANSWER_LEN) < lengths[:, None]
        return np.all((response == answers) | ~written, axis=1).astype(np.float64)

    @staticmethod
    def make_policy(rng=None, dtype="float32", hidden_sizes=(128, 128), embed_dim=16):
        """The policy used throughout: a window of 9 tokens, so that it sees the whole prompt
        and every digit already written."""
        return SequencePolicy(VOCAB_SIZE, PROMPT_LEN + MAX_ANSWER_LEN, EOS, PAD,
                              window=PROMPT_LEN + MAX_ANSWER_LEN - 1, embed_dim=embed_dim,
                              hidden_sizes=hidden_sizes, rng=rng, dtype=dtype)

    def accuracy(self, policy, pairs=None, temperature=0.0, rng=None):
        """Fraction of pairs (default: the held-out test pairs) answered exactly; greedy
        decoding unless a temperature is given."""
        pairs = self.test_pairs if pairs is None else pairs
        tokens, _ = policy.generate(encode_prompts(pairs), MAX_ANSWER_LEN, rng=rng,
                                    temperature=temperature)
        return float(self.reward(pairs, tokens).mean())

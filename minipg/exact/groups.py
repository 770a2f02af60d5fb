"""What the group does to the gradient, exactly: tabular response bandits whose every group of G
responses can be listed, so that the expected GRPO update is a finite sum.

A prompt x is drawn with probability rho(x); a response y = (y_1, ..., y_n) is written token by
token from a table of logits, one row per context (prompt and prefix):

    pi(y_t | x, y_<t) = softmax(theta[x, y_<t])_{y_t}
    P(y | x)          = prod_t pi(y_t | x, y_<t),   d log P(y|x)/d theta = sum_t score_t

A response ends at EOS or after max_len tokens. With max_len = 1 and no EOS this is the "prompt
bandit": one token per response, K possible responses per prompt. The reward r(x, y) is a table.

The estimator is GRPO's on-policy gradient (the first inner step, ratio 1, no KL), for a group
y_1..G ~ P(.|x) of one prompt:

    g = sum_j sum_t w_{j,t} A_j score_{j,t} = sum_j c_j A_j d log P(y_j|x)/d theta

with A = group_advantages(r(x, y_1..G)) and w = token_weights(mask of the group, loss_agg): the
weights are constant along a response, c_j their value (1/(G |y_j|) for "grpo"). Its
expectation sums over all |Y|^G ordered groups (the same functions the trainer calls, applied to
every group at once):

    E[g] = sum_x rho(x) sum_{y_1..G} prod_j P(y_j|x) g(x, y_1..G)

and grad J = sum_x rho(x) sum_y P(y|x) r(x, y) d log P(y|x)/d theta is the target.
"""
import itertools
import math

import numpy as np

from minipg.algos.grpo import group_advantages, token_weights
from minipg.core.checks import as_generator, check_int

__all__ = ["ResponseBandit", "binary_group_scale"]


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class ResponseBandit:
    """Tabular autoregressive responses to X prompts.

    rewards_fn  rewards_fn(x, y): the reward of response y (a tuple of tokens) to prompt x
    n_prompts   X
    vocab_size  V, tokens 0..V-1
    max_len     longest response
    eos         the token that ends a response early (None: every response has max_len tokens)
    rho         (X,) prompt probabilities (default uniform)
    """

    def __init__(self, rewards_fn, n_prompts, vocab_size, max_len, eos=None, rho=None):
        self.n_prompts = check_int("n_prompts", n_prompts, 1)
        self.vocab_size = check_int("vocab_size", vocab_size, 1)
        self.max_len = check_int("max_len", max_len, 1)
        self.eos = eos
        self.responses = self._enumerate()
        self.lengths = np.array([len(y) for y in self.responses])
        # One row of logits per (prompt, prefix): the prefixes are the unfinished responses.
        prefixes = sorted({y[:t] for y in self.responses for t in range(len(y))},
                          key=lambda p: (len(p), p))
        self.prefix_index = {p: i for i, p in enumerate(prefixes)}
        self.n_contexts = self.n_prompts * len(prefixes)
        self.n_params = self.n_contexts * self.vocab_size
        self.rewards = np.array([[rewards_fn(x, y) for y in self.responses]
                                 for x in range(self.n_prompts)], dtype=np.float64)
        self.rho = (np.full(self.n_prompts, 1.0 / self.n_prompts) if rho is None
                    else np.asarray(rho, dtype=np.float64))

    def _enumerate(self):
        """Every response: token tuples that end at EOS, or reach max_len without it."""
        finished, open_ = [], [()]
        for _ in range(self.max_len):
            grown = [p + (v,) for p in open_ for v in range(self.vocab_size)]
            finished += [y for y in grown if y[-1] == self.eos]
            open_ = [y for y in grown if y[-1] != self.eos]
        return finished + open_

    def context(self, x, prefix):
        return x * len(self.prefix_index) + self.prefix_index[prefix]

    def log_probs_and_scores(self, theta):
        """(log P(y|x) (X, |Y|), d log P(y|x)/d theta (X, |Y|, n_params)) at flat logits theta."""
        table = np.asarray(theta, dtype=np.float64).reshape(self.n_contexts, self.vocab_size)
        pi = _softmax(table)
        log_p = np.zeros((self.n_prompts, len(self.responses)))
        scores = np.zeros((self.n_prompts, len(self.responses), self.n_contexts,
                           self.vocab_size))
        for x in range(self.n_prompts):
            for i, y in enumerate(self.responses):
                for t, token in enumerate(y):
                    c = self.context(x, y[:t])
                    log_p[x, i] += np.log(pi[c, token])
                    scores[x, i, c] -= pi[c]              # score_t = onehot(y_t) - pi(. | c)
                    scores[x, i, c, token] += 1.0
        return log_p, scores.reshape(self.n_prompts, len(self.responses), self.n_params)

    def J(self, theta):
        """J = sum_x rho(x) sum_y P(y|x) r(x, y)."""
        log_p, _ = self.log_probs_and_scores(theta)
        return float(self.rho @ (np.exp(log_p) * self.rewards).sum(axis=1))

    def grad_J(self, theta, per_prompt=False):
        """grad J = sum_x rho(x) sum_y P(y|x) r(x, y) d log P(y|x)/d theta; per_prompt=True gives
        the X terms rho(x) grad J_x (X, n_params) instead of their sum."""
        log_p, scores = self.log_probs_and_scores(theta)
        terms = self.rho[:, None] * np.einsum("xy,xyp->xp", np.exp(log_p) * self.rewards, scores)
        return terms if per_prompt else terms.sum(axis=0)

    def expected(self, theta, values):
        """E[f] = sum_x rho(x) sum_y P(y|x) f(x, y) for a table values (X, |Y|)."""
        log_p, _ = self.log_probs_and_scores(theta)
        return float(self.rho @ (np.exp(log_p) * values).sum(axis=1))

    def _group_coefficients(self, groups, rewards, G, scale, baseline, loss_agg, eps):
        """c_j A_j for each group (rows of response indices (n, G)) with rewards (n, G)."""
        advantages = group_advantages(rewards, scale, baseline, eps)
        T = self.max_len
        c = np.empty(groups.shape)
        lengths = self.lengths[groups]
        for n, row in enumerate(lengths):
            mask = np.arange(T) < row[:, None]             # (G, T) the group's tokens
            c[n] = token_weights(mask, loss_agg)[:, 0]     # constant along each response
        return c * advantages

    def expected_group_update(self, theta, G, scale="group", baseline="group_mean",
                              loss_agg="grpo", eps=1e-4, per_prompt=False):
        """E[g] (n_params,) by listing every ordered group of G responses to every prompt;
        per_prompt=True gives the X terms rho(x) E[g | x] (X, n_params)."""
        G = check_int("G", G, 1)
        log_p, scores = self.log_probs_and_scores(theta)
        groups = np.array(list(itertools.product(range(len(self.responses)), repeat=G)))
        terms = np.zeros((self.n_prompts, self.n_params))
        for x in range(self.n_prompts):
            group_probs = np.exp(log_p[x][groups].sum(axis=1))          # prod_j P(y_j|x)
            coefficients = self._group_coefficients(groups, self.rewards[x][groups], G, scale,
                                                    baseline, loss_agg, eps)
            # E[g | x] = sum_y (sum of prob * c A over the slots where y appears) * score(y)
            weighted = (group_probs[:, None] * coefficients).ravel()
            per_response = np.bincount(groups.ravel(), weighted, minlength=len(self.responses))
            terms[x] = self.rho[x] * per_response @ scores[x]
        return terms if per_prompt else terms.sum(axis=0)

    def sample_group_updates(self, theta, G, n_groups, rng, scale="group",
                             baseline="group_mean", loss_agg="grpo", eps=1e-4):
        """n_groups draws of g (n_groups, n_params): x ~ rho, then G responses ~ P(.|x)."""
        rng = as_generator(rng)
        log_p, scores = self.log_probs_and_scores(theta)
        x = rng.choice(self.n_prompts, size=n_groups, p=self.rho)
        probs = np.exp(log_p[x])                                        # (n, |Y|)
        cdf = np.cumsum(probs, axis=1)
        cdf[:, -1] = np.inf
        u = rng.random((n_groups, G))
        groups = (u[:, :, None] < cdf[:, None, :]).argmax(axis=2)       # (n, G) inverse cdf
        coefficients = self._group_coefficients(groups, self.rewards[x[:, None], groups], G,
                                                scale, baseline, loss_agg, eps)
        return np.einsum("ng,ngp->np", coefficients, scores[x[:, None], groups])


def binary_group_scale(p, G, eps=1e-4):
    """c(p): with rewards in {0, 1}, success probability p on a prompt, group_mean baseline and
    scale "group", the expected update on that prompt is c(p) times its gradient grad J_x.

    Write h(r) = E[A_j | r_j = r]. For a binary reward the score of response j splits into
    successes and failures, and sum_y P(y) score(y) = 0, so E[A_j score_j] = (h(1) - h(0)) grad J_x.
    With n ~ Binomial(G - 1, p) successes among the other responses and s the group's total:

        r_j = 1:  s = n + 1,  A = (1 - s/G) / (std + eps)      (0 when s = G: all equal)
        r_j = 0:  s = n,      A = (0 - s/G) / (std + eps)      (0 when s = 0)
        std = sqrt(m (1 - m)), m = s / G (ddof 0)

    and the 1/G of the per-response weights gives c(p) = (1/G) * G * (h(1) - h(0)) = h(1) - h(0).
    Without the division by std, c = (G - 1)/G for every p: the scale is the whole story.
    """
    G = check_int("G", G, 1)
    c = 0.0
    for n in range(G):
        weight = math.comb(G - 1, n) * p ** n * (1 - p) ** (G - 1 - n)
        for r, s in ((1, n + 1), (0, n)):
            m = s / G
            if s in (0, G):
                continue
            advantage = (r - m) / (math.sqrt(m * (1 - m)) + eps)
            c += weight * (advantage if r == 1 else -advantage)
    return c

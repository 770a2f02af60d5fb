"""The addition task and the imitation warm start: prompts and answers written out by hand, the
verifier, a held-out split that training never sees, and the cross-entropy whose gradient is the
score with weight one."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from minipg.lm.imitation import cross_entropy, fit
from minipg.lm.sequence import SequencePolicy
from minipg.lm.addition import (EOS, EQUALS, MAX_ANSWER_LEN, PAD, PLUS, PROMPT_LEN,
                                   VOCAB_SIZE, AdditionTask, answer_tokens, decode,
                                   encode_prompts)


def test_prompts_and_answers_by_hand():
    pairs = np.array([[7, 45], [0, 0], [99, 99], [50, 50]])
    np.testing.assert_array_equal(encode_prompts(pairs)[0], [0, 7, PLUS, 4, 5, EQUALS])
    answers, lengths = answer_tokens(pairs)
    np.testing.assert_array_equal(answers, [[2, 5, EOS, PAD], [0, EOS, PAD, PAD],
                                            [8, 9, 1, EOS], [0, 0, 1, EOS]])
    np.testing.assert_array_equal(lengths, [3, 2, 4, 4])
    assert decode(np.concatenate([encode_prompts(pairs)[0], answers[0]])) == "07+45=25."


def test_the_verifier_wants_exactly_the_answer_and_its_eos():
    pairs = np.array([[7, 45]] * 5)
    prompt = encode_prompts(pairs[:1])[0]
    responses = [[2, 5, EOS, PAD],       # right
                 [2, 5, EOS, 7],         # right: nothing after EOS is read
                 [2, 5, 0, EOS],         # wrong digit after the answer
                 [2, 5, 3, 3],           # no EOS
                 [5, 2, EOS, PAD]]       # digits in the usual order: wrong here
    tokens = np.array([np.concatenate([prompt, r]) for r in responses])
    np.testing.assert_array_equal(AdditionTask.reward(pairs, tokens), [1, 1, 0, 0, 0])


def test_held_out_pairs_are_never_training_pairs_and_the_split_follows_the_seed():
    task = AdditionTask(seed=3, n_test=500)
    test = {tuple(p) for p in task.test_pairs}
    train = {tuple(p) for p in task.train_pairs}
    assert len(test) == 500 and len(train) == 9500 and not test & train
    demos, mask = task.demonstrations(300, rng=0)
    assert {(10 * d[0] + d[1], 10 * d[3] + d[4]) for d in demos} <= train
    assert {tuple(p) for p in task.sample_pairs(2000, rng=1)} <= train
    assert AdditionTask(seed=3, n_test=500).test_pairs.tolist() == task.test_pairs.tolist()
    assert AdditionTask(seed=4, n_test=500).test_pairs.tolist() != task.test_pairs.tolist()
    # Demonstrations are right answers, and the mask covers the digits and EOS.
    pairs = np.stack([10 * demos[:, 0] + demos[:, 1], 10 * demos[:, 3] + demos[:, 4]], 1)
    assert AdditionTask.reward(pairs, demos).all()
    np.testing.assert_array_equal(mask.sum(1), answer_tokens(pairs)[1])


def small_policy(hidden=8):
    return SequencePolicy(VOCAB_SIZE, PROMPT_LEN + MAX_ANSWER_LEN, EOS, PAD, window=9,
                          embed_dim=4, hidden_sizes=(hidden,), rng=0)


def test_cross_entropy_gradient_is_the_score_with_weight_one_over_n():
    policy = small_policy()
    demos, mask = AdditionTask(0).demonstrations(5, rng=0)
    actions = demos[:, PROMPT_LEN:]
    dist, cache = policy.forward(demos, PROMPT_LEN)
    loss, grad_log_prob = cross_entropy(dist.log_prob(actions), mask)
    n = mask.sum()
    np.testing.assert_array_equal(grad_log_prob, np.where(mask, -1.0 / n, 0.0))
    score = dist.score(actions)                               # onehot - pi
    np.testing.assert_allclose(dist.param_grads(actions, grad_log_prob).logits,
                               -(mask[..., None] * score) / n, rtol=1e-12)
    grad = policy.backward(cache, dist.param_grads(actions, grad_log_prob))
    ce = lambda: cross_entropy(policy.forward(demos, PROMPT_LEN)[0].log_prob(actions), mask)[0]
    assert relative_error(grad, numerical_gradient(ce, policy.params)) < 1e-7
    with pytest.raises(ValueError, match="mask"):
        cross_entropy(dist.log_prob(actions), np.zeros_like(mask))


def test_fit_memorises_a_few_demonstrations():
    policy = small_policy(hidden=32)
    task = AdditionTask(0)
    demos, mask = task.demonstrations(8, rng=0)
    history = fit(policy, demos, mask, PROMPT_LEN, epochs=150, batch_size=8, learning_rate=1e-2,
                  rng=0)
    assert history[-1] < 0.05 * history[0]
    pairs = np.stack([10 * demos[:, 0] + demos[:, 1], 10 * demos[:, 3] + demos[:, 4]], 1)
    assert task.accuracy(policy, pairs) == 1.0

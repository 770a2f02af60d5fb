"""PPO with a per-token critic, its whole update as a specification: every gradient step of
token_ppo.update is the gradient of the documented loss, at the parameters it was taken at,

    L = sum_{i,t} w_{i,t} [ max(-A_{i,t} r_{i,t}, -A_{i,t} clip(r_{i,t}, 1 - eps, 1 + eps))
                            + vf_coef * 0.5 (V(x_i, y_i<t) - R_{i,t})^2 ]

with w = mask / (number of tokens), r = pi_theta / pi_old per token, A the GAE advantages of
the critic at collection normalised over the batch's tokens, and R = GAE + V_old; checked
against central finite differences over both networks' joint parameter vector."""
import numpy as np
from gradcheck import numerical_gradient, relative_error
from recording_adam import RecordingAdam

from minipg.core.heads import join_params
from minipg.core.losses import normalize
from minipg.lm import token_ppo
from minipg.lm.sequence import SequencePolicy

EPS = 0.1


def test_each_step_of_the_update_is_the_gradient_of_the_clipped_loss_plus_vf_coef_value_loss():
    rng = np.random.default_rng(0)
    policy = SequencePolicy(6, 5, eos=4, pad=5, window=2, embed_dim=3, hidden_sizes=(8,), rng=0)
    critic = token_ppo.make_critic(policy, (8,), rng)
    params = join_params(policy, critic)
    optim = RecordingAdam(params, 0.05)
    start = 2
    tokens, mask = policy.generate(np.zeros((12, start), np.int64), 3, rng=rng)
    rewards = rng.normal(size=12)
    config = token_ppo.Config(num_iterations=4, clip_coef=EPS, vf_coef=0.5, gamma=0.9, lam=0.8,
                              max_grad_norm=0.0, norm_adv=True)
    token_ppo.update(policy, critic, optim, tokens, mask, start, rewards, config)
    assert len(optim.grads) == 4

    actions = tokens[:, start:]
    params[...] = optim.at[0]                                  # the networks at collection
    old_log_prob = policy.forward(tokens, start)[0].log_prob(actions)
    V_old = critic.forward(tokens, start)[0][..., 0]
    A, R = token_ppo.token_advantages(rewards, V_old, mask, 0.9, 0.8)
    A[mask] = normalize(A[mask])
    w = mask / mask.sum()

    def ratio():
        return np.exp(policy.forward(tokens, start)[0].log_prob(actions) - old_log_prob)

    def loss():
        r = ratio()
        surrogate = np.maximum(-A * r, -A * np.clip(r, 1 - EPS, 1 + EPS))
        V = critic.forward(tokens, start)[0][..., 0]
        return float(np.sum(w * (surrogate + 0.5 * 0.5 * (V - R) ** 2)))

    just_past_the_upper_clip = 0
    for step in range(4):
        params[...] = optim.at[step]
        assert relative_error(optim.grads[step], numerical_gradient(loss, params)) < 1e-6
        r = ratio()
        just_past_the_upper_clip += int(np.sum(mask & (A > 0) & (1 + EPS < r) & (r < 1 + 2 * EPS)))
    # The steps moved ratios just past 1 + eps where A > 0: the bound itself was exercised (a
    # wrong bound, 1 + 2 eps say, would have let those tokens push on).
    assert just_past_the_upper_clip >= 2

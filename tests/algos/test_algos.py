"""The algorithms as a specification: each loss's gradient against central finite differences
(per sample, then end to end into the policy's params, then through a whole `update`), reset
steps that change no gradient, REINFORCE's mean over whole episodes, and advantage
normalisation."""
import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error
from rollout_cases import (expected_advantages_and_targets, fresh_networks, scramble, toy_episodes,
                           toy_rollout)
from toy_env import OBS_DIM, make_env

from minipg.algos import a2c, ppo, reinforce
from minipg.core.losses import normalize, score_function_loss
from minipg.algos.ppo import clipped_surrogate
from minipg.algos.config import make_config
from minipg.core.distributions import Categorical
from minipg.core.optim import Adam
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction
from minipg.core.heads import join_params
from minipg.core.losses import value_loss
from minipg.core.returns import gae_reference
from minipg.envs.rollout import RolloutCollector

CLIP = 0.2


# ------------------------------------------------------------------------------------------
# Per-sample losses with respect to log_prob
# ------------------------------------------------------------------------------------------

# Ratios on both sides of the clip range [0.8, 1.2], inside it, and well away from the kinks.
RATIOS = np.array([0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6])


def surrogate_case():
    rng = np.random.default_rng(0)
    ratio = np.concatenate([RATIOS, RATIOS])
    advantages = np.concatenate([np.full(7, 1.3), np.full(7, -0.7)])
    old_log_prob = rng.normal(size=14) - 1.0
    return old_log_prob + np.log(ratio), old_log_prob, advantages, ratio


def test_clipped_surrogate_gradient_matches_finite_differences_in_every_region():
    log_prob, old_log_prob, advantages, ratio = surrogate_case()
    loss, grad, got_ratio = clipped_surrogate(log_prob, old_log_prob, advantages, CLIP)
    np.testing.assert_allclose(got_ratio, ratio, rtol=1e-12)
    numeric = numerical_gradient(
        lambda: clipped_surrogate(log_prob, old_log_prob, advantages, CLIP)[0], log_prob, 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-10)
    # Zero exactly where the clip is the pessimistic term: A > 0 above 1 + eps, A < 0 below 1 - eps.
    clipped_region = (((advantages > 0) & (ratio > 1 + CLIP))
                      | ((advantages < 0) & (ratio < 1 - CLIP)))
    assert clipped_region.sum() == 4
    assert (grad[clipped_region] == 0).all()
    np.testing.assert_allclose(grad[~clipped_region],
                               (-advantages * ratio / len(ratio))[~clipped_region], rtol=1e-12)
    # The loss value itself: mean of max(-A r, -A clip(r)).
    expected = np.mean(np.maximum(-advantages * ratio,
                                  -advantages * np.clip(ratio, 1 - CLIP, 1 + CLIP)))
    assert loss == pytest.approx(expected, rel=1e-12)
    assert clipped_surrogate(np.log([1.5]), np.zeros(1), np.ones(1), CLIP)[0] == pytest.approx(-1.2)


def test_score_function_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    log_prob, psi = rng.normal(size=9), rng.normal(size=9)
    loss, grad = score_function_loss(log_prob, psi, 3)
    assert loss == pytest.approx(-np.sum(psi * log_prob) / 3, rel=1e-12)
    numeric = numerical_gradient(lambda: score_function_loss(log_prob, psi, 3)[0], log_prob, 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-10)


# ------------------------------------------------------------------------------------------
# End to end: the loss on (log_prob, entropy) -> dist.param_grads -> policy.backward
# ------------------------------------------------------------------------------------------

ENT = 0.05


def small_policy(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "categorical":
        policy = CategoricalPolicy(OBS_DIM, 3, (5,), rng=seed + 1)
    else:
        policy = GaussianPolicy(OBS_DIM, 2, (5,), log_std_init=[-0.3, 0.2], rng=seed + 1)
    policy.params += 0.5 * rng.normal(size=policy.params.shape)   # away from the near-0 init
    obs = rng.normal(size=(16, OBS_DIM))
    actions = policy.distribution(obs).sample(rng)
    return policy, obs, actions, rng


def check_policy_gradient(policy, loss_and_grad):
    """The gradient returned by loss_and_grad() vs central differences of its loss."""
    _, analytic = loss_and_grad()
    numeric = numerical_gradient(lambda: loss_and_grad()[0], policy.params)
    assert relative_error(analytic, numeric) < 1e-6
    assert np.linalg.norm(analytic) > 1e-3                     # not trivially zero


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_ppo_loss_gradient_into_params_matches_finite_differences(kind):
    policy, obs, actions, rng = small_policy(kind)
    log_prob0 = policy.distribution(obs).log_prob(actions)
    ratio = rng.choice(RATIOS, size=len(obs))                  # spread over all regions
    old_log_prob = log_prob0 - np.log(ratio)
    advantages = rng.normal(size=len(obs))

    def loss_and_grad():
        dist, cache = policy.forward(obs)
        loss, grad_log_prob, _ = clipped_surrogate(dist.log_prob(actions), old_log_prob,
                                                   advantages, CLIP)
        grad = policy.backward(cache, dist.param_grads(actions, grad_log_prob, -ENT / len(obs)))
        return loss - ENT * dist.entropy().mean(), grad

    check_policy_gradient(policy, loss_and_grad)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("denominator", ["steps", "episodes"])
def test_score_function_loss_gradient_into_params_matches_finite_differences(kind, denominator):
    """A2C averages per step (B), REINFORCE per trajectory (number of episodes)."""
    policy, obs, actions, rng = small_policy(kind, seed=2)
    psi = rng.normal(size=len(obs))
    D = len(obs) if denominator == "steps" else 3

    def loss_and_grad():
        dist, cache = policy.forward(obs)
        loss, grad_log_prob = score_function_loss(dist.log_prob(actions), psi, D)
        grad = policy.backward(cache, dist.param_grads(actions, grad_log_prob, -ENT / len(obs)))
        return loss - ENT * dist.entropy().mean(), grad

    check_policy_gradient(policy, loss_and_grad)


def test_value_loss_gradient_into_params_matches_finite_differences():
    rng = np.random.default_rng(3)
    value_fn = ValueFunction(OBS_DIM, (5, 4), rng=4)
    obs, targets = rng.normal(size=(12, OBS_DIM)), rng.normal(size=12)
    vf_coef = 0.7
    values, cache = value_fn.forward(obs)
    loss, grad_values = value_loss(values, targets)
    analytic = value_fn.backward(cache, vf_coef * grad_values)
    error = value_fn.predict(obs) - targets
    assert loss == pytest.approx(0.5 * np.mean(error ** 2), rel=1e-12)   # unscaled, for the log

    def scaled_loss():
        return vf_coef * 0.5 * np.mean((value_fn.predict(obs) - targets) ** 2)

    numeric = numerical_gradient(scaled_loss, value_fn.params)
    assert relative_error(analytic, numeric) < 1e-6


# ------------------------------------------------------------------------------------------
# Whole updates on a rollout from the scripted env: the gradient each one steps with
# ------------------------------------------------------------------------------------------

class RecordingOptimizer:
    """Stands in for Adam: records the gradient (and the params it was taken at), then steps.

    The policy's and the critic's parameters share one vector, the policy's first: `policy_grads`
    and `value_grads` split each recorded gradient accordingly.
    """

    def __init__(self, params, n_policy, learning_rate=0.0):
        self.inner = Adam(params, learning_rate) if learning_rate else None
        self.params, self.learning_rate, self.n_policy = params, learning_rate, n_policy
        self.grads, self.at = [], []

    def step(self, grad, grad_checked=False):
        self.grads.append(grad.copy())
        self.at.append(self.params.copy())
        if self.inner is not None:
            self.inner.step(grad, grad_checked=grad_checked)

    @property
    def policy_grads(self):
        return [g[:self.n_policy] for g in self.grads]

    @property
    def value_grads(self):
        return [g[self.n_policy:] for g in self.grads]


def test_a2c_update_steps_with_the_gradient_of_its_documented_loss():
    rollout, policy0, value0 = toy_rollout()
    config = make_config(a2c.Config, num_envs=3, num_steps=8, gamma=0.9, lam=0.8, ent_coef=ENT,
                         vf_coef=0.5, max_grad_norm=0.0, norm_adv=True)
    policy, value_fn, params = fresh_networks(policy0, value0)
    optim = RecordingOptimizer(params, policy.params.size)
    a2c.update(rollout, policy, value_fn, optim, config, np.random.default_rng(0))

    m = rollout.mask
    A, targets = expected_advantages_and_targets(rollout, 0.9, 0.8)
    obs, actions = rollout.obs[m], rollout.actions[m]
    assert len(obs) == m.sum() < rollout.mask.size          # the reset rows are not in it

    def policy_loss():
        dist = policy.distribution(obs)
        return -np.mean(A * dist.log_prob(actions)) - ENT * dist.entropy().mean()

    def value_loss():
        return 0.5 * 0.5 * np.mean((value_fn.predict(obs) - targets) ** 2)

    assert relative_error(optim.policy_grads[0],
                          numerical_gradient(policy_loss, policy.params)) < 1e-6
    assert relative_error(optim.value_grads[0],
                          numerical_gradient(value_loss, value_fn.params)) < 1e-6


def test_ppo_update_steps_with_the_gradient_of_the_clipped_surrogate_also_after_moving():
    """Epoch 1 is at pi_old (ratio 1); epoch 2 is after an Adam step, where ratios have moved
    and some samples are clipped: both gradients must be those of the documented loss."""
    rollout, policy0, value0 = toy_rollout()
    # Normalised advantages (not PPO's default) as expected_advantages_and_targets computes them.
    config = make_config(ppo.Config, num_envs=3, num_steps=8, gamma=0.9, lam=0.8, ent_coef=ENT,
                         update_epochs=2, num_minibatches=1, clip_coef=CLIP, max_grad_norm=0.0,
                         norm_adv=True)
    policy, value_fn, params = fresh_networks(policy0, value0)
    optim = RecordingOptimizer(params, policy.params.size, learning_rate=0.1)
    ppo.update(rollout, policy, value_fn, optim, config, np.random.default_rng(0))

    m = rollout.mask
    A, targets = expected_advantages_and_targets(rollout, 0.9, 0.8)
    obs, actions, old_log_prob = rollout.obs[m], rollout.actions[m], rollout.log_prob[m]

    def policy_loss():
        dist = policy.distribution(obs)
        ratio = np.exp(dist.log_prob(actions) - old_log_prob)
        surrogate = np.maximum(-A * ratio, -A * np.clip(ratio, 1 - CLIP, 1 + CLIP))
        return surrogate.mean() - ENT * dist.entropy().mean()

    def value_loss():
        return 0.5 * 0.5 * np.mean((value_fn.predict(obs) - targets) ** 2)

    for epoch in range(2):
        params[...] = optim.at[epoch]
        numeric = numerical_gradient(policy_loss, policy.params)
        assert relative_error(optim.policy_grads[epoch], numeric) < 1e-6
        numeric = numerical_gradient(value_loss, value_fn.params)
        assert relative_error(optim.value_grads[epoch], numeric) < 1e-6
    # The second epoch really is off-policy with clipped samples.
    ratio = np.exp(policy.distribution(obs).log_prob(actions) - old_log_prob)
    assert (np.abs(ratio - 1) > CLIP).any()


def test_ppo_steps_on_shuffled_minibatches_with_v_clipped_against_its_value_at_collection():
    """Three epochs of three minibatches with clip_vloss: step k of epoch e trains on slice k
    of that epoch's order, rng.permutation(B) drawn from the update's generator at the epoch's
    start, and its value loss clips V(s_i) against V_old(s_i), the value AT COLLECTION of the
    same samples i. Each recorded gradient must be that of the documented losses on exactly
    those samples, at the parameters it was taken at:

        L = mean max(-A r, -A clip(r, 1-eps, 1+eps)) - ent_coef mean H
            + vf_coef * 0.5 mean max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)

    with A normalised over the minibatch and R = GAE + V_old."""
    rollout, policy0, value0 = toy_rollout()
    gamma, lam, vf_coef = 0.9, 0.8, 0.5
    config = make_config(ppo.Config, num_envs=3, num_steps=8, gamma=gamma, lam=lam, ent_coef=ENT,
                         update_epochs=3, num_minibatches=3, clip_coef=CLIP, clip_vloss=True,
                         vf_coef=vf_coef, max_grad_norm=0.0, norm_adv=True)
    policy, value_fn, params = fresh_networks(policy0, value0)
    optim = RecordingOptimizer(params, policy.params.size, learning_rate=0.1)
    ppo.update(rollout, policy, value_fn, optim, config, np.random.default_rng(42))

    m = rollout.mask
    A = gae_reference(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                      rollout.truncated, gamma, lam)
    R, V_old = (A + rollout.values)[m], rollout.values[m]
    A, obs, actions, old_log_prob = A[m], rollout.obs[m], rollout.actions[m], rollout.log_prob[m]
    B = len(obs)
    bounds = [B * k // 3 for k in range(4)]
    rng = np.random.default_rng(42)
    slices = [order[start:end] for order in (rng.permutation(B) for _ in range(3))
              for start, end in zip(bounds[:-1], bounds[1:])]
    assert len(optim.grads) == len(slices) == 9
    held_back = 0                    # samples whose value the clip kept from moving further
    for step, i in enumerate(slices):
        params[...] = optim.at[step]
        mb_A = normalize(A[i])

        def policy_loss():
            dist = policy.distribution(obs[i])
            ratio = np.exp(dist.log_prob(actions[i]) - old_log_prob[i])
            surrogate = np.maximum(-mb_A * ratio, -mb_A * np.clip(ratio, 1 - CLIP, 1 + CLIP))
            return surrogate.mean() - ENT * dist.entropy().mean()

        def squared_errors():
            V = value_fn.predict(obs[i])
            V_clip = V_old[i] + np.clip(V - V_old[i], -CLIP, CLIP)
            return (V - R[i]) ** 2, (V_clip - R[i]) ** 2

        def value_loss():
            return vf_coef * 0.5 * np.mean(np.maximum(*squared_errors()))

        assert relative_error(optim.policy_grads[step],
                              numerical_gradient(policy_loss, policy.params)) < 1e-6
        assert relative_error(optim.value_grads[step],
                              numerical_gradient(value_loss, value_fn.params)) < 1e-6
        unclipped, clipped = squared_errors()
        held_back += int(np.sum(clipped > unclipped))
    assert held_back >= 3             # the clipped branch of the value loss was exercised


def independent_psi(rollout, psi, gamma):
    """Psi at every real step, by walking each column episode by episode (plain Python)."""
    T, N = rollout.rewards.shape
    out = np.full((T, N), np.nan)
    for n in range(N):
        t = 0
        while t < T:
            if not rollout.mask[t, n]:
                t += 1
                continue
            start = t
            while t < T and not (rollout.terminated[t, n] or rollout.truncated[t, n]):
                t += 1
            end = min(t, T - 1)                    # last row of this episode (or of the rollout)
            r = rollout.rewards[start:end + 1, n]
            bootstrap = 0.0
            if psi == "baseline" and not rollout.terminated[end, n]:
                bootstrap = rollout.next_values[end, n]
            for s in range(start, end + 1):
                k = np.arange(end + 1 - s)
                G = np.sum(gamma ** k * r[s - start:]) + gamma ** (end + 1 - s) * bootstrap
                out[s, n] = G
            if psi == "return":
                out[start:end + 1, n] = out[start, n]
            if psi == "baseline":
                out[start:end + 1, n] -= rollout.values[start:end + 1, n]
            t = end + 1
    return out


@pytest.mark.parametrize("psi", reinforce.PSI)
def test_reinforce_update_is_the_per_trajectory_mean_over_complete_episodes(psi):
    """g_hat = (1/N) sum_n sum_t score_t Psi_t over the N whole episodes of the batch."""
    batch, policy0, value0 = toy_episodes()
    gamma = 0.9
    config = make_config(reinforce.Config, num_envs=3, num_steps=8, gamma=gamma, psi=psi,
                         ent_coef=ENT, max_grad_norm=0.0, norm_adv=False)
    critic = psi == "baseline"
    policy, value_fn, params = fresh_networks(policy0, value0, critic)
    optim = RecordingOptimizer(params, policy.params.size)
    stats = reinforce.update(batch, policy, value_fn if critic else None, optim, config,
                             np.random.default_rng(0))

    # One episode per column: env 0 terminates after 3 steps, the env truncates env 1 after 2,
    # the time limit num_steps = 8 cuts env 2 (scripted to run 11).
    assert batch.mask.sum(axis=0).tolist() == [3, 2, 8]
    assert stats["batch_episodes"] == 3
    mask = batch.mask
    weights = independent_psi(batch, psi, gamma)[mask]
    obs, actions = batch.obs[mask], batch.actions[mask]

    def policy_loss():                     # (1/N) over episodes, a sum over their steps
        dist = policy.distribution(obs)
        return -np.sum(weights * dist.log_prob(actions)) / 3 - ENT * dist.entropy().mean()

    assert relative_error(optim.policy_grads[0],
                          numerical_gradient(policy_loss, policy.params)) < 1e-6
    if critic:
        G = weights + batch.values[mask]

        def value_loss():
            return 0.5 * 0.5 * np.mean((value_fn.predict(obs) - G) ** 2)

        assert relative_error(optim.value_grads[0],
                              numerical_gradient(value_loss, value_fn.params)) < 1e-6
    else:
        assert optim.grads[0].size == policy.params.size        # the policy's gradient only


def test_reinforce_refuses_a_window_that_pools_episodes():
    """A (T, N) window holding several episodes per column (or one cut by the window) is the
    length-biased batch: update() says so instead of learning from it."""
    rollout, policy0, value0 = toy_rollout(second=False, complete=True)
    config = make_config(reinforce.Config, num_envs=3, num_steps=8, psi="reward_to_go")
    policy, _, _ = fresh_networks(policy0, value0, critic=False)
    with pytest.raises(ValueError, match="whole episodes.*column 0"):
        reinforce.update(rollout, policy, None, Adam(policy.params), config,
                         np.random.default_rng(0))
    before = policy.params.copy()
    batch, _, _ = toy_episodes()
    reinforce.update(batch, policy, None, Adam(policy.params), config, np.random.default_rng(0))
    assert not np.array_equal(policy.params, before)            # whole episodes are accepted


# ------------------------------------------------------------------------------------------
# A reset step changes no gradient
# ------------------------------------------------------------------------------------------

def run_update(module, rollout, policy0, value0, validate=True, **hp):
    config = (make_config(module.Config, num_envs=3, num_steps=8, **hp) if validate
              else module.Config(num_envs=3, num_steps=8, **hp))
    uses_critic = getattr(module, "uses_critic", lambda c: True)(config)
    policy, value_fn, params = fresh_networks(policy0, value0, uses_critic, config.dtype)
    stats = module.update(rollout, policy, value_fn if uses_critic else None, Adam(params, 0.01),
                          config, np.random.default_rng(42))
    return np.concatenate([policy.params, value_fn.params]), stats


CASES = [(ppo, dict(ent_coef=ENT, num_minibatches=3, update_epochs=2), toy_rollout),
         (a2c, dict(ent_coef=ENT), toy_rollout),
         (reinforce, dict(psi="baseline", ent_coef=ENT), toy_episodes),
         (reinforce, dict(psi="return"), toy_episodes)]


@pytest.mark.parametrize("module, hp, make_batch", CASES,
                         ids=["ppo", "a2c", "reinforce-baseline", "reinforce-return"])
def test_reset_steps_change_no_gradient(module, hp, make_batch):
    """Rows that are not transitions: reset steps in a rollout, the rows after an episode's
    end in a batch of whole episodes."""
    rollout, policy0, value0 = make_batch()
    reset_rows = ~rollout.mask
    assert reset_rows.sum() >= 4
    params, stats = run_update(module, rollout, policy0, value0, **hp)
    params_scrambled, stats_scrambled = run_update(module, scramble(rollout, reset_rows),
                                                   policy0, value0, **hp)
    np.testing.assert_array_equal(params_scrambled, params)       # bit for bit
    assert stats_scrambled == stats
    # The check can fail: scrambling one real row does change the update.
    real_row = np.zeros_like(reset_rows)
    real_row[0, 0] = True
    params_real, _ = run_update(module, scramble(rollout, real_row), policy0, value0, **hp)
    assert not np.array_equal(params_real, params)


# ------------------------------------------------------------------------------------------
# Advantage normalisation
# ------------------------------------------------------------------------------------------

def test_normalize_gives_mean_zero_std_one():
    A = np.random.default_rng(0).normal(3.0, 7.0, size=1000)
    Z = normalize(A)
    assert abs(Z.mean()) < 1e-12
    assert Z.std() == pytest.approx(1.0, abs=1e-8)


def test_normalize_blows_advantages_a_thousand_times_smaller_up_to_the_same_unit_scale():
    """Once a task is solved the raw advantages shrink to the critic's noise; normalised, that
    noise is as large as a learning signal was (docs/derivation.md, section 16)."""
    rng = np.random.default_rng(1)
    learning, solved = rng.normal(0.0, 2.0, size=256), rng.normal(0.0, 0.002, size=256)
    assert np.std(solved) < np.std(learning) / 500
    assert np.std(normalize(solved)) == pytest.approx(np.std(normalize(learning)), rel=1e-4)
    np.testing.assert_allclose(np.abs(normalize(solved)).mean(), np.sqrt(2 / np.pi), rtol=0.1)


def test_normalize_of_a_batch_of_one_or_of_constants_is_zero_not_nan():
    np.testing.assert_array_equal(normalize(np.array([3.5])), [0.0])
    np.testing.assert_array_equal(normalize(np.full(4, -2.0)), np.zeros(4))


@pytest.mark.parametrize("module, hp", [(ppo, dict(num_minibatches=4)), (a2c, {})],
                         ids=["ppo", "a2c"])
def test_update_on_a_single_transition_with_normalisation_stays_finite(module, hp):
    env = make_env(scripts=[[(5, "terminated")]])
    policy = CategoricalPolicy(OBS_DIM, 2, (4,), rng=0)
    value_fn = ValueFunction(OBS_DIM, (4,), rng=1)
    rollout = RolloutCollector(env, policy, value_fn, 1, np.random.default_rng(0), seed=0).collect()
    assert rollout.mask.sum() == 1
    # The trainer refuses num_steps=1 (a rollout of reset steps only); update() itself must
    # still stay finite on the one transition, so the config is built without validate().
    config = module.Config(num_envs=1, num_steps=1, norm_adv=True, **hp)
    stats = module.update(rollout, policy, value_fn, Adam(join_params(policy, value_fn)), config,
                          np.random.default_rng(0))
    assert all(np.isfinite(v) for v in stats.values())
    assert np.isfinite(policy.params).all() and np.isfinite(value_fn.params).all()


def test_ppo_minibatches_of_one_stay_finite():
    rollout, policy0, value0 = toy_rollout()
    # The trainer refuses minibatches of one (they train nothing); update() must still stay
    # finite on them, so this config skips validate().
    params, stats = run_update(ppo, rollout, policy0, value0, validate=False, num_minibatches=64,
                               norm_adv=True)
    assert np.isfinite(params).all() and all(np.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("module, hp, make_batch", CASES,
                         ids=["ppo", "a2c", "reinforce-baseline", "reinforce-return"])
def test_a_whole_update_is_bit_for_bit_reproducible(module, hp, make_batch):
    """The same rollout, networks and seed give the same parameters and statistics, bit for bit
    (float32 networks, as in training)."""
    rollout, policy0, value0 = make_batch()
    runs = [run_update(module, rollout, policy0, value0, **hp) for _ in range(2)]
    (params, stats), (params_again, stats_again) = runs
    assert params.dtype == np.float32
    np.testing.assert_array_equal(params_again, params)
    assert stats_again == stats


# ------------------------------------------------------------------------------------------
# The approximate KL and early stopping
# ------------------------------------------------------------------------------------------

def test_approx_kl_per_sample_is_non_negative_and_its_mean_under_pi_old_is_the_exact_kl():
    """k = (ratio - 1) - log ratio >= 0 for every sample (log x <= x - 1), and
    E_{a ~ pi_old}[k] = sum_a pi(a) - 1 + KL(pi_old || pi) = KL(pi_old || pi): by enumeration,
    then by sampling (within 4 standard errors)."""
    rng = np.random.default_rng(20)
    old, new = Categorical(rng.normal(size=5)), Categorical(rng.normal(size=5))
    per_action = np.array([ppo.approx_kl(new.log_probs[[a]], old.log_probs[[a]])
                           for a in range(5)])
    assert (per_action >= 0).all()
    exact_kl = float(np.sum(old.probs * (old.log_probs - new.log_probs)))
    assert float(old.probs @ per_action) == pytest.approx(exact_kl, rel=1e-12)
    actions = Categorical(np.tile(old.logits, (200_000, 1))).sample(rng)
    samples = per_action[actions]
    assert abs(ppo.approx_kl(new.log_probs[actions], old.log_probs[actions]) - exact_kl) < \
        4 * samples.std() / np.sqrt(len(samples))


@pytest.mark.parametrize("target_kl, steps", [(None, 3 * 2), (1e-12, 2)])
def test_target_kl_stops_the_epochs_once_the_approximate_kl_exceeds_it(target_kl, steps):
    """The check runs after each epoch: a tiny target stops after the first (2 minibatches)."""
    rollout, policy0, value0 = toy_rollout()
    config = make_config(ppo.Config, num_envs=3, num_steps=8, update_epochs=3,
                         num_minibatches=2, target_kl=target_kl)
    policy, value_fn, params = fresh_networks(policy0, value0)
    optim = RecordingOptimizer(params, policy.params.size, learning_rate=0.01)
    stats = ppo.update(rollout, policy, value_fn, optim, config, np.random.default_rng(0))
    assert len(optim.grads) == steps
    if target_kl is not None:
        assert stats["approx_kl"] > target_kl


def test_normalised_advantages_give_the_gradient_of_the_centred_ones_divided_by_the_batch_std():
    """For one batch, with w_i = -normalize(A)_i / B, the policy gradient is exactly the one with
    the centred advantages A - mean(A), divided by std(A) + eps, and the order of the advantages
    is kept. (What centring and dividing do in expectation, a shrink and a change of direction,
    is not claimed here: docs/derivation.md, "Advantage normalisation".)"""
    policy, obs, actions, rng = small_policy("categorical", seed=21)
    A = rng.normal(2.0, 3.0, size=len(obs))
    B = len(obs)
    dist, cache = policy.forward(obs)

    def grad_with(weights):
        return policy.backward(cache, dist.param_grads(actions, -weights / B))

    centred = A - A.mean()
    np.testing.assert_allclose(grad_with(normalize(A)),
                               grad_with(centred) / (A.std() + 1e-8), rtol=1e-10, atol=1e-14)
    assert not np.allclose(grad_with(normalize(A)), grad_with(A) / A.std())  # the centring counts
    np.testing.assert_array_equal(np.argsort(normalize(A)), np.argsort(A))


@pytest.mark.parametrize("num_minibatches, expected", [(2, 2), (3, 3), (64, None)])
def test_ppo_minibatches_differ_in_size_by_at_most_one_and_hold_two_samples_or_more(
        num_minibatches, expected, monkeypatch):
    """Minibatch sizes: B split as evenly as possible; never fewer than 2 samples (one sample's
    normalised advantage is 0), so a request for more minibatches than B // 2 gets B // 2."""
    rollout, policy0, value0 = toy_rollout()
    B = int(rollout.mask.sum())
    config = ppo.Config(num_envs=3, num_steps=8, update_epochs=1, num_minibatches=num_minibatches)
    policy, value_fn, params = fresh_networks(policy0, value0)
    optim = RecordingOptimizer(params, policy.params.size)
    sizes = []
    original = ppo.minibatch_step

    def recording_step(policy, value_fn, optim, mb_obs, *rest):
        sizes.append(len(mb_obs))
        return original(policy, value_fn, optim, mb_obs, *rest)

    monkeypatch.setattr(ppo, "minibatch_step", recording_step)
    ppo.update(rollout, policy, value_fn, optim, config, np.random.default_rng(0))
    assert sum(sizes) == B and max(sizes) - min(sizes) <= 1 and min(sizes) >= 2
    assert len(sizes) == (expected if expected is not None else B // 2)

"""The training step's compiled kernels (ext/_update_kernels.pyx) are their NumPy references,
bit for bit: Adam's step against Adam.step_reference, the networks' forward and backward passes
against MLP's NumPy lines, a Categorical's log-softmax and sampling against theirs, the reward
scaler's step against RewardScaler.scale_reference. Bit for bit, not to a tolerance: a training
run must not change with the build (tests compare with array_equal). Bad shapes raise
ValueError instead of crashing.
"""
import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

import minipg.core.distributions as distributions
from minipg.algos import ppo
import minipg.core.nn as nn
from minipg.core.distributions import Categorical
from minipg.core.nn import MLP
from minipg.core.normalize import RewardScaler
from minipg.core.optim import Adam, clip_and_step
from minipg.core.returns import update_kernels
from minipg.envs import rollout
from minipg.envs.rollout import RolloutCollector


def gradients(rng, size, dtype, steps):
    """Gradients whose entries span ten orders of magnitude, signs mixed, some exactly 0."""
    for _ in range(steps):
        g = rng.normal(size=size) * 10.0 ** rng.uniform(-8, 2, size=size)
        g[rng.random(size) < 0.01] = 0.0
        yield g.astype(dtype)


def test_the_kernels_are_built_and_in_use():
    assert update_kernels is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("betas, eps, learning_rate", [((0.9, 0.999), 1e-5, 3e-4),
                                                       ((0.5, 0.9), 1e-8, 0.1)])
def test_adam_kernel_is_the_numpy_reference_bit_for_bit(dtype, betas, eps, learning_rate):
    rng = np.random.default_rng(0)
    start = rng.normal(size=1001).astype(dtype)       # an odd length: the loop's tail too
    compiled = Adam(start.copy(), learning_rate, betas, eps)
    reference = Adam(start.copy(), learning_rate, betas, eps)
    for g in gradients(rng, start.size, dtype, 200):
        compiled.step(g)
        reference.step_reference(g)
    assert compiled.t == reference.t == 200
    for name in ("params", "m", "v"):
        np.testing.assert_array_equal(getattr(compiled, name), getattr(reference, name))
    assert not np.array_equal(compiled.params, start)


def test_adam_falls_back_to_the_reference_for_a_gradient_of_another_dtype():
    rng = np.random.default_rng(1)
    start = rng.normal(size=50).astype(np.float32)
    compiled, reference = Adam(start.copy(), 1e-2), Adam(start.copy(), 1e-2)
    g = rng.normal(size=50)                           # float64 gradient, float32 parameters
    compiled.step(g)
    reference.step_reference(g)
    np.testing.assert_array_equal(compiled.params, reference.params)


def test_clip_and_step_checks_the_gradient_once_and_still_refuses_nan():
    params = np.zeros(4, np.float32)
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        clip_and_step(Adam(params, 1e-2), np.array([0, np.nan, 0, 0], np.float32), 0.5)
    assert not params.any()                           # untouched


NETWORKS = [(4, 64, 64, 2),     # CartPole's policy
            (4, 64, 64, 1),     # its critic: the one-column layer's broadcast product
            (17, 256, 256, 6),  # a MuJoCo policy
            (3, 5),             # one linear layer
            (2, 3, 4, 5, 6)]    # three hidden layers


def numpy_lines(monkeypatch, *modules):
    """From here on, these modules run their NumPy lines (the kernels' references)."""
    for module in modules:
        monkeypatch.setattr(module, "update_kernels", None)


def compiled_is_numpy(run, monkeypatch, *modules):
    """run() with the kernels, then again with these modules' NumPy lines: the same results
    entry by entry, arrays bit for bit with their dtype and shape, numbers of the same type
    and value. Returns the compiled results."""
    compiled = run()
    numpy_lines(monkeypatch, *modules)
    reference = run()
    assert len(compiled) == len(reference) > 0
    for got, expected in zip(compiled, reference):
        assert type(got) is type(expected)
        if isinstance(got, np.ndarray):
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)
        else:
            assert got == expected
    return compiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("sizes", NETWORKS)
def test_mlp_kernels_are_the_numpy_lines_bit_for_bit(dtype, activation, sizes, monkeypatch):
    """forward, predict and backward (with and without dL/dx) on batches from 1 row (BLAS's
    vector cases) to 1000, inputs contiguous and strided; relu's zeros signed both ways."""
    rng = np.random.default_rng(len(sizes))
    net = MLP(sizes, activation, rng=1, dtype=dtype)
    net.biases[0][...] = rng.normal(size=sizes[1])             # nonzero biases
    if len(sizes) > 2:
        # a unit whose input is exactly +0 or -0 on every row: np.maximum keeps the sign
        net.weights[0][:, 0], net.biases[0][0] = 0.0, -0.0
        net.weights[0][:, 1], net.biases[0][1] = 0.0, 0.0
    cases = []
    for batch in (1, 2, 7, 251, 1000):
        x = (rng.normal(size=(batch, 2 * sizes[0])) * 3).astype(dtype)
        cases.append((x[:, ::2], rng.normal(size=(batch, sizes[-1])).astype(dtype)))
        cases.append((np.ascontiguousarray(x[:, ::2]), cases[-1][1]))

    def run():
        results = []
        for x, grad_out in cases:
            out, cache = net.forward(x)
            results += [out, *cache.layer_inputs[1:], net.predict(x)]
            for input_grad in (True, False):
                grad_x, grad = net.backward(cache, grad_out, input_grad=input_grad)
                results += [grad] + ([grad_x] if input_grad else [])
        return results

    compiled = compiled_is_numpy(run, monkeypatch, nn)
    assert {array.dtype for array in compiled} == {np.dtype(dtype)}


def test_mlp_kernels_leave_unusual_inputs_to_numpy(monkeypatch):
    """An input of another dtype (NumPy promotes it) and a misaligned one (NumPy copies it) run
    the NumPy lines: the same numbers as with no kernels at all."""
    rng = np.random.default_rng(3)
    tanh32 = MLP((4, 8, 2), rng=1, dtype=np.float32)
    relu = MLP((4, 8, 2), activation="relu", rng=1)
    raw = np.zeros(4 * 5 * 8 + 1, np.uint8)[1:].view()           # one byte off alignment
    misaligned = np.frombuffer(raw.data, np.float64, 20).reshape(5, 4)
    misaligned[...] = rng.normal(size=(5, 4))
    assert not misaligned.flags.aligned
    x64 = rng.normal(size=(5, 4))
    cases = [(tanh32.predict, x64), (relu.predict, x64), (tanh32.forward, misaligned),
             (relu.forward, misaligned)]

    def run():
        return [f(x)[0] if f.__name__ == "forward" else f(x) for f, x in cases]

    compiled = compiled_is_numpy(run, monkeypatch, nn)
    assert compiled[0].dtype == np.float64                       # promoted, as NumPy does


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_actions", [1, 2, 3, 4, 5, 8, 17])
def test_categorical_kernels_are_the_numpy_lines_bit_for_bit(dtype, n_actions, monkeypatch):
    """The log-softmax and sample_with_log_prob on logits far apart (a probability of exactly 0),
    tied (the first maximum is the shift), and batch shapes (), (n,) and (T, N)."""
    rng = np.random.default_rng(n_actions)
    cases = [rng.normal(size=n_actions) * 3]
    for shape in ((1,), (2,), (251,), (32, 16)):
        cases.append(rng.normal(size=shape + (n_actions,)) * 3)
    far, tied = cases[2].copy(), cases[3].copy()
    far[:, 0] += 2000.0
    tied[:, -1] = tied[:, 0]
    cases += [far, tied]

    def run():
        results = []
        for i, logits in enumerate(cases):
            dist = Categorical(logits.astype(dtype))
            actions, log_prob = dist.sample_with_log_prob(np.random.default_rng(i))
            results += [dist.log_probs, dist.probs, actions, log_prob]
        return results

    compiled = compiled_is_numpy(run, monkeypatch, distributions)
    assert compiled[2 + 4 * 5].tolist() == [0] * 2                # far: only action 0 is drawn


def test_categorical_sample_kernel_inverts_the_cdf():
    """The first action whose cumulative probability exceeds u; the last one when rounding
    leaves the sum below u; action 0 for a NaN u, as np.argmax of a row of False."""
    probs = np.array([[0.25, 0.25, 0.5]] * 4 + [[0.3, 0.3, 0.3]] * 2)
    u = np.array([0.0, 0.25, 0.5, 0.99, 0.95, np.nan])
    actions, log_prob = update_kernels.categorical_sample(probs, np.log(probs), u)
    assert actions.tolist() == [0, 1, 2, 2, 2, 0]
    np.testing.assert_array_equal(log_prob, np.log(probs[np.arange(6), actions]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_actions", [1, 2, 3, 5])
def test_categorical_gradient_kernels_are_the_numpy_lines_bit_for_bit(dtype, n_actions,
                                                                      monkeypatch):
    """log_prob, entropy and param_grads with no entropy term, a shared one and one per
    sample, on batch shapes (n,) and (T, N)."""
    rng = np.random.default_rng(10 + n_actions)
    cases = []
    for shape in ((1,), (7,), (251,), (16, 32)):
        logits = (rng.normal(size=shape + (n_actions,)) * 2).astype(dtype)
        actions = rng.integers(0, n_actions, size=shape)
        w = rng.normal(size=shape).astype(dtype)
        for c in (0.0, -0.01, rng.normal(size=shape)):
            cases.append((logits, actions, w, c))

    def run():
        results = []
        for logits, actions, w, c in cases:
            dist = Categorical(logits)
            results += [dist.log_prob(actions), dist.entropy(),
                        dist.param_grads(actions, w, c).logits]
        return results

    compiled_is_numpy(run, monkeypatch, distributions)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip_coef", [0.2, 0.05, 1.9999999999])
def test_ppo_loss_kernels_are_the_numpy_lines_bit_for_bit(dtype, clip_coef, monkeypatch):
    """The clipped surrogate (loss, gradient, ratio), approx_kl and the clip fraction, on
    ratios inside and outside the clip range, advantages of both signs and exactly 0, and a
    clip_coef that float32 cannot hold (NumPy rounds it to the arrays' dtype)."""
    rng = np.random.default_rng(20)
    cases = []
    for n in (1, 2, 7, 64, 255, 256, 1000):        # NumPy's sum: < 8, <= 128, halves above
        log_prob = rng.normal(size=n).astype(dtype)
        old_log_prob = (log_prob + rng.normal(size=n) * rng.choice([0.01, 0.3, 3.0])).astype(
            dtype)
        advantages = rng.normal(size=n).astype(dtype)
        advantages[::5] = 0.0
        cases.append((log_prob, old_log_prob, advantages))
    cases.append((np.full(3, np.log(3.0), dtype), np.zeros(3, dtype), np.ones(3, dtype)))

    def run():
        results = []
        for log_prob, old_log_prob, advantages in cases:
            loss, grad, ratio = ppo.clipped_surrogate(log_prob, old_log_prob, advantages,
                                                      clip_coef)
            results += [loss, grad, ratio, ppo.approx_kl(log_prob, old_log_prob),
                        ppo._clip_fraction(ratio, clip_coef)]
        return results

    compiled = compiled_is_numpy(run, monkeypatch, ppo)
    assert {type(x) for x in compiled[0::5] + compiled[3::5] + compiled[4::5]} == {float}
    assert {array.dtype for array in compiled[1::5] + compiled[2::5]} == {np.dtype(dtype)}
    assert set(compiled[4::5]) - {0.0}                           # some ratios were clipped


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernels_sum_as_numpy_sums(dtype):
    """The kernels' sums (the surrogate's loss, approx_kl, the reward statistics) are NumPy's
    pairwise sums, in the same order and dtype: every length from 1 to 300 and a few longer,
    entries over six orders of magnitude."""
    rng = np.random.default_rng(30)
    for n in [*range(1, 301), 511, 1024, 4097]:
        a = (rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, size=n)).astype(dtype)
        assert update_kernels.pairwise_sum(a) == a.sum()


@pytest.mark.parametrize("num_envs", [1, 3, 16])
def test_episode_bookkeeping_kernel_is_the_numpy_lines(num_envs, monkeypatch):
    """The collector's per-step episode bookkeeping: returns and lengths added on real rows
    only, the ended episodes recorded in env order and restarted, reset_pending set; 400 steps
    of random rewards, ends and reset rows, compiled and NumPy side by side."""
    def collector():
        return SimpleNamespace(_episode_return=np.zeros(num_envs),
                               _episode_length=np.zeros(num_envs, np.int64),
                               _reset_pending=np.zeros(num_envs, bool))

    def run(this):
        rng = np.random.default_rng(num_envs)
        trace = []
        for t in range(400):
            b = SimpleNamespace(mask=rng.random((1, num_envs)) < 0.9, episode_returns=[],
                                episode_lengths=[])
            rewards = rng.normal(size=num_envs) * 10.0 ** rng.uniform(-3, 3, size=num_envs)
            terminated, truncated = rng.random((2, num_envs)) < 0.05
            RolloutCollector._track_episodes(this, b, 0, rewards, terminated, truncated)
            trace.append((b.episode_returns, b.episode_lengths, this._reset_pending.tolist(),
                          this._episode_return.tolist(), this._episode_length.tolist()))
        return trace

    compiled = run(collector())
    numpy_lines(monkeypatch, rollout)
    reference = run(collector())
    assert compiled == reference
    assert sum(len(step[0]) for step in compiled) > 10              # episodes did end
    assert all(type(x) is float for step in compiled for x in step[0])
    assert all(type(x) is int for step in compiled for x in step[1])


@pytest.mark.parametrize("num_envs", [1, 7, 16, 37, 300])   # NumPy's sum: < 8, <= 128, halves
def test_reward_scaler_kernel_is_the_numpy_reference_bit_for_bit(num_envs):
    """Rewards over eight orders of magnitude, episodes ending, reset rows (not real) left out
    of the statistics, a step with no real row at all, and the clip reached."""
    rng = np.random.default_rng(num_envs)
    compiled = RewardScaler(num_envs, 0.99, clip_reward=5.0)
    reference = RewardScaler(num_envs, 0.99, clip_reward=5.0)
    clipped = 0
    for step in range(300):
        rewards = rng.normal(size=num_envs) * 10.0 ** rng.uniform(-4, 4, size=num_envs)
        dones = rng.random(num_envs) < 0.05
        real = rng.random(num_envs) < 0.9 if step != 7 else np.zeros(num_envs, bool)
        got = compiled.scale(rewards, dones, real)
        expected = reference.scale_reference(rewards, dones, real)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(compiled.returns, reference.returns)
        assert compiled.stats.count == reference.stats.count
        assert float(compiled.stats.mean) == float(reference.stats.mean)
        assert float(compiled.stats.var) == float(reference.stats.var)
        clipped += np.count_nonzero(np.abs(got) == 5.0)
    assert clipped > 0 and compiled.stats.count > 0
    # real=None: every row is a transition
    np.testing.assert_array_equal(compiled.scale(rewards, dones),
                                  reference.scale_reference(rewards, dones))
    assert compiled.stats.count == reference.stats.count


def test_bad_shapes_raise_before_any_memory_is_touched():
    params, m, v = np.zeros(5, np.float32), np.zeros(5, np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="grad has length 4, expected 5"):
        update_kernels.adam_step(params, np.zeros(4, np.float32), m, v, 0.1, 0.001, 1e-8, 1e-3)
    with pytest.raises(ValueError, match="v has length 6"):
        update_kernels.adam_step(params, np.zeros(5, np.float32), m, np.zeros(6, np.float32),
                                 0.1, 0.001, 1e-8, 1e-3)
    weights, biases = (np.zeros((4, 3)), np.zeros((3, 2))), (np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="x must have 4 columns"):
        update_kernels.mlp_forward(np.zeros((5, 3)), weights, biases, False)
    with pytest.raises(ValueError, match=r"biases\[1\] must be a contiguous \(2,\) vector"):
        update_kernels.mlp_forward(np.zeros((5, 4)), weights, (np.zeros(3), np.zeros(3)),
                                   False)
    with pytest.raises(ValueError, match=r"weights\[1\] has 2 rows, expected 3"):
        update_kernels.mlp_forward(np.zeros((5, 4)), (weights[0], np.zeros((2, 2))), biases,
                                   False)
    hidden, _ = update_kernels.mlp_forward(np.zeros((5, 4)), weights, biases, False)
    grad_params = np.zeros(4 * 3 + 3 + 3 * 2 + 2)
    inputs = [np.zeros((5, 4)), *hidden]
    with pytest.raises(ValueError, match=r"grad_out must be a C-contiguous \(5, 2\)"):
        update_kernels.mlp_backward(inputs, weights, biases, np.zeros((5, 3)), grad_params,
                                    np.ones(5), True, False)
    with pytest.raises(ValueError, match=r"ones must be a contiguous \(5,\) vector"):
        update_kernels.mlp_backward(inputs, weights, biases, np.zeros((5, 2)), grad_params,
                                    np.ones(4), True, False)
    with pytest.raises(ValueError, match=r"grad_params must be a writeable contiguous \(23,\)"):
        update_kernels.mlp_backward(inputs, weights, biases, np.zeros((5, 2)), np.zeros(22),
                                    np.ones(5), True, False)
    with pytest.raises(ValueError, match="logits must be a C-contiguous 2-d"):
        update_kernels.categorical_log_softmax(np.zeros((4, 3))[:, ::2])
    with pytest.raises(ValueError, match="u must be 4 contiguous float64 uniforms"):
        update_kernels.categorical_sample(np.ones((4, 2)), np.zeros((4, 2)),
                                          np.zeros(4, np.float32))
    assert not grad_params.any()
    assert not params.any() and not m.any() and not v.any()
    frozen = np.zeros(5, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="v must be writeable"):
        update_kernels.adam_step(params, np.zeros(5, np.float32), m, frozen, 0.1, 0.001, 1e-8,
                                 1e-3)
    with pytest.raises(ValueError, match="grad must be a contiguous 1-d array of the parameters"):
        update_kernels.adam_step(params, np.zeros(5), m, v, 0.1, 0.001, 1e-8, 1e-3)
    assert not params.any() and not m.any() and not v.any()
    returns, flags = np.zeros(3), np.zeros(3, bool)
    with pytest.raises(ValueError, match="rewards has length 2, expected 3"):
        update_kernels.reward_scale_step(returns, np.ones(2), flags, flags, 0.9, 0, 0.0, 1.0,
                                         1e-8, 10.0)
    with pytest.raises(ValueError, match="real has length 4"):
        update_kernels.reward_scale_step(returns, np.ones(3), flags, np.zeros(4, bool), 0.9, 0,
                                         0.0, 1.0, 1e-8, 10.0)
    assert not returns.any()
    # arrays it does not take (float32 rewards, int flags) are left to the NumPy reference
    assert update_kernels.reward_scale_step(returns, np.ones(3, np.float32), flags, None, 0.9,
                                            0, 0.0, 1.0, 1e-8, 10.0) is None
    assert update_kernels.reward_scale_step(returns, np.ones(3), flags.astype(int), None, 0.9,
                                            0, 0.0, 1.0, 1e-8, 10.0) is None


def test_read_only_inputs_are_accepted():
    """The kernels take their inputs as arrays, not writable buffers: read-only ones (a
    checkpoint's, a frozen batch) work, and only what they write must be writeable."""
    def frozen(array):
        array.flags.writeable = False
        return array

    rng = np.random.default_rng(40)
    params, m, v = np.zeros(6), np.zeros(6), np.zeros(6)
    update_kernels.adam_step(params, frozen(rng.normal(size=6)), m, v, 0.1, 0.001, 1e-8, 1e-3)
    assert params.any()
    net = MLP((3, 5, 2), rng=1)
    x = frozen(rng.normal(size=(4, 3)))
    out, cache = net.forward(x)
    net.backward(cache, frozen(rng.normal(size=(4, 2))))
    dist = Categorical(frozen(rng.normal(size=(4, 3))))
    dist.param_grads(frozen(np.array([0, 1, 2, 1])), frozen(np.ones(4)), -0.1)
    assert update_kernels.clipped_surrogate(frozen(np.zeros(4)), frozen(np.zeros(4)),
                                            frozen(np.ones(4)), 0.2) is not None


def test_every_build_and_the_pure_numpy_switch_give_the_same_numbers(tmp_path):
    """A few hundred PPO minibatch steps on CartPole's shapes in three processes: the kernels
    this CPU gets (the AVX2 build where it runs), the baseline build (MINIPG_KERNELS=baseline),
    and none (MINIPG_PURE_NUMPY=1, the NumPy lines). The parameters and every statistic are the
    same, bit for bit."""
    script = textwrap.dedent("""
        import json
        import numpy as np
        from minipg.algos import ppo
        from minipg.algos.config import make_config
        from minipg.core.heads import join_params
        from minipg.core.optim import Adam
        from minipg.core.policies import CategoricalPolicy
        from minipg.core.returns import update_kernels
        from minipg.core.value import ValueFunction
        rng = np.random.default_rng(0)
        config = make_config(ppo.Config, ent_coef=0.01)
        policy = CategoricalPolicy(4, 3, (16, 16), rng=1, dtype="float32")
        value_fn = ValueFunction(4, (16, 16), rng=2, dtype="float32")
        optim = Adam(join_params(policy, value_fn), 3e-3, eps=1e-5)
        stats = []
        for step in range(300):
            obs = rng.normal(size=(1 + step, 4)).astype(np.float32)
            actions, old_log_prob = policy.distribution(obs).sample_with_log_prob(rng)
            old_log_prob += rng.normal(size=old_log_prob.shape).astype(np.float32) * 0.1
            advantages, returns = rng.normal(size=(2, 1 + step)).astype(np.float32)
            stats.append(ppo.minibatch_step(policy, value_fn, optim, obs, actions,
                                            old_log_prob, advantages, returns, config))
        print(json.dumps({"kernels": getattr(update_kernels, "__name__", None),
                          "params": optim.params.tolist(), "stats": stats}))
    """)
    runs = {}
    for name, switch in (("this CPU's", {}), ("baseline", {"MINIPG_KERNELS": "baseline"}),
                         ("numpy", {"MINIPG_PURE_NUMPY": "1"})):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIPG_")}
        done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=120,
                              env=dict(env, **switch), capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(done.stdout)
    assert runs["baseline"]["kernels"] == "minipg._update_kernels"
    assert runs["numpy"]["kernels"] is None
    assert runs["this CPU's"]["kernels"] in ("minipg._update_kernels",
                                            "minipg._update_kernels_avx2")
    for name in ("this CPU's", "baseline"):
        assert runs[name]["params"] == runs["numpy"]["params"]
        assert runs[name]["stats"] == runs["numpy"]["stats"]

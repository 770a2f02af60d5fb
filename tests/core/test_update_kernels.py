"""The training step's compiled kernels (ext/_update_kernels.pyx) are their NumPy references,
bit for bit: Adam's step against Adam.step_reference, tanh's derivative in MLP.backward against
its three NumPy lines, the reward scaler's step against RewardScaler.scale_reference. Bit for bit, not to a tolerance: a training run must not change with the
build (tests compare with array_equal). Bad shapes raise ValueError instead of crashing.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minipg.core.nn as nn
from minipg.core.nn import MLP
from minipg.core.normalize import RewardScaler
from minipg.core.optim import Adam, clip_and_step
from minipg.core.returns import update_kernels


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_backward_kernel_is_the_numpy_reference_bit_for_bit(dtype, monkeypatch):
    rng = np.random.default_rng(2)
    net = MLP((5, 33, 17, 3), rng=1, dtype=dtype)
    _, cache = net.forward(rng.normal(size=(251, 5)) * 3)
    grad_out = rng.normal(size=(251, 3))
    grad_x, grad = net.backward(cache, grad_out)
    monkeypatch.setattr(nn, "update_kernels", None)   # the NumPy lines
    grad_x_reference, grad_reference = net.backward(cache, grad_out)
    np.testing.assert_array_equal(grad, grad_reference)
    np.testing.assert_array_equal(grad_x, grad_x_reference)


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
    with pytest.raises(ValueError, match="h's rows"):
        update_kernels.tanh_backward(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="h's columns"):
        update_kernels.tanh_backward(np.zeros((3, 2)), np.zeros((3, 5)))
    assert not params.any() and not m.any() and not v.any()
    returns, flags = np.zeros(3), np.zeros(3, np.uint8)
    with pytest.raises(ValueError, match="rewards has length 2, expected 3"):
        update_kernels.reward_scale_step(returns, np.ones(2), flags, flags, 0.9, 0, 0.0, 1.0,
                                         1e-8, 10.0, np.zeros(3))
    with pytest.raises(ValueError, match="scaled has length 4"):
        update_kernels.reward_scale_step(returns, np.ones(3), flags, flags, 0.9, 0, 0.0, 1.0,
                                         1e-8, 10.0, np.zeros(4))
    assert not returns.any()


def test_pure_numpy_switch_runs_the_references_with_the_same_numbers(tmp_path):
    """MINIPG_PURE_NUMPY=1 turns the update kernels off too; the numbers do not change."""
    script = textwrap.dedent("""
        import json
        import numpy as np
        from minipg.core.returns import update_kernels
        from minipg.core.nn import MLP
        from minipg.core.optim import Adam
        rng = np.random.default_rng(0)
        net = MLP((4, 16, 2), rng=1, dtype=np.float32)
        _, cache = net.forward(rng.normal(size=(31, 4)))
        _, grad = net.backward(cache, rng.normal(size=(31, 2)))
        optim = Adam(net.params, 1e-2)
        for _ in range(5):
            optim.step(grad)
        print(json.dumps({"kernels": update_kernels is not None,
                          "params": net.params.tolist()}))
    """)
    runs = {}
    for switch in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=120,
                              env=dict(os.environ, MINIPG_PURE_NUMPY=switch),
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        runs[switch] = json.loads(done.stdout)
    assert runs["0"]["kernels"] and not runs["1"]["kernels"]
    assert runs["0"]["params"] == runs["1"]["params"]

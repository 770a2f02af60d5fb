"""The returns contract (docs/design.md, "Returns"), as executable statements.

    done_t  = terminated_t or truncated_t
    reward_to_go:  G_t = r_t + gamma * ((1 - done_t) * G_{t+1} + boot_t * next_values_t),  G_T = 0
                   boot_t = (1 - terminated_t) * (done_t or t == T - 1)
    gae:           delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
                   A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},             A_T = 0

Read top to bottom: small rollouts worked out by hand; the compiled kernels against the NumPy
reference on random rollouts (and on the shapes that select each loop order inside the kernel);
the two identities that tie GAE to reward-to-go; input layouts and dtypes; every bad input; the
backend switch; the raw kernel functions.
"""
import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipg.core.returns as R
from minipg import _kernels

PROPERTY = settings(max_examples=60, derandomize=True, deadline=None, database=None)


def _kernel_builds_that_run_here():
    """The baseline build always; the AVX2 build when it was built and this CPU can run it."""
    builds = {"baseline": _kernels}
    try:
        from minipg import _kernels_avx2
    except ImportError:
        return builds
    if _kernels.cpu_has_avx2():
        builds["avx2"] = _kernels_avx2
    return builds


# Every test that compares the compiled kernels with the reference runs on each build: the two
# are one source, but compiled differently, and each picks its own loop order at some shapes.
KERNEL_BUILDS = _kernel_builds_that_run_here()


@contextlib.contextmanager
def kernels_in_use(module):
    """The public functions call `module` inside the block."""
    saved, R._kernels = R._kernels, module
    try:
        yield
    finally:
        R._kernels = saved


@pytest.fixture(params=list(KERNEL_BUILDS))
def kernels(request):
    """Each kernel build in turn, also behind the public functions."""
    with kernels_in_use(KERNEL_BUILDS[request.param]):
        yield KERNEL_BUILDS[request.param]

def _reference_reward_to_go(rewards, terminated, truncated, gamma, next_values=None):
    """The NumPy reference, called like the public function (it expects validated arrays)."""
    return R.reward_to_go_reference(
        np.asarray(rewards, float), np.asarray(terminated, bool), np.asarray(truncated, bool),
        gamma, None if next_values is None else np.asarray(next_values, float))


def _reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    return R.gae_reference(
        np.asarray(rewards, float), np.asarray(values, float), np.asarray(next_values, float),
        np.asarray(terminated, bool), np.asarray(truncated, bool), gamma, lam)


# Both must reproduce the hand-computed numbers: the public functions (the compiled kernel) and
# the NumPy reference, so that the reference really is one.
IMPLEMENTATIONS = {"compiled": (R.reward_to_go, R.gae),
                   "reference": (_reference_reward_to_go, _reference_gae)}


def rollout(seed, T, N=None, dtype=np.float64, p_terminated=0.15, p_truncated=0.1):
    """A random (T, N) rollout (or (T,) if N is None) with episode ends of both kinds."""
    rng = np.random.default_rng(seed)
    shape = (T,) if N is None else (T, N)
    return dict(
        rewards=rng.normal(size=shape).astype(dtype),
        values=rng.normal(size=shape).astype(dtype),
        next_values=rng.normal(size=shape).astype(dtype),
        terminated=rng.random(shape) < p_terminated,
        truncated=rng.random(shape) < p_truncated,
    )


def assert_close(actual, expected):
    """Equal up to rounding: the kernels reassociate some sums (two time steps at once)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    tol = 1000 * np.finfo(expected.dtype).eps                  # 2e-13 float64, 1.2e-4 float32
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def compiled_rtg(ro, gamma, with_next_values=True, **kw):
    return R.reward_to_go(ro["rewards"], ro["terminated"], ro["truncated"], gamma,
                          ro["next_values"] if with_next_values else None, **kw)


def reference_rtg(ro, gamma, with_next_values=True):
    return R.reward_to_go_reference(ro["rewards"], ro["terminated"], ro["truncated"], gamma,
                                    ro["next_values"] if with_next_values else None)


def compiled_gae(ro, gamma, lam, **kw):
    return R.gae(ro["rewards"], ro["values"], ro["next_values"], ro["terminated"],
                 ro["truncated"], gamma, lam, **kw)


def reference_gae(ro, gamma, lam):
    return R.gae_reference(ro["rewards"], ro["values"], ro["next_values"], ro["terminated"],
                           ro["truncated"], gamma, lam)


# ============================================================================================
# 1. Worked by hand
# ============================================================================================

@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_three_step_episode_that_terminates(impl):
    reward_to_go, _ = IMPLEMENTATIONS[impl]
    # r = 1, 2, 3 and gamma = 0.9:  G_2 = 3,  G_1 = 2 + 0.9 * 3 = 4.7,  G_0 = 1 + 0.9 * 4.7 = 5.23
    G = reward_to_go([1.0, 2.0, 3.0], [0, 0, 1], [0, 0, 0], 0.9)
    np.testing.assert_allclose(G, [5.23, 4.7, 3.0], rtol=1e-12)
    # A terminal state is worth 0: next_values is never used, not at the end, not inside.
    G = reward_to_go([1.0, 2.0, 3.0], [0, 0, 1], [0, 0, 0], 0.9, next_values=[10.0, 20.0, 30.0])
    np.testing.assert_allclose(G, [5.23, 4.7, 3.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("truncated_at_end", [1, 0])   # time limit, or the rollout just stops
def test_three_step_episode_cut_off_bootstraps(impl, truncated_at_end):
    reward_to_go, _ = IMPLEMENTATIONS[impl]
    # Cut off with V(s_3) = 10:  G_2 = 3 + 0.9 * 10 = 12,  G_1 = 2 + 0.9 * 12 = 12.8,
    # G_0 = 1 + 0.9 * 12.8 = 12.52. next_values inside the episode (7, 8) must not be used.
    G = reward_to_go([1.0, 2.0, 3.0], [0, 0, 0], [0, 0, truncated_at_end], 0.9,
                     next_values=[7.0, 8.0, 10.0])
    np.testing.assert_allclose(G, [12.52, 12.8, 12.0], rtol=1e-12)
    # Without next_values the cut-off episode is plain Monte Carlo within the segment.
    G = reward_to_go([1.0, 2.0, 3.0], [0, 0, 0], [0, 0, truncated_at_end], 0.9)
    np.testing.assert_allclose(G, [5.23, 4.7, 3.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_three_step_gae_terminated_vs_truncated(impl):
    _, gae = IMPLEMENTATIONS[impl]
    r, v, nv = [1.0, 2.0, 3.0], [0.5, 1.0, 1.5], [1.0, 1.5, 2.0]     # nv_t = V(s_{t+1})
    # gamma = 0.9, lam = 0.8, gamma * lam = 0.72.
    # Terminated: delta = (1 + 0.9*1.0 - 0.5, 2 + 0.9*1.5 - 1.0, 3 + 0 - 1.5) = (1.4, 2.35, 1.5)
    #   A_2 = 1.5,  A_1 = 2.35 + 0.72 * 1.5 = 3.43,  A_0 = 1.4 + 0.72 * 3.43 = 3.8696
    A = gae(r, v, nv, [0, 0, 1], [0, 0, 0], 0.9, 0.8)
    np.testing.assert_allclose(A, [3.8696, 3.43, 1.5], rtol=1e-12)
    # Truncated: the last delta bootstraps, delta_2 = 3 + 0.9 * 2.0 - 1.5 = 3.3
    #   A_2 = 3.3,  A_1 = 2.35 + 0.72 * 3.3 = 4.726,  A_0 = 1.4 + 0.72 * 4.726 = 4.80272
    A = gae(r, v, nv, [0, 0, 0], [0, 0, 1], 0.9, 0.8)
    np.testing.assert_allclose(A, [4.80272, 4.726, 3.3], rtol=1e-12)


# A (4, 2) rollout, gamma = 0.5. Environment 0 terminates at t = 1 and starts a new episode that
# the rollout cuts at t = 3. Environment 1 is truncated at t = 2 (next_values[2, 1] = 70 is the
# value of its final observation) and starts a new episode at t = 3.
MIDDLE = dict(
    rewards=[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]],
    values=[[1.0, 10.0]] * 4,
    next_values=[[5.0, 50.0], [6.0, 60.0], [7.0, 70.0], [8.0, 80.0]],
    terminated=[[0, 0], [1, 0], [0, 0], [0, 0]],
    truncated=[[0, 0], [0, 0], [0, 1], [0, 0]],
)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_episode_end_in_the_middle_of_a_two_env_rollout(impl):
    reward_to_go, gae = IMPLEMENTATIONS[impl]
    m = MIDDLE
    G = reward_to_go(m["rewards"], m["terminated"], m["truncated"], 0.5, next_values=m["next_values"])
    # env 0: G_3 = 4 + .5*8 = 8, G_2 = 3 + .5*8 = 7, G_1 = 2 (terminal), G_0 = 1 + .5*2 = 2
    # env 1: G_3 = 40 + .5*80 = 80, G_2 = 30 + .5*70 = 65 (truncated: bootstrap, not G_3),
    #        G_1 = 20 + .5*65 = 52.5, G_0 = 10 + .5*52.5 = 36.25
    np.testing.assert_allclose(G, [[2.0, 36.25], [2.0, 52.5], [7.0, 65.0], [8.0, 80.0]])
    G = reward_to_go(m["rewards"], m["terminated"], m["truncated"], 0.5)
    # no bootstrap: env 0: 4, 3 + 2 = 5, 2, 2;  env 1: 40, 30, 20 + 15 = 35, 10 + 17.5 = 27.5
    np.testing.assert_allclose(G, [[2.0, 27.5], [2.0, 35.0], [5.0, 30.0], [4.0, 40.0]])
    A = gae(m["rewards"], m["values"], m["next_values"], m["terminated"], m["truncated"], 0.5, 0.5)
    # gamma * lam = .25.  env 0: delta = (1 + 2.5 - 1, 2 + 0 - 1, 3 + 3.5 - 1, 4 + 4 - 1) = (2.5, 1, 5.5, 7)
    #   A_3 = 7, A_2 = 5.5 + .25*7 = 7.25, A_1 = 1, A_0 = 2.5 + .25*1 = 2.75
    # env 1: delta = (10 + 25 - 10, 20 + 30 - 10, 30 + 35 - 10, 40 + 40 - 10) = (25, 40, 55, 70)
    #   A_3 = 70, A_2 = 55, A_1 = 40 + .25*55 = 53.75, A_0 = 25 + .25*53.75 = 38.4375
    np.testing.assert_allclose(A, [[2.75, 38.4375], [1.0, 53.75], [7.25, 55.0], [7.0, 70.0]])


# ============================================================================================
# 2. Compiled kernels == NumPy reference
# ============================================================================================

rollout_params = dict(
    seed=st.integers(0, 2**32 - 1),
    T=st.integers(0, 40),
    N=st.one_of(st.none(), st.integers(1, 40)),          # None: a 1-d (T,) rollout
    dtype=st.sampled_from([np.float32, np.float64]),
    p_end=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    gamma=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
    lam=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
)


@PROPERTY
@given(**rollout_params)
def test_compiled_matches_reference_on_random_rollouts(seed, T, N, dtype, p_end, gamma, lam):
    ro = rollout(seed, T, N, dtype, p_terminated=p_end, p_truncated=p_end / 2)
    for module in KERNEL_BUILDS.values():
        with kernels_in_use(module):
            assert_close(compiled_gae(ro, gamma, lam), reference_gae(ro, gamma, lam))
            assert_close(compiled_rtg(ro, gamma), reference_rtg(ro, gamma))
            assert_close(compiled_rtg(ro, gamma, with_next_values=False),
                         reference_rtg(ro, gamma, with_next_values=False))


# The kernel picks its loop by shape: one scalar recursion per column for N <= 4 (in blocks of
# 4096 rows, two time steps per iteration, so odd and even counts matter); groups of 8
# environments for 8 <= N <= 15 (baseline build) or 31 (AVX2 build), in blocks of 1024 // N rows,
# the last group overlapping when 8 does not divide N; rows in chunks of 256 bytes (32 float64
# or 64 float32 environments) otherwise. These shapes cross every seam.
LOOP_SHAPES = [(1, 1), (2, 1), (5, 2), (6, 3), (7, 4), (4097, 1), (8200, 3), (50, 5), (40, 8),
               (300, 8), (300, 13), (1, 9), (100, 15), (70, 16), (100, 23), (100, 31),
               (30, 32), (30, 33), (20, 64), (20, 65), (11, 100), (9, 300)]


# Long rollouts run once, in float64, to keep the suite fast.
@pytest.mark.parametrize("T, N, dtype", [(T, N, dtype) for T, N in LOOP_SHAPES
                                         for dtype in (np.float32, np.float64)
                                         if T <= 1000 or dtype == np.float64])
def test_every_loop_order_matches_reference(kernels, T, N, dtype):
    ro = rollout(T * 1000 + N, T, N, dtype, p_terminated=0.02, p_truncated=0.01)
    assert_close(compiled_gae(ro, 0.99, 0.95), reference_gae(ro, 0.99, 0.95))
    assert_close(compiled_rtg(ro, 0.99), reference_rtg(ro, 0.99))
    assert_close(compiled_rtg(ro, 0.99, with_next_values=False),
                 reference_rtg(ro, 0.99, with_next_values=False))


def test_inputs_are_not_modified():
    ro = rollout(0, 30, 5)
    before = {k: v.copy() for k, v in ro.items()}
    compiled_gae(ro, 0.9, 0.9), compiled_rtg(ro, 0.9)
    for k in ro:
        np.testing.assert_array_equal(ro[k], before[k])


def test_next_values_none_means_zero():
    ro = rollout(1, 25, 3)
    ro_zero = dict(ro, next_values=np.zeros_like(ro["next_values"]))
    np.testing.assert_array_equal(compiled_rtg(ro, 0.9, with_next_values=False),
                                  compiled_rtg(ro_zero, 0.9))
    assert not np.allclose(compiled_rtg(ro, 0.9), compiled_rtg(ro_zero, 0.9))   # it does matter


# ============================================================================================
# 3. The identities
# ============================================================================================

@PROPERTY
@given(**rollout_params)
def test_gae_lambda_one_plus_values_is_reward_to_go(seed, T, N, dtype, p_end, gamma, lam):
    ro = rollout(seed, T, N, dtype, p_terminated=p_end, p_truncated=p_end / 2)
    # Make the critic consistent inside episodes: next_values[t] = values[t+1] unless done_t
    # (there, and at the last row, next_values is the value of the true next state: any number).
    done = ro["terminated"] | ro["truncated"]
    inside = ~done[:-1]
    ro["next_values"][:-1][inside] = ro["values"][1:][inside]
    A = compiled_gae(ro, gamma, 1.0)
    G = compiled_rtg(ro, gamma)
    assert_close(A + ro["values"], G)


@PROPERTY
@given(**rollout_params)
def test_gae_lambda_zero_is_td_residual(seed, T, N, dtype, p_end, gamma, lam):
    ro = rollout(seed, T, N, dtype, p_terminated=p_end, p_truncated=p_end / 2)
    nonterminal = (~ro["terminated"]).astype(dtype)
    delta = ro["rewards"] + gamma * nonterminal * ro["next_values"] - ro["values"]
    assert_close(compiled_gae(ro, gamma, 0.0), delta.astype(dtype))


# ============================================================================================
# 4. Layouts and dtypes: any array-like; non-contiguous input is copied, never misread
# ============================================================================================

def _layouts(x):
    """The same (T, N) values in other memory layouts."""
    T, N = x.shape
    wide = np.zeros((2 * T, N), x.dtype)
    wide[::2] = x
    transposed = np.ascontiguousarray(x.T).T          # x.T of an (N, T) array: Fortran order
    readonly = x.copy()
    readonly.flags.writeable = False
    return {"C": x, "F": np.asfortranarray(x), "every other row": wide[::2],
            "transpose of (N, T)": transposed, "read-only": readonly,
            "column slice": np.hstack([x, x])[:, N:], "list of lists": x.tolist()}


@pytest.mark.parametrize("layout", ["C", "F", "every other row", "transpose of (N, T)",
                                    "read-only", "column slice", "list of lists"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts_give_identical_results(layout, dtype):
    ro = rollout(7, 37, 6, dtype)
    other = {k: _layouts(v)[layout] for k, v in ro.items()}
    if layout == "list of lists":                     # lists carry no dtype: Python floats are float64
        ro = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in ro.items()}
    expected_gae, expected_rtg = compiled_gae(ro, 0.97, 0.9), compiled_rtg(ro, 0.97)
    np.testing.assert_array_equal(compiled_gae(other, 0.97, 0.9), expected_gae)
    np.testing.assert_array_equal(compiled_rtg(other, 0.97), expected_rtg)


def test_one_dimensional_equals_single_column():
    ro = rollout(3, 50, None)
    column = {k: v[:, None] for k, v in ro.items()}
    A, G = compiled_gae(ro, 0.9, 0.8), compiled_rtg(ro, 0.9)
    assert A.shape == (50,) and G.shape == (50,)
    np.testing.assert_array_equal(A, compiled_gae(column, 0.9, 0.8)[:, 0])
    np.testing.assert_array_equal(G, compiled_rtg(column, 0.9)[:, 0])


@pytest.mark.parametrize("rewards_dtype, other_dtype, expected", [
    (np.float32, np.float64, np.float32),     # the output follows rewards, not values
    (np.float64, np.float32, np.float64),
    (np.int64, np.float32, np.float64),       # non-float rewards are promoted to float64
    (np.bool_, np.float64, np.float64),
    (np.float16, np.float16, np.float64),
])
def test_output_dtype_follows_rewards(rewards_dtype, other_dtype, expected):
    ro = rollout(4, 12, 3)
    ro["rewards"] = (ro["rewards"] > 0).astype(rewards_dtype)
    ro["values"] = ro["values"].astype(other_dtype)
    ro["next_values"] = ro["next_values"].astype(other_dtype)
    assert compiled_gae(ro, 0.9, 0.9).dtype == expected
    assert compiled_rtg(ro, 0.9).dtype == expected
    assert compiled_rtg(ro, 0.9, with_next_values=False).dtype == expected


@pytest.mark.parametrize("flag_dtype", [np.uint8, np.int64, np.int8])
def test_integer_flags_are_accepted_as_zero_one(flag_dtype):
    ro = rollout(5, 20, 4)
    as_int = dict(ro, terminated=ro["terminated"].astype(flag_dtype),
                  truncated=ro["truncated"].astype(flag_dtype))
    np.testing.assert_array_equal(compiled_gae(as_int, 0.9, 0.9), compiled_gae(ro, 0.9, 0.9))
    np.testing.assert_array_equal(compiled_rtg(as_int, 0.9), compiled_rtg(ro, 0.9))


def test_big_endian_input():
    ro = rollout(6, 15, 3)
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) if v.dtype.kind == "f" else v
               for k, v in ro.items()}
    np.testing.assert_array_equal(compiled_gae(swapped, 0.9, 0.9), compiled_gae(ro, 0.9, 0.9))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (5, 0), (10**9, 0)])
def test_empty_rollouts(shape):
    z, f = np.zeros(shape), np.zeros(shape, bool)
    assert R.gae(z, z, z, f, f, 0.9, 0.9).shape == shape
    assert R.reward_to_go(z, f, f, 0.9).shape == shape
    assert R.reward_to_go(z, f, f, 0.9, next_values=z).shape == shape


# ============================================================================================
# 5. Bad input: a Python exception that names the argument, before any compiled code runs
# ============================================================================================

def _gae_args(T=4, N=3):
    ro = rollout(11, T, N)
    return dict(rewards=ro["rewards"], values=ro["values"], next_values=ro["next_values"],
                terminated=ro["terminated"], truncated=ro["truncated"], gamma=0.9, lam=0.9)


def _rtg_args(T=4, N=3):
    a = _gae_args(T, N)
    return dict(rewards=a["rewards"], terminated=a["terminated"], truncated=a["truncated"],
                gamma=0.9, next_values=a["next_values"])


FUNCTIONS = {"gae": (R.gae, _gae_args), "reward_to_go": (R.reward_to_go, _rtg_args)}
ARRAYS = {"gae": ["rewards", "values", "next_values", "terminated", "truncated"],
          "reward_to_go": ["rewards", "terminated", "truncated", "next_values"]}
FLOAT_ARRAYS = {"gae": ["rewards", "values", "next_values"],
                "reward_to_go": ["rewards", "next_values"]}


def _call_with(fn, name, value, error, **kw):
    function, make_args = FUNCTIONS[fn]
    args = make_args()
    args[name] = value
    with pytest.raises(error, match=rf"^{name} "):
        function(**args, **kw)


@pytest.mark.parametrize("fn, name", [(f, n) for f in ARRAYS for n in ARRAYS[f] if n != "rewards"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 2), (4,), (4, 3, 1)])
def test_shape_mismatch(fn, name, shape):
    # rewards is (4, 3); (4,) is a 1-d rollout of the right length and still a mismatch.
    _call_with(fn, name, np.zeros(shape, bool if name in ("terminated", "truncated") else float),
               ValueError)


@pytest.mark.parametrize("fn, name", [(f, n) for f in ARRAYS for n in ARRAYS[f]])
@pytest.mark.parametrize("value", [np.float64(1.0), np.zeros((2, 2, 2)), 1],
                         ids=["0-d", "3-d", "scalar"])
def test_wrong_ndim(fn, name, value):
    if name in ("terminated", "truncated"):
        value = np.asarray(value).astype(bool)
    _call_with(fn, name, value, ValueError)


@pytest.mark.parametrize("fn, name", [(f, n) for f in FLOAT_ARRAYS for n in FLOAT_ARRAYS[f]])
@pytest.mark.parametrize("value", [
    np.array([["a", "b", "c"]] * 4),
    np.ones((4, 3), dtype=object),
    np.ones((4, 3), dtype=complex),
    np.array([[np.datetime64("2024-01-01")] * 3] * 4),
    [[1.0, 2.0, 3.0], [1.0, 2.0], [1.0], []],           # ragged
], ids=["strings", "object", "complex", "datetime", "ragged"])
def test_non_numeric_dtype(fn, name, value):
    _call_with(fn, name, value, TypeError)


@pytest.mark.parametrize("fn, name", [(f, n) for f in FLOAT_ARRAYS for n in FLOAT_ARRAYS[f]])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_unless_check_finite_false(fn, name, bad):
    function, make_args = FUNCTIONS[fn]
    args = make_args()
    args[name] = args[name].copy()
    args[name][2, 1] = bad
    with pytest.raises(ValueError, match=rf"^{name} contains a non-finite value .*\(2, 1\)"):
        function(**args)
    out = function(**args, check_finite=False)          # accepted, and the value propagates
    assert not np.isfinite(out[2, 1])
    assert np.isfinite(out[3]).all()                     # later steps never depend on it


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_nan_with_check_finite_false_reaches_only_earlier_steps_of_its_environment(backend):
    # NaN reward at t = 2 in environment 0, whose first episode terminated at t = 1. The flags
    # multiply (0 * NaN = NaN), so the NaN reaches every earlier step of environment 0, across
    # the episode end; later steps and environment 1 are untouched.
    r = np.arange(12.0).reshape(6, 2)
    r[2, 0] = np.nan
    terminated, truncated = np.zeros((6, 2), bool), np.zeros((6, 2), bool)
    terminated[1, 0] = True
    if backend == "compiled":
        G = R.reward_to_go(r, terminated, truncated, 0.9, check_finite=False)
    else:
        G = R.reward_to_go_reference(r, terminated, truncated, 0.9)
    assert np.isnan(G[:3, 0]).all() and np.isfinite(G[3:, 0]).all() and np.isfinite(G[:, 1]).all()
    np.testing.assert_allclose(G[3:, 0], [6 + 0.9 * 8 + 0.81 * 10, 8 + 0.9 * 10, 10])


@pytest.mark.parametrize("fn, coefficient", [("gae", "gamma"), ("gae", "lam"),
                                             ("reward_to_go", "gamma")])
@pytest.mark.parametrize("value, error", [(-0.1, ValueError), (1.0001, ValueError),
                                          (np.nan, ValueError), (np.inf, ValueError),
                                          ("0.9", TypeError), (None, TypeError),
                                          (True, TypeError), (0.5 + 0j, TypeError)])
def test_gamma_and_lam_must_be_in_unit_interval(fn, coefficient, value, error):
    _call_with(fn, coefficient, value, error)


@pytest.mark.parametrize("fn, name", [(f, n) for f in FUNCTIONS for n in ("terminated", "truncated")])
@pytest.mark.parametrize("value, error", [
    (np.full((4, 3), 2), ValueError),                    # not 0/1
    (np.full((4, 3), -1), ValueError),
    (np.full((4, 3), 255, np.uint8), ValueError),
    (np.zeros((4, 3)), TypeError),                       # float flags, even if 0.0/1.0
    (np.ones((4, 3), np.float32), TypeError),
    (np.array([["yes"] * 3] * 4), TypeError),
], ids=["two", "minus-one", "uint8-255", "float64", "float32", "strings"])
def test_bad_flags(fn, name, value, error):
    _call_with(fn, name, value, error)


def test_gae_next_values_is_required():
    args = _gae_args()
    args["next_values"] = None
    with pytest.raises(TypeError, match="^next_values "):
        R.gae(**args)


# ============================================================================================
# 6. The backend switch
# ============================================================================================

def test_normal_import_uses_the_fastest_build_this_cpu_runs():
    assert R.BACKEND == "cython"
    expected = "avx2" if "avx2" in KERNEL_BUILDS else "baseline"
    assert R.KERNELS == expected
    assert R._kernels is KERNEL_BUILDS[expected]
    assert R._kernels.instruction_set() == expected


def _import_returns_with(env_value, tmp_path):
    script = "import minipg.core.returns as R; print(R.BACKEND, R.KERNELS)"
    env = dict(os.environ, MINIPG_KERNELS=env_value)
    return subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def test_minipg_kernels_baseline_forces_the_baseline_build(tmp_path):
    done = _import_returns_with("baseline", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cython", "baseline"]


def test_minipg_kernels_avx2_is_the_avx2_build_or_a_clear_error(tmp_path):
    done = _import_returns_with("avx2", tmp_path)
    if "avx2" in KERNEL_BUILDS:
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["cython", "avx2"]
    else:                                  # not x86-64, not built, or the CPU lacks AVX2
        assert done.returncode != 0
        assert "ImportError: MINIPG_KERNELS=avx2, but" in done.stderr


def test_minipg_kernels_rejects_unknown_values(tmp_path):
    done = _import_returns_with("sse9", tmp_path)
    assert done.returncode != 0
    assert "MINIPG_KERNELS must be auto, baseline or avx2, got 'sse9'" in done.stderr


def test_pure_numpy_backend_in_a_subprocess(tmp_path):
    script = textwrap.dedent("""
        import json, numpy as np, minipg.core.returns as R
        rng = np.random.default_rng(0)
        r, v, nv = rng.normal(size=(3, 64, 5))
        te, tr = rng.random((2, 64, 5)) < 0.1
        print(json.dumps({"backend": R.BACKEND,
                          "gae": R.gae(r, v, nv, te, tr, 0.99, 0.95).tolist(),
                          "rtg": R.reward_to_go(r, te, tr, 0.99, next_values=nv).tolist()}))
    """)
    env = dict(os.environ, MINIPG_PURE_NUMPY="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["backend"] == "numpy"
    rng = np.random.default_rng(0)
    r, v, nv = rng.normal(size=(3, 64, 5))
    te, tr = rng.random((2, 64, 5)) < 0.1
    assert_close(np.array(result["gae"]), R.gae(r, v, nv, te, tr, 0.99, 0.95))
    assert_close(np.array(result["rtg"]), R.reward_to_go(r, te, tr, 0.99, next_values=nv))


# ============================================================================================
# 7. The raw kernels: they trust returns.py for dtypes and values, but never crash on shapes
# ============================================================================================

def _kernel_args(T=6, N=5, dtype=np.float64):
    ro = rollout(12, T, N, dtype)
    return [ro["rewards"], ro["values"], ro["next_values"], ro["terminated"].view(np.uint8),
            ro["truncated"].view(np.uint8)]


@pytest.mark.parametrize("position, name", [(1, "values"), (2, "next_values"),
                                            (3, "terminated"), (4, "truncated"), (7, "out")])
@pytest.mark.parametrize("bad_shape", [(5, 5), (6, 4), (7, 5), (0, 0)])
def test_kernel_gae_rejects_mismatched_shapes(kernels, position, name, bad_shape):
    r, v, nv, te, tr = _kernel_args()
    args = [r, v, nv, te, tr, 0.9, 0.9, np.empty_like(r)]
    dtype = np.uint8 if name in ("terminated", "truncated") else np.float64
    args[position] = np.zeros(bad_shape, dtype)
    with pytest.raises(ValueError, match=f"^{name} has shape"):
        kernels.gae(*args)


@pytest.mark.parametrize("position, name", [(1, "next_values"), (3, "terminated"),
                                            (4, "truncated"), (6, "out")])
def test_kernel_reward_to_go_rejects_mismatched_shapes(kernels, position, name):
    r, _, nv, te, tr = _kernel_args()
    args = [r, nv, True, te, tr, 0.9, np.empty_like(r)]
    args[position] = np.zeros((3, 5), np.uint8 if name in ("terminated", "truncated") else np.float64)
    with pytest.raises(ValueError, match=f"^{name} has shape"):
        kernels.reward_to_go(*args)


def test_kernel_rejects_what_it_cannot_read(kernels):
    r, v, nv, te, tr = _kernel_args()
    out = np.empty_like(r)
    with pytest.raises(TypeError):                                   # None is not an array
        kernels.gae(r, v, None, te, tr, 0.9, 0.9, out)
    with pytest.raises(ValueError):                                  # not C-contiguous
        kernels.gae(r, v, np.asfortranarray(nv), te, tr, 0.9, 0.9, out)
    with pytest.raises((TypeError, ValueError)):                     # mixed float dtypes
        kernels.gae(r, v, nv, te, tr, 0.9, 0.9, out.astype(np.float32))
    with pytest.raises(ValueError):                                  # read-only output
        readonly = np.empty_like(r)
        readonly.flags.writeable = False
        kernels.gae(r, v, nv, te, tr, 0.9, 0.9, readonly)
    for num_threads in (0, -1, 257):
        with pytest.raises(ValueError, match="num_threads"):
            kernels.gae(r, v, nv, te, tr, 0.9, 0.9, out, num_threads)


@pytest.mark.parametrize("T, N", [(30, 5), (50, 40), (20, 300), (3, 1000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_threads_give_the_serial_result(kernels, T, N, dtype):
    r, v, nv, te, tr = _kernel_args(T, N, dtype)
    serial, threaded = np.empty_like(r), np.empty_like(r)
    kernels.gae(r, v, nv, te, tr, 0.99, 0.95, serial)
    kernels.gae(r, v, nv, te, tr, 0.99, 0.95, threaded, 2)
    np.testing.assert_array_equal(threaded, serial)          # environments are independent
    kernels.reward_to_go(r, nv, True, te, tr, 0.99, serial)
    kernels.reward_to_go(r, nv, True, te, tr, 0.99, threaded, 3)
    np.testing.assert_array_equal(threaded, serial)


def test_kernel_reads_bool_flags_as_their_bytes(kernels):
    r, v, nv, te, tr = _kernel_args()
    from_uint8, from_bool = np.empty_like(r), np.empty_like(r)
    kernels.gae(r, v, nv, te, tr, 0.9, 0.9, from_uint8)
    kernels.gae(r, v, nv, te.view(bool), tr.view(bool), 0.9, 0.9, from_bool)
    np.testing.assert_array_equal(from_bool, from_uint8)


def test_kernel_ignores_next_values_shape_when_not_used(kernels):
    r, _, _, te, tr = _kernel_args()
    out = np.empty_like(r)
    kernels.reward_to_go(r, np.zeros((1, 1)), False, te, tr, 0.9, out)   # placeholder
    expected = R.reward_to_go(r, te.view(bool), tr.view(bool), 0.9)
    np.testing.assert_array_equal(out, expected)

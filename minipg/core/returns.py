"""Discounted reward-to-go and generalised advantage estimation (GAE).

Shapes, stated once: every array is (T,) or (T, N), time first, environments second. Rewards,
values and next_values are float32 or float64 and the result has the dtype of `rewards`
(integer rewards are promoted to float64). terminated and truncated are bool flags (integer
0/1 arrays are accepted too).

Two flags, never one. An episode can end in two ways:
- terminated_t: the MDP reached a terminal state; its value is 0 by definition.
- truncated_t: a time limit cut the episode; the state after it still had a future, worth
  V(s_{t+1}), so we bootstrap from it.
done_t = terminated_t or truncated_t decides where the recursion stops; only terminated_t
decides whether the value of the next state counts.

next_values[t] = V(s_{t+1}) is the value of the TRUE next state: for a truncated step, the final
observation of the episode (not the reset observation that a vector env returns in its place);
at the last row, the value of the state the rollout stopped in (the bootstrap value).

    reward_to_go:  G_t = r_t + gamma * ((1 - done_t) * G_{t+1} + boot_t * next_values_t),  G_T = 0
                   boot_t = (1 - terminated_t) * (done_t or t == T - 1)
    gae:           delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
                   A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},              A_T = 0

check_finite=True (the default) rejects NaN and inf in the inputs. With check_finite=False the
arithmetic is IEEE and the flags multiply, exactly as written above: 0 * NaN is NaN, so a NaN
reaches every earlier step of its environment, across episode ends (never other environments).

The public functions validate their input, then call the compiled kernel: minipg._kernels, or
on x86-64 CPUs with AVX2 the same source compiled for AVX2 (minipg._kernels_avx2; KERNELS says
which, MINIPG_KERNELS=baseline forces the other). The functions `reward_to_go_reference` and `gae_reference` below are the same recurrences written
as plain NumPy loops: read those to learn, the tests hold the kernels to them.
"""
import importlib
import numbers
import os

import numpy as np

_BUILD_HINT = (
    "Install the package with `pip install .` (or `pip install -e .` for development) so that "
    "Cython compiles ext/_kernels.pyx. If you are running from the repository root after a plain "
    "`pip install .`, Python imports the source tree, which has no compiled module: use "
    "`pip install -e .` or run from another directory. To use the slow NumPy reference on "
    "purpose, set MINIPG_PURE_NUMPY=1."
)


def _load_kernels(choice):
    """The compiled kernels for this CPU. choice (MINIPG_KERNELS): "auto" takes the AVX2 build
    when it exists and the CPU runs AVX2 and FMA, else the baseline build; "baseline" or "avx2"
    insist on one (an error if it cannot run here)."""
    if choice not in ("auto", "baseline", "avx2"):
        raise ValueError(f"MINIPG_KERNELS must be auto, baseline or avx2, got {choice!r}")
    try:
        from minipg import _kernels as baseline
    except ImportError as error:  # pragma: no cover - exercised by building without the extension
        raise ImportError("minipg's compiled kernels (minipg._kernels) are not built. "
                          + _BUILD_HINT) from error
    if choice == "baseline":
        return baseline
    try:
        from minipg import _kernels_avx2 as avx2
    except ImportError:
        avx2 = None                      # not x86-64, or built with MINIPG_NO_AVX2=1
    runs_here = avx2 is not None and baseline.cpu_has_avx2()
    if choice == "avx2" and not runs_here:
        raise ImportError("MINIPG_KERNELS=avx2, but "
                          + ("this CPU cannot run AVX2 and FMA instructions" if avx2 is not None
                             else "minipg._kernels_avx2 was not built (x86-64 only)"))
    return avx2 if runs_here else baseline


if os.environ.get("MINIPG_PURE_NUMPY", "") not in ("", "0"):
    _kernels = None
    BACKEND = "numpy"
    KERNELS = None
    update_kernels = None
else:
    _kernels = _load_kernels(os.environ.get("MINIPG_KERNELS", "auto"))
    BACKEND = "cython"
    KERNELS = _kernels.instruction_set()     # "avx2" or "baseline"
    # The update step's kernels follow the same switch (ext/_update_kernels.pyx, used by
    # minipg.core.optim, .normalize, .nn and .distributions; bit for bit their NumPy
    # references, which MINIPG_PURE_NUMPY=1 runs instead).
    # Their AVX2 build goes with the return kernels' (the same numbers, wider loops).
    update_kernels = importlib.import_module("minipg._update_kernels_avx2" if KERNELS == "avx2"
                                             else "minipg._update_kernels")

__all__ = ["reward_to_go", "gae", "reward_to_go_reference", "gae_reference", "BACKEND", "KERNELS"]


# --------------------------------------------------------------------------------------------
# The NumPy reference: the recurrences exactly as written above, one time step per iteration.
# --------------------------------------------------------------------------------------------

def reward_to_go_reference(rewards, terminated, truncated, gamma, next_values=None):
    """G_t = r_t + gamma * ((1 - done_t) * G_{t+1} + boot_t * next_values_t); validated inputs."""
    T = rewards.shape[0]
    G = np.zeros_like(rewards)
    G_next = np.zeros(rewards.shape[1:], rewards.dtype)   # G_T = 0
    for t in reversed(range(T)):
        done = terminated[t] | truncated[t]
        cut = done | (t == T - 1)                         # the segment also ends at the last row
        boot = cut & ~terminated[t]                       # bootstrap only where cut off, not terminal
        future = (~done).astype(rewards.dtype) * G_next
        if next_values is not None:
            future = future + boot.astype(rewards.dtype) * next_values[t]
        G[t] = rewards[t] + gamma * future
        G_next = G[t]
    return G


def gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam):
    """A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}; validated inputs."""
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    A_next = np.zeros(rewards.shape[1:], rewards.dtype)   # A_T = 0
    for t in reversed(range(T)):
        nonterminal = (~terminated[t]).astype(rewards.dtype)
        not_done = (~(terminated[t] | truncated[t])).astype(rewards.dtype)
        delta = rewards[t] + gamma * nonterminal * next_values[t] - values[t]
        advantages[t] = delta + gamma * lam * not_done * A_next
        A_next = advantages[t]
    return advantages


# --------------------------------------------------------------------------------------------
# Input checks: every mistake becomes a Python exception naming the argument, before any
# compiled code runs.
# --------------------------------------------------------------------------------------------

def _as_float_array(name, x, dtype=None, check_finite=True):
    try:
        array = np.asarray(x)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {error}") from error
    if dtype is None:
        if array.dtype.kind == "f" and array.dtype.itemsize >= 4:
            dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float64
        elif array.dtype.kind in "biuf":
            dtype = np.float64
        else:
            raise TypeError(f"{name} must be a real numeric array (float32 or float64), "
                            f"got dtype {array.dtype}")
    elif array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-d (T,) or 2-d (T, N), got {array.ndim}-d with shape "
                         f"{array.shape}")
    array = np.ascontiguousarray(array, dtype=dtype)
    if check_finite and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} contains a non-finite value (NaN or inf) at index "
                         f"{tuple(int(i) for i in bad)}; pass check_finite=False to skip this check")
    return array


def _as_flags(name, x):
    try:
        array = np.asarray(x)
    except Exception as error:
        raise TypeError(f"{name} could not be converted to an array: {error}") from error
    if array.dtype.kind == "b":
        pass
    elif array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() > 1):   # (np.isin is 250x slower)
            raise ValueError(f"{name} must hold only 0/1 (or bool); found other values")
        array = array != 0
    else:
        raise TypeError(f"{name} must be a bool array (or integer 0/1), got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-d (T,) or 2-d (T, N), got {array.ndim}-d with shape "
                         f"{array.shape}")
    return np.ascontiguousarray(array, dtype=np.bool_)


def _check_coefficient(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _check_same_shape(reference_shape, **arrays):
    for name, array in arrays.items():
        if array.shape != reference_shape:
            raise ValueError(f"{name} has shape {array.shape} but rewards has shape "
                             f"{reference_shape}; all arrays must be (T,) or (T, N) alike")


def _as_2d(array):
    """(T,) -> (T, 1), a view: the kernels only know (T, N). (reshape(T, -1) fails at T = 0.)"""
    return array.reshape(-1, 1) if array.ndim == 1 else array


# --------------------------------------------------------------------------------------------
# The public functions.
# --------------------------------------------------------------------------------------------

def reward_to_go(rewards, terminated, truncated, gamma, next_values=None, *, check_finite=True):
    """Discounted reward-to-go over a (T,) or (T, N) rollout.

        G_t = r_t + gamma * ((1 - done_t) * G_{t+1} + boot_t * next_values_t),   G_T = 0
        boot_t = (1 - terminated_t) * (done_t or t == T - 1)

    With next_values=None the bootstrap term is 0: pure Monte Carlo returns within the segment.
    With next_values, an episode cut off by truncation or by the end of the segment is completed
    with the value of its true next state. Returns an array shaped and typed like `rewards`.
    """
    gamma = _check_coefficient("gamma", gamma)
    rewards = _as_float_array("rewards", rewards, check_finite=check_finite)
    terminated = _as_flags("terminated", terminated)
    truncated = _as_flags("truncated", truncated)
    arrays = dict(terminated=terminated, truncated=truncated)
    if next_values is not None:
        next_values = _as_float_array("next_values", next_values, rewards.dtype, check_finite)
        arrays["next_values"] = next_values
    _check_same_shape(rewards.shape, **arrays)

    if rewards.size == 0:                                 # T = 0 or N = 0: nothing to compute
        return np.zeros_like(rewards)
    if _kernels is None:
        return reward_to_go_reference(rewards, terminated, truncated, gamma, next_values)
    out = np.empty_like(rewards)
    has_next_values = next_values is not None
    _kernels.reward_to_go(
        _as_2d(rewards), _as_2d(next_values if has_next_values else rewards), has_next_values,
        _as_2d(terminated.view(np.uint8)), _as_2d(truncated.view(np.uint8)), gamma, _as_2d(out))
    return out


def gae(rewards, values, next_values, terminated, truncated, gamma, lam, *, check_finite=True):
    """Generalised advantage estimates over a (T,) or (T, N) rollout.

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   A_T = 0

    lam = 0 gives the TD residual delta_t; lam = 1 gives reward_to_go(..., next_values) - values.
    Returns an array shaped and typed like `rewards`.
    """
    gamma = _check_coefficient("gamma", gamma)
    lam = _check_coefficient("lam", lam)
    rewards = _as_float_array("rewards", rewards, check_finite=check_finite)
    values = _as_float_array("values", values, rewards.dtype, check_finite)
    next_values = _as_float_array("next_values", next_values, rewards.dtype, check_finite)
    terminated = _as_flags("terminated", terminated)
    truncated = _as_flags("truncated", truncated)
    _check_same_shape(rewards.shape, values=values, next_values=next_values,
                      terminated=terminated, truncated=truncated)

    if rewards.size == 0:
        return np.zeros_like(rewards)
    if _kernels is None:
        return gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam)
    out = np.empty_like(rewards)
    _kernels.gae(_as_2d(rewards), _as_2d(values), _as_2d(next_values),
                 _as_2d(terminated.view(np.uint8)), _as_2d(truncated.view(np.uint8)),
                 gamma, lam, _as_2d(out))
    return out

"""What an environment may return: finite numbers, small enough for the training arithmetic.

A NaN or an inf from the env cannot be learned from, and neither can a finite number so large
that the first sums of squares the update computes overflow. The trainer stores observations
and rewards in the networks' arithmetic (float32 or float64, largest number M: 3.4e38 or
1.8e308) and computes, over a batch of B transitions:

    the value loss and the advantage statistics   sum_i (G_i - V_i)^2,  G_i <= H * max|r|
    Adam's second moment of the first layer       (sum_i o_i g_i)^2,    |g_i| <~ 1

where H is the number of rewards a return sums (the rollout's T steps, or an episode's step
limit). Both stay below M while

    max|r| <= sqrt(M / B) / H        max|o| <= sqrt(M) / B

(float32, B = 512, H = 32: rewards up to 2.5e16, observations up to 3.6e16). An env output
beyond these bounds is the env's to fix (rescale it with a gymnasium wrapper), not a setting
of the learning rate: the error says so, instead of an overflow later in the update that would
look like a step size too large.
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["OutputLimits", "output_limits", "env_output_problem", "step_output_problem"]


@dataclass(frozen=True)
class OutputLimits:
    """The largest magnitude accepted from the env (the module docstring derives them)."""
    obs: float
    reward: float
    dtype: str
    why: str = ""
    """What the limits are, for the error ("": the training arithmetic's bound derived above)."""


def output_limits(dtype, batch_size, horizon):
    """OutputLimits for arithmetic in `dtype` over batches of batch_size transitions whose
    returns sum at most `horizon` rewards."""
    largest = float(np.finfo(dtype).max)
    batch_size, horizon = max(int(batch_size), 1), max(int(horizon), 1)
    return OutputLimits(obs=float(np.sqrt(largest)) / batch_size,
                        reward=float(np.sqrt(largest / batch_size)) / horizon,
                        dtype=np.dtype(dtype).name)


def env_output_problem(name, array, limit, t=None, why=None):
    """The error text for the first NaN, inf or value beyond `limit` in an env output, or None.

    One pass over the array when all is well (NaN fails the comparison too); the index is
    looked for only when something is wrong. why: what the limit is, for a value beyond it
    (default: the training arithmetic's bound derived above).
    """
    # The usual case: one pass, no copy. Compared as a Python float: a float32 maximum compared
    # with a limit beyond float32's range would cast the limit to inf (and pass an inf).
    if float(np.abs(array).max(initial=0.0)) <= limit:
        return None
    array = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        what = "a non-finite value"
    else:
        index = tuple(int(i) for i in np.argwhere(np.abs(array) > limit)[0])
        what = "a value too large to train on"
    where = index if t is None else (t, *index)
    message = (f"the environment returned {what}: {name}[{where}] = {array[index]:.6g}"
               + (f" (env {index[0]})" if index else ""))
    if what != "a non-finite value":
        message += "; " + (why or (
            f"minipg trains on {name} up to {limit:.3g} in magnitude here (beyond, the "
            "update's sums of squares overflow: minipg/envs/outputs.py)")) + (
            "; rescale them with a gymnasium wrapper")
    return message


def step_output_problem(obs, rewards, limits, t=None):
    """env_output_problem for what one reset or step returned: its observations first, then
    its rewards (None for a reset), against `limits` (OutputLimits)."""
    return (env_output_problem("observations", obs, limits.obs, t, limits.why or None)
            or (None if rewards is None else
                env_output_problem("rewards", rewards, limits.reward, t, limits.why or None)))

"""What the networks with a head share: observations as rows, the cache a backward reads, the
flat state of a network, and one vector for several networks.

Shapes: observations are (..., obs_dim) with any leading batch dims, e.g. (B, obs_dim), time-first
(T, N, obs_dim), or one observation (obs_dim,). The network sees rows (B, obs_dim); everything
per sample keeps the leading dims. as_rows, run by every forward, checks shape and dtype only (a
few attribute reads): whether the numbers are finite is checked where they enter -- the rollout
collector checks what the env returns, `act` what a user passes (check_finite_obs).
"""
import json

import math

import numpy as np

__all__ = ["HIDDEN_GAIN", "Cache", "as_rows", "check_finite_obs", "check_rows", "check_vector",
           "join_params", "Stateful"]

HIDDEN_GAIN = np.sqrt(2.0)


def as_rows(obs, obs_dim):
    """Observations (..., obs_dim) as rows (B, obs_dim), plus their leading shape."""
    obs = np.asarray(obs)
    if obs.dtype.kind not in "fiub":
        raise TypeError(f"obs must be a real numeric array, got dtype {obs.dtype}")
    if obs.ndim == 0 or obs.shape[-1] != obs_dim:
        raise ValueError(f"obs must have shape (..., {obs_dim}) (last dim = obs_dim), got shape "
                         f"{obs.shape}")
    if obs.size == 0:
        raise ValueError(f"obs is an empty batch (shape {obs.shape}); need at least one row")
    return obs.reshape(-1, obs_dim), obs.shape[:-1]


def check_finite_obs(obs, obs_dim):
    """obs as an array, checked like as_rows and also scanned for NaN and inf: for the entry
    points that take a user's raw observations (policy.act), not for forward/distribution,
    whose input the caller has checked (the rollout collector checks what the env returns)."""
    obs = np.asarray(obs)
    as_rows(obs, obs_dim)                     # shape and dtype first: isfinite needs numbers
    if not np.isfinite(obs).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(obs))[0])
        raise ValueError(f"obs contains a non-finite value (NaN or inf) at index {bad}")
    return obs


def check_rows(name, grad, batch_shape, event_shape):
    """grad (batch_shape + event_shape) as rows (B, prod(event_shape)) for the network."""
    grad = np.asarray(grad)
    shape = tuple(batch_shape) + tuple(event_shape)
    if grad.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (the batch of the forward pass that "
                         f"made the cache), got shape {grad.shape}")
    return grad.reshape(-1, math.prod(event_shape))


class Cache:
    """What a policy's or value function's backward needs from its forward: the network's
    cache, the leading batch shape of the observations, and (Gaussian policy) where the
    log_std clamp let the gradient through."""

    __slots__ = ("net", "batch_shape", "log_std_inside")

    def __init__(self, net, batch_shape, log_std_inside=None):
        self.net, self.batch_shape, self.log_std_inside = net, batch_shape, log_std_inside


def check_vector(vector, params):
    """vector as a 1-d array laid out like params (same length), in params' dtype."""
    vector = np.asarray(vector)
    if vector.dtype.kind not in "fiu":
        raise TypeError(f"vector must be a real numeric array, got dtype {vector.dtype}")
    if vector.shape != params.shape:
        raise ValueError(f"vector must be laid out like params, shape {params.shape}, got shape "
                         f"{vector.shape}")
    return np.ascontiguousarray(vector, dtype=params.dtype)


def join_params(*modules):
    """Move the parameters of several modules into one flat vector and return it.

    Each module's params becomes a view of its slice, in the order given (policy first, then
    value function: the layout of the concatenated gradients). One Adam pass and one global
    gradient-norm clip over the joint vector are the same math as one optimizer per network
    with the same settings (Adam is elementwise), at half the calls.
    """
    dtypes = {m.params.dtype for m in modules}
    if len(dtypes) != 1:
        raise ValueError(f"modules must share one dtype to share a vector, got "
                         f"{sorted(map(str, dtypes))}")
    params = np.concatenate([m.params for m in modules])
    offset = 0
    for module in modules:
        size = module.params.size
        module.live_in(params[offset:offset + size])
        offset += size
    return params



class Stateful:
    """state(): a network's flat params plus its constructor's config, as numpy arrays -- what a
    checkpoint stores (minipg.run.checkpoint writes and rebuilds them; no network touches a file)."""

    def state(self, prefix=""):
        """{prefix + "params": copy of params, prefix + "config": JSON string of kind + config}.

        A prefix ("policy/", "value/") lets one .npz hold several objects and other entries.
        """
        config = json.dumps({"kind": self.kind, **self.config})
        return {prefix + "params": self.params.copy(), prefix + "config": np.array(config)}

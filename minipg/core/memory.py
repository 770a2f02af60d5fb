"""Memory: what a run or an evaluation will allocate, estimated before anything is, and refused
in one line (naming the setting) when it cannot fit in this machine's memory.

The estimate counts the largest arrays only, in bytes of the networks' dtype (itemsize s):

    a network        P = sum_l (n_{l-1} + 1) n_l  parameters (sizes obs_dim, hidden..., out),
                     held NETWORK_COPIES times: the parameters, a gradient, Adam's two moments,
                     the snapshot of the last iteration                 NETWORK_COPIES * P * s
    a batch of B     per row: the observation, the action and ROW_SCALARS scalars (log_prob,
    rows             values, next_values, rewards, advantages, returns) in the buffers, and the
                     activations of one network's forward pass over the whole batch (the
                     critic's, run on the rollout at once; or the policy's, updated on it),
                     sum(hidden)            B * (obs_dim + action_dim + ROW_SCALARS
                                                 + sum(hidden)) * s

with B = num_steps * num_envs for a rollout and B = episodes for an evaluation (run together,
one env each). Everything else a run allocates comes on top, so the estimate is below the real
need: a run refused here could never have finished.

The limit is the machine's physical memory, os.sysconf("SC_PAGE_SIZE") *
os.sysconf("SC_PHYS_PAGES"); where it cannot be read nothing is refused, and a MemoryError later
is still reported in one line by the CLI.
"""
import os

__all__ = ["NETWORK_COPIES", "ROW_SCALARS", "physical_memory", "network_params", "check_fits",
           "batch_bytes", "human_bytes"]

NETWORK_COPIES = 5
ROW_SCALARS = 6


def physical_memory():
    """Bytes of physical memory, or None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def network_params(sizes):
    """P = sum_l (n_{l-1} + 1) n_l, the parameters of an MLP with layer sizes `sizes`
    (MLP.count_params, without building it)."""
    sizes = [int(n) for n in sizes]
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def batch_bytes(rows, obs_dim, action_dim, hidden_sizes, itemsize):
    """Bytes of a batch of `rows` rows and a forward pass over it (module docstring)."""
    per_row = obs_dim + action_dim + ROW_SCALARS + sum(hidden_sizes)
    return rows * per_row * itemsize


def human_bytes(n):
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000


def check_fits(needed, what, limit=None):
    """ValueError if `needed` bytes exceed the physical memory (or `limit`); `what` names the
    settings that ask for them, e.g. "num_steps * num_envs = 10,000 x 16 transitions"."""
    limit = physical_memory() if limit is None else limit
    if limit is not None and needed > limit:
        raise ValueError(f"{what} need about {human_bytes(needed)} of memory, more than this "
                         f"machine's {human_bytes(limit)} (the estimate: minipg/core/memory.py); "
                         "choose smaller values")

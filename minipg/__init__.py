"""minipg: policy gradients from scratch in NumPy.

Importing minipg loads the compiled return kernels (minipg._kernels). If they are missing the
import fails with an ImportError that says how to build them; MINIPG_PURE_NUMPY=1 opts into the
plain NumPy reference instead.
"""
from minipg import returns  # noqa: F401  (fails early and clearly if the extension is missing)

__version__ = "0.1.0"
__all__ = ["returns", "train", "load", "__version__"]


def train(env_id, algo, total_steps, seed, run_dir=None, **hyperparameters):
    """Train `algo` ("ppo", "a2c", "reinforce") on `env_id`; see minipg.trainer.train."""
    from minipg.trainer import train as _train
    return _train(env_id, algo, total_steps, seed, run_dir=run_dir, **hyperparameters)


def load(path):
    """Load the policy saved in a checkpoint .npz; see minipg.trainer.load."""
    from minipg.trainer import load as _load
    return _load(path)

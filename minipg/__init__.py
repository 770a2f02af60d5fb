"""minipg: policy gradients from scratch in NumPy.

Importing minipg loads the compiled return kernels (minipg._kernels). If they are missing the
import fails with an ImportError that says how to build them; MINIPG_PURE_NUMPY=1 opts into the
plain NumPy reference instead.
"""
from minipg import returns  # noqa: F401  (fails early and clearly if the extension is missing)

__version__ = "0.1.0"
__all__ = ["returns", "train", "load", "__version__"]


def train(env_id=None, algo=None, total_steps=None, seed=None, run_dir=None, callback=None,
          resume=None, overwrite=False, **hyperparameters):
    """Train `algo` ("ppo", "a2c", "reinforce") on `env_id`, or continue a run with
    resume=RUN_DIR; see minipg.trainer.train."""
    from minipg.trainer import train as _train
    return _train(env_id, algo, total_steps, seed, run_dir=run_dir, callback=callback,
                  resume=resume, overwrite=overwrite, **hyperparameters)


def load(path, rng=None):
    """The policy saved in a checkpoint .npz or a run directory; see minipg.checkpoint.load."""
    from minipg.checkpoint import load as _load
    return _load(path, rng)

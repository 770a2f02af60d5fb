"""minipg: policy gradients from scratch in NumPy.

Importing minipg loads the compiled return kernels (minipg._kernels). If they are missing the
import fails with an ImportError that says how to build them; MINIPG_PURE_NUMPY=1 opts into the
plain NumPy reference instead.
"""
from minipg import returns  # noqa: F401  (fails early and clearly if the extension is missing)

__version__ = "0.1.0"
__all__ = ["returns", "train", "evaluate", "load", "__version__"]


def train(env=None, algo=None, total_steps=None, seed=None, run_dir=None, callback=None,
          resume=None, overwrite=False, **hyperparameters):
    """Train `algo` ("ppo", "a2c", "reinforce", "trpo", "grpo") on `env` (a registered id, or a
    callable that returns a gymnasium.Env), or continue a run with resume=RUN_DIR; see
    minipg.trainer.train."""
    from minipg.trainer import train as _train
    return _train(env, algo, total_steps, seed, run_dir=run_dir, callback=callback,
                  resume=resume, overwrite=overwrite, **hyperparameters)


def evaluate(policy_or_checkpoint, env=None, episodes=20, seed=0, deterministic=False,
             max_episode_steps=None):
    """Returns of `episodes` evaluation episodes, as an array: a policy, or a checkpoint / run
    directory (env defaults to the run's), on an env id or factory; see minipg.envs.evaluate."""
    from minipg.envs import evaluate as _evaluate
    return _evaluate(policy_or_checkpoint, env, episodes, seed=seed, deterministic=deterministic,
                     max_episode_steps=max_episode_steps)


def load(path, rng=None):
    """The policy saved in a checkpoint .npz or a run directory; see minipg.checkpoint.load."""
    from minipg.checkpoint import load as _load
    return _load(path, rng)

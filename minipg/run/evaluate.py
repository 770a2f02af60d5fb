"""Evaluating a policy or a saved run: `minipg.evaluate` and `minipg eval`'s policy and env.

A policy object is evaluated as it is; a checkpoint path or run directory gives its policy (with
its observation statistics) and, unless given, the env and step limit of the run that saved it.
"""
import os
import warnings

from minipg.envs.episodes import run_episodes
from minipg.run.checkpoint import read_checkpoint

__all__ = ["resolve", "evaluate"]

POLICY_ATTRIBUTES = ("act", "kind", "obs_dim")
"""What an evaluation reads of a policy object: act(obs), and what checks it fits the env (kind
"categorical" with n_actions, or "gaussian" with action_dim; obs_dim)."""


def resolve(policy_or_checkpoint, env=None, max_episode_steps=None):
    """(policy, env, max_episode_steps) for an evaluation: a policy object is used as it is; a
    checkpoint path or run directory gives its policy (with its observation statistics), and,
    when env or max_episode_steps is None, the env and step limit of the run that saved it."""
    if not isinstance(policy_or_checkpoint, (str, bytes, os.PathLike)):
        missing = [name for name in POLICY_ATTRIBUTES if not hasattr(policy_or_checkpoint, name)]
        if missing:
            raise TypeError(f"policy_or_checkpoint must be a policy, a checkpoint .npz or a run "
                            f"directory, got {type(policy_or_checkpoint).__name__} (a policy "
                            f"object needs {', '.join(POLICY_ATTRIBUTES)}; it lacks "
                            f"{', '.join(missing)})")
        if env is None:
            raise TypeError("evaluating a policy object needs env (an id or a factory)")
        return policy_or_checkpoint, env, max_episode_steps
    saved = read_checkpoint(policy_or_checkpoint)
    config = saved.config() if saved.has("policy/params", "config") else None
    if env is None:
        if config is None:
            raise ValueError(f"{saved.path} holds a policy without a training config: give env")
        if config.env_factory:
            raise ValueError(f"{saved.path} was trained on an env made by the factory "
                             f"{config.env_factory}: pass that factory as env")
        env = config.env_id
    if max_episode_steps is None and config is not None:
        max_episode_steps = config.eval_max_episode_steps
    return saved.policy(), env, max_episode_steps


def evaluate(policy_or_checkpoint, env=None, episodes=20, seed=0, deterministic=False, rng=None,
             max_episode_steps=None):
    """Undiscounted returns of `episodes` episodes (run_episodes), as an array.

    policy_or_checkpoint: a policy, or a checkpoint .npz / run directory (its policy, with its
    observation normalisation; env defaults to the one the run trained on). env: a registered
    id or a factory returning a gymnasium.Env. A RuntimeWarning says how many episodes the step
    limit cut.
    """
    policy, env, max_episode_steps = resolve(policy_or_checkpoint, env, max_episode_steps)
    result = run_episodes(policy, env, episodes, seed, deterministic, rng, max_episode_steps)
    if result.limit_note():
        warnings.warn(result.limit_note(), RuntimeWarning, stacklevel=2)
    return result.returns

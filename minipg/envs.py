"""Environments: making them, checking that a policy fits one, and evaluating a policy on one.

minipg's policies are MLPs: they need a flat Box observation space, and act in a Discrete space
(CategoricalPolicy; a Discrete(n, start=k) space receives the policy's index plus k) or a 1-d
Box (GaussianPolicy). Anything else is refused with a message naming the env and its space,
before a network is built or a step is taken.

Evaluation runs `episodes` episodes at once, one per env of a vector env, and stops each at a
step limit: the env's own (CartPole-v1: 500) when it has one, else max_episode_steps. An env
whose episodes never end cannot hang it, and the result says how many episodes hit the limit.
"""
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from minipg.rollout import action_start
from minipg.speed import training_speed

DEFAULT_MAX_EPISODE_STEPS = 10_000


def make_env(env_id, num_envs):
    """A gymnasium VectorEnv: the NumPy-vectorized one where the env has it, else sync.

    An id gymnasium cannot make (unknown, or a missing dependency) is a ValueError naming it.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a registered gymnasium id (a str), got "
                        f"{type(env_id).__name__}")
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    except Exception:
        pass          # most envs register no vector entry point; N copies stepped in turn do
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    except gym.error.Error as error:
        raise ValueError(f"env_id {env_id!r} cannot be made: {error}") from error


def check_spaces(env, env_id):
    """ValueError unless the env's spaces are ones an MLP policy can handle (module docstring)."""
    obs_space, action_space = env.single_observation_space, env.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        shape = f" of shape {obs_space.shape}" if isinstance(obs_space, gym.spaces.Box) else ""
        raise ValueError(f"minipg's MLP policies need a flat Box observation space; {env_id} "
                         f"has {type(obs_space).__name__}{shape} ({obs_space}): flatten it "
                         "with a gymnasium wrapper (FlattenObservation) in a registered env")
    if isinstance(action_space, gym.spaces.Discrete):
        return
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return
    raise ValueError(f"unsupported action space {action_space} for {env_id}: minipg "
                     "handles Discrete and 1-d Box actions")


def describe_policy(policy):
    if policy.kind == "categorical":
        return f"{policy.obs_dim}-dim observations and Discrete({policy.n_actions}) actions"
    return f"{policy.obs_dim}-dim observations and {policy.action_dim}-dim Box actions"


def check_policy_fits(policy, env, env_id):
    """ValueError unless the policy was built for the env's observation and action spaces."""
    check_spaces(env, env_id)
    obs_space, action_space = env.single_observation_space, env.single_action_space
    if policy.kind == "categorical":
        fits = (isinstance(action_space, gym.spaces.Discrete)
                and int(action_space.n) == policy.n_actions)
    else:
        fits = (isinstance(action_space, gym.spaces.Box)
                and action_space.shape == (policy.action_dim,))
    if not fits or obs_space.shape != (policy.obs_dim,):
        raise ValueError(f"the policy was trained for {describe_policy(policy)}; {env_id} has "
                         f"observations {obs_space} and actions {action_space}")


def own_step_limit(env, env_id=None):
    """The env's own max_episode_steps (its registered time limit), or None."""
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None)
    if limit is None and env_id is not None:
        try:
            limit = gym.spec(env_id).max_episode_steps
        except gym.error.Error:
            limit = None
    return limit


@dataclass
class Evaluation:
    """Undiscounted returns and lengths of the evaluation episodes, one per env."""
    returns: np.ndarray
    lengths: np.ndarray
    hit_limit: np.ndarray
    """True for the episodes stopped by `step_limit` rather than by the env."""
    step_limit: int

    def limit_note(self):
        """A sentence about the step limit if any episode hit it, else ""."""
        hit = int(self.hit_limit.sum())
        if not hit:
            return ""
        return (f"{hit} of {len(self.returns)} episodes hit the step limit of "
                f"{self.step_limit:,} steps and were cut there")


def run_episodes(policy, env_id, episodes, seed=0, deterministic=False, rng=None,
                 max_episode_steps=None):
    """Evaluation of `episodes` episodes, run together (one per env of a vector env).

    Each env counts only its first episode. An episode ends when the env ends it or after
    max_episode_steps steps (default: the env's own limit, else DEFAULT_MAX_EPISODE_STEPS).
    """
    if not isinstance(episodes, (int, np.integer)) or isinstance(episodes, bool) \
            or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    env = make_env(env_id, int(episodes))
    try:
        check_policy_fits(policy, env, env_id)
        limit = (max_episode_steps if max_episode_steps is not None
                 else own_step_limit(env, env_id) or DEFAULT_MAX_EPISODE_STEPS)
        if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {limit!r}")
        start = action_start(env.single_action_space)
        rng = np.random.default_rng(seed) if rng is None else rng
        obs, _ = env.reset(seed=seed)
        returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
        running = np.ones(episodes, bool)
        hit_limit = np.zeros(episodes, bool)
        with training_speed():
            while running.any():
                actions = policy.act(obs, deterministic=deterministic, rng=rng)
                obs, rewards, terminated, truncated, _ = env.step(actions + start if start
                                                                  else actions)
                returns += np.where(running, rewards, 0.0)
                lengths += running
                running &= ~(terminated | truncated)
                cut = running & (lengths >= limit)
                hit_limit |= cut
                running &= ~cut
    finally:
        env.close()
    return Evaluation(returns, lengths, hit_limit, int(limit))


def evaluate(policy, env_id, episodes, seed=0, deterministic=False, rng=None,
             max_episode_steps=None):
    """Undiscounted returns of `episodes` episodes (see run_episodes), as an array.

    A RuntimeWarning says how many episodes the step limit cut.
    """
    result = run_episodes(policy, env_id, episodes, seed, deterministic, rng, max_episode_steps)
    if result.limit_note():
        warnings.warn(result.limit_note(), RuntimeWarning, stacklevel=2)
    return result.returns

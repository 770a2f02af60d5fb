"""Evaluating a policy on an env: `episodes` episodes at once, one per env of a vector env.

Each episode stops at a step limit: the env's own (CartPole-v1: 500) when it has one, else
max_episode_steps. An env whose episodes never end cannot hang it, and the result says how many
episodes hit the limit. Before a step is taken, the policy is checked to fit the env's spaces.
"""
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from minipg.core.memory import batch_bytes, check_fits
from minipg.core.speed import training_speed
from minipg.envs.make import check_spaces, env_name, env_spec, make_env
from minipg.envs.outputs import OutputLimits, step_output_problem
from minipg.envs.rollout import action_start

__all__ = ["Evaluation", "run_episodes", "check_policy_fits", "DEFAULT_MAX_EPISODE_STEPS"]

DEFAULT_MAX_EPISODE_STEPS = 10_000


def describe_policy(policy):
    if policy.kind == "categorical":
        return f"{policy.obs_dim}-dim observations and Discrete({policy.n_actions}) actions"
    return f"{policy.obs_dim}-dim observations and {policy.action_dim}-dim Box actions"


def _policy_dtype(policy):
    """The dtype of the policy's parameters (float64 for a policy object without them)."""
    params = getattr(policy, "params", None)
    return params.dtype if isinstance(params, np.ndarray) else np.dtype(np.float64)


def _evaluation_limits(policy):
    """OutputLimits of an evaluation: no NaN or inf, and observations within the range of the
    policy's arithmetic (beyond, the policy would see an inf and blame its own input)."""
    dtype = _policy_dtype(policy)
    largest = float(np.finfo(dtype).max)
    return OutputLimits(obs=largest, reward=float(np.finfo(np.float64).max), dtype=dtype.name,
                        why=f"the policy computes in {dtype.name}, whose largest number is "
                            f"{largest:.3g}")


def _check_outputs(obs, rewards, limits, t=None):
    """FloatingPointError naming the env's output (step_output_problem), with the advice."""
    problem = step_output_problem(obs, rewards, limits, t)
    if problem is not None:
        raise FloatingPointError(problem + "; check the environment")


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
    if limit is None and isinstance(env_id, str):
        try:
            limit = env_spec(env_id).max_episode_steps
        except ValueError:
            limit = None
    return limit


def _check_memory(policy, episodes):
    """ValueError if `episodes` episodes run together (one env each, the policy acting on all
    of them at once) cannot fit in this machine's memory (minipg/core/memory.py)."""
    # Read defensively: the policy's own checks come later, with the env (check_policy_fits).
    config = getattr(policy, "config", None)
    hidden = config.get("hidden_sizes", ()) if isinstance(config, dict) else ()
    obs_dim = getattr(policy, "obs_dim", 1)
    action_dim = getattr(policy, "action_dim", 1)
    itemsize = _policy_dtype(policy).itemsize
    if not all(isinstance(n, (int, np.integer)) for n in (obs_dim, action_dim, *hidden)):
        return
    needed = batch_bytes(episodes, obs_dim, action_dim, hidden, itemsize)
    check_fits(needed, f"episodes = {episodes:,} (run together, one env each)")


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


def run_episodes(policy, env, episodes, seed=0, deterministic=False, rng=None,
                 max_episode_steps=None):
    """Evaluation of `episodes` episodes, run together (one per env of a vector env).

    env is an id or a factory (make_env). Each env counts only its first episode. An episode
    ends when the env ends it or after max_episode_steps steps (default: the env's own limit,
    else DEFAULT_MAX_EPISODE_STEPS). policy.act takes the env's raw observations (a policy
    trained with norm_obs normalises them itself, with its statistics frozen).
    """
    if not isinstance(episodes, (int, np.integer)) or isinstance(episodes, bool) \
            or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    name = env_name(env) if isinstance(env, str) or callable(env) else None
    _check_memory(policy, int(episodes))
    vector_env = make_env(env, int(episodes))
    try:
        check_policy_fits(policy, vector_env, name)
        limit = (max_episode_steps if max_episode_steps is not None
                 else own_step_limit(vector_env, env) or DEFAULT_MAX_EPISODE_STEPS)
        if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {limit!r}")
        start = action_start(vector_env.single_action_space)
        rng = np.random.default_rng(seed) if rng is None else rng
        obs, _ = vector_env.reset(seed=seed)
        limits = _evaluation_limits(policy)
        _check_outputs(obs, None, limits)
        returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
        running = np.ones(episodes, bool)
        hit_limit = np.zeros(episodes, bool)
        with training_speed():
            t = 0                                  # steps taken: every episode starts together
            while running.any():
                actions = policy.act(obs, deterministic=deterministic, rng=rng)
                obs, rewards, terminated, truncated, _ = vector_env.step(
                    actions + start if start else actions)
                _check_outputs(obs, rewards, limits, t)
                t += 1
                returns += np.where(running, rewards, 0.0)
                lengths += running
                running &= ~(terminated | truncated)
                cut = running & (lengths >= limit)
                hit_limit |= cut
                running &= ~cut
    finally:
        vector_env.close()
    return Evaluation(returns, lengths, hit_limit, int(limit))

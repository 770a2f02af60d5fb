"""Environments: making them, checking that a policy fits one, and evaluating a policy on one.

minipg's policies are MLPs: they need a flat Box observation space, and act in a Discrete space
(CategoricalPolicy; a Discrete(n, start=k) space receives the policy's index plus k) or a 1-d
Box (GaussianPolicy). Anything else is refused with a message naming the env and its space,
before a network is built or a step is taken.

Evaluation runs `episodes` episodes at once, one per env of a vector env, and stops each at a
step limit: the env's own (CartPole-v1: 500) when it has one, else max_episode_steps. An env
whose episodes never end cannot hang it, and the result says how many episodes hit the limit.
"""
import os
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from minipg.rollout import action_start
from minipg.speed import training_speed

DEFAULT_MAX_EPISODE_STEPS = 10_000


VECTORIZATION = ("auto", "sync", "async")
"""How N copies of an env are stepped: "auto" uses the NumPy-vectorized env where the id
registers one (CartPole: all N in one array operation), else "sync"; "sync" steps the N copies
in turn in this process; "async" runs each in its own process (worth it for expensive envs)."""


def env_name(env):
    """A short name for an env given as an id (the id) or as a factory (its own name)."""
    if isinstance(env, str):
        return env
    target = getattr(env, "func", env)                  # functools.partial: the function
    name = getattr(target, "__name__", type(target).__name__)
    return "custom-env" if name == "<lambda>" else name


def factory_path(factory):
    """module.qualname of a factory (a class, a function, a partial's function, or the type of
    a callable object): what a run records to recognise the factory on a resume."""
    target = getattr(factory, "func", factory)
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{target.__module__}.{target.__qualname__}"


def make_env(env, num_envs, vectorization="auto"):
    """A gymnasium VectorEnv of num_envs copies of `env`, with NEXT_STEP autoreset.

    env is a registered id ("CartPole-v1", or "module:Id" to import the module that registers
    it first) or a factory: a callable with no arguments returning a gymnasium.Env, called once
    per copy (an env class the user wrote, a function that wraps gym.make, a lambda). The
    "async" vector env also calls it once in this process to read the spaces.

    An id gymnasium cannot make (unknown, or a missing dependency) is a ValueError naming it.
    An exception raised by a factory is raised as it is, never swallowed.
    """
    if vectorization not in VECTORIZATION:
        raise ValueError(f"vectorization must be one of {VECTORIZATION}, got {vectorization!r}")
    if isinstance(env, str):
        return _make_from_id(env, num_envs, vectorization)
    if not callable(env):
        raise TypeError(f"env must be a registered gymnasium id (a str) or a callable returning "
                        f"a gymnasium.Env, got {type(env).__name__}")
    env_fns = [_CheckedFactory(env)] * num_envs
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    vector_env = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    if len({id(sub_env) for sub_env in vector_env.envs}) < num_envs:
        vector_env.close()
        raise ValueError(f"the env factory {factory_path(env)} returned the same env object "
                         "more than once: it must make a new env on every call")
    return vector_env


def env_arguments(env, hyperparameters):
    """(env id or name, factory) from train()'s env and its env_id / env_factory keywords:
    env_id= alone is the older spelling of env=; with a factory it names the run (else the
    name is None here, and the factory's own for a new run)."""
    if "env_factory" in hyperparameters:
        raise TypeError("env_factory is recorded by minipg: pass the factory itself as env")
    env_id = hyperparameters.pop("env_id", None)
    if env is None or isinstance(env, str):
        if env is not None and env_id is not None:
            raise TypeError("give the env once: env or env_id, not both")
        return (env if env is not None else env_id), None
    if not callable(env):
        raise TypeError(f"env must be a registered gymnasium id (a str) or a callable returning "
                        f"a gymnasium.Env, got {type(env).__name__}")
    hyperparameters["env_factory"] = factory_path(env)
    return env_id, env


def _make_from_id(env_id, num_envs, vectorization):
    try:
        spec = gym.spec(env_id)
    except (gym.error.Error, ModuleNotFoundError) as error:
        raise ValueError(f"env_id {env_id!r} cannot be made: {error}") from error
    if vectorization == "auto":
        vectorization = "vector_entry_point" if spec.vector_entry_point else "sync"
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization)
    except gym.error.Error as error:
        raise ValueError(f"env_id {env_id!r} cannot be made: {error}") from error


class _CheckedFactory:
    """The factory, with what it returns checked to be a gymnasium.Env (picklable as long as
    the factory is, for the async vector env's worker processes)."""

    def __init__(self, factory):
        self.factory = factory

    def __call__(self):
        env = self.factory()
        if not isinstance(env, gym.Env):
            raise TypeError(f"the env factory {factory_path(self.factory)} must return a "
                            f"gymnasium.Env, got {type(env).__name__}")
        return env


def check_spaces(env, env_id):
    """ValueError unless the env's spaces are ones an MLP policy can handle (module docstring)."""
    obs_space, action_space = env.single_observation_space, env.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        shape = f" of shape {obs_space.shape}" if isinstance(obs_space, gym.spaces.Box) else ""
        raise ValueError(f"minipg's MLP policies need a flat Box observation space; {env_id} "
                         f"has {type(obs_space).__name__}{shape} ({obs_space}): flatten it "
                         "with a gymnasium wrapper (FlattenObservation) in an env factory")
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
    if limit is None and isinstance(env_id, str):
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
        returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
        running = np.ones(episodes, bool)
        hit_limit = np.zeros(episodes, bool)
        with training_speed():
            while running.any():
                actions = policy.act(obs, deterministic=deterministic, rng=rng)
                obs, rewards, terminated, truncated, _ = vector_env.step(
                    actions + start if start else actions)
                returns += np.where(running, rewards, 0.0)
                lengths += running
                running &= ~(terminated | truncated)
                cut = running & (lengths >= limit)
                hit_limit |= cut
                running &= ~cut
    finally:
        vector_env.close()
    return Evaluation(returns, lengths, hit_limit, int(limit))


def resolve(policy_or_checkpoint, env=None, max_episode_steps=None):
    """(policy, env, max_episode_steps) for an evaluation: a policy object is used as it is; a
    checkpoint path or run directory gives its policy (with its observation statistics), and,
    when env or max_episode_steps is None, the env and step limit of the run that saved it."""
    from minipg.checkpoint import read_checkpoint

    if not isinstance(policy_or_checkpoint, (str, bytes, os.PathLike)):
        if not hasattr(policy_or_checkpoint, "act"):
            raise TypeError(f"policy_or_checkpoint must be a policy, a checkpoint .npz or a run "
                            f"directory, got {type(policy_or_checkpoint).__name__}")
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

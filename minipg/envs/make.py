"""Environments: making vector envs from an id or a factory, and checking their spaces.

minipg's policies are MLPs: they need a flat Box observation space, and act in a Discrete space
(CategoricalPolicy; a Discrete(n, start=k) space receives the policy's index plus k) or a 1-d
Box (GaussianPolicy). Anything else is refused with a message naming the env and its space,
before a network is built or a step is taken.
"""
import importlib

import gymnasium as gym
from gymnasium.vector import AutoresetMode


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


def env_spec(env_id):
    """gymnasium's EnvSpec of a registered id; for "module:Id", the module is imported first
    (it registers Id on import: gymnasium's own convention, which gym.make follows and
    gym.spec does not). An id that cannot be found, or a module that cannot be imported, is a
    ValueError naming the id."""
    module, colon, name = env_id.rpartition(":")
    if colon:
        if not module or not name or ":" in module:
            raise ValueError(f"env_id {env_id!r} must be a registered id or module:Id")
        try:
            importlib.import_module(module)
        except Exception as error:          # not found, or the module's own code failed
            raise ValueError(f"env_id {env_id!r} cannot be made: importing the module "
                             f"{module!r} failed ({type(error).__name__}: {error})") from error
    try:
        return gym.spec(name)
    except (gym.error.Error, ModuleNotFoundError) as error:
        raise ValueError(f"env_id {env_id!r} cannot be made: {error}") from error


def run_name(env_id):
    """The env's part of a default run directory name: the id, with the characters that a
    file name cannot hold or that would make it a path ("/" of a namespace, "\\", the ":" of
    module:Id) replaced by "_"."""
    return "".join("_" if c in "/\\:" else c for c in env_id)


def _make_from_id(env_id, num_envs, vectorization):
    spec = env_spec(env_id)
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

"""The parts of a run, built from its config and its one seed: env, policy, critic, optimizer,
collector and the update's generator.

One seed, independent streams (numpy's SeedSequence.spawn): the policy's initial weights, the
value function's, action sampling (with the groups' reset seeds), and the update's own draws
(minibatch order). The env is made from the config's id, or from the factory the caller passes
(a Python object, which a config cannot hold). What the algorithm module says decides the rest:
`uses_critic(config)` (default: yes), `optimized_params(policy, value_fn)` (the vector its
optimizer moves; default: both networks' parameters in one vector), and COLLECTS, how its
batches are collected.
"""
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from minipg.core.heads import join_params
from minipg.core.memory import NETWORK_COPIES, batch_bytes, check_fits, network_params
from minipg.core.normalize import RewardScaler
from minipg.core.optim import Adam
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction
from minipg.envs.groups import GroupCollector
from minipg.envs.make import check_spaces, make_env
from minipg.envs.noise import ColouredNoise
from minipg.envs.rollout import RolloutCollector
from minipg.envs.whole_episodes import EpisodeCollector

__all__ = ["Parts", "build", "make_policy", "check_memory"]


def make_policy(env, config, rng):
    """CategoricalPolicy for a Discrete action space, GaussianPolicy for a Box."""
    check_spaces(env, config.env_id)
    obs_space, action_space = env.single_observation_space, env.single_action_space
    obs_dim = obs_space.shape[0]
    # GRPO's config has no observation normalisation: its fields are only the rollout configs'.
    norm_obs, clip_obs = getattr(config, "norm_obs", False), getattr(config, "clip_obs", 10.0)
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalPolicy(obs_dim, int(action_space.n), config.hidden_sizes,
                                 config.activation, rng, config.dtype, norm_obs, clip_obs,
                                 config.init)
    return GaussianPolicy(
        obs_dim, action_space.shape[0], config.hidden_sizes, config.activation,
        log_std_init=config.log_std_init, action_low=action_space.low,
        action_high=action_space.high, rng=rng, dtype=config.dtype, norm_obs=norm_obs,
        clip_obs=clip_obs, init=config.init)


@dataclass
class Parts:
    """Everything a run trains or steps, built from the config and its seed."""
    env: object
    policy: object
    value_fn: object
    optimizers: dict
    """{name: optimizer}, saved and restored by name (optim/<name>/... in the checkpoint)."""
    collector: object
    update_rng: object
    factory: object = None
    """The callable that made the env, or None for a registered id."""


def check_memory(config, module, obs_dim=1, action_dim=1, n_outputs=1):
    """ValueError naming the setting if the run's networks and batches cannot fit in this
    machine's memory (minipg/core/memory.py). Before the env exists, the dimensions default to
    1: a lower bound, checked again with the env's own once it is made."""
    uses_critic = getattr(module, "uses_critic", lambda config: True)(config)
    hidden, itemsize = list(config.hidden_sizes), np.dtype(config.dtype).itemsize
    params = network_params([obs_dim, *hidden, n_outputs]) + (
        network_params([obs_dim, *hidden, 1]) if uses_critic else 0)
    networks = NETWORK_COPIES * params * itemsize
    check_fits(networks, f"hidden_sizes {config.hidden_sizes}: networks of {params:,} "
                         "parameters")
    if module.COLLECTS == "groups":
        rows = config.num_groups * config.group_size        # at least one step per episode
        what = (f"num_groups * group_size = {config.num_groups:,} x {config.group_size:,} "
                "episodes per batch")
    else:
        rows = config.num_steps * config.num_envs
        what = (f"num_steps * num_envs = {config.num_steps:,} x {config.num_envs:,} = "
                f"{rows:,} transitions per batch")
    batch = batch_bytes(rows, obs_dim, action_dim, hidden, itemsize)
    check_fits(networks + batch, f"{what} (networks with hidden_sizes {config.hidden_sizes})")


def _space_dims(env):
    """(obs_dim, action_dim, policy outputs) of an env whose spaces check_spaces accepted."""
    action_space = env.single_action_space
    if isinstance(action_space, gym.spaces.Discrete):
        return env.single_observation_space.shape[0], 1, int(action_space.n)
    return env.single_observation_space.shape[0], action_space.shape[0], action_space.shape[0]


def build(config, module, factory=None):
    """The parts of a run; the env from `factory` when the run's env is made by one.

    What the run will allocate is checked against the machine's memory first (check_memory),
    before the env (N copies) and the networks exist, and again with the env's dimensions.
    """
    policy_seed, value_seed, sample_seed, update_seed = np.random.SeedSequence(config.seed).spawn(4)
    check_memory(config, module)
    env = make_env(factory or config.env_id, config.num_envs, config.vectorization)
    try:
        if module.COLLECTS == "groups" and not isinstance(env.single_action_space,
                                                          gym.spaces.Discrete):
            raise ValueError(f"{config.algo} needs Discrete actions (its policy is "
                             f"categorical); {config.env_id} has {env.single_action_space}")
        check_spaces(env, config.env_id)
        check_memory(config, module, *_space_dims(env))
        policy = make_policy(env, config, np.random.default_rng(policy_seed))
        uses_critic = getattr(module, "uses_critic", lambda config: True)(config)
        value_fn = (ValueFunction(policy.obs_dim, config.hidden_sizes, config.activation,
                                  np.random.default_rng(value_seed), config.dtype, config.init)
                    if uses_critic else None)
        # Both networks' parameters in one vector (policy first): one Adam pass updates both.
        # An algorithm that moves its policy itself names the optimizer's share: optimized_params.
        optimized_params = getattr(module, "optimized_params", None)
        params = (optimized_params(policy, value_fn) if optimized_params
                  else join_params(policy, value_fn) if value_fn else policy.params)
        optimizers = {"optim": Adam(params, config.learning_rate, eps=config.adam_eps)}
        sample_rng = np.random.default_rng(sample_seed)
        if module.COLLECTS == "groups":
            collector = GroupCollector(env, policy, config.num_groups, config.group_size,
                                       sample_rng)
        elif module.COLLECTS == "episodes":
            # num_steps is then the training episodes' time limit (reinforce.Config).
            collector = EpisodeCollector(env, policy, value_fn, config.num_steps, sample_rng,
                                         *_scaler_and_noise(env, policy, config))
        else:
            collector = _rollout_collector(env, policy, value_fn, config, sample_rng)
    except BaseException:
        env.close()
        raise
    return Parts(env, policy, value_fn, optimizers, collector,
                 np.random.default_rng(update_seed), factory)


def _scaler_and_noise(env, policy, config):
    """The RewardScaler (norm_reward) and the ColouredNoise (noise_correlation) of a run, or
    None for each that is off."""
    reward_scaler = (RewardScaler(config.num_envs, config.gamma, config.clip_reward)
                     if config.norm_reward else None)
    noise = None
    if config.noise_correlation > 0:
        if policy.kind != "gaussian":
            raise ValueError(f"noise_correlation applies to continuous (Box) actions; "
                             f"{config.env_id} has {env.single_action_space}")
        noise = ColouredNoise(config.num_envs, policy.action_dim, config.noise_correlation)
    return reward_scaler, noise


def _rollout_collector(env, policy, value_fn, config, rng):
    reward_scaler, noise = _scaler_and_noise(env, policy, config)
    return RolloutCollector(env, policy, value_fn, config.num_steps, rng, seed=config.seed,
                            reward_scaler=reward_scaler, noise=noise)

"""Whole-update fixtures shared by tests/algos/test_algos.py and tests/algos/test_trpo.py: a
rollout from the scripted env (toy_env.py) with the networks that collected it, independent copies
of those networks, the advantages and value targets A2C and PPO should train on (from the NumPy
reference), a batch of whole episodes (REINFORCE's), and a rollout with arbitrary values in
given rows."""
import copy
import json

import numpy as np
from toy_env import OBS_DIM, make_env

from minipg.core.heads import join_params
from minipg.core.policies import CategoricalPolicy
from minipg.core.returns import gae_reference
from minipg.core.value import ValueFunction
from minipg.envs.rollout import RolloutCollector
from minipg.envs.whole_episodes import EpisodeCollector
from minipg.run.checkpoint import from_state


def toy_rollout(second=True, complete=False, value_seed=2):
    policy = CategoricalPolicy(OBS_DIM, 2, (8,), rng=1)
    policy.params += 0.3 * np.random.default_rng(5).normal(size=policy.params.shape)
    value_fn = ValueFunction(OBS_DIM, (8,), rng=value_seed)
    collector = RolloutCollector(make_env(), policy, value_fn, 8, np.random.default_rng(0), seed=0)
    rollout = collector.collect(reset=complete)
    if second:                              # starts with a reset row for env 1
        rollout = collector.collect(reset=complete)
    return copy.deepcopy(rollout), policy, value_fn


def toy_episodes(max_episode_steps=8, value_seed=2):
    """A batch of whole episodes from the scripted env, one per env (EpisodeCollector): env 0
    terminates after 3 steps, env 1 is truncated by the env after 2, env 2 (11 steps scripted)
    is cut by the time limit max_episode_steps. Returns (batch, policy, value_fn)."""
    policy = CategoricalPolicy(OBS_DIM, 2, (8,), rng=1)
    policy.params += 0.3 * np.random.default_rng(5).normal(size=policy.params.shape)
    value_fn = ValueFunction(OBS_DIM, (8,), rng=value_seed)
    collector = EpisodeCollector(make_env(), policy, value_fn, max_episode_steps,
                                 np.random.default_rng(0))
    return copy.deepcopy(collector.collect()), policy, value_fn


def fresh_networks(policy, value_fn, critic=True, dtype=None):
    """Independent copies (not deepcopy: the layers are views into the flat params), and the
    flat vector an optimizer updates: the policy's params, then the critic's if it has one.
    dtype: the copies' arithmetic (default: the originals')."""
    def copy_of(network):
        state = network.state()
        if dtype is not None:
            config = json.loads(str(state["config"]))
            state["config"] = np.array(json.dumps({**config, "dtype": dtype}))
        return from_state(state)
    policy, value_fn = copy_of(policy), copy_of(value_fn)
    params = join_params(policy, value_fn) if critic else policy.params
    return policy, value_fn, params


def expected_advantages_and_targets(rollout, gamma, lam):
    """What A2C and PPO should train on, from the NumPy reference: the GAE advantages of the real
    transitions, normalised over the batch, and the value targets A + V."""
    m = rollout.mask
    A = gae_reference(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                      rollout.truncated, gamma, lam)
    targets = (A + rollout.values)[m]
    A = A[m]
    return (A - A.mean()) / (A.std() + 1e-8), targets


def scramble(rollout, rows, seed=0):
    """Arbitrary values in the given rows of every per-step array an update could read."""
    rng = np.random.default_rng(seed)
    r = copy.deepcopy(rollout)
    k = int(rows.sum())
    r.obs[rows] = rng.normal(size=(k, OBS_DIM)) * 5
    r.actions[rows] = 1 - r.actions[rows]
    r.rewards[rows] = rng.normal(size=k) * 1e3
    r.log_prob[rows] = rng.normal(size=k) - 3
    r.values[rows] = rng.normal(size=k) * 50
    r.next_values[rows] = rng.normal(size=k) * 50
    return r

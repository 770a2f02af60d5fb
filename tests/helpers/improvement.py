"""Did training help? The trained policy against an untrained one of the same architecture."""
import math

import numpy as np

import minipg
from minipg.envs.make import make_env
from minipg.run.build import make_policy


def improvement_and_standard_error(result, n=30):
    """(mean return of the trained policy - mean of an untrained one, its standard error), each
    over n CartPole-v1 episodes with the same env seeds."""
    env = make_env("CartPole-v1", 1)
    untrained = make_policy(env, result.config, np.random.default_rng(123))
    env.close()
    trained_returns = minipg.evaluate(result.policy, "CartPole-v1", n, seed=1000)
    initial_returns = minipg.evaluate(untrained, "CartPole-v1", n, seed=1000)
    se = math.sqrt(trained_returns.var(ddof=1) / n + initial_returns.var(ddof=1) / n)
    return trained_returns.mean() - initial_returns.mean(), se

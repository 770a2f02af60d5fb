"""minipg.evaluate on a policy object: what it needs of the object is checked up front."""
import numpy as np
import pytest

import minipg


class OnlyActs:
    def act(self, obs, deterministic=False, rng=None):
        return np.zeros(len(obs), np.int64)


def test_an_object_that_only_acts_is_refused_naming_what_it_lacks():
    with pytest.raises(TypeError, match=r"policy_or_checkpoint.*lacks kind, obs_dim"):
        minipg.evaluate(OnlyActs(), "CartPole-v1", episodes=2)


def test_a_policy_object_is_evaluated_on_the_env_given():
    policy = minipg.CategoricalPolicy(4, 2, (8,), rng=0)
    returns = minipg.evaluate(policy, "CartPole-v1", episodes=3, seed=1)
    assert returns.shape == (3,) and (returns >= 1).all()

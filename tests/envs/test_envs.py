"""Any environment as a specification: an env class the user writes, never registered, trains
through minipg.train and evaluates through minipg.evaluate; a factory is called once per
parallel env, its errors reach the caller unchanged, and the run remembers it (an evaluation
or a resume without it says what is missing). Sync and async vector envs give the same run."""
import json
import sys

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest

import minipg
from minipg.envs import make as envs

# The async vector env sends SignGuess to its worker processes with cloudpickle. pytest's importlib
# mode names this module after its path (tests.envs.test_envs), which a worker started by "spawn"
# or "forkserver" (macOS, Windows, Python 3.14) cannot import: send the classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SMALL = dict(num_envs=4, num_steps=32, hidden_sizes=(16,), log_every=-1)


class SignGuess(gym.Env):
    """A user's env: observe x ~ N(0, I_2), earn 1 for action [x_0 > 0], 10 steps an episode.

    A uniformly random policy earns 10 * 1/2 = 5 per episode, with standard deviation
    sqrt(10 * 1/4) ~ 1.58; the best policy earns 10.
    """
    metadata = {"render_modes": []}
    made = 0                                  # instances made, counted to check the factory use

    def __init__(self):
        SignGuess.made += 1
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.x = 0, self.np_random.normal(size=2)
        return self.x.copy(), {}

    def step(self, action):
        reward = float(int(action) == int(self.x[0] > 0))
        self.k += 1
        self.x = self.np_random.normal(size=2)
        return self.x.copy(), reward, self.k >= 10, False, {}


RANDOM_MEAN, RANDOM_STD = 5.0, np.sqrt(10 * 0.25)


def test_an_unregistered_env_class_trains_and_evaluates(tmp_path):
    SignGuess.made = 0
    result = minipg.train(SignGuess, "ppo", 40 * 128, 0, run_dir=str(tmp_path / "run"),
                          learning_rate=3e-3, **SMALL)
    assert SignGuess.made == SMALL["num_envs"]                 # once per parallel env
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["env_id"] == "SignGuess"
    assert config["env_factory"] == f"{__name__}.SignGuess"
    episodes = 40
    returns = minipg.evaluate(result.policy, SignGuess, episodes, seed=1)
    from_disk = minipg.evaluate(result.run_dir, SignGuess, episodes, seed=1)
    assert returns.shape == (episodes,)
    # The loaded policy with the same seeds plays the same episodes.
    np.testing.assert_array_equal(returns, from_disk)
    # Learned: the mean sits far above a random policy's (8 standard errors of the mean).
    assert returns.mean() > RANDOM_MEAN + 8 * RANDOM_STD / np.sqrt(episodes)


def test_a_function_or_lambda_factory_and_env_id_as_its_name(tmp_path):
    def wrapped_sign_guess():
        return gym.wrappers.TimeLimit(SignGuess(), max_episode_steps=5)

    result = minipg.train(wrapped_sign_guess, "a2c", 256, 0, run_dir=str(tmp_path / "a"),
                          eval_episodes=3, **SMALL)
    assert result.config.env_id == "wrapped_sign_guess"
    assert result.evaluation.shape == (3,) and (result.evaluation <= 5).all()  # on the factory
    assert (minipg.evaluate(result.policy, wrapped_sign_guess, 3) <= 5).all()   # its time limit
    named = minipg.train(lambda: SignGuess(), "a2c", 256, 0, env_id="MySignGuess",
                         run_dir=str(tmp_path / "b"), **SMALL)
    assert named.config.env_id == "MySignGuess" and "<lambda>" in named.config.env_factory


def test_an_error_in_the_factory_reaches_the_caller_unchanged_and_nothing_is_written(tmp_path):
    class Broken(Exception):
        pass

    def broken_factory():
        raise Broken("cannot connect to the simulator")

    with pytest.raises(Broken, match="cannot connect to the simulator"):
        minipg.train(broken_factory, "ppo", 256, 0, run_dir=str(tmp_path / "run"), **SMALL)
    assert not (tmp_path / "run").exists()
    with pytest.raises(Broken):
        minipg.evaluate(minipg.core.policies.CategoricalPolicy(2, 2), broken_factory, 2)


def test_a_registered_env_that_fails_to_build_is_not_replaced_by_a_fallback():
    def fails():
        raise RuntimeError("entry point failed")

    if "minipg-test/FailsToBuild-v0" not in gym.registry:
        gym.register("minipg-test/FailsToBuild-v0", entry_point=fails)
    with pytest.raises(RuntimeError, match="entry point failed"):
        envs.make_env("minipg-test/FailsToBuild-v0", 2)
    with pytest.raises(ValueError, match="'NoSuchEnv-v0' cannot be made"):
        envs.make_env("NoSuchEnv-v0", 2)


@pytest.mark.parametrize("factory, error, match", [
    (lambda: "not an env", TypeError, "must return a gymnasium.Env, got str"),
    (42, TypeError, "env must be a registered gymnasium id .* or a callable"),
], ids=["returns-a-str", "not-callable"])
def test_a_factory_that_is_not_one_is_refused(tmp_path, factory, error, match):
    with pytest.raises(error, match=match):
        minipg.train(factory, "ppo", 256, 0, run_dir=str(tmp_path / "run"), **SMALL)


def test_a_factory_must_make_a_new_env_on_every_call():
    one = SignGuess()
    with pytest.raises(ValueError, match="returned the same env object more than once"):
        envs.make_env(lambda: one, 3)


def test_vectorization_chooses_the_vector_env():
    assert type(envs.make_env("CartPole-v1", 2)).__name__ == "CartPoleVectorEnv"
    assert isinstance(envs.make_env("CartPole-v1", 2, "sync"), gym.vector.SyncVectorEnv)
    assert isinstance(envs.make_env(SignGuess, 2), gym.vector.SyncVectorEnv)
    with pytest.raises(ValueError, match="vectorization must be one of"):
        envs.make_env(SignGuess, 2, "threads")


def test_async_and_sync_vector_envs_give_the_same_run(tmp_path):
    runs = {mode: minipg.train(SignGuess, "ppo", 4 * 128, 0, run_dir=str(tmp_path / mode),
                               vectorization=mode, **SMALL)
            for mode in ("sync", "async")}
    assert (tmp_path / "sync" / "progress.csv").read_bytes() == \
        (tmp_path / "async" / "progress.csv").read_bytes()
    np.testing.assert_array_equal(runs["sync"].policy.params, runs["async"].policy.params)


def test_a_factory_run_needs_its_factory_to_evaluate_or_resume(tmp_path):
    run_dir = str(tmp_path / "run")
    minipg.train(SignGuess, "ppo", 6 * 128, 0, run_dir=run_dir,
                 callback=lambda record, policy: record["iteration"] == 3, **SMALL)
    with pytest.raises(ValueError, match=f"factory {__name__}.SignGuess: pass that factory"):
        minipg.evaluate(run_dir)
    with pytest.raises(ValueError, match="pass that factory as env to resume"):
        minipg.train(resume=run_dir)
    with pytest.raises(ValueError, match="env_factory"):
        minipg.train(lambda: SignGuess(), resume=run_dir)          # another factory
    resumed = minipg.train(SignGuess, resume=run_dir)
    assert resumed.resumed_from == 3 and len(resumed.history) == 3


def test_evaluate_a_run_directory_on_its_own_registered_env(tmp_path):
    result = minipg.train("CartPole-v1", "ppo", 256, 0, run_dir=str(tmp_path / "run"), **SMALL)
    returns = minipg.evaluate(result.run_dir, episodes=3, seed=4)
    np.testing.assert_array_equal(returns, minipg.evaluate(result.policy, "CartPole-v1", 3,
                                                           seed=4))
    with pytest.raises(TypeError, match="needs env"):
        minipg.evaluate(result.policy)

"""Validation at the entry points, a hot path that trusts it.

- a user's observations are scanned for NaN by policy.act, not by every forward;
- an optimizer's learning rate is checked when it is set, not on every step;
- the parameters an update leaves are checked once per iteration by the training loops
  (params_stay_finite), not after every optimizer step by clip_and_step.
"""
import numpy as np
import pytest

import minipg
from minipg.core.optim import SGD, Adam, check_finite_params, clip_and_step, params_stay_finite
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction

SMALL = dict(num_envs=4, num_steps=32, hidden_sizes=(8,), log_every=-1)


@pytest.mark.parametrize("make", [
    lambda: CategoricalPolicy(4, 2, hidden_sizes=(8,), rng=0),
    lambda: GaussianPolicy(4, 2, hidden_sizes=(8,), rng=0, norm_obs=True),
])
def test_act_scans_a_users_observations_the_network_api_does_not(make):
    policy = make()
    obs = np.zeros((3, 4))
    obs[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"obs contains a non-finite value .* index \(2, 1\)"):
        policy.act(obs)
    with pytest.raises(ValueError, match=r"obs must have shape \(\.\.\., 4\)"):
        policy.act(np.zeros((3, 5)))                 # the shape is checked before the scan
    with pytest.raises(TypeError, match="real numeric"):
        policy.act(np.array(["a", "b", "c", "d"]))
    # forward/distribution check shape and dtype only: the caller checked the numbers.
    with pytest.raises(ValueError, match=r"obs must have shape \(\.\.\., 4\)"):
        policy.distribution(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="(logits|mean) contains a non-finite"):
        policy.forward(np.full((3, 4), np.nan))      # no obs scan: the distribution's own check
    values = ValueFunction(4, hidden_sizes=(8,), rng=0).predict(np.full((3, 4), np.nan))
    assert np.isnan(values).all()                    # NaN in, NaN out


@pytest.mark.parametrize("make", [lambda p: Adam(p, learning_rate=0.1),
                                  lambda p: SGD(p, learning_rate=0.1)])
def test_the_learning_rate_is_checked_when_set(make):
    params = np.zeros(2)
    optim = make(params)
    for bad, error in [(-1.0, ValueError), (float("nan"), ValueError), ("fast", TypeError)]:
        with pytest.raises(error, match="learning_rate"):
            optim.learning_rate = bad
        assert optim.learning_rate == 0.1           # a refused rate changes nothing
    optim.learning_rate = np.float32(0.5)
    assert type(optim.learning_rate) is float and optim.learning_rate == 0.5
    optim.step(np.ones(2))
    assert (params < 0).all()


def test_clip_and_step_checks_the_gradient_not_the_parameters():
    params = np.zeros(3)
    adam = Adam(params, learning_rate=0.1)
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        clip_and_step(adam, np.array([0.0, np.nan, 0.0]), 1.0)
    np.testing.assert_array_equal(params, 0.0)      # refused before the parameters are touched
    params[1] = np.inf                              # whatever made them non-finite ...
    assert clip_and_step(adam, np.ones(3), 0.0) == pytest.approx(np.sqrt(3))
    with pytest.raises(FloatingPointError, match=r"parameters non-finite after an optimizer "
                                                 r"step \(policy, first at index 1\)"):
        check_finite_params(value=np.zeros(2), policy=params)   # ... the loop's check sees


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_check_finite_params_also_refuses_values_whose_squares_overflow():
    check_finite_params(policy=np.full(3, 1e150))
    with pytest.raises(FloatingPointError, match=r"\(policy, values whose squares overflow\): "
                                                 r"the step was far too large"):
        check_finite_params(policy=np.full(3, 1e300))


def test_params_stay_finite_reports_the_parameters_as_the_cause():
    params = np.zeros(2)
    with params_stay_finite(policy=params):
        params += 1.0
    with pytest.raises(FloatingPointError, match="parameters non-finite"):
        with params_stay_finite(policy=params):
            params[0] = np.nan                       # the block ends normally
    params[0] = 0.0
    with pytest.raises(FloatingPointError, match="parameters non-finite"):
        with params_stay_finite(policy=params):     # a consequence raised inside the block
            params[0] = np.inf
            raise ValueError("logits contains a non-finite value")
    params[0] = 0.0
    with pytest.raises(ValueError, match="unrelated"):
        with params_stay_finite(policy=params):     # finite parameters: the error as it was
            raise ValueError("unrelated")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("algo, extra", [("ppo", SMALL), ("trpo", SMALL),
                                         ("grpo", dict(num_groups=2, group_size=2,
                                                       hidden_sizes=(8,), log_every=-1))])
def test_the_loop_checks_the_parameters_after_the_update(tmp_path, algo, extra):
    """One check per iteration, in stage "update": the error advises a lower learning rate,
    and the checkpoint holds the state before the blown-up update."""
    with pytest.raises(FloatingPointError, match=r"parameters non-finite after an optimizer step"
                                                 r".*iteration 1 .*lower learning_rate.*"
                                                 r"iteration 0\) is saved"):
        minipg.train("CartPole-v1", algo, 4096, 0, run_dir=str(tmp_path), learning_rate=1e300,
                     **extra)

"""Inputs a user or a file can get wrong, each answered by one clear line, never a traceback:

- env ids the CLI documents: "module:Id" imports the module that registers Id; a namespaced
  id ("ns/Name-v0") names a default run directory without a path separator;
- non-finite hyperparameters are refused when the config is validated;
- an env whose observations or rewards are too large to train on is named as the cause
  ("check the environment"), and no numpy warning prints before the one-line error;
- sizes that cannot fit in memory are refused before anything is allocated, naming the setting;
- crafted files (JSON nested 200,000 deep, a config naming a 100000 x 100000 network, a
  progress.csv field of 200,000 characters) are refused in one line before anything is built;
- an env state is unpickled only if this user's key signed it;
- "~" in a path means the home directory.
"""
import dataclasses
import hashlib
import json
import math
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import textwrap
import typing
import warnings

import gymnasium as gym
import numpy as np
import pytest

import minipg
import minipg.algos.grpo
import minipg.core.memory as memory
import minipg.lm.token_ppo
import minipg.run.env_state as env_state
from minipg.algos.config import make_config
from minipg.algos.registry import ALGOS
from minipg.envs.outputs import env_output_problem, output_limits
from minipg.run.checkpoint import (MAX_METADATA_CHARS, CheckpointError, json_depth,
                                   load_config, read_checkpoint, write_checkpoint)
from minipg.run.env_state import config_dir, user_key
from minipg.tools.cli import main

SMALL = dict(num_envs=2, num_steps=16, hidden_sizes=(8,), log_every=-1)
TINY_ENV_MODULE = textwrap.dedent('''
    """Registers {env_id} on import: a CartPole with 30-step episodes (observations times
    {obs_scale}, rewards times {reward_scale})."""
    import gymnasium as gym
    from gymnasium.wrappers import TransformObservation, TransformReward

    def make(obs_scale, reward_scale):
        env = gym.make("CartPole-v1", max_episode_steps=30)
        env = TransformObservation(env, lambda o: o * obs_scale, env.observation_space)
        return TransformReward(env, lambda r: r * reward_scale)

    gym.register("{env_id}", entry_point=make, disable_env_checker=True,
                 kwargs=dict(obs_scale={obs_scale}, reward_scale={reward_scale}))
''')


def write_env_module(folder, module, env_id, obs_scale=1.0, reward_scale=1.0):
    """A module `module` in `folder` that registers env_id when imported."""
    folder.mkdir(exist_ok=True)
    (folder / f"{module}.py").write_text(TINY_ENV_MODULE.format(
        env_id=env_id, obs_scale=obs_scale, reward_scale=reward_scale))
    return folder


def minipg_cli(*args, cwd, pythonpath=None, home=None):
    """`python -m minipg *args` in a child process: (exit status, stdout, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    if home is not None:
        env["HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "minipg", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


# ------------------------------------------------------------------------------------------
# env ids: module:Id, and namespaced ids with the default run directory
# ------------------------------------------------------------------------------------------

def test_module_colon_id_imports_the_module_and_trains(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(write_env_module(tmp_path / "pkgs", "tiny_env_py",
                                                     "tinyns/TinyPy-v0")))
    monkeypatch.chdir(tmp_path)
    assert "tiny_env_py" not in sys.modules and "tinyns/TinyPy-v0" not in gym.registry
    result = minipg.train("tiny_env_py:tinyns/TinyPy-v0", "ppo", 64, 0, **SMALL)
    assert "tiny_env_py" in sys.modules                  # imported by minipg, not the test
    assert result.config.env_id == "tiny_env_py:tinyns/TinyPy-v0"
    # The default run directory is one folder under runs/, its name free of "/" and ":".
    assert os.path.dirname(result.run_dir) == "runs"
    assert os.path.basename(result.run_dir) == "tiny_env_py_tinyns_TinyPy-v0-ppo-seed0"
    assert os.path.isfile(os.path.join(result.run_dir, "checkpoint.npz"))
    assert len(result.history) == 2


def test_namespaced_id_with_the_default_run_directory_trains(tmp_path, monkeypatch):
    if "tinyns/Registered-v0" not in gym.registry:
        gym.register("tinyns/Registered-v0", entry_point="gymnasium.envs.classic_control:"
                     "CartPoleEnv", max_episode_steps=30)
    monkeypatch.chdir(tmp_path)
    result = minipg.train("tinyns/Registered-v0", "a2c", 64, 0, **SMALL)
    assert result.run_dir == os.path.join("runs", "tinyns_Registered-v0-a2c-seed0")
    assert os.path.isfile(os.path.join(result.run_dir, "checkpoint.npz"))
    again = minipg.train("tinyns/Registered-v0", "a2c", 64, 0, **SMALL)
    assert again.run_dir == os.path.join("runs", "tinyns_Registered-v0-a2c-seed0-1")


def test_module_colon_id_from_the_cli_trains_evaluates_and_resumes(tmp_path):
    pkgs = write_env_module(tmp_path / "pkgs", "tiny_env_cli", "tinyns/TinyCli-v0")
    status, out, err = minipg_cli("train", "--env", "tiny_env_cli:tinyns/TinyCli-v0",
                                  "--steps", 64, "--num-envs", 2, "--num-steps", 16,
                                  "--hidden-sizes", 8, "--log-every", -1, cwd=tmp_path,
                                  pythonpath=pkgs)
    assert (status, err) == (0, "")
    run_dir = os.path.join("runs", "tiny_env_cli_tinyns_TinyCli-v0-ppo-seed0")
    assert os.path.isfile(tmp_path / run_dir / "checkpoint.npz")
    status, out, err = minipg_cli("eval", run_dir, "--episodes", 2, cwd=tmp_path,
                                  pythonpath=pkgs)
    assert (status, err) == (0, "") and "tiny_env_cli:tinyns/TinyCli-v0, 2 episodes" in out
    # The resume builds the env from the saved id: the module is imported again.
    status, out, err = minipg_cli("train", "--resume", run_dir, cwd=tmp_path, pythonpath=pkgs)
    assert (status, err) == (0, "") and "had already finished" in out


def test_a_module_that_cannot_be_imported_is_one_line_naming_the_id(tmp_path, capsys):
    status = main(["train", "--env", "no_such_module_xyz:Tiny-v0", "--steps", "64",
                   "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "'no_such_module_xyz:Tiny-v0'" in err and "no_such_module_xyz" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# Non-finite hyperparameters
# ------------------------------------------------------------------------------------------

CONFIGS = {**{algo: module.Config for algo, module in ALGOS.items()},
           "grpo on tokens": minipg.algos.grpo.Config, "token ppo": minipg.lm.token_ppo.Config}
"""Every config class: the trainer's algorithms, and the language-model ones."""


def float_fields():
    """(config name, field name) of every real-valued field of every config."""
    for algo, config_class in sorted(CONFIGS.items()):
        for field in dataclasses.fields(config_class):
            types = typing.get_args(field.type) or (field.type,)
            if float in types:
                yield algo, field.name


@pytest.mark.parametrize("algo,name", list(float_fields()))
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_every_real_hyperparameter_refuses_non_finite_values(algo, name, value):
    config = CONFIGS[algo]()
    config.validate()                                        # the defaults are fine
    setattr(config, name, value)
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        config.validate()


def test_float_fields_cover_the_coefficients_the_issue_names():
    names = set(float_fields())
    assert {("ppo", "ent_coef"), ("ppo", "vf_coef"), ("trpo", "max_kl"),
            ("ppo", "target_kl"), ("grpo", "learning_rate"), ("grpo on tokens", "kl_coef"),
            ("token ppo", "clip_coef")} <= names


@pytest.mark.parametrize("flag,algo", [("--ent-coef", "ppo"), ("--vf-coef", "a2c"),
                                       ("--max-kl", "trpo"), ("--learning-rate", "grpo")])
def test_cli_refuses_an_infinite_coefficient_in_one_line_before_any_file(tmp_path, capsys,
                                                                          flag, algo):
    status = main(["train", "--algo", algo, flag, "inf", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert f"{flag[2:].replace('-', '_')} must be a finite number, got inf" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# Env outputs too large to train on, and no numpy warning before the error
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_limits_are_where_the_updates_sums_of_squares_stop_being_finite(dtype):
    B, H = 512, 32
    limits = output_limits(dtype, B, H)
    with np.errstate(over="ignore"):
        # returns of H rewards at the limit: their squares summed over the batch stay finite,
        returns = np.full(B, H * limits.reward, dtype)
        assert np.isfinite(np.dot(returns, returns))
        # and four times larger they overflow (the bound is the edge, not far below it).
        assert not np.isfinite(np.dot(4 * returns, 4 * returns))
        # A first-layer gradient sum_i o_i g_i (|g_i| = 1) at the limit, squared by Adam:
        gradient = np.asarray(B * limits.obs, dtype)
        assert np.isfinite(gradient * gradient)
        assert not np.isfinite((4 * gradient) * (4 * gradient))


TOO_LARGE, NON_FINITE = "a value too large to train on", "a non-finite value"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_env_output_is_checked_whatever_its_dtype_and_the_limit(dtype):
    """A limit beyond float32's range must not become inf when compared with float32 data."""
    limit = output_limits("float64", 64, 500).obs                       # 2e152
    assert env_output_problem("observations", np.ones((4, 3), dtype), limit) is None
    for bad, problem in ((np.inf, NON_FINITE), (-np.inf, NON_FINITE), (np.nan, NON_FINITE),
                         (3e38, TOO_LARGE if limit < 3e38 else None)):
        obs = np.ones((4, 3), dtype)
        obs[2, 1] = bad
        message = env_output_problem("observations", obs, limit, t=7)
        assert (message is None) if problem is None else \
            message.startswith(f"the environment returned {problem}: observations[(7, 2, 1)]")
    assert env_output_problem("rewards", np.array([1e20, 1.0]), 1e16).startswith(
        f"the environment returned {TOO_LARGE}: rewards[(0,)] = 1e+20 (env 0)")


@pytest.mark.parametrize("algo,scales,what,problem", [
    ("ppo", (1e30, 1.0), "observations", TOO_LARGE),       # float32: limit 3.6e16
    ("ppo", (1.0, 1e37), "rewards", TOO_LARGE),            # float32: limit 2.5e16
    ("ppo", (1.0, 1e300), "rewards", TOO_LARGE),
    ("grpo", (1.0, 1e300), "rewards", TOO_LARGE),          # float64: limit 1.7e150
    ("grpo", (1e300, 1.0), "observations", NON_FINITE)])   # CartPole's float32 obs: inf
def test_huge_env_outputs_blame_the_environment(tmp_path, monkeypatch, algo, scales, what,
                                                problem):
    tag = f"{what}{round(math.log10(max(scales)))}"
    module, env_id = f"huge_{tag}", f"tinyns/Huge-{tag}-v0"
    monkeypatch.syspath_prepend(str(write_env_module(tmp_path / "pkgs", module, env_id,
                                                     *scales)))
    with pytest.raises(FloatingPointError) as raised:
        minipg.train(f"{module}:{env_id}", algo, 64, 0, run_dir=tmp_path / "run",
                     **(SMALL if algo == "ppo" else dict(num_groups=2, group_size=2,
                                                         hidden_sizes=(8,), log_every=-1)))
    message = str(raised.value)
    assert f"the environment returned {problem}" in message
    assert what in message and "check the environment" in message
    assert "learning_rate" not in message and "check_finite" not in message


@pytest.mark.parametrize("scales,what,problem", [
    ((1e39, 1.0), "observations", NON_FINITE),       # the env's float32 obs overflow to inf
    ((1.0, "float('inf')"), "rewards", NON_FINITE)])   # a reward of inf
def test_evaluation_blames_the_environment_too(tmp_path, monkeypatch, scales, what, problem):
    """Not the policy's check of its input: the env's output, named, with the advice."""
    module, env_id = f"huge_eval_{what}", f"tinyns/HugeEval-{what}-v0"
    monkeypatch.syspath_prepend(str(write_env_module(tmp_path / "pkgs", module, env_id,
                                                     *scales)))
    policy = minipg.CategoricalPolicy(4, 2, (8,), rng=0, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # the env's own overflow
        with pytest.raises(FloatingPointError) as raised:
            minipg.evaluate(policy, f"{module}:{env_id}", episodes=3)
    message = str(raised.value)
    assert message.startswith(f"the environment returned {problem}: {what}[")
    assert message.endswith("check the environment")


@pytest.mark.parametrize("args,expected", [
    (("--env", "huge_cli:tinyns/HugeCli-v0"), "check the environment"),
    (("--learning-rate", "1e30"), "try a lower learning_rate"),
])
def test_the_one_line_error_is_the_only_line_on_stderr(tmp_path, args, expected):
    pkgs = write_env_module(tmp_path / "pkgs", "huge_cli", "tinyns/HugeCli-v0",
                            reward_scale=1e300)
    status, out, err = minipg_cli("train", *args, "--steps", 512, "--log-every", -1,
                                  "--run-dir", "run", cwd=tmp_path, pythonpath=pkgs)
    assert status == 1
    assert err.count("\n") == 1 and "Warning" not in err, err
    assert err.startswith("minipg train: error: ") and expected in err


@pytest.mark.parametrize("settings,expected", [
    (dict(learning_rate=1e30), "try a lower learning_rate"),
    (dict(env="huge_py:tinyns/HugePy-v0"), "check the environment")])
def test_from_python_too_the_error_comes_without_numpy_warnings_before_it(tmp_path, monkeypatch,
                                                                          settings, expected):
    """minipg.train's own checks name the cause; numpy's overflow warnings (made errors here,
    so that one would be raised first) are not let out of the training loop."""
    monkeypatch.syspath_prepend(str(write_env_module(tmp_path / "pkgs", "huge_py",
                                                     "tinyns/HugePy-v0", reward_scale=1e300)))
    env = settings.pop("env", "CartPole-v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=expected):
            minipg.train(env, "ppo", 512, 0, run_dir=tmp_path / "run", log_every=-1, **settings)


# ------------------------------------------------------------------------------------------
# Env states: unpickled only when this user's key signed them
# ------------------------------------------------------------------------------------------

STOP_AT, TOTAL = 3, 6 * 2 * 16        # a ppo run of 6 iterations of 2 envs x 16 steps, stopped at 3


def stopped_run(run_dir):
    """A ppo run stopped after STOP_AT of 6 iterations (a checkpoint with its env state)."""
    minipg.train("CartPole-v1", "ppo", TOTAL, 0, run_dir=run_dir, checkpoint_every=0.0,
                 callback=lambda record, policy: record["iteration"] >= STOP_AT, **SMALL)
    return run_dir


@pytest.fixture
def key_dir(tmp_path, monkeypatch):
    """A fresh config directory for this test: a user whose key is new."""
    folder = tmp_path / "config-of-this-user"
    monkeypatch.setenv("MINIPG_CONFIG_DIR", str(folder))
    return folder


def test_the_key_is_made_once_private_and_kept(key_dir):
    assert config_dir() == str(key_dir) and user_key(create=False) is None
    key = user_key()
    assert len(key) == 32
    assert os.stat(key_dir / "key").st_mode & 0o777 == 0o600
    assert os.stat(key_dir).st_mode & 0o777 == 0o700
    assert user_key() == key == user_key(create=False)          # read again, never replaced
    assert [p.name for p in key_dir.iterdir()] == ["key"]       # no temporary file left


def test_a_key_made_meanwhile_by_another_process_is_the_one_used(key_dir, monkeypatch):
    """Two processes making the key at once: the second one's link fails, and it uses the
    first one's key rather than replacing it (a signature made with it stays valid)."""
    first = user_key()
    real_exists = os.path.exists
    monkeypatch.setattr(env_state.os.path, "exists",
                        lambda path: False if str(path).endswith("key") else real_exists(path))
    assert user_key() == first                       # it tried to create, and lost the race
    assert sorted(p.name for p in key_dir.iterdir()) == ["key"]


def test_the_config_directory_follows_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIPG_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == str(tmp_path / "xdg" / "minipg")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == str(tmp_path / "home" / ".config" / "minipg")


def test_a_malformed_key_is_refused_naming_the_file(key_dir):
    key_dir.mkdir()
    (key_dir / "key").write_text("not a key\n")
    with pytest.raises(ValueError, match="key is not a minipg key"):
        user_key()


def test_another_users_run_resumes_with_fresh_episodes_and_says_so(tmp_path, monkeypatch,
                                                                   capsys):
    uninterrupted = minipg.train("CartPole-v1", "ppo", TOTAL, 0, run_dir=tmp_path / "whole",
                                 **SMALL)
    monkeypatch.setenv("MINIPG_CONFIG_DIR", str(tmp_path / "config-of-the-author"))
    downloaded = stopped_run(tmp_path / "downloaded")
    trusted = tmp_path / "trusted"
    shutil.copytree(downloaded, trusted)
    monkeypatch.setenv("MINIPG_CONFIG_DIR", str(tmp_path / "config-of-the-user"))
    capsys.readouterr()
    real_loads = env_state.pickle.loads
    calls = []
    monkeypatch.setattr(env_state.pickle, "loads", lambda blob: calls.append(1) or
                        real_loads(blob))
    result = minipg.train(resume=downloaded)
    assert calls == []                                     # never unpickled
    out = capsys.readouterr().out
    (note,) = [line for line in out.splitlines() if "not restored" in line]
    assert "not signed with this user's key" in note and "--trust-env-state" in note
    assert result.resumed_from == STOP_AT and len(result.history) == 6 - STOP_AT
    assert (downloaded / "progress.csv").read_bytes() != \
        (tmp_path / "whole" / "progress.csv").read_bytes()      # fresh episodes
    # Trusted explicitly, the same run continues bit for bit like one never stopped.
    result = minipg.train(resume=trusted, trust_env_state=True)
    assert calls and "not restored" not in capsys.readouterr().out
    assert (trusted / "progress.csv").read_bytes() == \
        (tmp_path / "whole" / "progress.csv").read_bytes()
    np.testing.assert_array_equal(result.policy.params, uninterrupted.policy.params)


def test_this_users_own_run_resumes_bit_for_bit_without_the_flag(tmp_path, key_dir, capsys):
    whole = minipg.train("CartPole-v1", "ppo", TOTAL, 0, run_dir=tmp_path / "whole", **SMALL)
    run = stopped_run(tmp_path / "run")
    capsys.readouterr()
    result = minipg.train(resume=run)
    assert "not restored" not in capsys.readouterr().out
    assert (run / "progress.csv").read_bytes() == (tmp_path / "whole" / "progress.csv").read_bytes()
    np.testing.assert_array_equal(result.policy.params, whole.policy.params)


class Payload:
    """What a malicious env state would hold: unpickling it creates a file (runs code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_env_state(run_dir, blob, signature):
    """Put `blob` beside the run's checkpoint as its env state, recorded with its digest (what
    anyone editing a run directory can do) and the given signature."""
    digest = hashlib.sha256(blob).hexdigest()
    name = f"env_state-{digest[:16]}.pkl"
    (run_dir / name).write_bytes(blob)
    arrays = dict(read_checkpoint(run_dir).arrays)
    del arrays["minipg/format"], arrays["minipg/format_version"]
    state = json.loads(str(arrays["train/state"]))
    state["env_state"] = {"saved": True, "file": name, "sha256": digest, "hmac": signature}
    arrays["train/state"] = np.array(json.dumps(state))
    write_checkpoint(run_dir / "checkpoint.npz", arrays)


@pytest.mark.parametrize("signature", [None, "0" * 64, "forged"])
def test_a_planted_env_state_never_runs_its_code(tmp_path, key_dir, capsys, signature):
    run = stopped_run(tmp_path / "run")
    marker = tmp_path / "code-ran"
    plant_env_state(run, pickle.dumps(Payload(str(marker))), signature)
    result = minipg.train(resume=run)
    assert not marker.exists()
    assert result.resumed_from == STOP_AT and len(result.history) == 6 - STOP_AT
    (note,) = [line for line in capsys.readouterr().out.splitlines() if "not restored" in line]
    assert "was not unpickled" in note
    # The same file, trusted explicitly, is unpickled: the flag is what decides.
    run_again = stopped_run(tmp_path / "again")
    plant_env_state(run_again, pickle.dumps(Payload(str(marker))), signature)
    minipg.train(resume=run_again, trust_env_state=True)
    assert marker.exists()


def test_trust_env_state_without_resume_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="trust_env_state applies to a resume"):
        minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=tmp_path / "run",
                     trust_env_state=True, **SMALL)
    status = main(["train", "--trust-env-state", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "--resume only" in err
    assert not (tmp_path / "run").exists()


def test_cli_resume_with_trust_env_state_restores_another_users_env_state(tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.setenv("MINIPG_CONFIG_DIR", str(tmp_path / "config-of-the-author"))
    run = stopped_run(tmp_path / "run")
    shutil.copytree(run, tmp_path / "copy")
    monkeypatch.setenv("MINIPG_CONFIG_DIR", str(tmp_path / "config-of-the-user"))
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "copy")]) == 0
    assert "state is not restored" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--trust-env-state"]) == 0
    out = capsys.readouterr().out
    assert "done: 192 env steps" in out and "not restored" not in out


# ------------------------------------------------------------------------------------------
# Sizes that cannot fit in memory
# ------------------------------------------------------------------------------------------

GB = 10 ** 9


@pytest.fixture
def machine_of_16_gb(monkeypatch):
    """The limit of these tests: a machine of 16 GB, whatever this one has."""
    monkeypatch.setattr(memory, "physical_memory", lambda: 16 * GB)


def test_check_fits_refuses_exactly_what_exceeds_the_memory(machine_of_16_gb):
    memory.check_fits(16 * GB, "this")
    with pytest.raises(ValueError, match=r"^these settings need about 16 GB of memory, more "
                                         r"than this machine's 16 GB"):
        memory.check_fits(16 * GB + 1, "these settings")


def test_the_network_count_is_the_mlps():
    sizes = (4, 64, 64, 2)
    assert memory.network_params(sizes) == minipg.MLP(sizes).params.size


def test_the_estimate_is_below_what_a_run_really_allocates(tmp_path):
    """The estimate is a lower bound: the largest arrays only. A run's peak of traced
    allocations (numpy reports its buffers to tracemalloc) is above it."""
    import tracemalloc

    from minipg.run.build import check_memory
    config = make_config(ALGOS["ppo"].Config, algo="ppo", num_envs=8, num_steps=256,
                         hidden_sizes=(64, 64), log_every=-1, total_steps=2048)
    estimate = {}
    real_check = memory.check_fits

    def spy(needed, what, limit=None):
        estimate[what] = needed
        return real_check(needed, what, limit)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("minipg.run.build.check_fits", spy)
        tracemalloc.start()
        minipg.train("CartPole-v1", "ppo", 2048, 0, run_dir=tmp_path / "run", num_envs=8,
                     num_steps=256, hidden_sizes=(64, 64), log_every=-1)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    check_memory(config, ALGOS["ppo"], 4, 1, 2)            # the estimate with CartPole's sizes
    assert 0 < max(estimate.values()) < peak


@pytest.mark.parametrize("args,named", [
    (("--num-steps", "1000000000"), "num_steps * num_envs = 1,000,000,000 x 16"),
    (("--num-envs", "10000000"), "num_steps * num_envs = 32 x 10,000,000"),
    (("--hidden-sizes", "100000,100000"), "hidden_sizes (100000, 100000): networks of "
                                          "20,000,800,002 parameters"),
    (("--algo", "grpo", "--num-groups", "100000000"), "num_groups * group_size = "
                                                      "100,000,000 x 8"),
])
def test_sizes_beyond_memory_are_one_line_naming_the_setting(tmp_path, capsys,
                                                            machine_of_16_gb, args, named):
    status = main(["train", *args, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert named in err and "of memory, more than this machine's 16 GB" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished ppo run (run directory with its checkpoint)."""
    run_dir = tmp_path_factory.mktemp("small") / "run"
    minipg.train("CartPole-v1", "ppo", 64, 0, run_dir=run_dir, **SMALL)
    return run_dir


def test_eval_of_too_many_episodes_is_one_line(small_run, capsys, monkeypatch):
    # 10^8 episodes of the small run's policy (hidden (8,)): about 7.6 GB, on a 4 GB machine.
    monkeypatch.setattr(memory, "physical_memory", lambda: 4 * GB)
    made = []
    monkeypatch.setattr("minipg.envs.episodes.make_env", lambda *a: made.append(a))
    status = main(["eval", str(small_run), "--episodes", "100000000"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "episodes = 100,000,000 (run together, one env each) need about" in err
    assert made == []                                        # refused before the env is made


def test_any_memory_error_in_the_cli_is_one_line(small_run, capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB")

    monkeypatch.setattr("minipg.tools.cli.run_episodes", out_of_memory)
    status = main(["eval", str(small_run)])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "error: out of memory (Unable to allocate 74.5 GiB)" in err


# ------------------------------------------------------------------------------------------
# Crafted files
# ------------------------------------------------------------------------------------------

DEEP = "[" * 200_000 + "]" * 200_000


def crafted(run_dir, tmp_path, change):
    """A copy of run_dir whose checkpoint's arrays went through change(arrays)."""
    copy = shutil.copytree(run_dir, tmp_path / "crafted")
    arrays = dict(read_checkpoint(copy).arrays)
    del arrays["minipg/format"], arrays["minipg/format_version"]
    change(arrays)
    write_checkpoint(copy / "checkpoint.npz", arrays)
    return copy


def set_json(name, **changes):
    def change(arrays):
        values = json.loads(str(arrays[name]))
        values.update(changes)
        arrays[name] = np.array(json.dumps(values))
    return change


@pytest.mark.parametrize("text,depth", [
    ('{"a": "[[[[{{", "b": [1, [2, {"c": []}]]}', 5),
    ('["\\"[[", [[]]]', 3),                      # an escaped quote does not end the string
    ("[" + ", ".join(["[]"] * 1000) + "]", 2),
    ('"unterminated [[[', 0),
    ("7", 0),
])
def test_json_depth_counts_the_nesting_outside_strings(text, depth):
    assert json_depth(text) == depth


def test_json_depth_stops_as_soon_as_the_limit_is_passed():
    assert json_depth(DEEP, limit=64) == 65


READERS = {"config": load_config, "train/state": lambda run: minipg.train(resume=run),
           "policy/config": minipg.load}
"""What reads each entry from Python: the config (resume, eval), the training state (resume),
the policy (load, eval, resume)."""


@pytest.mark.parametrize("entry", sorted(READERS))
def test_json_nested_200000_deep_is_refused_in_eval_resume_and_load(small_run, tmp_path,
                                                                   capsys, entry):
    run = crafted(small_run, tmp_path, lambda arrays: arrays.update({entry: np.array(DEEP)}))
    with pytest.raises(CheckpointError, match=f"{entry}'? nests arrays or objects more than "
                                              "64 deep: not minipg's"):
        READERS[entry](run)
    commands = [["train", "--resume", str(run)]]
    if entry != "train/state":                               # eval does not read it
        commands.append(["eval", str(run)])
    for command in commands:
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "64 deep" in err


def test_a_json_entry_longer_than_the_limit_is_refused_before_it_is_read(small_run, tmp_path):
    text = json.dumps({"padding": "x" * (MAX_METADATA_CHARS + 1000)})
    run = crafted(small_run, tmp_path, lambda arrays: arrays.update(config=np.array(text)))
    with pytest.raises(CheckpointError, match="entry 'config' is .* bytes: more than the "
                                              "8,000,000 characters of JSON minipg reads"):
        read_checkpoint(run)


def test_a_policy_config_naming_a_huge_network_is_refused_before_building(small_run,
                                                                         tmp_path, capsys,
                                                                         monkeypatch):
    run = crafted(small_run, tmp_path, set_json("policy/config", hidden_sizes=[100000, 100000]))
    built = []
    with monkeypatch.context() as patch:
        patch.setattr("minipg.core.policies.MLP.__init__",
                      lambda *args, **kwargs: built.append(args))
        with pytest.raises(CheckpointError, match=r"policy/params holds 58 numbers, but "
                                                  r"policy/config describes a network of "
                                                  r"10,000,800,002 parameters"):
            minipg.load(run)
    assert built == []                                       # no network was built
    for command in (["eval", str(run)], ["train", "--resume", str(run)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "10,000,800,002 parameters" in err


def test_a_training_config_naming_a_huge_network_is_refused_on_resume(small_run, tmp_path,
                                                                     capsys,
                                                                     machine_of_16_gb):
    run = crafted(small_run, tmp_path, set_json("config", hidden_sizes=[100000, 100000]))
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "hidden_sizes (100000, 100000): networks of 20,000,800,002 parameters" in err


def test_plot_refuses_a_field_of_200000_characters_in_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "progress.csv").write_text(
        "iteration,env_steps,mean_return\n1,100," + "9" * 200_000 + "\n")
    status = main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "curves.png")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "progress.csv, line 2: not a minipg progress.csv (field larger than field limit" in err
    assert not (tmp_path / "curves.png").exists()


def test_plot_treats_a_config_json_nested_200000_deep_as_no_config(small_run, tmp_path,
                                                                   capsys):
    copy = shutil.copytree(small_run, tmp_path / "deep")
    (copy / "config.json").write_text(DEEP)
    status = main(["plot", str(copy), str(small_run), "--out", str(tmp_path / "curves.png")])
    assert status == 0 and (tmp_path / "curves.png").exists()


# ------------------------------------------------------------------------------------------
# Paths: "~", and printed commands that paste
# ------------------------------------------------------------------------------------------

def test_a_run_dir_under_tilde_is_in_the_home_directory(tmp_path, monkeypatch, capsys):
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    result = minipg.train("CartPole-v1", "ppo", 64, 0, run_dir="~/runs/x", **SMALL)
    assert result.run_dir == str(home / "runs" / "x")
    assert (home / "runs" / "x" / "checkpoint.npz").is_file()
    assert minipg.load("~/runs/x").params.shape == result.policy.params.shape
    assert minipg.train(resume="~/runs/x").run_dir == str(home / "runs" / "x")
    # The CLI, given "~" unexpanded (quoted, or after "=" where a shell leaves it):
    assert main(["eval", "~/runs/x", "--episodes", "2"]) == 0
    assert main(["plot", "~/runs/x", "--out", "~/curves.png"]) == 0
    assert main(["train", "--steps", "64", "--num-envs", "2", "--num-steps", "16",
                 "--log-every", "-1", "--run-dir=~/runs/y"]) == 0
    assert (home / "curves.png").is_file() and (home / "runs" / "y" / "config.json").is_file()
    assert list(elsewhere.iterdir()) == []                   # no literal "~" folder


def pasted(line, after):
    """The command printed in `line` after `after`, split as a shell would split it."""
    return shlex.split(line.split(after, 1)[1])


def test_printed_commands_quote_paths_so_that_pasting_works(tmp_path, capsys):
    run_dir = tmp_path / "my runs" / "it's ppo"

    def ctrl_c(record, policy):
        if record["iteration"] == 2:
            raise KeyboardInterrupt

    stopped = minipg.train("CartPole-v1", "ppo", 6 * 32, 0, run_dir=run_dir, callback=ctrl_c,
                           **SMALL)
    assert stopped.interrupted
    (hint,) = [line for line in capsys.readouterr().out.splitlines() if "continue with" in line]
    command = pasted(hint, "continue with: ")
    assert command == ["minipg", "train", "--resume", str(run_dir)]
    assert main(command[1:]) == 0                            # the pasted command resumes
    (done,) = [line for line in capsys.readouterr().out.splitlines() if "minipg eval" in line]
    assert pasted(done, "(")[:2] == ["minipg", "eval"]
    assert pasted(done.rstrip(")"), "(") == ["minipg", "eval", str(run_dir)]


def test_the_hint_after_an_error_quotes_the_path_too(tmp_path):
    run_dir = tmp_path / "a folder"

    def fails(record, policy):
        if record["iteration"] == 2:
            raise RuntimeError("the callback failed")

    with pytest.raises(RuntimeError) as raised:
        minipg.train("CartPole-v1", "ppo", 6 * 32, 0, run_dir=run_dir, callback=fails, **SMALL)
    assert pasted(str(raised.value), "continue with: ") == ["minipg", "train", "--resume",
                                                            str(run_dir)]


# ------------------------------------------------------------------------------------------
# Resume: --no-preset, and progress.csv with other line endings
# ------------------------------------------------------------------------------------------

def test_resume_with_no_preset_is_refused_when_the_run_had_a_preset(small_run, tmp_path,
                                                                    capsys):
    run = shutil.copytree(small_run, tmp_path / "run")
    assert load_config(run).preset == "CartPole-v1/ppo"
    status = main(["train", "--resume", str(run), "--no-preset"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "--no-preset: the run in" in err and "preset CartPole-v1/ppo" in err
    with pytest.raises(ValueError, match="whose preset is 'CartPole-v1/ppo', not ''"):
        minipg.train(resume=run, preset=False)


def test_resume_with_no_preset_agrees_with_a_run_trained_without_one(tmp_path, capsys):
    run = tmp_path / "run"
    minipg.train("CartPole-v1", "ppo", 6 * 32, 0, run_dir=run, preset=False,
                 callback=lambda record, policy: record["iteration"] >= 2, **SMALL)
    assert load_config(run).preset == ""
    assert main(["train", "--resume", str(run), "--no-preset"]) == 0
    assert "done: 192 env steps" in capsys.readouterr().out


@pytest.mark.parametrize("ending", ["\n", "\r"])
def test_a_progress_csv_with_other_line_endings_resumes(tmp_path, ending, capsys):
    whole = minipg.train("CartPole-v1", "ppo", 6 * 32, 0, run_dir=tmp_path / "whole", **SMALL)
    run = stopped_run(tmp_path / "run")
    progress = run / "progress.csv"
    original = progress.read_bytes()
    assert original.count(b"\r\n") == STOP_AT + 1            # minipg writes CRLF (csv's own)
    progress.write_bytes(original.replace(b"\r\n", ending.encode()))
    result = minipg.train(resume=run)
    assert result.resumed_from == STOP_AT
    # The file is minipg's again, line endings and all, and the run continued bit for bit.
    assert progress.read_bytes() == (tmp_path / "whole" / "progress.csv").read_bytes()
    np.testing.assert_array_equal(result.policy.params, whole.policy.params)

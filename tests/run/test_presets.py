"""Presets as a specification: the table's settings are valid configs of their algorithm; the
preset of (env, algo) is applied under the arguments given (any of which wins), recorded in the
config, named in the run header and in --help; preset=False gives the generic defaults; the
README shows the same table."""
import dataclasses
import pathlib

import pytest

import minipg
from minipg.run import presets
from minipg.tools.cli import _train_parser, main
from minipg.algos.config import make_config
from minipg.algos.registry import ALGOS

TINY = dict(total_steps=64, seed=0, log_every=-1)


@pytest.mark.parametrize("key", sorted(presets.PRESETS), ids="/".join)
def test_every_preset_is_a_valid_config_of_its_algorithm(key):
    env_id, algo = key
    config = make_config(ALGOS[algo].Config, env_id=env_id, algo=algo, **presets.PRESETS[key])
    for name, value in presets.PRESETS[key].items():
        assert getattr(config, name) == value
    assert env_id in presets.SOURCES


def test_the_preset_is_applied_under_the_arguments_given(tmp_path, capsys):
    result = minipg.train("Pendulum-v1", "ppo", run_dir=str(tmp_path / "a"),
                          learning_rate=5e-4, num_steps=4, **{**TINY, "log_every": 0})
    config, preset = result.config, presets.PRESETS[("Pendulum-v1", "ppo")]
    assert config.preset == "Pendulum-v1/ppo"
    assert (config.learning_rate, config.num_steps) == (5e-4, 4)            # the arguments win
    assert (config.gamma, config.num_envs) == (preset["gamma"], preset["num_envs"])
    out = capsys.readouterr().out
    assert "preset Pendulum-v1/ppo" in out and "gamma=0.9" in out
    assert "replaced by your arguments: num_steps=4, learning_rate=0.0005" in out
    generic = minipg.train("Pendulum-v1", "ppo", run_dir=str(tmp_path / "b"), preset=False,
                           num_steps=4, **{**TINY, "log_every": 0}).config
    assert "preset Pendulum-v1/ppo not applied (preset=False)" in capsys.readouterr().out
    defaults = ALGOS["ppo"].Config()
    assert generic.preset == "" and generic.gamma == defaults.gamma != preset["gamma"]


def test_an_env_without_a_preset_says_it_uses_the_generic_defaults(tmp_path, capsys):
    config = minipg.train("MountainCar-v0", "a2c", run_dir=str(tmp_path / "run"),
                          **{**TINY, "log_every": 0}).config
    assert config.preset == ""
    assert "no preset for MountainCar-v0/a2c: minipg's generic defaults" in \
        capsys.readouterr().out
    with pytest.raises(TypeError, match="preset must be True or False"):
        minipg.train("CartPole-v1", "ppo", preset="Pendulum-v1/ppo", **TINY)


def test_help_shows_the_preset_that_applies(capsys):
    with pytest.raises(SystemExit):
        _train_parser("ppo", env_id="LunarLander-v3").parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "preset LunarLander-v3/ppo applies" in text
    assert "(preset: 0.999)" in text and "(preset: 1024)" in text            # gamma, num_steps
    with pytest.raises(SystemExit):
        _train_parser("ppo", env_id="LunarLander-v3", preset=False).parse_args(["--help"])
    assert "no preset for LunarLander-v3/ppo" in " ".join(capsys.readouterr().out.split())


def test_the_cli_applies_the_preset_and_no_preset_turns_it_off(tmp_path):
    args = ["train", "--env", "Pendulum-v1", "--steps", "64", "--num-steps", "4",
            "--log-every", "-1"]
    assert main([*args, "--run-dir", str(tmp_path / "a")]) == 0
    assert main([*args, "--run-dir", str(tmp_path / "b"), "--no-preset"]) == 0
    assert minipg.run.checkpoint.load_config(tmp_path / "a").gamma == 0.9
    assert minipg.run.checkpoint.load_config(tmp_path / "b").preset == ""


def test_a_resume_keeps_the_saved_config_whatever_the_presets_say(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run")
    minipg.train("Pendulum-v1", "ppo", 4 * 64, 0, run_dir=run_dir, num_steps=4,
                 log_every=-1, callback=lambda record, policy: record["iteration"] == 1)
    changed = dict(presets.PRESETS)
    changed[("Pendulum-v1", "ppo")] = dict(changed[("Pendulum-v1", "ppo")], gamma=0.5)
    monkeypatch.setattr(presets, "PRESETS", changed)
    assert minipg.train(resume=run_dir).config.gamma == 0.9


def test_the_readme_shows_the_presets_table():
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert presets.table() in readme


def test_the_generic_defaults_are_not_called_tuned_for_every_env():
    assert "generic defaults" in (presets.__doc__ or "")
    fields = {f.name for f in dataclasses.fields(ALGOS["ppo"].Config)}
    assert {name for settings in presets.PRESETS.values() for name in settings} <= fields

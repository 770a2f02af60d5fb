"""The command line end to end in a temp dir: train, eval (with a GIF), plot, help; and the
checkpoint that `minipg.load` reads: a policy acting on a batch, plus the full config."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import minipg
from minipg.algos import ppo
from minipg.cli import main
from minipg.config import config_from_json
from minipg.trainer import load_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--steps", "2000", "--run-dir", str(run_dir), "--num-envs", "4"]) == 0
    return run_dir


def test_train_writes_config_progress_and_checkpoint(trained_run):
    for name in ("config.json", "progress.csv", "checkpoint.npz"):
        assert (trained_run / name).is_file(), name
    with open(trained_run / "config.json") as f:
        config = json.load(f)
    assert (config["algo"], config["env_id"], config["num_envs"], config["total_steps"]) == \
        ("ppo", "CartPole-v1", 4, 2000)
    lines = (trained_run / "progress.csv").read_text().splitlines()
    assert lines[0].startswith("iteration,env_steps")
    assert len(lines) > 1


def test_checkpoint_holds_the_full_config(trained_run):
    checkpoint = str(trained_run / "checkpoint.npz")
    config = load_config(checkpoint)
    assert isinstance(config, ppo.Config)
    from_json = config_from_json(ppo.Config, (trained_run / "config.json").read_text())
    assert config == from_json
    expected = dataclasses.replace(ppo.Config(), env_id="CartPole-v1", algo="ppo",
                                   total_steps=2000, seed=0, num_envs=4)
    assert config == expected


def test_loaded_policy_acts_on_a_batch_one_action_per_row(trained_run):
    policy = minipg.load(str(trained_run / "checkpoint.npz"))
    obs = np.random.default_rng(0).normal(0, 0.05, size=(7, 4))
    actions = policy.act(obs, deterministic=True)
    assert np.shape(actions) == (7,)
    assert set(np.asarray(actions).tolist()) <= {0, 1}
    np.testing.assert_array_equal(actions, policy.act(obs, deterministic=True))
    np.testing.assert_array_equal(actions, np.argmax(policy.distribution(obs).probs, axis=-1))
    sampled = policy.act(obs, rng=np.random.default_rng(1))
    assert np.shape(sampled) == (7,)


def test_eval_prints_the_mean_and_writes_a_gif(trained_run, tmp_path, capsys):
    gif = tmp_path / "episode.gif"
    assert main(["eval", str(trained_run), "--episodes", "3", "--render", str(gif)]) == 0
    out = capsys.readouterr().out
    assert "3 episodes" in out and "+-" in out
    data = gif.read_bytes()
    assert data[:6] in (b"GIF87a", b"GIF89a")
    from PIL import Image
    with Image.open(gif) as image:
        assert image.n_frames > 5


def test_plot_writes_a_png_with_several_runs(trained_run, tmp_path):
    second = tmp_path / "second"
    minipg.train("CartPole-v1", "a2c", 512, 1, run_dir=str(second), num_envs=4, log_every=-1)
    png = tmp_path / "curves.png"
    assert main(["plot", str(trained_run), str(second), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_options_parse_every_field_type(tmp_path):
    run_dir = tmp_path / "run"
    main(["train", "--steps", "256", "--run-dir", str(run_dir), "--num-envs", "2",
          "--num-steps", "16", "--hidden-sizes", "16,8", "--target-kl", "0.5",
          "--anneal-lr", "false", "--learning-rate", "1e-3", "--log-every", "-1"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hidden_sizes"] == [16, 8]
    assert config["target_kl"] == 0.5
    assert config["anneal_lr"] is False
    assert config["learning_rate"] == 1e-3


def test_train_with_a_bad_value_exits_with_a_message_naming_the_field(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit, match="gamma"):
        main(["train", "--gamma", "1.5", "--run-dir", str(run_dir)])
    assert not run_dir.exists()


def test_eval_of_a_missing_run_exits_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["eval", str(tmp_path / "nothing")])


def test_python_m_minipg_train_help_lists_the_field_docstrings():
    done = subprocess.run([sys.executable, "-m", "minipg", "train", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--clip-coef" in done.stdout
    assert "clipped surrogate" in done.stdout           # the clip_coef field's docstring
    assert "--num-envs" in done.stdout

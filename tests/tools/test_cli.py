"""The command line end to end in a temp dir: train, eval (with a GIF), plot, help; the
checkpoint that `minipg.load` reads: a policy acting on a batch, plus the full config; and every
expected error as one line on stderr with a non-zero exit, checked before any work is done."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import minipg
from minipg.tools import cli as cli_module
from minipg.algos import ppo
from minipg.tools.cli import main
from minipg.algos.config import config_from_json
from minipg.run.checkpoint import load_config


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
                                   total_steps=2000, seed=0, num_envs=4,
                                   preset="CartPole-v1/ppo")
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


def error_line(capsys):
    """The one line an expected error prints on stderr (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_train_with_a_bad_value_exits_1_with_one_line_naming_the_field(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--gamma", "1.5", "--run-dir", str(run_dir)]) == 1
    assert "gamma" in error_line(capsys)
    assert not run_dir.exists()


def test_debug_shows_the_exception_itself(tmp_path):
    with pytest.raises(ValueError, match="gamma"):
        main(["train", "--gamma", "1.5", "--run-dir", str(tmp_path / "run"), "--debug"])


def test_eval_of_a_missing_run_exits_1_with_a_message(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 1
    assert "no checkpoint" in error_line(capsys)


def test_an_unknown_command_exits_2_and_suggests_the_closest(capsys):
    assert main(["trian", "--steps", "10"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "did you mean 'train'" in err
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"iteration,env_steps,episodes,mean_return\r\n", "no rows yet"),
    (b"a,b\r\n1,2\r\n", "no env_steps or mean_return column"),
    (b"iteration,env_steps,mean_return\r\n1,128,nan\r\n2,abc,3.0\r\n", "line 3"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not"),
], ids=["empty", "header-only", "other-columns", "non-numeric", "binary"])
def test_plot_of_a_malformed_progress_csv_is_one_line_naming_the_file(tmp_path, capsys, content,
                                                                       match):
    bad = tmp_path / "progress.csv"
    bad.write_bytes(content)
    assert main(["plot", str(bad), "--out", str(tmp_path / "curves.png")]) == 1
    line = error_line(capsys)
    assert match in line and str(bad) in line
    assert not (tmp_path / "curves.png").exists()


def test_plot_into_a_missing_folder_fails_before_reading_anything(tmp_path, capsys, trained_run):
    out = tmp_path / "no" / "such" / "curves.png"
    assert main(["plot", str(trained_run), "--out", str(out)]) == 1
    assert "does not exist" in error_line(capsys)


def no_evaluation(*args, **kwargs):
    raise AssertionError("evaluated before the arguments were checked")


@pytest.mark.parametrize("gif, match", [("no/such/dir/x.gif", "does not exist"),
                                        ("episode.png", ".gif")])
def test_eval_render_into_a_missing_folder_fails_before_evaluating(tmp_path, capsys, monkeypatch,
                                                                   trained_run, gif, match):
    monkeypatch.setattr(cli_module, "run_episodes", no_evaluation)
    assert main(["eval", str(trained_run), "--render", str(tmp_path / gif)]) == 1
    assert match in error_line(capsys)


# gymnasium's own warning about the very env this test is about
@pytest.mark.filterwarnings("ignore:.*render_mode.*:UserWarning")
def test_render_on_an_env_that_draws_no_frames_fails_before_evaluating(tmp_path, capsys,
                                                                      monkeypatch):
    import fault_envs  # noqa: F401  (registers minipg-test/ envs, which render nothing)
    run = minipg.train("minipg-test/NeverEnds-v0", "a2c", 64, 0, run_dir=str(tmp_path / "run"),
                       num_envs=2, num_steps=32, hidden_sizes=(8,), log_every=-1)
    monkeypatch.setattr(cli_module, "run_episodes", no_evaluation)
    assert main(["eval", run.run_dir, "--render", str(tmp_path / "x.gif")]) == 1
    assert "NeverEnds-v0 cannot render rgb_array frames (TypeError" in error_line(capsys)
    assert not (tmp_path / "x.gif").exists()


def test_eval_on_an_env_the_policy_was_not_trained_for_names_both(trained_run, capsys):
    assert main(["eval", str(trained_run), "--env", "Acrobot-v1", "--episodes", "2"]) == 1
    line = error_line(capsys)
    assert "4-dim observations and Discrete(2) actions" in line and "Acrobot-v1" in line


def test_train_refuses_an_existing_run_dir_then_overwrite_and_resume_work(trained_run, capsys,
                                                                          tmp_path):
    before = (trained_run / "progress.csv").read_bytes()
    assert main(["train", "--steps", "256", "--run-dir", str(trained_run)]) == 1
    line = error_line(capsys)
    assert "already exists" in line and "--resume" in line and "--overwrite" in line
    assert (trained_run / "progress.csv").read_bytes() == before       # untouched
    copy = tmp_path / "copy"
    assert main(["train", "--steps", "256", "--num-envs", "4", "--run-dir", str(copy),
                 "--num-steps", "16", "--log-every", "-1"]) == 0
    assert main(["train", "--steps", "512", "--num-envs", "4", "--run-dir", str(copy),
                 "--num-steps", "16", "--log-every", "-1", "--overwrite"]) == 0
    assert len((copy / "progress.csv").read_text().splitlines()) == 1 + 512 // 64
    capsys.readouterr()
    assert main(["train", "--resume", str(copy)]) == 0               # finished: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    assert main(["train", "--resume", str(copy), "--gamma", "0.5"]) == 1
    assert "gamma" in error_line(capsys)


def test_python_m_minipg_train_help_lists_the_field_docstrings():
    done = subprocess.run([sys.executable, "-m", "minipg", "train", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--clip-coef" in done.stdout
    assert "clipped surrogate" in done.stdout           # the clip_coef field's docstring
    assert "--num-envs" in done.stdout


# ------------------------------------------------------------------------------------------
# --algo grpo: its own loop over groups of episodes, the same run directory
# ------------------------------------------------------------------------------------------

GRPO_ARGS = ["train", "--algo", "grpo", "--steps", "1500", "--num-groups", "2",
             "--group-size", "4", "--hidden-sizes", "16"]


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory):
    from minipg.tools.cli import cmd_train
    run_dir = tmp_path_factory.mktemp("grpo") / "run"
    result = cmd_train(GRPO_ARGS[1:] + ["--run-dir", str(run_dir)])
    return run_dir, result


def test_train_grpo_writes_config_progress_and_checkpoint(grpo_run):
    from minipg.algos.grpo_gym import Config
    from minipg.algos import grpo_gym
    from minipg.run.loop import csv_fields
    CSV_FIELDS = csv_fields(grpo_gym)
    run_dir, result = grpo_run
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algo"], config["env_id"], config["total_steps"], config["group_size"],
            config["num_groups"], config["hidden_sizes"]) == ("grpo", "CartPole-v1", 1500, 4, 2,
                                                              [16])
    lines = (run_dir / "progress.csv").read_text().splitlines()
    assert lines[0] == ",".join(CSV_FIELDS)
    rows = [dict(zip(CSV_FIELDS, line.split(","))) for line in lines[1:]]
    assert len(rows) == len(result.history) >= 2                    # one row per update
    steps = [int(row["env_steps"]) for row in rows]
    assert steps == sorted(set(steps)) and steps[-2] < 1500 <= steps[-1]
    # CartPole gives +1 per step: a batch's transitions are 8 times its mean return
    assert steps[0] == pytest.approx(8 * float(rows[0]["group_return"]))
    assert [int(row["episodes"]) for row in rows] == [8 * (i + 1) for i in range(len(rows))]
    assert all(0 <= float(row["frac_all_equal"]) <= 1 for row in rows)
    saved = load_config(str(run_dir))
    assert isinstance(saved, Config) and saved == result.config
    # the checkpoint holds the policy after the last update
    np.testing.assert_array_equal(minipg.load(str(run_dir)).params, result.policy.params)


def test_grpo_run_trains_exactly_what_minipg_train_trains(grpo_run, tmp_path):
    _, result = grpo_run
    again = minipg.train("CartPole-v1", "grpo", 1500, 0, run_dir=tmp_path / "py", num_groups=2,
                         group_size=4, hidden_sizes=(16,), log_every=-1)
    assert [r["mean_return"] for r in again.history] == [r["mean_return"] for r in result.history]
    np.testing.assert_array_equal(again.policy.params, result.policy.params)


def test_grpo_run_is_evaluated_and_plotted_like_any_run(grpo_run, tmp_path, capsys):
    run_dir, _ = grpo_run
    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    assert "CartPole-v1, 3 episodes" in capsys.readouterr().out
    png = tmp_path / "curves.png"
    assert main(["plot", str(run_dir), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grpo_progress_is_the_same_for_the_same_seed(grpo_run, tmp_path):
    run_dir, _ = grpo_run
    again = tmp_path / "again"
    assert main(GRPO_ARGS + ["--run-dir", str(again)]) == 0
    assert (again / "progress.csv").read_bytes() == (run_dir / "progress.csv").read_bytes()


def test_grpo_help_lists_its_config_fields_with_their_docstrings(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--algo", "grpo", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--group-size" in text and "G, episodes per start state" in text
    assert "--loss-agg" in text and "--num-envs" not in text


@pytest.mark.parametrize("flag, value, name", [("--group-size", "0", "group_size"),
                                               ("--baseline", "mean", "baseline")])
def test_grpo_with_a_bad_value_exits_1_with_one_line_before_any_file(tmp_path, capsys, flag,
                                                                     value, name):
    run_dir = tmp_path / "run"
    assert main(["train", "--algo", "grpo", flag, value, "--run-dir", str(run_dir)]) == 1
    assert name in error_line(capsys)
    assert not run_dir.exists()


def test_grpo_stopped_and_resumed_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path):
    """The one loop gives GRPO what every run has: a checkpoint per iteration on request,
    and a resume that continues exactly (the groups' reset seeds and the sampled actions come
    from the saved generator, the optimizer from its saved moments)."""
    args = GRPO_ARGS + ["--steps", "3000", "--checkpoint-every", "0"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(args + ["--run-dir", str(whole)]) == 0
    stopped = minipg.train("CartPole-v1", "grpo", 3000, 0, run_dir=part, num_groups=2,
                           group_size=4, hidden_sizes=(16,), checkpoint_every=0.0,
                           callback=lambda record, policy: record["iteration"] == 3)
    assert len(stopped.history) == 3 and len(whole_rows := (whole / "progress.csv")
                                              .read_text().splitlines()) > 5
    assert main(["train", "--resume", str(part)]) == 0
    assert (part / "progress.csv").read_text().splitlines() == whole_rows
    np.testing.assert_array_equal(minipg.load(part).params, minipg.load(whole).params)
    saved_whole = np.load(whole / "checkpoint.npz")
    saved_part = np.load(part / "checkpoint.npz")
    for name in ("optim/optim/m", "optim/optim/v", "policy/params"):
        np.testing.assert_array_equal(saved_part[name], saved_whole[name])


@pytest.mark.parametrize("stop, interrupted", [(KeyboardInterrupt, True), (ValueError, False)])
def test_grpo_stopped_early_saves_the_policy_of_its_last_update(tmp_path, stop, interrupted):
    seen = []

    def callback(record, policy):
        seen.append(policy.params.copy())
        if len(seen) == 2:
            raise stop("stop here")

    run_dir = tmp_path / "run"
    kwargs = dict(run_dir=str(run_dir), callback=callback, num_groups=2, group_size=4,
                  hidden_sizes=(16,))
    if interrupted:
        result = minipg.train("CartPole-v1", "grpo", 100_000, 0, **kwargs)
        assert result.interrupted and len(result.history) == 2
    else:
        with pytest.raises(ValueError, match="stop here"):
            minipg.train("CartPole-v1", "grpo", 100_000, 0, **kwargs)
    assert len((run_dir / "progress.csv").read_text().splitlines()) == 1 + 2
    np.testing.assert_array_equal(minipg.load(str(run_dir)).params, seen[1])
    assert not np.array_equal(seen[0], seen[1])


@pytest.mark.parametrize("env, match", [("NoSuchEnv-v0", "NoSuchEnv-v0"),
                                        ("Pendulum-v1", "Discrete actions")])
def test_grpo_on_an_env_it_cannot_train_is_one_line_before_any_file(tmp_path, capsys, env,
                                                                   match):
    run_dir = tmp_path / "run"
    assert main(["train", "--algo", "grpo", "--env", env, "--run-dir", str(run_dir)]) == 1
    assert match in error_line(capsys)
    assert not run_dir.exists()

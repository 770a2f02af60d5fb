"""Recording an episode as a specification: any env that renders rgb_array frames becomes a
GIF (or an MP4) of one frame per step plus the first, each captioned with the env, step and
return; everything is checked before the episode runs; CartPole and Pendulum are drawn from
their observations when gymnasium's renderer is missing; a failure leaves no file behind."""
import os
import sys

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from minipg.tools import render
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.tools.render import RenderError, prepare, render_episode


class Painter(gym.Env):
    """Draws its own frames: a 60 x 80 image whose green channel is 10 * the step; the action
    (0 or 1) is the reward; 7 steps an episode."""
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.zeros(2), {}

    def step(self, action):
        self.k += 1
        return np.zeros(2), float(action), self.k >= 7, False, {}

    def render(self):
        frame = np.zeros((60, 80, 3), np.uint8)
        frame[..., 1] = 10 * self.k
        return frame


def always(action, obs_dim=2):
    """A policy that always takes `action`: logits far apart."""
    policy = CategoricalPolicy(obs_dim, 2, (4,), rng=0)
    policy.params[:] = 0.0
    policy.net.biases[-1][:] = [0.0, 50.0] if action == 1 else [50.0, 0.0]
    return policy


def gif_frames(path):
    with Image.open(path) as image:
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
        return frames


def test_an_env_that_draws_its_own_frames_becomes_a_captioned_gif(tmp_path):
    path = tmp_path / "painter.gif"
    episode_return, frames, cut = render_episode(always(1), Painter, str(path))
    assert (episode_return, frames, cut) == (7.0, 8, False)      # the first frame, then 7 steps
    images = gif_frames(path)
    assert len(images) == 8 and images[0].shape == (60, 80, 3)
    # Below the caption band the env's own frame: green = 10 * step.
    assert [int(np.median(image[40:, :, 1])) for image in images] == [10 * k for k in range(8)]
    # The caption band is dark with white text in it (a GIF's palette may shift the white a
    # little): the frames differ there, by the text.
    band = [image[:12] for image in images]
    assert all(np.median(b) < 40 and b.max() > 200 for b in band)
    assert not np.array_equal(band[0], band[-1])


def test_the_step_limit_cuts_the_recording(tmp_path):
    _, frames, cut = render_episode(always(0), Painter, str(tmp_path / "cut.gif"),
                                    max_episode_steps=3)
    assert (frames, cut) == (4, True)


@pytest.mark.parametrize("name, match", [("x.png", r"must end in \.gif or \.mp4"),
                                         ("no/such/folder/x.gif", "does not exist")])
def test_a_bad_file_name_is_refused_before_the_env_is_made(tmp_path, name, match):
    def must_not_be_made():
        raise AssertionError("the env was made")

    with pytest.raises(RenderError, match=match):
        prepare(must_not_be_made, str(tmp_path / name))


def test_a_factory_whose_env_does_not_render_rgb_array_is_refused(tmp_path):
    with pytest.raises(RenderError, match="render_mode=None; to record it"):
        prepare(lambda: Painter(), str(tmp_path / "x.gif"))


def test_without_gymnasiums_renderer_cartpole_is_drawn_and_acrobot_says_what_to_install(
        tmp_path, monkeypatch):
    def missing_pygame(env):
        raise gym.error.DependencyNotInstalled("pygame is not installed")

    monkeypatch.setattr(render, "_make_rendering_env", missing_pygame)
    episode_return, frames, _ = render_episode(always(1, obs_dim=4), "CartPole-v1",
                                               str(tmp_path / "cartpole.gif"))
    assert frames == episode_return + 1 == len(gif_frames(tmp_path / "cartpole.gif"))
    with pytest.raises(RenderError, match=r'pygame is not installed.*pip install "minipg\[render\]"'):
        prepare("Acrobot-v1", str(tmp_path / "acrobot.gif"))


def test_an_mp4_without_ffmpeg_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)        # import fails
    with pytest.raises(RenderError, match=r'needs imageio and ffmpeg.*minipg\[render\]'):
        prepare(Painter, str(tmp_path / "x.mp4"))


def imageio_with_ffmpeg_or_skip():
    """imageio.v2 when imageio, imageio-ffmpeg and an ffmpeg binary are all there; else the
    test is skipped (they are in the test extra, but an environment may lack them)."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg
    except ImportError as error:
        pytest.skip(f"imageio or imageio-ffmpeg is not installed: {error}")
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        pytest.skip(f"imageio-ffmpeg finds no ffmpeg binary: {error}")
    return imageio


def test_an_mp4_where_imageio_and_ffmpeg_are_installed(tmp_path):
    imageio = imageio_with_ffmpeg_or_skip()
    path = tmp_path / "painter.mp4"
    assert render_episode(always(1), Painter, str(path))[1] == 8
    with imageio.get_reader(str(path)) as reader:
        assert reader.count_frames() == 8


def test_a_failure_during_the_episode_leaves_no_file(tmp_path):
    class Broken(GaussianPolicy):
        def act(self, obs, deterministic=False, rng=None):
            raise RuntimeError("policy failed")

    with pytest.raises(RuntimeError, match="policy failed"):
        render_episode(Broken(3, 1, (4,)), "Pendulum-v1", str(tmp_path / "x.gif"))
    assert os.listdir(tmp_path) == []

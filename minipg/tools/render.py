"""One episode of a policy as a GIF or an MP4 (`minipg eval --render`), for any env that
renders to `render_mode="rgb_array"`: gymnasium's own renderers (pygame for classic control
and Box2D, MuJoCo's for MuJoCo: `pip install "minipg[render]"`), or a user's env that draws
its own frames. Each frame carries the env's name, the step and the return so far.

Everything is checked before any evaluation runs (`prepare`): the file name and its folder,
the writer (an MP4 needs imageio with ffmpeg), and the env itself, made and asked for a first
frame. Without pygame, CartPole and Pendulum are still drawn, with matplotlib, from the
observations themselves (DRAWERS).

Frames wider than MAX_WIDTH pixels are scaled down (a 1,000-step MuJoCo episode at full size
would hold gigabytes); an MP4 is written frame by frame, a GIF kept as 8-bit palette images
until it is saved. The file appears only once complete (minipg.run.files.atomic_output).
"""
import inspect
import os

import numpy as np

from minipg.envs.make import env_name
from minipg.envs.rollout import action_start
from minipg.run.files import atomic_output

MAX_WIDTH = 400
RENDER_EXTENSIONS = ("gif", "mp4")


class RenderError(ValueError):
    """The episode cannot be rendered as asked (checked before anything runs)."""


# ------------------------------------------------------------------------------------------
# Frames: gymnasium's renderer, or matplotlib drawings of the observations
# ------------------------------------------------------------------------------------------

def _draw_cartpole(ax):
    """Artists for CartPole and a function that poses them from an observation (x, _, theta, _)."""
    from matplotlib.patches import Rectangle

    ax.set_xlim(-2.6, 2.6)
    ax.set_ylim(-0.4, 1.4)
    ax.axhline(0, color="0.3", lw=1)
    for x in (-2.4, 2.4):                                # the cart terminates past +-2.4
        ax.axvline(x, color="0.8", lw=1, ls="--")
    cart = ax.add_patch(Rectangle((0, 0), 0.5, 0.3, color="0.25"))
    (pole,) = ax.plot([], [], color="#c8843c", lw=6, solid_capstyle="round")

    def pose(obs):
        x, theta = obs[0], obs[2]
        cart.set_xy((x - 0.25, 0.0))
        pole.set_data([x, x + np.sin(theta)], [0.3, 0.3 + np.cos(theta)])   # pole length 1

    return pose


def _draw_pendulum(ax):
    """Artists for Pendulum and a function that poses them from (cos theta, sin theta, _)."""
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    (rod,) = ax.plot([], [], color="#c84c3c", lw=8, solid_capstyle="round")

    def pose(obs):
        cos_theta, sin_theta = obs[0], obs[1]      # theta = 0 is upright
        rod.set_data([0, -sin_theta], [0, cos_theta])

    return pose


DRAWERS = {"CartPole": _draw_cartpole, "Pendulum": _draw_pendulum}


def drawer_for(env_id):
    """The drawing function for an env id ("CartPole-v1" -> _draw_cartpole), or None."""
    return DRAWERS.get(env_id.split(":")[-1].split("-")[0]) if isinstance(env_id, str) else None


class _Drawing:
    """rgb frames of observations drawn with matplotlib (Agg: no display needed)."""

    def __init__(self, drawer):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
        ax.set_aspect("equal")
        ax.axis("off")
        self.pose = drawer(ax)

    def frame(self, obs):
        self.pose(obs)
        self.fig.canvas.draw()
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()

    def close(self):
        import matplotlib.pyplot as plt
        plt.close(self.fig)


def _make_rendering_env(env):
    """A single env made to render rgb_array frames: from an id, or from a factory (given
    render_mode="rgb_array" if it takes that argument)."""
    import gymnasium as gym

    if not os.environ.get("DISPLAY"):
        # MuJoCo's renderer needs an OpenGL context; without a display, EGL gives one (read
        # when gymnasium first imports MuJoCo's renderer). pygame draws rgb_array frames off
        # screen: its dummy video driver spares SDL's complaint about the missing display.
        # Settings of your own win.
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if isinstance(env, str):
        return gym.make(env, render_mode="rgb_array")
    try:
        takes_mode = "render_mode" in inspect.signature(env).parameters
    except (TypeError, ValueError):
        takes_mode = False
    made = env(render_mode="rgb_array") if takes_mode else env()
    if getattr(made, "render_mode", None) != "rgb_array":
        made.close()
        raise RenderError(f"the env made by the factory renders with render_mode="
                          f"{getattr(made, 'render_mode', None)!r}; to record it, make it with "
                          "render_mode='rgb_array' (e.g. a factory that takes a render_mode "
                          "argument)")
    return made


# ------------------------------------------------------------------------------------------
# Writers and the text on each frame
# ------------------------------------------------------------------------------------------

def _check_path(path):
    folder = os.path.dirname(os.path.abspath(path))
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in RENDER_EXTENSIONS:
        raise RenderError(f"the file name must end in .gif or .mp4, got {path!r}")
    if not os.path.isdir(folder):
        raise RenderError(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise RenderError(f"{path} is a directory; give a file name")
    if extension == "mp4":
        try:
            import imageio.v2  # noqa: F401
            import imageio_ffmpeg
            imageio_ffmpeg.get_ffmpeg_exe()
        except Exception as error:
            raise RenderError(f"writing {path} needs imageio and ffmpeg ({type(error).__name__}:"
                              f" {error}); pip install \"minipg[render]\", or write a .gif")
    return extension


def _fit(frame):
    """An (H, W, 3) uint8 frame, scaled down to at most MAX_WIDTH pixels wide."""
    from PIL import Image

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise RenderError(f"the env rendered an array of shape {frame.shape}, not an (H, W, 3) "
                          "image")
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)))
    return image


def _caption(image, text):
    """The text in a dark band at the top of the image (Pillow's built-in font)."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((4, 3), text)
    draw.rectangle((0, 0, image.width, bottom + 3), fill=(20, 20, 20))
    draw.text((4, 3), text, fill=(255, 255, 255))
    return image


class _VideoFile:
    """Frames into path, atomically: an MP4 written frame by frame (imageio with ffmpeg), a
    GIF kept as 8-bit palette images until finish() saves it."""

    def __init__(self, path, extension, fps):
        self.fps, self.count, self.images, self.video = fps, 0, [], None
        self.context = atomic_output(path)
        self.temporary = self.context.__enter__()
        if extension == "mp4":
            import imageio.v2 as imageio
            self.video = imageio.get_writer(self.temporary, fps=fps, macro_block_size=2)

    def add(self, image):
        self.count += 1
        if self.video is not None:
            frame = np.asarray(image)
            height, width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2   # even, for x264
            self.video.append_data(np.ascontiguousarray(frame[:height, :width]))
        else:
            self.images.append(image.convert("P", palette=1, colors=255))   # 1 byte a pixel

    def finish(self):
        if self.video is not None:
            self.video.close()
        else:
            self.images[0].save(self.temporary, format="GIF", save_all=True, loop=0,
                                append_images=self.images[1:], duration=round(1000 / self.fps))
        self.context.__exit__(None, None, None)          # fsync, rename over the target

    def abort(self, error):
        if self.video is not None:
            self.video.close()
        self.context.__exit__(type(error), error, error.__traceback__)   # removes the temporary


class Recorder:
    """Checked setup for one recorded episode: `prepare(env, path)`, then `record(policy)`."""

    def __init__(self, env, path, fps):
        self.env, self.path, self.fps = env, path, fps
        self.name = env_name(env)
        self.extension = _check_path(path)
        self.drawing, self.single = None, None
        try:
            self.single = _make_rendering_env(env)
            self.single.reset(seed=0)
            _fit(self.single.render())                       # one frame, checked now
        except RenderError:
            self.close()
            raise
        except Exception as error:
            self.close()
            drawer = drawer_for(env)
            if drawer is None:
                import gymnasium as gym
                detail = f"{type(error).__name__}: {error}"
                if "OpenGL" in str(error):
                    detail += "; without a display try MUJOCO_GL=egl or MUJOCO_GL=osmesa"
                elif isinstance(error, (ImportError, gym.error.DependencyNotInstalled)):
                    detail += ("; gymnasium's renderers need pygame or MuJoCo: pip install "
                               "\"minipg[render]\"")
                raise RenderError(f"{self.name} cannot render rgb_array frames ({detail})") \
                    from None
            import gymnasium as gym
            self.single, self.drawing = gym.make(env), _Drawing(drawer)   # draw observations
        self.fps = fps or self.single.metadata.get("render_fps") or 30

    def frame(self, obs):
        return self.drawing.frame(obs) if self.drawing else self.single.render()

    def record(self, policy, seed=0, deterministic=False, max_episode_steps=10_000):
        """Play one episode and write it; returns (episode return, frames, cut by the limit)."""
        start = action_start(self.single.action_space)
        rng = np.random.default_rng(seed)
        video = _VideoFile(self.path, self.extension, self.fps)
        try:
            obs, _ = self.single.reset(seed=seed)
            episode_return, steps, done = 0.0, 0, False
            while True:
                video.add(_caption(_fit(self.frame(obs)),
                                   f"{self.name}  step {steps}  return {episode_return:.1f}"))
                if done or steps >= max_episode_steps:
                    break
                action = policy.act(obs, deterministic=deterministic, rng=rng)
                obs, reward, terminated, truncated, _ = self.single.step(
                    action + start if start else action)
                episode_return += float(reward)
                steps += 1
                done = terminated or truncated
            video.finish()
        except BaseException as error:
            video.abort(error)
            raise
        finally:
            self.close()
        return episode_return, video.count, not done

    def close(self):
        if self.drawing is not None:
            self.drawing.close()
        if self.single is not None:
            self.single.close()


def prepare(env, path, fps=None):
    """A Recorder for env (an id or a factory) into path (.gif or .mp4), everything checked."""
    return Recorder(env, path, fps)


def render_episode(policy, env, path, seed=0, deterministic=False, max_episode_steps=10_000,
                   fps=None):
    """Record one episode of policy on env into path; returns (return, frames, cut)."""
    return prepare(env, path, fps).record(policy, seed, deterministic, max_episode_steps)

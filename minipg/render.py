"""One episode of a policy, drawn as an animated GIF (`minipg eval --render`).

Drawn with matplotlib from the observations themselves, so no rendering backend (pygame) is
needed -- and only for the envs whose observations say where everything is: CartPole and
Pendulum (DRAWERS).
"""
import numpy as np


def record_episode(policy, env_id, seed=0, deterministic=False, max_episode_steps=10_000):
    """The observations of one episode of the policy, s_0 .. s_final, its return, and whether
    the step limit cut it."""
    import gymnasium as gym

    from minipg.rollout import action_start

    env = gym.make(env_id)
    start = action_start(env.action_space)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, episode_return, done = [obs], 0.0, False
    while not done and len(observations) <= max_episode_steps:
        action = policy.act(obs, deterministic=deterministic, rng=rng)
        obs, reward, terminated, truncated, _ = env.step(action + start if start else action)
        observations.append(obs)
        episode_return += float(reward)
        done = terminated or truncated
    env.close()
    return np.array(observations), episode_return, not done


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
        return [cart, pole]

    return pose


def _draw_pendulum(ax):
    """Artists for Pendulum and a function that poses them from (cos theta, sin theta, _)."""
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    (rod,) = ax.plot([], [], color="#c84c3c", lw=8, solid_capstyle="round")

    def pose(obs):
        cos_theta, sin_theta = obs[0], obs[1]      # theta = 0 is upright
        rod.set_data([0, -sin_theta], [0, cos_theta])
        return [rod]

    return pose


DRAWERS = {"CartPole": _draw_cartpole, "Pendulum": _draw_pendulum}


def drawer_for(env_id):
    """The drawing function for an env id ("CartPole-v1" -> _draw_cartpole), or None."""
    return DRAWERS.get(env_id.split("-")[0])


def save_gif(observations, env_id, path, fps=30):
    """Draw each observation with matplotlib and write an animated GIF (Pillow writer).

    Drawn from the observations themselves, so no rendering backend (pygame) is needed. The
    file appears only once complete (minipg.checkpoint.atomic_output).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    from minipg.checkpoint import atomic_output

    drawer = drawer_for(env_id)
    if drawer is None:
        raise ValueError(f"no drawing for {env_id}; minipg draws {sorted(DRAWERS)}")
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.set_aspect("equal")
    ax.axis("off")
    pose = drawer(ax)
    animation = FuncAnimation(fig, lambda i: pose(observations[i]), frames=len(observations),
                              blit=True)
    try:
        with atomic_output(path) as temporary:
            animation.save(temporary, writer=PillowWriter(fps=fps))
    finally:
        plt.close(fig)

"""The command line: `minipg train | eval | plot` (also `python -m minipg ...`).

    minipg train --env CartPole-v1 --algo ppo --steps 100000 --seed 0
    minipg eval runs/CartPole-v1-ppo-seed0 --episodes 20 [--render cartpole.gif]
    minipg plot runs/CartPole-v1-ppo-seed0 runs/CartPole-v1-a2c-seed0 --out curves.png

Every field of the algorithm's Config is also an option of `train` (`minipg train --algo ppo
--help` lists them with their docstrings), e.g. --num-envs 16 --learning-rate 1e-3.
"""
import argparse
import csv
import dataclasses
import os
import sys
import typing

import numpy as np

COMMANDS = ("train", "eval", "plot")


def _field_type(field):
    """The parser for a Config field: int, float, bool, str, a tuple of ints, or Optional[float]."""
    annotation = field.type
    if annotation is bool:
        return _parse_bool
    if typing.get_origin(annotation) is tuple:
        return lambda text: tuple(int(x) for x in text.replace(",", " ").split())
    if typing.get_origin(annotation) is typing.Union:       # Optional[float]
        inner = [a for a in typing.get_args(annotation) if a is not type(None)][0]
        return lambda text: None if text.lower() == "none" else inner(text)
    return annotation


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _train_parser(algo):
    from minipg.config import field_docs
    from minipg.trainer import ALGOS

    parser = argparse.ArgumentParser(
        prog="minipg train", description="Train a policy; writes config.json, progress.csv and "
        "checkpoint.npz to the run directory.")
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    parser.add_argument("--algo", default="ppo", choices=sorted(ALGOS))
    parser.add_argument("--steps", type=int, default=100_000, help="total env steps")
    parser.add_argument("--seed", type=int, default=0, help="fixes everything")
    parser.add_argument("--run-dir", default=None,
                        help="output directory (default runs/<env>-<algo>-seed<seed>)")
    config_class = ALGOS[algo].Config
    docs = field_docs(config_class)
    group = parser.add_argument_group(f"{algo} hyperparameters (defaults tuned for {algo})")
    for field in dataclasses.fields(config_class):
        if field.name in ("env_id", "algo", "total_steps", "seed"):
            continue
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                           type=_field_type(field), default=argparse.SUPPRESS,
                           help=f"{docs.get(field.name, '')} (default: {field.default})")
    return parser


def cmd_train(argv):
    import minipg

    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--algo", default="ppo")
    known, _ = probe.parse_known_args(argv)
    from minipg.trainer import ALGOS
    if known.algo not in ALGOS:
        raise SystemExit(f"minipg train: --algo must be one of {sorted(ALGOS)}, "
                         f"got {known.algo!r}")
    args = vars(_train_parser(known.algo).parse_args(argv))
    env_id, algo, steps, seed, run_dir = (args.pop(k) for k in
                                          ("env", "algo", "steps", "seed", "run_dir"))
    try:
        result = minipg.train(env_id, algo, steps, seed, run_dir=run_dir, **args)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"minipg train: {error}") from None
    last = result.history[-1]
    print(f"done: {last['env_steps']:,} env steps in {last['wall_clock']:.2f} s of training; "
          f"run directory {result.run_dir}")
    print(f"checkpoint: {result.checkpoint}  (minipg eval {result.run_dir})")
    return result


def _checkpoint_path(path):
    candidate = os.path.join(path, "checkpoint.npz") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise SystemExit(f"minipg: no checkpoint at {candidate!r} (give a run directory or "
                         f"a checkpoint .npz)")
    return candidate


def cmd_eval(argv):
    from minipg.trainer import evaluate, load, load_config

    parser = argparse.ArgumentParser(prog="minipg eval",
                                     description="Evaluate a saved policy: mean +- std return.")
    parser.add_argument("path", help="run directory or checkpoint .npz")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default=None, help="environment (default: the one trained on)")
    parser.add_argument("--deterministic", action="store_true",
                        help="take the most probable action instead of sampling")
    parser.add_argument("--render", metavar="GIF", default=None,
                        help="also write one episode as an animated GIF")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        raise SystemExit("minipg eval: --episodes must be >= 1")
    path = _checkpoint_path(args.path)
    policy = load(path)
    env_id = args.env or load_config(path).env_id
    returns = evaluate(policy, env_id, args.episodes, seed=args.seed,
                       deterministic=args.deterministic)
    mode = "deterministic" if args.deterministic else "stochastic"
    print(f"{env_id}, {args.episodes} episodes, {mode} policy: "
          f"return {returns.mean():.1f} +- {returns.std():.1f} "
          f"(min {returns.min():.1f}, max {returns.max():.1f})")
    if args.render:
        observations, episode_return = record_episode(policy, env_id, args.seed,
                                                      args.deterministic)
        save_gif(observations, env_id, args.render)
        print(f"wrote {args.render}: one episode, return {episode_return:.1f}, "
              f"{len(observations)} frames")
    return returns


def record_episode(policy, env_id, seed=0, deterministic=False):
    """The observations of one episode of the policy, s_0 .. s_final, and its return."""
    import gymnasium as gym

    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, episode_return, done = [obs], 0.0, False
    while not done:
        action = policy.act(obs, deterministic=deterministic, rng=rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        episode_return += float(reward)
        done = terminated or truncated
    env.close()
    return np.array(observations), episode_return


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


def save_gif(observations, env_id, path, fps=30):
    """Draw each observation with matplotlib and write an animated GIF (Pillow writer).

    Drawn from the observations themselves, so no rendering backend (pygame) is needed.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    drawer = DRAWERS.get(env_id.split("-")[0])
    if drawer is None:
        raise SystemExit(f"minipg eval --render draws {sorted(DRAWERS)} only, not {env_id}")
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.set_aspect("equal")
    ax.axis("off")
    pose = drawer(ax)
    animation = FuncAnimation(fig, lambda i: pose(observations[i]), frames=len(observations),
                              blit=True)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)


def read_progress(run):
    """(env_steps, mean_return) arrays from a run directory's (or a path's) progress.csv."""
    path = os.path.join(run, "progress.csv") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise SystemExit(f"minipg plot: no progress.csv at {path!r}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["env_steps"]) for r in rows])
    returns = np.array([float(r["mean_return"]) for r in rows])
    return steps, returns


def cmd_plot(argv):
    parser = argparse.ArgumentParser(prog="minipg plot",
                                     description="Learning curves (mean return vs env steps).")
    parser.add_argument("runs", nargs="+", help="run directories or progress.csv files")
    parser.add_argument("--out", default="learning_curves.png", help="PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    plot_runs(args.runs, args.out, args.title)
    print(f"wrote {args.out}")


def plot_runs(runs, out, title=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        steps, returns = read_progress(run)
        ax.plot(steps, returns, label=os.path.basename(os.path.normpath(run)))
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean return (last 20 episodes)")
    ax.set_title(title or "minipg learning curves")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot}[argv[0]]
    command(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

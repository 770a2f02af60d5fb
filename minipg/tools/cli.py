"""The command line: `minipg train | eval | plot` (also `python -m minipg ...`).

    minipg train --env CartPole-v1 --algo ppo --steps 100000 --seed 0
    minipg train --resume runs/CartPole-v1-ppo-seed0      (continue a stopped run)
    minipg train --algo grpo --steps 300000               (GRPO: groups of episodes, no critic)
    minipg eval runs/CartPole-v1-ppo-seed0 --episodes 20 [--render cartpole.gif]
    minipg plot runs/CartPole-v1-ppo-seed0 runs/CartPole-v1-a2c-seed0 --out curves.png

Every field of the algorithm's Config is also an option of `train` (`minipg train --algo ppo
--help` lists them with their docstrings), e.g. --num-envs 16 --learning-rate 1e-3.
An error is one line on stderr and a non-zero exit; `--debug` shows the traceback instead.
"""
import argparse
import dataclasses
import difflib
import shlex
import sys
import typing

import numpy as np

from minipg.algos.config import field_docs
from minipg.algos.registry import ALGOS
from minipg.envs.episodes import run_episodes
from minipg.envs.rollout import EnvError
from minipg.run import presets
from minipg.run.checkpoint import load_config, read_checkpoint
from minipg.run.files import user_path
from minipg.run.loop import train
from minipg.run.stops import SignalStop, say
from minipg.tools.plot import plot_runs
from minipg.tools.render import prepare

COMMANDS = ("train", "eval", "plot")
NOT_FLAGS = ("env_id", "env_factory", "preset", "algo", "total_steps", "seed")
"""Config fields that are not --flags of their own (--env, --algo, --steps, --seed; a factory
is a Python object, given to minipg.train)."""
USAGE = "usage: minipg {train,eval,plot} ... [--debug]   (minipg <command> --help for each)"


class CliError(Exception):
    """An error the CLI reports as one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (and a pointer to --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}  ({self.prog} --help)\n")


def _field_type(field):
    """The parser for a Config field: int, float, bool, str, a tuple of ints, or Optional[float]."""
    annotation = field.type
    if annotation is bool:
        return _parse_bool
    if typing.get_origin(annotation) is tuple:
        return _parse_sizes
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


def _parse_sizes(text):
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,64, got {text!r}") from None


def _train_parser(algo, resume=False, env_id="CartPole-v1", preset=True):

    # With --resume, only the options actually given are passed on (and checked against the
    # saved config): no defaults.
    default = (lambda value: argparse.SUPPRESS) if resume else (lambda value: value)
    parser = _Parser(
        prog="minipg train", description="Train a policy; writes config.json, progress.csv and "
        "checkpoint.npz to the run directory.")
    parser.add_argument("--env", default=default("CartPole-v1"),
                        help="gymnasium environment id (module:Id imports the module first)")
    parser.add_argument("--algo", default=default("ppo"), choices=sorted(ALGOS))
    parser.add_argument("--steps", type=int, default=default(100_000), help="total env steps")
    parser.add_argument("--seed", type=int, default=default(0), help="fixes everything")
    parser.add_argument("--run-dir", default=default(None),
                        help="output directory (default runs/<env>-<algo>-seed<seed>, or the "
                        "first free runs/<env>-<algo>-seed<seed>-<k>); an existing one with "
                        "files in it is refused unless --resume or --overwrite is given")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run saved in RUN_DIR from its last checkpoint, with "
                        "its config (only --log-every, --checkpoint-every and the evaluation "
                        "options may change)")
    parser.add_argument("--trust-env-state", action="store_true",
                        help="with --resume: unpickle the run's saved env state even if this "
                        "user's key did not sign it (a run directory from elsewhere: "
                        "unpickling can run code, so only for runs you trust)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in an existing --run-dir (deletes minipg's files "
                        "there, nothing else)")
    parser.add_argument("--no-preset", dest="preset", action="store_false",
                        default=default(True), help="train with the generic defaults, not the "
                        "preset of --env and --algo (minipg/run/presets.py)")
    config_class = ALGOS[algo].Config
    docs = field_docs(config_class)
    name = presets.preset_name(env_id, algo) if preset and not resume else None
    settings = presets.preset_for(env_id, algo) if name else {}
    if name:
        title = (f"{algo} hyperparameters (preset {name} applies: a default marked 'preset' is "
                 "its value; any flag overrides it)")
    else:
        title = (f"{algo} hyperparameters (no preset for {env_id}/{algo}: minipg's generic "
                 "defaults, tuned on CartPole-v1 only)")
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(config_class):
        if field.name in NOT_FLAGS:
            continue
        shown = (f"preset: {settings[field.name]}" if field.name in settings
                 else f"default: {field.default}")
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                           type=_field_type(field), default=argparse.SUPPRESS,
                           help=f"{docs.get(field.name, '')} ({shown})")
    return parser


def cmd_train(argv):
    # Which algorithm's options to offer: --algo, or the saved run's with --resume. (nargs="?":
    # a bare --resume is left for the full parser to report.)
    probe = _Parser(prog="minipg train", add_help=False)
    probe.add_argument("--algo", default="ppo")
    probe.add_argument("--env", default="CartPole-v1")
    probe.add_argument("--no-preset", dest="preset", action="store_false")
    probe.add_argument("--resume", nargs="?", default=None)
    known, _ = probe.parse_known_args(argv)
    if known.resume is not None:
        saved = load_config(known.resume)               # a clear error if it is not a run
        args = vars(_train_parser(saved.algo, resume=True).parse_args(argv))
        resume = args.pop("resume")
        _check_no_preset(args, saved, resume)
        renamed = {"env": "env_id", "steps": "total_steps"}
        given = {renamed.get(k, k): v for k, v in args.items()}
        overwrite, trust = given.pop("overwrite"), given.pop("trust_env_state")
        run_dir = given.pop("run_dir", None)
        result = train(resume=resume, run_dir=run_dir, overwrite=overwrite,
                       trust_env_state=trust, **given)
    else:
        if known.algo not in ALGOS:
            raise CliError(f"--algo must be one of {sorted(ALGOS)}, got {known.algo!r}")
        args = vars(_train_parser(known.algo, env_id=known.env,
                                  preset=known.preset).parse_args(argv))
        if args.pop("trust_env_state"):
            raise CliError("--trust-env-state applies to --resume only (a new run has no "
                           "saved env state)")
        env_id, algo, steps, seed, run_dir, _, overwrite = (
            args.pop(k) for k in ("env", "algo", "steps", "seed", "run_dir", "resume",
                                  "overwrite"))
        result = train(env_id, algo, steps, seed, run_dir=run_dir, overwrite=overwrite,
                              **args)
    if not result.history:
        say(f"nothing to do: the run in {result.run_dir} had already finished "
            f"({result.config.total_steps:,} env steps)")
    elif not result.interrupted:
        last = result.history[-1]
        say(f"done: {last['env_steps']:,} env steps in {last['wall_clock']:.2f} s of "
            f"training; run directory {result.run_dir}")
        say(f"checkpoint: {result.checkpoint}  (minipg eval {shlex.quote(result.run_dir)})")
    return result


def _check_no_preset(args, saved, run_dir):
    """--no-preset with --resume: accepted only where it agrees with the saved run (which was
    trained without a preset); a resume keeps the saved config, so anything else is refused."""
    if "preset" in args and saved.preset:
        raise CliError(f"--no-preset: the run in {run_dir} was trained with the preset "
                       f"{saved.preset}, and a resume continues it with its saved config; "
                       "start a new run to train without the preset")


def cmd_eval(argv):
    parser = _Parser(prog="minipg eval",
                     description="Evaluate a saved policy: mean +- std return.")
    parser.add_argument("path", help="run directory or checkpoint .npz")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default=None, help="environment (default: the one trained on)")
    parser.add_argument("--deterministic", action="store_true",
                        help="take the most probable action instead of sampling")
    parser.add_argument("--max-episode-steps", type=int, default=None,
                        help="step limit per episode (default: the env's own time limit, else "
                        "the run's eval_max_episode_steps)")
    parser.add_argument("--render", metavar="FILE", default=None,
                        help="also write one episode as an animated GIF (.gif) or a video "
                        "(.mp4, needs imageio with ffmpeg), with the env, step and return on "
                        "every frame; any env that renders rgb_array frames (pip install "
                        "\"minipg[render]\" for gymnasium's renderers)")
    args = parser.parse_args(argv)
    args.render = user_path(args.render) if args.render else None
    if args.episodes < 1:
        raise CliError(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        raise CliError(f"--max-episode-steps must be >= 1, got {args.max_episode_steps}")
    saved = read_checkpoint(args.path)
    policy = saved.policy()
    config = saved.config() if saved.has("policy/params", "config") else None
    if args.env is None and config is None:
        raise CliError(f"{saved.path} holds a policy without a training config: give --env")
    if args.env is None and config.env_factory:
        raise CliError(f"{saved.path} was trained on an env made by the factory "
                       f"{config.env_factory}: evaluate it from Python, minipg.evaluate(path, "
                       "factory), or give --env")
    env_id = args.env or config.env_id
    limit = args.max_episode_steps or (config.eval_max_episode_steps if config else None)
    # Everything --render needs (the file, the writer, the env's frames) is checked first.
    recorder = prepare(env_id, args.render) if args.render else None
    try:
        evaluation = run_episodes(policy, env_id, args.episodes, seed=args.seed,
                                  deterministic=args.deterministic, max_episode_steps=limit)
    except BaseException:
        if recorder is not None:
            recorder.close()
        raise
    returns = evaluation.returns
    mode = "deterministic" if args.deterministic else "stochastic"
    print(f"{env_id}, {args.episodes} episodes, {mode} policy: "
          f"return {returns.mean():.1f} +- {returns.std():.1f} "
          f"(min {returns.min():.1f}, max {returns.max():.1f})")
    if evaluation.limit_note():
        print(f"note: {evaluation.limit_note()}")
    if recorder is not None:
        episode_return, frames, cut = recorder.record(policy, args.seed, args.deterministic,
                                                      evaluation.step_limit)
        print(f"wrote {args.render}: one episode, return {episode_return:.1f}, "
              f"{frames} frames" + (" (cut at the step limit)" if cut else ""))
    return returns


def cmd_plot(argv):
    parser = _Parser(prog="minipg plot",
                     description="Learning curves (mean return vs env steps). Runs that differ "
                     "only in seed are drawn as their mean with a min-max band.")
    parser.add_argument("runs", nargs="+", help="run directories or progress.csv files")
    parser.add_argument("--out", default="learning_curves.png", help="image to write (.png, "
                        ".pdf, .svg)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--threshold", type=float, action="append", default=[],
                        metavar="VALUE", help="draw a dashed line at this return (a target, a "
                        "published result); may be given several times")
    parser.add_argument("--threshold-label", action="append", default=[], metavar="TEXT",
                        help="the legend of each --threshold, in order")
    parser.add_argument("--no-average", dest="average", action="store_false",
                        help="one curve per run, even for runs that differ only in seed")
    args = parser.parse_args(argv)
    if len(args.threshold_label) > len(args.threshold):
        raise CliError("more --threshold-label than --threshold values")
    labels = args.threshold_label + [None] * (len(args.threshold) - len(args.threshold_label))
    plot_runs(args.runs, args.out, args.title, list(zip(args.threshold, labels)), args.average)
    print(f"wrote {args.out}")


def _expected_errors():
    """What a user's input or environment can cause: one line, no traceback."""
    return (CliError, ValueError, TypeError, OSError, ArithmeticError, EnvError, MemoryError)


def main(argv=None):
    """Run a command; returns the exit status: 0 done, 1 an error, 2 a usage error, 128 + the
    signal number when a signal stopped training (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; the
    checkpoint to resume from was saved)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command = argv[0]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"minipg: unknown command {command!r}{hint}\n{USAGE}", file=sys.stderr)
        return 2
    run = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot}[command]
    try:
        # numpy's overflow warnings would print before the one-line error that explains them
        # (every result minipg uses is checked to be finite where it matters).
        with np.errstate(all="ignore"):
            result = run(argv[1:])
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"minipg {command}: interrupted", file=sys.stderr)
        return 130
    except SignalStop as stop:              # SIGTERM, SIGHUP: saved, and said so on stdout
        return stop.code
    except _expected_errors() as error:
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, MemoryError):
            message = f"out of memory ({message})"
        print(f"minipg {command}: error: {message}  (--debug shows the traceback)",
              file=sys.stderr)
        return 1
    return 130 if getattr(result, "interrupted", False) else 0     # Ctrl-C stopped training


if __name__ == "__main__":
    sys.exit(main())

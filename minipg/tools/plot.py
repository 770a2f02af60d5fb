"""Learning curves (`minipg plot`): mean return of recent episodes against env steps.

Runs that differ only in their seed (the same config.json but for `seed` and the settings that
steer logging and evaluation) are drawn as one curve, the mean over the seeds, inside a band
from their minimum to their maximum at each step:

    mean(x) = (1/K) sum_k R_k(x),    band(x) = [min_k R_k(x), max_k R_k(x)]

where R_k is seed k's `mean_return` column (itself the mean of its last 20 episodes). Runs of
one config log at the same env steps; if they do not, each is interpolated onto the first's
steps, over the steps they all reached. A threshold (a target, a published reference) is a
dashed horizontal line.
"""
import csv
import dataclasses
import json
import os
import warnings

import numpy as np

from minipg.algos.registry import ALGOS
from minipg.run.checkpoint import MAX_METADATA_CHARS, CheckpointError, parse_metadata
from minipg.run.files import atomic_output, user_path

NOT_COMPARED = ("seed", "log_every", "checkpoint_every", "eval_episodes",
                "eval_max_episode_steps")
"""Config fields that may differ between runs averaged together."""


def read_progress(run):
    """(env_steps, mean_return) arrays from a run directory's (or a path's) progress.csv."""
    run = user_path(run)
    path = os.path.join(run, "progress.csv") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise ValueError(f"no progress.csv at {path!r} (give run directories or progress.csv "
                         "files)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [name for name in ("env_steps", "mean_return")
                       if name not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{path} is not a minipg progress.csv: "
                                 + ("it is empty" if not reader.fieldnames
                                    else f"no {' or '.join(missing)} column"))
            rows = list(reader)
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a minipg progress.csv: not a text file") from None
    except csv.Error as error:     # e.g. a field longer than the csv module's limit
        raise ValueError(f"{path}, line {reader.line_num + 1}: not a minipg progress.csv "
                         f"({error})") from None
    steps, returns = [], []
    for line, row in enumerate(rows, start=2):
        try:
            steps.append(float(row["env_steps"]))
            returns.append(float(row["mean_return"]))
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {line}: env_steps and mean_return must be numbers, "
                             f"got {row['env_steps']!r} and {row['mean_return']!r}") from None
    if not rows:
        raise ValueError(f"{path} has no rows yet (the run has not finished an iteration)")
    return np.array(steps), np.array(returns)


def _config(run):
    """The run's config.json as a dict, or None (a bare progress.csv, or no config)."""
    path = os.path.join(run, "config.json")
    if not os.path.isdir(run) or not os.path.isfile(path):
        return None
    try:
        if os.path.getsize(path) > 4 * MAX_METADATA_CHARS:     # not minipg's: not read
            return None
        with open(path, encoding="utf-8") as f:
            config = parse_metadata(f.read(), path)
    except (OSError, ValueError, CheckpointError):
        return None
    return config if isinstance(config, dict) else None


def _defaults(algo):
    """The algorithm's config defaults (a field a run's older config.json lacks had that value)."""
    if algo not in ALGOS:
        return {}
    return json.loads(json.dumps(dataclasses.asdict(ALGOS[algo].Config())))   # tuples -> lists


def group_by_seed(runs):
    """The runs in groups that differ only in seed (NOT_COMPARED), in the order first seen.

    A field missing from a config.json (written before the field existed) counts as its
    default. A run without a readable config.json is a group of its own.
    """
    groups, keys = [], []
    for run in runs:
        config = _config(run)
        if config is not None:
            config = {**_defaults(config.get("algo")), **config}
        key = None if config is None else json.dumps(
            {k: v for k, v in config.items() if k not in NOT_COMPARED}, sort_keys=True)
        if key is not None and key in keys:
            groups[keys.index(key)].append(run)
        else:
            groups.append([run])
            keys.append(key)
    return groups


def mean_and_band(curves):
    """(steps, mean, low, high) over several (steps, returns) curves: see the module docstring.

    NaN (no finished episode yet) is left out of each column; a column of NaN stays NaN.
    """
    steps = curves[0][0]
    reach = min(s[-1] for s, _ in curves)
    steps = steps[steps <= reach]
    stack = np.array([r[:len(steps)] if np.array_equal(s[:len(steps)], steps)
                      else np.interp(steps, s, r) for s, r in curves])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN columns
        return steps, np.nanmean(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)


def _label(group):
    config = _config(group[0])
    if config is None or len(group) == 1:
        return os.path.basename(os.path.normpath(group[0]))
    seeds = sorted(_config(run)["seed"] for run in group)
    return (f"{config['env_id']} {config['algo']}: mean of seeds "
            f"{', '.join(map(str, seeds))} (band: min to max)")


def draw(ax, runs, thresholds=(), average=True):
    """Draw the curves of `runs` on ax (averaging seeds if `average`) and the thresholds, each
    (value, label or None); returns the groups drawn."""
    curves = {run: read_progress(run) for run in runs}          # every file checked first
    groups = group_by_seed(runs) if average else [[run] for run in runs]
    for group in groups:
        if not any(np.isfinite(curves[run][1]).any() for run in group):
            print(f"note: {', '.join(group)} has no finished episode yet; its curve is empty")
        if len(group) == 1:
            ax.plot(*curves[group[0]], label=_label(group))
            continue
        steps, mean, low, high = mean_and_band([curves[run] for run in group])
        (line,) = ax.plot(steps, mean, label=_label(group))
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    for value, label in thresholds:
        ax.axhline(value, color="0.2", ls="--", lw=1, label=label or f"threshold {value:g}")
    return groups


def plot_runs(runs, out, title=None, thresholds=(), average=True):
    """Write the learning curves of `runs` to `out` (.png, .pdf or .svg), atomically."""
    runs, out = [user_path(run) for run in runs], user_path(out)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {out}: the folder {folder} does not exist")
    if os.path.splitext(out)[1].lower() not in (".png", ".pdf", ".svg"):
        raise ValueError(f"--out {out}: the file name must end in one of .pdf, .png, .svg")
    thresholds = [(float(value), label) for value, label in thresholds]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        draw(ax, runs, thresholds, average)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean return (last 20 episodes)")
        ax.set_title(title or "minipg learning curves")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_output(out) as temporary:
            fig.savefig(temporary, dpi=120)
    finally:
        plt.close(fig)

"""`minipg train --algo grpo`: grpo_gym.train inside a run directory.

GRPO on episodes has its own loop (minipg/algos/grpo_gym.py: whole episodes in groups that share
a reset seed, no rollout collector, no critic), so it does not go through the trainer's
collect -> update loop. This module gives that loop what a run of the other algorithms has:

    config.json      the Config below, written before training starts
    progress.csv     one row per update (CSV_FIELDS)
    checkpoint.npz   the policy and the config (minipg.checkpoint, atomic), every
                     CHECKPOINT_EVERY seconds, at the end, and when training stops early

so that `minipg eval RUN_DIR`, `minipg.load(RUN_DIR)` and `minipg plot RUN_DIR` read it like any
run. The checkpoint holds the policy after the last complete update, not the optimizer's or the
generators' state: a grpo run cannot be resumed (yet).
"""
import dataclasses
import json
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from minipg import checkpoint as ckpt
from minipg import rundir
from minipg.algos import grpo_gym
from minipg.checks import raise_if_non_finite
from minipg.config import make_config
from minipg.envs import check_spaces, make_env

CSV_FIELDS = ("iteration", "env_steps", "episodes", "mean_return", "policy_loss", "clip_frac",
              "grad_norm", "frac_all_equal")
"""progress.csv's columns; mean_return is over the update's num_groups * group_size episodes."""
CHECKPOINT_EVERY = 10.0
"""Seconds of wall-clock between checkpoints."""


@dataclass
class Config(grpo_gym.Config):
    """grpo_gym.Config, plus the algorithm's name that the run's files record."""
    algo: str = "grpo"
    """Algorithm name, recorded so that eval, load and plot know the run: always "grpo"."""

    # Not fields (never flags, never saved): what an evaluation of the run reads. grpo_gym
    # makes its env from a registered id, and evaluates within the env's own time limit.
    env_factory = ""
    eval_max_episode_steps = None

    def validate(self):
        super().validate()
        if self.algo != "grpo":
            raise ValueError(f"algo must be 'grpo' for this config, got {self.algo!r}")
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def train(env_id, total_steps, seed, run_dir=None, callback=None, overwrite=False,
          factory=None, **hyperparameters):
    """GRPO on env_id for total_steps transitions, logged to a run directory; a TrainResult.

    Called by minipg.trainer.train for algo="grpo" (the arguments mean the same there).
    """
    from minipg.trainer import TrainResult

    if factory is not None:
        raise ValueError("grpo trains on a registered gymnasium id, not an env factory (yet)")
    config = make_config(Config, env_id=env_id, total_steps=total_steps, seed=seed,
                         **hyperparameters)
    _check_env(config.env_id)            # everything that can fail before the disk is used
    run = rundir.claim(run_dir, f"{config.env_id}-grpo-seed{config.seed}", overwrite=overwrite)
    log, interrupted = None, False
    try:
        with ckpt.atomic_write(run.file("config.json"), "w", encoding="utf-8") as f:
            f.write(config.to_json())
        log = rundir.ProgressLog(run.file("progress.csv"), CSV_FIELDS)
        print(f"minipg grpo on {config.env_id}: groups of {config.group_size} episodes from "
              f"{config.num_groups} reset seeds per update, {config.total_steps:,} "
              f"transitions, seed {config.seed}; logging to {run.path}", flush=True)
        logger = _Logger(config, log, run.file(ckpt.CHECKPOINT_FILE), callback)
        try:
            grpo_gym.train(config, logger.after_update)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            logger.save_unless_saved()    # whatever stopped training: the last complete update
    finally:
        if log is not None:
            log.close()
        run.release()
    if interrupted:
        print(f"interrupted; the policy of update {logger.saved_iteration} is saved in "
              f"{logger.path} (a grpo run cannot be resumed)" if logger.saved_iteration
              else "interrupted before the first update ended: no checkpoint", flush=True)
    return TrainResult(logger.path, logger.history, config, run.path, logger.policy, None,
                       interrupted=interrupted)


class _Logger:
    """grpo_gym.train's callback: a progress.csv row and a line per update, the policy's arrays
    kept after each, written to the checkpoint every CHECKPOINT_EVERY seconds."""

    def __init__(self, config, log, path, callback):
        self.config, self.log, self.path, self.callback = config, log, path, callback
        self.config_json = np.array(config.to_json())
        self.history, self.policy, self.arrays = [], None, None
        self.saved_iteration, self.last_save = 0, time.monotonic()

    def after_update(self, record, policy):
        config, iteration = self.config, len(self.history) + 1
        raise_if_non_finite(**{f"loss {k}": v for k, v in record.items()})
        record = {"iteration": iteration,
                  "episodes": iteration * config.num_groups * config.group_size, **record}
        self.log.write(record)
        self.history.append(record)         # the rows written and the arrays kept: in step
        self.policy, self.arrays = policy, policy.state("policy/")
        if time.monotonic() - self.last_save >= CHECKPOINT_EVERY:
            self.save_unless_saved()
        print(f"update {iteration:4d} | step {record['env_steps']:>9,}/{config.total_steps:,} "
              f"| return {record['mean_return']:7.1f} | pi_loss {record['policy_loss']:.4g} "
              f"| all-equal groups {record['frac_all_equal']:.2f}", flush=True)
        return bool(self.callback is not None and self.callback(record, policy))

    def save_unless_saved(self):
        if self.arrays is None or self.saved_iteration == len(self.history):
            return
        self.log.sync()                  # the rows this checkpoint counts are on disk
        ckpt.write_checkpoint(self.path, {**self.arrays, "config": self.config_json})
        self.saved_iteration, self.last_save = len(self.history), time.monotonic()


def _check_env(env_id):
    """ValueError unless gymnasium makes env_id with flat observations and Discrete actions."""
    env = make_env(env_id, 1, "sync")
    try:
        check_spaces(env, env_id)
        if not isinstance(env.single_action_space, gym.spaces.Discrete):
            raise ValueError(f"grpo needs Discrete actions (grpo_gym's policy is categorical); "
                             f"{env_id} has {env.single_action_space}")
    finally:
        env.close()

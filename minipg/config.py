"""Hyperparameters as dataclasses: one docstring per field, checked before training starts.

`TrainConfig` holds what every algorithm needs; each file in minipg/algos/ subclasses it with
its own fields and the defaults tuned for it. The field docstrings are read back from the
source (`field_docs`) so that `minipg train --help` prints them, and a config is saved as JSON
with every log and checkpoint.
"""
import ast
import dataclasses
import inspect
import json
import math
import textwrap
from dataclasses import dataclass
from typing import Tuple


@dataclass
class TrainConfig:
    env_id: str = "CartPole-v1"
    """gymnasium environment id."""
    algo: str = ""
    """Algorithm name, filled in by the trainer: "reinforce", "a2c" or "ppo"."""
    total_steps: int = 100_000
    """Environment steps to train for, counted over all envs (reset steps included); rounded up
    to whole batches of num_envs * num_steps."""
    seed: int = 0
    """Fixes everything: env resets, initial weights, action sampling, minibatch order."""
    num_envs: int = 8
    """N, the number of environments stepped together."""
    num_steps: int = 128
    """T, the number of steps per environment in one rollout; a batch is T * N steps."""
    gamma: float = 0.99
    """Discount factor."""
    learning_rate: float = 3e-4
    """Adam step size for the policy and the value function."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    max_grad_norm: float = 0.5
    """Clip the global norm of the policy and value gradients to this (0 turns clipping off)."""
    norm_adv: bool = True
    """Normalise advantages to mean 0, std 1 over each (mini)batch."""
    hidden_sizes: Tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks."""
    activation: str = "tanh"
    """Hidden-layer nonlinearity: "tanh" or "relu"."""
    dtype: str = "float32"
    """Arithmetic of the networks' forward and backward passes: "float32" (about twice as fast
    on the matmuls, like torch's default) or "float64" (what the gradient checks use). Parameters
    and optimizer state are float64 either way."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy (continuous actions only)."""
    eval_episodes: int = 0
    """Episodes of the stochastic policy to evaluate at the end of training (0: none)."""
    eval_max_episode_steps: int = 10_000
    """Step limit of an evaluation episode on an env without a time limit of its own (an env
    with one, like CartPole-v1's 500 steps, uses its own); the evaluation says if it cut any."""
    log_every: float = 1.0
    """Seconds between progress lines on the terminal (0: every iteration; negative: silent)."""
    checkpoint_every: float = 10.0
    """Seconds of wall-clock between checkpoints (0: after every iteration), so a kill loses at
    most this much training plus one iteration. A checkpoint is also written at the end and
    whenever training stops early (Ctrl-C, an error from the env, a non-finite value)."""

    def validate(self):
        """Raise ValueError naming the first field whose value cannot work."""
        for name in ("total_steps", "num_envs", "num_steps"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        check_range("gamma", self.gamma, 0.0, 1.0)
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not _is_number(self.max_grad_norm) or self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0, got {self.max_grad_norm!r}")
        if (not self.hidden_sizes
                or not all(isinstance(h, int) and h > 0 for h in self.hidden_sizes)):
            raise ValueError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        for name in ("anneal_lr", "norm_adv"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not _is_number(self.log_every):
            raise ValueError(f"log_every must be a number of seconds, got {self.log_every!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not isinstance(self.eval_episodes, int) or self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {self.eval_episodes!r}")
        check_positive_int("eval_max_episode_steps", self.eval_max_episode_steps)
        if not _is_number(self.checkpoint_every) or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got "
                             f"{self.checkpoint_every!r}")
        if not _is_number(self.log_std_init):
            raise ValueError(f"log_std_init must be a finite number, got {self.log_std_init!r}")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def check_rollout_holds_transitions(config):
    """Refuse num_steps = 1 for algorithms whose episodes run on across rollouts.

    After an episode ends, the env's next step is a reset step, not a transition (minipg's
    rollout docstring). With T = 1 a whole rollout can be reset steps only -- an empty batch.
    With T >= 2 every env's column holds at least one real transition.
    """
    if config.num_steps < 2:
        raise ValueError(f"num_steps must be >= 2 for {config.algo or 'this algorithm'}: with "
                         "num_steps = 1 a rollout can consist of reset steps only (the step "
                         "after an episode ends is not a transition), leaving nothing to learn "
                         "from")


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_range(name, value, low, high):
    """Raise ValueError naming `name` unless value is a number in [low, high]."""
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def check_positive_int(name, value):
    """Raise ValueError naming `name` unless value is an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def make_config(config_class, **values):
    """Build and validate a config; unknown names are an error that lists the known ones."""
    known = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TypeError(f"unknown hyperparameter(s) {unknown} for {config_class.__module__}; "
                        f"known: {sorted(known)}")
    if "hidden_sizes" in values:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    config = config_class(**values)
    config.validate()
    return config


def config_from_dict(config_class, values):
    """The config saved by to_json, once parsed (JSON turned the hidden_sizes tuple into a list)."""
    return config_class(**{**values, "hidden_sizes": tuple(values["hidden_sizes"])})


def config_from_json(config_class, text):
    return config_from_dict(config_class, json.loads(text))


def field_docs(config_class):
    """{field name: its docstring}, read from the class source (and its bases)."""
    docs = {}
    for cls in reversed(config_class.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = following.value.value.strip()
    return docs


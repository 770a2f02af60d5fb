"""Hyperparameters as dataclasses: one docstring per field, checked before training starts.

`RunConfig` holds what every run needs (the env, the budget, the seed, the networks, logging and
checkpoints); `TrainConfig` adds what the algorithms that learn from (T, N) rollouts share, and
`ActorCriticConfig` GAE's lambda. Each file in minipg/algos/ subclasses one with its own fields
and the defaults tuned for it. A field
is documented once, where it is declared: a subclass that only changes a default writes
`num_envs: int = 16` without a docstring, and `field_docs` finds the base's. The docstrings are
read back from the source so that `minipg train --help` prints them, and a config is saved as
JSON with every log and checkpoint.
"""
import ast
import dataclasses
import inspect
import json
import textwrap
from dataclasses import dataclass
from typing import Tuple

from minipg.core.checks import check_bool, check_choice, check_int, check_real
from minipg.core.nn import ACTIVATIONS, INITS


@dataclass
class RunConfig:
    """What every run has, whatever the algorithm: the env, the budget, the seed, the networks'
    shape, and how the run logs, checkpoints and evaluates."""
    env_id: str = "CartPole-v1"
    """gymnasium environment id; for an env made by a factory, its name (the factory's own, or
    the env_id passed with it), used for the run directory and the presets."""
    env_factory: str = ""
    """module.qualname of the factory that made the env ("" for a registered id): an evaluation
    or a resume of the run needs that factory passed again."""
    preset: str = ""
    """The preset applied under the given arguments ("ENV/ALGO", minipg/run/presets.py), "" for
    none: recorded by the trainer (train(preset=False), --no-preset: none)."""
    vectorization: str = "auto"
    """How the num_envs copies are stepped: "auto" (the NumPy-vectorized env where the id has
    one, else "sync"), "sync" (in turn, in this process) or "async" (one process each: for
    expensive envs on several cores)."""
    algo: str = ""
    """Algorithm name, filled in by the trainer: a name of minipg.algos.registry.ALGOS."""
    total_steps: int = 100_000
    """Environment steps to train for, counted over all envs (reset steps included); rounded up
    to whole batches (of num_envs * num_steps steps, or of GRPO's groups of episodes)."""
    seed: int = 0
    """Fixes everything: env resets, initial weights, action sampling, minibatch order."""
    hidden_sizes: Tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks."""
    activation: str = "tanh"
    """Hidden-layer nonlinearity: "tanh" or "relu"."""
    init: str = "orthogonal"
    """Initial weights of both networks: "orthogonal" (times a gain: sqrt(2) on hidden layers,
    0.01 on the policy's output, 1 on the value's; biases 0) or "uniform" (PyTorch's default
    for a linear layer, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases: what
    Stable-Baselines3 uses with ortho_init=False, as rl-zoo's MuJoCo entries do)."""
    dtype: str = "float32"
    """Arithmetic of the networks, their parameters and the optimizer state: "float32" (about
    twice as fast on the matmuls, like torch's default) or "float64" (what the gradient checks
    use)."""
    adam_eps: float = 1e-5
    """epsilon of Adam's step m_hat / (sqrt(v_hat) + eps): where gradients fall below it (a
    solved task, advantages that vanish) the steps shrink with them instead of being rescaled
    to full size."""
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
        """Raise TypeError (wrong type) or ValueError (wrong value) naming the first bad field."""
        check_int("total_steps", self.total_steps, 1)
        check_int("seed", self.seed, 0)
        if not isinstance(self.hidden_sizes, tuple) or not self.hidden_sizes:
            raise TypeError(f"hidden_sizes must be a non-empty tuple of ints, got "
                            f"{self.hidden_sizes!r}")
        for width in self.hidden_sizes:
            check_int("hidden_sizes", width, 1)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("vectorization", self.vectorization, ("auto", "sync", "async"))
        for name in ("env_id", "env_factory", "preset", "algo"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, got {type(getattr(self, name)).__name__}")
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_real("adam_eps", self.adam_eps, 0.0, low_inclusive=False)
        check_int("eval_episodes", self.eval_episodes, 0)
        check_int("eval_max_episode_steps", self.eval_max_episode_steps, 1)
        check_real("log_every", self.log_every)
        check_real("checkpoint_every", self.checkpoint_every, 0.0)
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass
class TrainConfig(RunConfig):
    """The fields of the algorithms that learn from (T, N) rollouts: REINFORCE, A2C, PPO, TRPO."""
    num_envs: int = 8
    """N, the number of environments stepped together (REINFORCE: the number of whole
    episodes per update, one per env, each from its own reset)."""
    num_steps: int = 128
    """T, the number of steps per environment in one rollout; a batch is T * N steps.
    REINFORCE, which learns from whole episodes, reads it as their time limit in training: an
    episode still running after num_steps steps is truncated there (the env's own limit applies
    when it is shorter)."""
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
    ent_coef: float = 0.0
    """beta, the weight of the entropy bonus: the loss gains -ent_coef * mean entropy."""
    vf_coef: float = 0.5
    """Weight of the value loss in the gradient (it shares the gradient-norm budget with the
    policy)."""
    norm_obs: bool = False
    """Normalise observations by their running mean and variance (over the states acted on in
    training), o' = clip((o - mean) / sqrt(var + 1e-8), -clip_obs, clip_obs). The statistics
    are updated once per rollout, so a rollout is normalised with them as they stood at its
    start (the first rollout with mean 0, variance 1: clipping only). They belong to the
    policy: saved in its checkpoint, applied by policy.act, frozen at evaluation."""
    clip_obs: float = 10.0
    """Clip normalised observations to [-clip_obs, clip_obs] (with norm_obs)."""
    norm_reward: bool = False
    """Divide training rewards by the running std of the discounted return (never centred),
    step by step: each reward by the std of the returns seen up to its step. Logs, progress.csv
    and evaluations always report the env's own rewards."""
    clip_reward: float = 10.0
    """Clip scaled rewards to [-clip_reward, clip_reward] (with norm_reward)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy (continuous actions only)."""
    noise_correlation: float = 0.0
    """rho in [0, 1): the exploration noise of a Gaussian policy in training is an AR(1)
    process, eps_t = rho eps_{t-1} + sqrt(1 - rho^2) xi_t, so pushes last ~1/(1 - rho) steps
    (minipg/envs/noise.py: exact marginal, the bias it brings); 0 is independent noise."""

    def validate(self):
        """Raise TypeError (wrong type) or ValueError (wrong value) naming the first bad field."""
        super().validate()
        check_int("num_envs", self.num_envs, 1)
        check_int("num_steps", self.num_steps, 1)
        check_real("gamma", self.gamma, 0.0, 1.0)
        check_real("learning_rate", self.learning_rate, 0.0, low_inclusive=False)
        check_real("max_grad_norm", self.max_grad_norm, 0.0)
        check_real("ent_coef", self.ent_coef, 0.0)
        check_real("vf_coef", self.vf_coef, 0.0)
        check_bool("anneal_lr", self.anneal_lr)
        check_bool("norm_adv", self.norm_adv)
        check_bool("norm_obs", self.norm_obs)
        check_bool("norm_reward", self.norm_reward)
        check_real("clip_obs", self.clip_obs, 0.0, low_inclusive=False)
        check_real("clip_reward", self.clip_reward, 0.0, low_inclusive=False)
        check_real("log_std_init", self.log_std_init)
        check_real("noise_correlation", self.noise_correlation, 0.0, 1.0, high_inclusive=False)
        return self


@dataclass
class ActorCriticConfig(TrainConfig):
    """The fields of the algorithms that learn a critic and estimate advantages with GAE."""
    lam: float = 0.95
    """GAE lambda: 0 is the one-step TD residual, 1 the Monte Carlo return minus V."""

    def validate(self):
        super().validate()
        check_real("lam", self.lam, 0.0, 1.0)
        # Episodes run on across the rollouts of these algorithms. After an episode ends, the
        # env's next step is a reset step, not a transition, so with T = 1 a whole rollout can
        # be reset steps only: an empty batch. With T >= 2 every column holds a transition.
        if self.num_steps < 2:
            raise ValueError(f"num_steps must be >= 2 for {self.algo or 'this algorithm'}: with "
                             "num_steps = 1 a rollout can consist of reset steps only (the step "
                             "after an episode ends is not a transition)")


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


SAVED_BEFORE = {"adam_eps": 1e-5, "init": "orthogonal"}
"""Fields added after runs were saved without them, and the value those runs used."""


def config_from_dict(config_class, values):
    """The config saved by to_json, once parsed (JSON turned the hidden_sizes tuple into a list).
    A field the saved config lacks takes the value the run used (SAVED_BEFORE), not today's
    default, so that an old run resumes as it would have."""
    return config_class(**{**SAVED_BEFORE, **values,
                           "hidden_sizes": tuple(values["hidden_sizes"])})


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


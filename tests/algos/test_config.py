"""Configs as a specification: every field documented exactly once (a subclass that changes a
default does not restate the docs, and `--help` still shows them), and one convention for bad
values: a wrong type is a TypeError, a wrong value a ValueError, each naming the field."""
import ast
import dataclasses
import inspect
import textwrap

import pytest

from minipg.tools.cli import NOT_FLAGS, _train_parser
from minipg.algos.config import TrainConfig, field_docs, make_config
from minipg.algos.registry import ALGOS, ALGOS


def documented_fields(cls):
    """Names of the fields that cls's own body documents (an annotation, then a string)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    return [node.target.id for node, following in zip(body, body[1:])
            if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)]


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_field_is_documented_exactly_once_along_the_class_hierarchy(algo):
    config_class = ALGOS[algo].Config
    written = [name for cls in config_class.__mro__ if dataclasses.is_dataclass(cls)
               for name in documented_fields(cls)]
    fields = [f.name for f in dataclasses.fields(config_class)]
    assert sorted(written) == sorted(set(written)), "a docstring written twice"
    assert sorted(written) == sorted(fields), "a field without a docstring"
    docs = field_docs(config_class)
    assert all(docs[name] for name in fields)


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_help_shows_each_documented_field_with_the_algorithms_own_default(algo, capsys):
    config_class = ALGOS[algo].Config
    with pytest.raises(SystemExit):
        _train_parser(algo, preset=False).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())          # argparse wraps lines
    docs = field_docs(config_class)
    defaults = config_class()
    for field in dataclasses.fields(config_class):
        if field.name in NOT_FLAGS:
            continue
        doc = " ".join(docs[field.name].split())
        assert f"{doc} (default: {getattr(defaults, field.name)})" in text, field.name
        assert f"--{field.name.replace('_', '-')}" in text
    if issubclass(config_class, TrainConfig):
        # an overridden default is the one shown, not the base config's (checked above for every
        # field): each algorithm overrides some (REINFORCE its learning_rate, PPO num_envs ...)
        base = TrainConfig()
        overridden = [f.name for f in dataclasses.fields(TrainConfig)
                      if getattr(defaults, f.name) != getattr(base, f.name)]
        assert overridden
        for name in overridden:
            doc = " ".join(docs[name].split())
            assert f"{doc} (default: {getattr(defaults, name)})" in text, name
            assert f"{doc} (default: {getattr(base, name)})" not in text, name


@pytest.mark.parametrize("field, value, error", [
    ("learning_rate", "fast", TypeError), ("learning_rate", -1.0, ValueError),
    ("num_envs", 2.5, TypeError), ("num_envs", 0, ValueError),
    ("seed", "0", TypeError), ("seed", -1, ValueError),
    ("anneal_lr", "false", TypeError), ("gamma", 1.5, ValueError),
    ("activation", 3, TypeError), ("activation", "sigmoid", ValueError),
    ("init", "xavier", ValueError),
    ("hidden_sizes", (64, 0), ValueError), ("hidden_sizes", (64, "64"), TypeError),
    ("lam", float("nan"), ValueError), ("clip_coef", None, TypeError),
])
def test_a_wrong_type_is_a_type_error_and_a_wrong_value_a_value_error(field, value, error):
    with pytest.raises(error, match=field):
        make_config(ALGOS["ppo"].Config, **{field: value})


@pytest.mark.parametrize("field, value, error", [
    ("learning_rate", "fast", TypeError), ("group_size", 0, ValueError),
    ("num_groups", 1.5, TypeError), ("baseline", "mean", ValueError),
    ("eps_low", 1.5, ValueError), ("vectorization", "auto", ValueError),
])
def test_grpo_config_follows_the_same_convention(field, value, error):
    with pytest.raises(error, match=field):
        make_config(ALGOS["grpo"].Config, **{field: value})


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_init_uniform_reaches_both_networks(env_id):
    """config.init is how the run's policy and value networks start: with "uniform" every
    weight and bias of a layer with n_in inputs lies within 1/sqrt(n_in), the biases drawn."""
    from minipg.run.build import build
    config = make_config(ALGOS["ppo"].Config, env_id=env_id, num_envs=2, init="uniform")
    parts = build(config, ALGOS["ppo"])
    try:
        for net in (parts.policy.net, parts.value_fn.net):
            for W, b in zip(net.weights, net.biases):
                bound = 1.0 / W.shape[0] ** 0.5 * (1 + 1e-6)     # float32 rounding
                assert abs(W).max() <= bound and abs(b).max() <= bound
                assert (b != 0).all()
    finally:
        parts.env.close()

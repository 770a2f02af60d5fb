"""The algorithms by name: what the trainer, the checkpoint reader, the CLI and plots look up.

Each module in ALGOS holds its Config (a dataclass of its hyperparameters, one docstring per
field) and its update,

    stats = update(batch, policy, value_fn, optim, config, rng)

and says how the run collects its batch: COLLECTS = "rollout" (a (T, N) rollout of a vector env,
minipg/envs/rollout.py) or "groups" (groups of whole episodes that share a reset seed,
minipg/envs/groups.py). The loop around them is one for all (minipg/run/loop.py).
"""
from minipg.algos import a2c, grpo_gym, ppo, reinforce, trpo

__all__ = ["ALGOS"]

ALGOS = {"reinforce": reinforce, "a2c": a2c, "ppo": ppo, "trpo": trpo, "grpo": grpo_gym}

"""How close is one PPO minibatch step to the cost of its bare arithmetic?

The step is `minipg.algos.ppo.minibatch_step`, the function the trainer runs: both networks
forward, log_prob, the clipped surrogate, entropy, the value loss, dist.param_grads, both
backwards, global-norm clipping and one Adam step over both networks' parameters, plus the
statistics it returns for the log.

The floor is what no implementation of that step can skip: the matmuls of both networks'
forward and backward passes and their tanh, with preallocated outputs, in float32, on the same
shapes, with nothing else (no loss, no distribution, no bias, no optimizer). The value head's
g W^T is an outer product, computed the fastest way NumPy has (a broadcast multiply; its matmul
takes 3x longer on it). Both are timed in
the same run, alternating, best of several repeats, under minipg.core.speed.training_speed() as
in training (one BLAS thread, freed heap kept: without it a process can fall into the page-fault
storm that module describes and time 1.6x slower, by the luck of its heap).

    python benchmarks/bench_update.py              # CartPole shapes: B = 251, 4-64-64-2
    python benchmarks/bench_update.py --obs-dim 17 --actions 6 --continuous   # MuJoCo-like
    python benchmarks/bench_update.py --batch 1024 --hidden 256 256
    python benchmarks/bench_update.py --smoke      # one short round: CI's check that it runs

Target: step / floor <= 1.5 on the CartPole shapes.

--run compares a whole run instead: `minipg train --env CartPole-v1 --algo ppo --steps 100000
--seed 0` (minipg.train with the defaults: the CPU time of the whole train() call, its wall-clock
beside it) against the floor of that run, made of the same pieces counted from the
run itself: the bare vector env stepped as many times with random actions, the policy's bare
forward matmuls and tanh on N rows once per env step, the critic's on the (T + 1) N rows of each
rollout, and the minibatch floor above once per minibatch, at the run's mean minibatch size
(its real transitions, the reset steps left out, over its minibatches). The floor runs as one
piece, like the run, so that the machine's load hits both alike. Alternating rounds, the best
of each side; target run / floor <= 1.6.

    python benchmarks/bench_update.py --run

Before the rounds, one more run is timed by parts (the minibatch steps, the rest of the update,
collection, the loop around them), printed beside the floor's parts of the last round.
"""
import argparse
import math
import tempfile
import time

import numpy as np

import minipg
from minipg.algos import ppo
from minipg.algos.config import make_config
from minipg.core.optim import Adam
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.speed import training_speed
from minipg.core.value import ValueFunction
from minipg.core.heads import join_params
from minipg.envs.make import make_env
from minipg.envs.rollout import RolloutCollector


# Every time here is this process's CPU time (time.process_time: one BLAS thread, so one
# core's), not wall-clock: on a machine whose cores other processes share, wall-clock counts
# the time this process waited for a core, CPU time does not (caches and memory bandwidth
# shared with the others still slow both sides alike).
clock = time.process_time


def best_time(function, repeats=7, min_seconds=0.2):
    """CPU seconds per call: the best over `repeats` timings of a loop long enough to take
    min_seconds (the minimum is the least disturbed by the other processes on the machine)."""
    function()
    calls, start = 1, clock()
    while clock() - start < min_seconds / 10:
        function()
        calls += 1
    n = max(1, int(calls * 10 * (min_seconds / 10) / (clock() - start + 1e-9)))
    best = np.inf
    for _ in range(repeats):
        start = clock()
        for _ in range(n):
            function()
        best = min(best, (clock() - start) / n)
    return best


def floor_function(batch, sizes_policy, sizes_value, dtype=np.float32):
    """The bare matmuls and tanh of both networks' forward and backward passes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, sizes_policy[0])).astype(dtype)
    networks = []
    for sizes in (sizes_policy, sizes_value):
        W = [(rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
             for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        h = [np.empty((batch, n), dtype) for n in sizes[1:-1]]
        dh = [np.empty((batch, n), dtype) for n in sizes[1:-1]]
        out = np.empty((batch, sizes[-1]), dtype)
        g_out = rng.normal(size=(batch, sizes[-1])).astype(dtype)
        dW = [np.empty_like(w) for w in W]
        networks.append((W, h, dh, out, g_out, dW))

    def floor():
        for W, h, dh, out, g_out, dW in networks:
            inputs = [x] + h
            for l in range(len(h)):                       # forward: matmul, tanh
                np.matmul(inputs[l], W[l], out=h[l])
                np.tanh(h[l], out=h[l])
            np.matmul(inputs[-1], W[-1], out=out)
            g = g_out                                     # backward: dW_l = h^T g, dh = g W^T
            for l in reversed(range(len(W))):
                np.matmul(inputs[l].T, g, out=dW[l])
                if l > 0:
                    if W[l].shape[1] == 1:                # an outer product: broadcast is faster
                        np.multiply(g, W[l][:, 0], out=dh[l - 1])
                    else:
                        np.matmul(g, W[l].T, out=dh[l - 1])
                    g = dh[l - 1]
    return floor


def step_function(batch, obs_dim, actions, hidden, continuous):
    rng = np.random.default_rng(0)
    config = make_config(ppo.Config, hidden_sizes=tuple(hidden))      # the defaults
    if continuous:
        policy = GaussianPolicy(obs_dim, actions, hidden, rng=1, dtype="float32")
    else:
        policy = CategoricalPolicy(obs_dim, actions, hidden, rng=1, dtype="float32")
    value_fn = ValueFunction(obs_dim, hidden, rng=2, dtype="float32")
    optim = Adam(join_params(policy, value_fn), 1e-4, eps=1e-5)   # small: stays near the start
    # What the rollout buffer holds for a minibatch (in the policy's dtype, as the trainer
    # stores it).
    mb_obs = rng.normal(size=(batch, obs_dim)).astype(np.float32)
    dist = policy.distribution(mb_obs)
    mb_actions = dist.sample(rng)
    mb_old_log_prob = dist.log_prob(mb_actions)
    mb_advantages = rng.normal(size=batch).astype(np.float32)
    mb_returns = rng.normal(size=batch).astype(np.float32)

    def step():
        ppo.minibatch_step(policy, value_fn, optim, mb_obs, mb_actions, mb_old_log_prob,
                           mb_advantages, mb_returns, config)
    return step


def forward_floor(batch, sizes, dtype=np.float32):
    """The bare matmuls and tanh of one network's forward pass on `batch` rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, sizes[0])).astype(dtype)
    W = [(rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
         for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    h = [np.empty((batch, n), dtype) for n in sizes[1:]]

    def forward():
        inputs = [x] + h
        for l in range(len(W)):
            np.matmul(inputs[l], W[l], out=h[l])
            if l < len(W) - 1:
                np.tanh(h[l], out=h[l])
    return forward


def run_seconds(total_steps, scratch):
    """(CPU seconds of train(), its wall-clock, env steps, episodes) of a default CartPole
    run: the whole call, building the run and writing its files included."""
    start, wall_start = clock(), time.perf_counter()
    result = minipg.train("CartPole-v1", "ppo", total_steps, 0, run_dir=scratch, overwrite=True,
                          log_every=-1)
    cpu, wall = clock() - start, time.perf_counter() - wall_start
    last = result.history[-1]
    return cpu, wall, last["env_steps"], last["episodes"]


def run_parts(total_steps, scratch):
    """CPU seconds of one more such run, by parts: the minibatch steps, the rest of ppo.update
    (GAE, shuffling the batch each epoch), RolloutCollector.collect, and the loop around them
    (the three functions timed for this run only, a microsecond per call)."""
    spent = dict(minibatch=0.0, update=0.0, collect=0.0)
    wrapped = [(ppo, "minibatch_step", "minibatch"), (ppo, "update", "update"),
               (RolloutCollector, "collect", "collect")]
    originals = [getattr(owner, name) for owner, name, _ in wrapped]

    def timed(function, key):
        def call(*args, **kwargs):
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += clock() - start
        return call

    for (owner, name, key), function in zip(wrapped, originals):
        setattr(owner, name, timed(function, key))
    try:
        total = run_seconds(total_steps, scratch)[0]
    finally:
        for (owner, name, _), function in zip(wrapped, originals):
            setattr(owner, name, function)
    return dict(minibatch=spent["minibatch"], update=spent["update"] - spent["minibatch"],
                collect=spent["collect"], loop=total - spent["update"] - spent["collect"])


def run_floor_seconds(config, iterations, real_steps):
    """Wall-clock of the floor of a run of `iterations` iterations holding `real_steps` real
    transitions, executed as one piece like the run itself (so that the machine's load hits
    both alike): per iteration, T steps of the vector env with random actions drawn beforehand,
    each with the policy's bare forward on N rows; the critic's on the (T + 1) N rows; then
    update_epochs x num_minibatches minibatch floors. Returns (seconds, the seconds of each
    part, the minibatch size)."""
    N, T = config.num_envs, config.num_steps
    hidden = tuple(config.hidden_sizes)
    policy_sizes, value_sizes = (4, *hidden, 2), (4, *hidden, 1)
    batch = max(1, round(real_steps / (iterations * config.num_minibatches)))
    acting = forward_floor(N, policy_sizes)
    critic = forward_floor((T + 1) * N, value_sizes)
    minibatch = floor_function(batch, policy_sizes, value_sizes)
    env = make_env("CartPole-v1", N)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(T)]
    env.reset(seed=0)
    parts = dict(env=0.0, acting=0.0, critic=0.0, update=0.0)
    start = clock()
    for _ in range(iterations):
        for action in actions:
            t0 = clock()
            acting()
            t1 = clock()
            env.step(action)
            t2 = clock()
            parts["acting"] += t1 - t0
            parts["env"] += t2 - t1
        t0 = clock()
        critic()
        t1 = clock()
        for _ in range(config.update_epochs * config.num_minibatches):
            minibatch()
        t2 = clock()
        parts["critic"] += t1 - t0
        parts["update"] += t2 - t1
    seconds = clock() - start
    env.close()
    return seconds, parts, batch


def whole_run(args):
    config = make_config(ppo.Config)
    print(f"CartPole-v1 PPO, defaults, {args.steps:,} steps, seed 0, against its floor; "
          f"1 BLAS thread")
    print("CPU seconds (wall-clock of train() beside them)")
    print(f"{'round':>5} {'train() s':>9} {'(wall s)':>9} {'floor s':>8} {'(env':>6} "
          f"{'acting':>6} {'critic':>6} {'update)':>7} {'train/floor':>11}")
    trains, walls, floors = [], [], []
    with tempfile.TemporaryDirectory() as scratch, training_speed():
        parts = run_parts(args.steps, scratch)
        for round_ in range(args.rounds):
            train, wall, env_steps, episodes = run_seconds(args.steps, scratch)
            iterations = math.ceil(env_steps / (config.num_envs * config.num_steps))
            floor, pieces, batch = run_floor_seconds(config, iterations, env_steps - episodes)
            trains.append(train), walls.append(wall), floors.append(floor)
            print(f"{round_:>5} {train:>8.2f} {wall:>9.2f} {floor:>8.2f} {pieces['env']:>6.2f} "
                  f"{pieces['acting']:>6.2f} {pieces['critic']:>6.2f} {pieces['update']:>7.2f} "
                  f"{train / floor:>11.2f}", flush=True)
    ratio = min(trains) / min(floors)
    print(f"mean minibatch {batch} rows; best train() {min(trains):.2f} CPU s (best wall "
          f"{min(walls):.2f} s), best floor {min(floors):.2f} CPU s: run/floor {ratio:.2f} "
          f"(target <= 1.6): "
          f"{'PASS' if ratio <= 1.6 else 'over'}")
    print(f"a run by parts, CPU s: minibatch steps {parts['minibatch']:.2f} (floor "
          f"{pieces['update']:.2f}), the rest of the update {parts['update']:.2f}, collection "
          f"{parts['collect']:.2f} (floor {pieces['env'] + pieces['acting'] + pieces['critic']:.2f}"
          f"), the loop around them {parts['loop']:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=251,
                        help="minibatch size (CartPole defaults: ~502 real steps / 2 = 251)")
    parser.add_argument("--obs-dim", type=int, default=4)
    parser.add_argument("--actions", type=int, default=2, help="actions (or action dims)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--continuous", action="store_true", help="a Gaussian policy")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--run", action="store_true",
                        help="a whole default CartPole run against its floor instead")
    parser.add_argument("--steps", type=int, default=100_000, help="length of the --run runs")
    parser.add_argument("--smoke", action="store_true",
                        help="one round of short timings, and a 4,096-step --run: checks that "
                             "the script runs")
    args = parser.parse_args(argv)
    timing = dict(repeats=2, min_seconds=0.02) if args.smoke else {}
    if args.smoke:
        args.rounds = 1
    if args.run:
        whole_run(args)
        return

    policy_sizes = (args.obs_dim, *args.hidden, args.actions)
    value_sizes = (args.obs_dim, *args.hidden, 1)
    floor = floor_function(args.batch, policy_sizes, value_sizes)
    step = step_function(args.batch, args.obs_dim, args.actions, args.hidden, args.continuous)
    kind = "Gaussian" if args.continuous else "Categorical"
    print(f"PPO minibatch step, B = {args.batch}, policy {policy_sizes} ({kind}), value "
          f"{value_sizes}, float32, 1 BLAS thread")
    print(f"{'round':>5} {'step us':>9} {'floor us':>9} {'step/floor':>10}")
    steps, floors = [], []
    with training_speed():            # what training runs under: one BLAS thread, freed heap kept
        for round_ in range(args.rounds):
            steps.append(best_time(step, **timing))
            floors.append(best_time(floor, **timing))
            print(f"{round_:>5} {steps[-1] * 1e6:>9.1f} {floors[-1] * 1e6:>9.1f} "
                  f"{steps[-1] / floors[-1]:>10.2f}", flush=True)
    # Each minimum is the least disturbed measurement of its own; a ratio of one round's pair
    # can be flattered by a floor that happened to be disturbed.
    ratio = min(steps) / min(floors)
    verdict = "PASS" if ratio <= 1.5 else "over"
    print(f"best step {min(steps) * 1e6:.1f} us / best floor {min(floors) * 1e6:.1f} us = "
          f"{ratio:.2f} (target <= 1.5 on the CartPole shapes): {verdict}")
    if args.smoke:                     # and the --run part, on a short run
        args.steps = 4_096
        whole_run(args)


if __name__ == "__main__":
    main()

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
the same run, alternating, best of several repeats, BLAS limited to one thread (as in training).

    python benchmarks/bench_update.py              # CartPole shapes: B = 251, 4-64-64-2
    python benchmarks/bench_update.py --obs-dim 17 --actions 6 --continuous   # MuJoCo-like
    python benchmarks/bench_update.py --batch 1024 --hidden 256 256
    python benchmarks/bench_update.py --smoke      # one short round: CI's check that it runs

Target: step / floor <= 1.5 on the CartPole shapes.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minipg.algos import ppo
from minipg.algos.config import make_config
from minipg.core.optim import Adam
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.value import ValueFunction
from minipg.core.heads import join_params


def best_time(function, repeats=7, min_seconds=0.2):
    """Seconds per call: the best over `repeats` timings of a loop long enough to take
    min_seconds (the minimum is the least disturbed by the other processes on the machine)."""
    function()
    calls, start = 1, time.perf_counter()
    while time.perf_counter() - start < min_seconds / 10:
        function()
        calls += 1
    n = max(1, int(calls * 10 * (min_seconds / 10) / (time.perf_counter() - start + 1e-9)))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            function()
        best = min(best, (time.perf_counter() - start) / n)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=251,
                        help="minibatch size (CartPole defaults: ~502 real steps / 2 = 251)")
    parser.add_argument("--obs-dim", type=int, default=4)
    parser.add_argument("--actions", type=int, default=2, help="actions (or action dims)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--continuous", action="store_true", help="a Gaussian policy")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--smoke", action="store_true",
                        help="one round of short timings: checks that the script runs")
    args = parser.parse_args(argv)
    timing = dict(repeats=2, min_seconds=0.02) if args.smoke else {}
    if args.smoke:
        args.rounds = 1

    policy_sizes = (args.obs_dim, *args.hidden, args.actions)
    value_sizes = (args.obs_dim, *args.hidden, 1)
    floor = floor_function(args.batch, policy_sizes, value_sizes)
    step = step_function(args.batch, args.obs_dim, args.actions, args.hidden, args.continuous)
    kind = "Gaussian" if args.continuous else "Categorical"
    print(f"PPO minibatch step, B = {args.batch}, policy {policy_sizes} ({kind}), value "
          f"{value_sizes}, float32, 1 BLAS thread")
    print(f"{'round':>5} {'step us':>9} {'floor us':>9} {'step/floor':>10}")
    steps, floors = [], []
    with threadpool_limits(limits=1, user_api="blas"):
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


if __name__ == "__main__":
    main()

"""How fast are minipg's return kernels, next to the ways people usually compute returns?

    python benchmarks/bench_returns.py [--episode-length 50]
    python benchmarks/bench_returns.py --smoke      # one small shape, no targets: CI's check

For GAE and for reward-to-go (with bootstrap values) over (T, N) rollouts, in float64 and
float32, the table gives nanoseconds per element (T * N elements) for:

  compiled  the Cython kernel called directly, output preallocated: the build minipg.core.returns
            uses on this CPU (minipg._kernels_avx2 on x86-64 with AVX2, else minipg._kernels)
  baseline  the same kernel from the baseline build (minipg._kernels, SSE2 on x86-64), which
            runs on every CPU of the architecture; equal to `compiled` when that is the one used
  public    minipg.core.returns.gae / reward_to_go: input checks (check_finite=True), a fresh output
  ref       the NumPy reference in minipg/core/returns.py (a Python loop over t)
  loop      the usual pure-Python approach, written below the way PyTorch PPO implementations
            write it: a backwards `for t` loop with NumPy operations over the N environments
  lfilter   scipy.signal.lfilter per episode segment and environment (the discount_cumsum trick
            of rllab / Spinning Up); needs scipy, skipped without it
  floor     the NumPy streaming floor: one np.copyto that moves as many bytes (read plus
            written) as the kernel has to: GAE reads r, v, nv and two flag bytes and writes A,
            4 * itemsize + 2 bytes per element; reward-to-go reads r, nv and the flags, 3 *
            itemsize + 2. That is memcpy speed with no arithmetic at all: no kernel can beat it.

Targets, all measured in this one run:
  (2048, 8)              compiled >= 300x faster than the Python loop
  (128, 256), (1024, 4096)  compiled within 3x of the streaming floor
  (100000, 1)            compiled >= 50x faster than lfilter per episode segment

Rollouts: episodes end at random with probability 1 / episode_length per step (one end in ten is
a truncation). lfilter pays ~4 us per call, so its cost per element is about 4000 / L ns for
episodes of length L: the (100000, 1) comparison depends on L, and a line after the table gives
it for 500-step episodes (CartPole-v1 solved) as well.

Timing: best of k runs (k chosen to fill ~0.2 s, at least 5); the pure-Python baselines use
fewer runs, and at T = 100000 they are timed on the first 10000 steps (marked *): their cost is a
fixed overhead per time step, so ns per element does not depend on T.
"""
import argparse
import sys
import time

import numpy as np

import minipg.core.returns as R
from minipg import _kernels as baseline_kernels

_kernels = R._kernels            # the build the public functions use here

try:
    from scipy.signal import lfilter
except ImportError:  # pragma: no cover - scipy is an optional benchmark dependency
    lfilter = None

SHAPES = [(2048, 8), (128, 256), (100000, 1), (1024, 4096)]
DTYPES = [np.float64, np.float32]
GAMMA, LAM = 0.99, 0.95
PYTHON_LOOP_MAX_T = 10_000


# --------------------------------------------------------------------------------------------
# The baselines
# --------------------------------------------------------------------------------------------

def gae_python_loop(rewards, values, next_values, terminated, done, gamma, lam):
    """GAE as PyTorch PPO implementations write it (CleanRL's ppo.py, with terminated and done
    kept apart). Flags are float arrays, as those libraries store them."""
    advantages = np.zeros_like(rewards)
    last_gae_lam = 0.0
    for t in reversed(range(len(rewards))):
        next_non_terminal = 1.0 - terminated[t]
        delta = rewards[t] + gamma * next_values[t] * next_non_terminal - values[t]
        advantages[t] = last_gae_lam = delta + gamma * lam * (1.0 - done[t]) * last_gae_lam
    return advantages


def reward_to_go_python_loop(rewards, next_values, boot, done, gamma):
    """The same loop for discounted returns with bootstrapping; boot_t as in the contract."""
    returns = np.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        returns[t] = running = rewards[t] + gamma * ((1.0 - done[t]) * running
                                                     + boot[t] * next_values[t])
    return returns


def discounted_cumsum_per_segment(x, done, discount):
    """y_t = x_t + discount * y_{t+1} within each episode segment, with one lfilter call per
    segment and environment: the discount_cumsum trick (a linear filter run on reversed x)."""
    T, N = x.shape
    y = np.empty_like(x)
    for n in range(N):
        ends = np.flatnonzero(done[:, n]).tolist()
        if not ends or ends[-1] != T - 1:
            ends.append(T - 1)                     # the rollout cuts the last segment
        start = 0
        for end in ends:
            y[start:end + 1, n] = lfilter([1.0], [1.0, -discount], x[start:end + 1, n][::-1])[::-1]
            start = end + 1
    return y


def gae_lfilter(rewards, values, next_values, terminated, done, gamma, lam):
    delta = rewards + gamma * (1.0 - terminated) * next_values - values     # vectorised
    return discounted_cumsum_per_segment(delta, done, gamma * lam)


def reward_to_go_lfilter(rewards, next_values, boot, done, gamma):
    return discounted_cumsum_per_segment(rewards + gamma * boot * next_values, done, gamma)


# --------------------------------------------------------------------------------------------
# Data and timing
# --------------------------------------------------------------------------------------------

def make_rollout(T, N, dtype, episode_length, seed=0):
    rng = np.random.default_rng(seed)
    ends = rng.random((T, N)) < 1.0 / episode_length
    truncated = ends & (rng.random((T, N)) < 0.1)
    terminated = ends & ~truncated
    ro = dict(r=rng.normal(size=(T, N)).astype(dtype), v=rng.normal(size=(T, N)).astype(dtype),
              nv=rng.normal(size=(T, N)).astype(dtype), terminated=terminated, truncated=truncated)
    done = terminated | truncated
    boot = truncated & ~terminated
    boot[-1] = ~terminated[-1]                         # the segment is cut at the last row
    # Float flags for the Python baselines (prepared outside the timings, in their favour).
    ro.update(term_f=terminated.astype(dtype), done_f=done.astype(dtype), boot_f=boot.astype(dtype),
              te_u8=terminated.view(np.uint8), tr_u8=truncated.view(np.uint8),
              out=np.empty((T, N), dtype))
    return ro


def best_time(fn, budget=0.2, min_runs=5, max_runs=2000):
    """Best of k wall-clock runs, after a warm-up run; k fills about `budget` seconds."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    best = once
    runs = int(min(max_runs, max(min_runs, budget / max(once, 1e-9))))
    if once > 2.0:                                     # a baseline this slow: one more run only
        runs = 1
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def streaming_floor(nbytes):
    """Seconds for one np.copyto that moves nbytes in total (nbytes / 2 read, nbytes / 2 written)."""
    src = np.ones(nbytes // 2, np.uint8)
    dst = np.empty_like(src)
    return best_time(lambda: np.copyto(dst, src))


def check_baselines_agree(episode_length):
    """The baselines compute the same numbers as the kernels (else the speed-ups mean nothing)."""
    ro = make_rollout(300, 3, np.float64, episode_length, seed=1)
    A = R.gae(ro["r"], ro["v"], ro["nv"], ro["terminated"], ro["truncated"], GAMMA, LAM)
    G = R.reward_to_go(ro["r"], ro["terminated"], ro["truncated"], GAMMA, next_values=ro["nv"])
    candidates = [("loop", gae_python_loop(ro["r"], ro["v"], ro["nv"], ro["term_f"], ro["done_f"], GAMMA, LAM), A),
                  ("loop", reward_to_go_python_loop(ro["r"], ro["nv"], ro["boot_f"], ro["done_f"], GAMMA), G)]
    if lfilter is not None:
        candidates += [("lfilter", gae_lfilter(ro["r"], ro["v"], ro["nv"], ro["term_f"], ro["done_f"] > 0, GAMMA, LAM), A),
                       ("lfilter", reward_to_go_lfilter(ro["r"], ro["nv"], ro["boot_f"], ro["done_f"] > 0, GAMMA), G)]
    for name, got, want in candidates:
        if not np.allclose(got, want, rtol=1e-10, atol=1e-10):
            sys.exit(f"baseline {name} disagrees with the kernel: max error {np.abs(got - want).max()}")


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------

def measure(T, N, dtype, episode_length):
    """ns per element of every method, for both kernels, at one shape and dtype."""
    ro = make_rollout(T, N, dtype, episode_length)
    r, v, nv, out = ro["r"], ro["v"], ro["nv"], ro["out"]
    te, tr, te8, tr8 = ro["terminated"], ro["truncated"], ro["te_u8"], ro["tr_u8"]
    Tp = min(T, PYTHON_LOOP_MAX_T)                     # Python baselines: a prefix of the rollout
    per = lambda seconds, rows=T: seconds / (rows * N) * 1e9
    itemsize = np.dtype(dtype).itemsize
    rows = {}

    gae = {
        "compiled": per(best_time(lambda: _kernels.gae(r, v, nv, te8, tr8, GAMMA, LAM, out))),
        "baseline": per(best_time(lambda: baseline_kernels.gae(r, v, nv, te8, tr8, GAMMA, LAM, out))),
        "public": per(best_time(lambda: R.gae(r, v, nv, te, tr, GAMMA, LAM))),
        "ref": per(best_time(lambda: R.gae_reference(r[:Tp], v[:Tp], nv[:Tp], te[:Tp], tr[:Tp], GAMMA, LAM),
                             min_runs=2), Tp),
        "loop": per(best_time(lambda: gae_python_loop(r[:Tp], v[:Tp], nv[:Tp], ro["term_f"][:Tp],
                                                      ro["done_f"][:Tp], GAMMA, LAM), min_runs=2), Tp),
        "floor": per(streaming_floor((4 * itemsize + 2) * T * N)),
    }
    rtg = {
        "compiled": per(best_time(lambda: _kernels.reward_to_go(r, nv, True, te8, tr8, GAMMA, out))),
        "baseline": per(best_time(lambda: baseline_kernels.reward_to_go(r, nv, True, te8, tr8, GAMMA,
                                                                        out))),
        "public": per(best_time(lambda: R.reward_to_go(r, te, tr, GAMMA, next_values=nv))),
        "ref": per(best_time(lambda: R.reward_to_go_reference(r[:Tp], te[:Tp], tr[:Tp], GAMMA, nv[:Tp]),
                             min_runs=2), Tp),
        "loop": per(best_time(lambda: reward_to_go_python_loop(r[:Tp], nv[:Tp], ro["boot_f"][:Tp],
                                                               ro["done_f"][:Tp], GAMMA), min_runs=2), Tp),
        "floor": per(streaming_floor((3 * itemsize + 2) * T * N)),
    }
    if lfilter is not None:
        done = te | tr
        gae["lfilter"] = per(best_time(lambda: gae_lfilter(r, v, nv, ro["term_f"], done, GAMMA, LAM),
                                       min_runs=2))
        rtg["lfilter"] = per(best_time(lambda: reward_to_go_lfilter(r, nv, ro["boot_f"], done, GAMMA),
                                       min_runs=2))
    rows["gae"], rows["rtg"] = gae, rtg
    return rows, Tp < T


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def main(argv=None):
    global SHAPES
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episode-length", type=float, default=50.0,
                        help="mean episode length of the random rollouts (default 50)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one small shape, the long-episode and thread lines "
                             "skipped; checks that the script runs, its figures mean nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        SHAPES = [(256, 8)]
    if R.BACKEND != "cython":
        sys.exit("bench_returns.py measures the compiled kernels; unset MINIPG_PURE_NUMPY.")
    L = args.episode_length
    check_baselines_agree(L)
    started = time.perf_counter()

    print(f"minipg return kernels: ns per element, best of k; mean episode length {L:g}; "
          f"kernel build in use: {R.KERNELS}; OpenMP compiled in: {_kernels.openmp_enabled()} "
          f"(threads off by default)")
    if lfilter is None:
        print("scipy is not installed: the lfilter column and its target are skipped "
              "(pip install scipy).")
    header = (f"{'T':>6} {'N':>5} {'dtype':7} {'kernel':6} | {'compiled':>8} {'baseline':>8} {'public':>7} "
              f"{'ref':>7} {'loop':>7} {'lfilter':>7} {'floor':>6} | {'loop/comp':>9} "
              f"{'comp/floor':>10} {'lfilt/comp':>10}")
    print(header)
    print("-" * len(header))
    targets = []
    for T, N in SHAPES:
        for dtype in DTYPES:
            rows, prefix = measure(T, N, dtype, L)
            for kernel, m in rows.items():
                c = m["compiled"]
                lf = m.get("lfilter")
                star = "*" if prefix else " "
                print(f"{T:>6} {N:>5} {np.dtype(dtype).name:7} {kernel:6} | {fmt(c):>8} "
                      f"{fmt(m['baseline']):>8} {fmt(m['public']):>7} {fmt(m['ref']) + star:>7} {fmt(m['loop']) + star:>7} "
                      f"{fmt(lf):>7} {fmt(m['floor']):>6} | {m['loop'] / c:>8.0f}x "
                      f"{c / m['floor']:>9.2f}x {'-' if lf is None else f'{lf / c:.0f}x':>10}")
                name = f"{kernel} {np.dtype(dtype).name} ({T}, {N})"
                if (T, N) == (2048, 8):
                    targets.append((f"{name}: compiled vs Python loop >= 300x", m["loop"] / c, 300, ">="))
                if (T, N) in ((128, 256), (1024, 4096)):
                    targets.append((f"{name}: compiled within 3x of streaming floor", c / m["floor"], 3, "<="))
                if (T, N) == (100000, 1) and lf is not None:
                    targets.append((f"{name}: compiled vs lfilter per segment >= 50x", lf / c, 50, ">="))
    print("  * timed on the first 10000 steps (a per-step cost; ns per element does not depend on T)")

    if args.smoke:
        print(f"smoke run: {len(targets)} targets at this shape; done in "
              f"{time.perf_counter() - started:.1f} s")
        return 0

    if lfilter is not None:                            # the same comparison with long episodes
        ro = make_rollout(100000, 1, np.float64, 500.0)
        c = best_time(lambda: _kernels.gae(ro["r"], ro["v"], ro["nv"], ro["te_u8"], ro["tr_u8"],
                                           GAMMA, LAM, ro["out"]))
        lf = best_time(lambda: gae_lfilter(ro["r"], ro["v"], ro["nv"], ro["term_f"],
                                           ro["done_f"] > 0, GAMMA, LAM), min_runs=2)
        print(f"  with 500-step episodes instead, GAE float64 (100000, 1): lfilter/compiled = "
              f"{lf / c:.0f}x (information, not a target)")

    print("\nThreads (opt-in num_threads=2; serial is the default):")
    for T, N in [(128, 4096), (1024, 4096)]:
        ro = make_rollout(T, N, np.float64, L)
        kernel_args = (ro["r"], ro["v"], ro["nv"], ro["te_u8"], ro["tr_u8"], GAMMA, LAM, ro["out"])
        serial = best_time(lambda a=kernel_args: _kernels.gae(*a))
        threaded = best_time(lambda a=kernel_args: _kernels.gae(*a, 2))
        print(f"  GAE float64 ({T}, {N}): serial {serial / (T * N) * 1e9:.2f} ns, "
              f"2 threads {threaded / (T * N) * 1e9:.2f} ns per element")

    print("\nTargets:")
    failed = 0
    for name, value, bound, op in targets:
        ok = value >= bound if op == ">=" else value <= bound
        failed += not ok
        shown = f"{value:.0f}x" if op == ">=" else f"{value:.2f}x"
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {shown}")
    print(f"\n{len(targets) - failed}/{len(targets)} targets met in {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

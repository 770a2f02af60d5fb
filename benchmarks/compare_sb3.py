"""minipg's PPO beside Stable-Baselines3's PPO on CartPole-v1, both measured in this run.

Optional: it needs Stable-Baselines3, which brings PyTorch; minipg itself needs neither (see
benchmarks/README.md for the install). Nothing here is quoted from elsewhere: every figure and
every ratio printed comes from the runs this process makes.

    python benchmarks/compare_sb3.py                 # seeds 0 1 2
    python benchmarks/compare_sb3.py --matched       # also minipg with SB3's tuned settings
    python benchmarks/compare_sb3.py --smoke         # seconds: CI's check that it runs (the sb3
                                                     # half skipped when SB3 is not installed)

The contestants:
    minipg        minipg's PPO with its defaults (minipg/algos/ppo.py).
    sb3           SB3's PPO with rl-zoo's tuned CartPole-v1 hyperparameters (SB3_TUNED below).
    minipg=sb3    (--matched) minipg's PPO configured like SB3_TUNED (MINIPG_AS_SB3 below): the
                  same algorithmic settings, so its time against sb3's is implementation speed.

Measured the same way for each, seed by seed in turn (minipg seed 0, sb3 seed 0, minipg seed 1,
...), so that a change in machine load hits both alike, with one thread each (torch threads and
every BLAS / OpenMP pool):
    solved at steps, train s   a run with a budget of --steps env steps, evaluated after every
                  update on 20 episodes of the stochastic policy; the first time their mean
                  reaches 475 the run stops and counts as solved at that many env steps and
                  seconds. The seconds are wall-clock from the call that builds the agent
                  (environments, networks, optimizer) minus the time spent evaluating.
    100k run s    wall-clock of a whole --steps run, building the agent included.
    steps/s       env steps of that run divided by its seconds.
    final eval    mean +- std of 20 episodes of the policy that run ended with.
    cold start s  a fresh Python process, from its launch to the library's first env step:
                  interpreter, imports, building the agent (measured once per seed in turn).
The evaluation is the same code and the same seeds for both libraries: minipg.evaluate
steps 20 CartPole copies, and each policy gives its action probabilities, from which the same
inverse-CDF draw on the same NumPy Generator picks the actions (SampledActor).

Env steps are counted as each library counts them: SB3 counts transitions; minipg counts every
env step, including the one step per episode that gymnasium's vector env spends on its reset.
Before the measurements each contestant trains briefly once, so that what a process does only
once (lazy imports, first-call setup) is in the cold start and not in the first seed's row.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ENV_ID = "CartPole-v1"
SOLVED = 475.0
EVAL_EPISODES = 20
SOLVE_EVAL_SEED = 10_000      # + seed: the evaluations during the time-to-solve run
FINAL_EVAL_SEED = 20_000      # + seed: the evaluation of the full run's final policy
INSTALL_HINT = ("compare_sb3.py needs stable_baselines3, which minipg does not install: "
                "pip install torch stable-baselines3 (a CPU torch first avoids the CUDA wheels), "
                "see benchmarks/README.md")


def linear(initial):
    """rl-zoo's "lin_<x>": the value falls linearly from x to 0 over training.

    SB3 calls a schedule with progress_remaining, 1 at the start and 0 at the end.
    """
    def schedule(progress_remaining):
        return progress_remaining * initial
    return schedule


# rl-zoo's tuned PPO hyperparameters for CartPole-v1 (rl-baselines3-zoo, hyperparams/ppo.yml,
# entry "CartPole-v1", n_timesteps 1e5, policy MlpPolicy). Everything not listed is SB3's
# default: 64-64 tanh actor and critic (separate networks, orthogonal init), Adam with eps 1e-5,
# vf_coef 0.5, max_grad_norm 0.5, advantages normalised per minibatch, no value clipping.
SB3_N_ENVS = 8
SB3_TUNED = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                 ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2))

# minipg configured like SB3_TUNED: 8 envs x 32 steps = one minibatch of (up to) 256, 20 epochs,
# the learning rate annealed linearly from 1e-3. SB3's value loss is vf_coef * mean (V - R)^2
# while minipg's is vf_coef * 0.5 * mean (V - R)^2, so vf_coef 1.0 here is SB3's 0.5. What
# stays different: SB3 also anneals the clip range (lin_0.2); minipg keeps it at 0.2.
MINIPG_AS_SB3 = dict(num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20, lam=0.8,
                     gamma=0.98, learning_rate=1e-3, anneal_lr=True, clip_coef=0.2,
                     ent_coef=0.0, vf_coef=1.0, max_grad_norm=0.5, norm_adv=True,
                     hidden_sizes=(64, 64), activation="tanh")


class SampledActor:
    """The act() that minipg.evaluate calls, for a policy given by its probabilities.

    probs_fn(obs) -> (N, K) action probabilities. The action is drawn by inverting the CDF with
    one uniform from the evaluation's Generator: a = #{k : cdf_k <= u}, the first k with
    u < cdf_k (clamped to K - 1 in case the last cdf entry rounds below 1). kind, obs_dim and
    n_actions are what the evaluation checks against the env's spaces before it runs.
    """
    kind = "categorical"

    def __init__(self, probs_fn, obs_dim=4, n_actions=2):      # CartPole-v1's spaces
        self.probs_fn = probs_fn
        self.obs_dim, self.n_actions = obs_dim, n_actions

    def act(self, obs, deterministic=False, rng=None):
        probs = np.asarray(self.probs_fn(obs), dtype=np.float64)
        if deterministic:
            return probs.argmax(axis=-1)
        cdf = np.cumsum(probs, axis=-1)
        u = rng.random((len(probs), 1))
        return np.minimum((cdf <= u).sum(axis=-1), probs.shape[-1] - 1)


def evaluate(actor, seed):
    """Returns of EVAL_EPISODES episodes of the stochastic policy (minipg's evaluation loop)."""
    from minipg.run.evaluate import evaluate as evaluate_episodes
    return evaluate_episodes(actor, ENV_ID, EVAL_EPISODES, seed=seed)


# The libraries are imported inside these two functions, not at the top of the file: a
# cold-start process for one library must not pay for importing the other.

def run_minipg(seed, total_steps, hyperparameters, run_dir, on_update=None):
    """minipg.train; on_update(env_steps, actor) after every update, True stops training.

    Returns (env steps taken, the trained policy as a SampledActor).
    """
    import minipg

    def callback(record, policy):
        return on_update(record["env_steps"], minipg_actor(policy))

    result = minipg.train(ENV_ID, "ppo", total_steps, seed, run_dir=run_dir, log_every=-1,
                          callback=callback if on_update else None, **hyperparameters)
    return result.history[-1]["env_steps"], minipg_actor(result.policy)


def minipg_actor(policy):
    return SampledActor(lambda obs: policy.distribution(obs).probs)


def run_sb3(seed, total_steps, on_update=None):
    """SB3's PPO built as rl-zoo builds it; on_update(env_steps, actor) as in run_minipg."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    def probs(obs):
        with torch.no_grad():
            dist = model.policy.get_distribution(torch.as_tensor(obs, dtype=torch.float32))
            return dist.distribution.probs.numpy()

    class AfterEveryUpdate(BaseCallback):
        # SB3's loop is: collect a rollout (on_rollout_start, then on_step after each env step),
        # update, repeat, then on_training_end. So "after an update" is the start of the next
        # rollout, or the end of training; returning False from on_step stops the loop.
        stop = False

        def _on_rollout_start(self):
            if self.num_timesteps > 0:
                self.stop = on_update(self.num_timesteps, SampledActor(probs))

        def _on_step(self):
            return not self.stop

        def _on_training_end(self):
            if not self.stop:
                on_update(self.num_timesteps, SampledActor(probs))

    env = make_vec_env(ENV_ID, n_envs=SB3_N_ENVS, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **SB3_TUNED)
    model.learn(total_timesteps=total_steps,
                callback=AfterEveryUpdate() if on_update else None)
    return model.num_timesteps, SampledActor(probs)


CONTESTANTS = {
    "minipg": lambda seed, steps, run_dir, on_update=None:
        run_minipg(seed, steps, {}, run_dir, on_update),
    "sb3": lambda seed, steps, run_dir, on_update=None:
        run_sb3(seed, steps, on_update),
    "minipg=sb3": lambda seed, steps, run_dir, on_update=None:
        run_minipg(seed, steps, MINIPG_AS_SB3, run_dir, on_update),
}


def time_to_solve(run, seed, max_steps, run_dir):
    """(env steps, training seconds) at the first evaluation with mean >= 475, or (None, None).

    Training seconds: wall-clock since the agent started being built, minus evaluation time.
    """
    start = time.perf_counter()
    eval_seconds = 0.0
    solved = {}

    def on_update(env_steps, actor):
        nonlocal eval_seconds
        now = time.perf_counter()
        returns = evaluate(actor, SOLVE_EVAL_SEED + seed)
        train_seconds = now - start - eval_seconds
        eval_seconds += time.perf_counter() - now
        if returns.mean() >= SOLVED:
            solved.update(steps=env_steps, seconds=train_seconds)
            return True
        return False

    run(seed, max_steps, run_dir, on_update)
    return solved.get("steps"), solved.get("seconds")


def full_run(run, seed, steps, run_dir):
    """(wall-clock seconds, env steps taken, final evaluation returns) of a whole run."""
    start = time.perf_counter()
    env_steps, actor = run(seed, steps, run_dir)
    seconds = time.perf_counter() - start
    return seconds, env_steps, evaluate(actor, FINAL_EVAL_SEED + seed)


# ---- cold start: a fresh process per measurement ----------------------------------------

FIRST_STEP = "first env step at"


def exit_at_first_env_step():
    """Make the first CartPole step of either library print the time and end the process.

    minipg steps gymnasium's vectorised CartPoleVectorEnv, SB3 copies of CartPoleEnv: the first
    call to either step method is the first env step.
    """
    from gymnasium.envs.classic_control import cartpole

    def first_step(*args, **kwargs):
        print(f"{FIRST_STEP} {time.time():.6f}", flush=True)
        os._exit(0)

    cartpole.CartPoleEnv.step = first_step
    cartpole.CartPoleVectorEnv.step = first_step


def cold_start(library, seed, steps, run_dir):
    """Seconds from launching `python compare_sb3.py --cold-start-child library` to its first
    env step (time.time() is one clock for every process)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, os.path.abspath(__file__), "--cold-start-child", library,
               "--seeds", str(seed), "--steps", str(steps), "--run-dir", run_dir]
    launched = time.time()
    child = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in child.stdout.splitlines():
        if line.startswith(FIRST_STEP):
            return float(line.split()[-1]) - launched
    raise RuntimeError(f"cold-start child for {library} never stepped an env "
                       f"(exit {child.returncode}):\n{child.stderr[-2000:]}")


def cold_start_child(library, seed, steps, run_dir):
    exit_at_first_env_step()
    if library == "sb3":
        import torch
        torch.set_num_threads(1)
    CONTESTANTS[library](seed, steps, run_dir)
    raise RuntimeError("training finished without stepping an env")


# ---- the comparison ----------------------------------------------------------------------

def limit_threads(torch_too=True):
    """One thread for torch and for every BLAS / OpenMP pool (minipg's train does the BLAS part
    itself; SB3's learn does nothing of the kind). Returns the threadpoolctl limiter to keep."""
    from threadpoolctl import threadpool_limits
    if torch_too:
        import torch
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    return threadpool_limits(limits=1)


def ratio_summary(rows, names, column):
    """(median of names[0], median of names[1], their ratio, min and max per-seed ratio)."""
    a = {r["seed"]: r[column] for r in rows if r["name"] == names[0] and r[column] is not None}
    b = {r["seed"]: r[column] for r in rows if r["name"] == names[1] and r[column] is not None}
    both = sorted(set(a) & set(b))
    if not both:
        return None
    median_a = float(np.median([a[s] for s in both]))
    median_b = float(np.median([b[s] for s in both]))
    per_seed = [b[s] / a[s] for s in both]
    return median_a, median_b, median_b / median_a, min(per_seed), max(per_seed), len(both)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000,
                        help="length of the full runs, and the budget of the time-to-solve runs "
                             "(so that both follow the same learning-rate schedule)")
    parser.add_argument("--matched", action="store_true",
                        help="also run minipg configured like SB3's tuned settings")
    parser.add_argument("--no-cold-start", action="store_true",
                        help="skip the fresh-process cold-start measurements")
    parser.add_argument("--cold-start-child", choices=["minipg", "sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true",
                        help="seed 0, 2,048-step runs, both --matched contestants: checks that "
                             "the script runs; without SB3 installed its half is skipped")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.steps, args.matched = [0], 2_048, True

    if args.cold_start_child:
        cold_start_child(args.cold_start_child, args.seeds[0], args.steps, args.run_dir)
    try:
        import stable_baselines3
        import torch
        peer = (f"stable-baselines3 {stable_baselines3.__version__}, "
                f"torch {torch.__version__}")
    except ImportError:
        if not args.smoke:
            sys.exit(INSTALL_HINT)
        peer = None
        print("stable-baselines3 is not installed: the sb3 half is skipped (smoke run)")
    import minipg

    names = ["minipg", "minipg=sb3", "sb3"] if args.matched else ["minipg", "sb3"]
    if peer is None:
        names.remove("sb3")
    print(f"CartPole-v1 PPO: minipg {minipg.__version__}, {peer or 'no SB3'}, "
          f"numpy {np.__version__}; seeds {args.seeds}, {args.steps:,}-step runs, 1 thread each")
    full_label = f"{args.steps // 1000}k run s"
    header = (f"{'seed':>4} {'agent':<11} {'solved at steps':>15} {'train s':>8} "
              f"{full_label:>10} {'steps/s':>8} {'final eval':>14} {'cold start s':>12}")
    rows = []
    limiter = limit_threads(torch_too=peer is not None)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:        # warm-up: once-per-process costs stay out of the rows
            full_run(CONTESTANTS[name], 0, 2_048, os.path.join(tmp, f"warmup-{name}"))
        print(header)
        for seed in args.seeds:
            for name in names:
                run = CONTESTANTS[name]
                steps, seconds = time_to_solve(run, seed, args.steps,
                                               os.path.join(tmp, f"solve-{name}-{seed}"))
                full_seconds, full_steps, final = full_run(
                    run, seed, args.steps, os.path.join(tmp, f"full-{name}-{seed}"))
                cold = None
                if not args.no_cold_start and name in ("minipg", "sb3"):
                    cold = cold_start(name, seed, args.steps,
                                      os.path.join(tmp, f"cold-{name}-{seed}"))
                rows.append(dict(seed=seed, name=name, steps=steps, seconds=seconds,
                                 full=full_seconds, cold=cold))
                solved_at = f"{steps:,}" if steps else "not solved"
                print(f"{seed:>4} {name:<11} {solved_at:>15} "
                      f"{seconds if seconds else float('nan'):>8.2f} {full_seconds:>10.2f} "
                      f"{full_steps / full_seconds:>8,.0f} "
                      f"{final.mean():>7.1f} +- {final.std():4.1f} "
                      f"{cold if cold is not None else float('nan'):>12.2f}", flush=True)
    limiter.restore_original_limits()

    print()
    print(f"{'median over seeds':<28} {'minipg':>10} {'sb3':>10}   sb3/minipg (per-seed range)")
    comparisons = [("minipg", "sb3")]
    if args.matched:
        comparisons.append(("minipg=sb3", "sb3"))
    for pair in comparisons:
        if pair[0] != "minipg":
            print(f"same settings: {pair[0]} against {pair[1]}")
        for column, label in (("steps", "env steps to solve"), ("seconds", "train s to solve"),
                              ("full", full_label), ("cold", "cold start s")):
            if column == "cold" and pair[0] != "minipg":
                continue
            summary = ratio_summary(rows, pair, column)
            if summary is None:
                print(f"  {label:<26} {'-':>10} {'-':>10}   (no seed with both)")
                continue
            a, b, ratio, low, high, n = summary
            fmt = ",.0f" if column == "steps" else ".2f"
            print(f"  {label:<26} {a:>10{fmt}} {b:>10{fmt}}   {ratio:5.2f}x ({low:.2f}-{high:.2f})"
                  + (f" over {n} seeds solved by both" if n < len(args.seeds) else ""))
    return rows


if __name__ == "__main__":
    main()

"""minipg's PPO beside a JAX PPO on CartPole-v1: whole-process times, and where JAX catches up.

The JAX side is written below in the design of PureJaxRL (Lu et al. 2022): the environment
itself in JAX (CartPole-v1's equations, as gymnasium and gymnax write them, with the reset inside
the step), N copies vmapped, and the whole training run -- collection, GAE, the epochs of
minibatch steps -- one jit-compiled lax.scan. The same PPO as minipg's defaults: 16 envs x 32
steps, 10 epochs of 2 minibatches, gamma 0.98, lam 0.8, clip 0.2, ent_coef 0, vf_coef 0.5,
advantages normalised per minibatch, global-norm clipping to 0.5, Adam (eps 1e-5) at 3e-3
annealed linearly to 0, separate 64-64 tanh actor and critic with orthogonal init, float32.

Each measurement is a fresh Python process (`python compare_jax.py --child minipg|jax --steps
S`), timed from its launch to its exit (wall-clock) and by its CPU time (user + system, from the
OS: what it cost whatever else the machine ran): interpreter, imports, JAX's compilation, the
training. One thread each (BLAS, XLA's Eigen pool). Step counts alternate between the two sides.
From two run lengths, each side's time is fitted as a + b * steps; the break-even step count is
where the lines cross, (a_jax - a_minipg) / (b_minipg - b_jax).

    python benchmarks/compare_jax.py                       # 100k and 500k steps, 2 repeats
    python benchmarks/compare_jax.py --steps 100000 1000000
    python benchmarks/compare_jax.py --smoke               # seconds; JAX skipped when absent

JAX is optional and never a dependency of minipg: pip install "jax[cpu]".
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_ENVS, N_STEPS, EPOCHS, MINIBATCHES = 16, 32, 10, 2
GAMMA, LAM, CLIP, VF_COEF, MAX_GRAD_NORM, LR, ADAM_EPS = 0.98, 0.8, 0.2, 0.5, 0.5, 3e-3, 1e-5
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


# ---- the JAX side ------------------------------------------------------------------------

def jax_train(total_steps, seed):
    """PPO on JAX CartPole for total_steps env steps; returns the mean return of the episodes
    that ended in the last 10 iterations."""
    import jax
    import jax.numpy as jnp

    # CartPole-v1 (gymnasium's classic_control/cartpole.py), the reset inside the step
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass, polemass_length = masscart + masspole, masspole * length
    theta_limit, x_limit, max_steps = 12 * 2 * np.pi / 360, 2.4, 500

    def env_reset(key):
        return jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05), jnp.int32(0)

    def env_step(key, state, action):
        (x, x_dot, theta, theta_dot), t = state
        force = jnp.where(action == 1, force_mag, -force_mag)
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        temp = (force + polemass_length * theta_dot ** 2 * sin) / total_mass
        theta_acc = (gravity * sin - cos * temp) / (
            length * (4.0 / 3.0 - masspole * cos ** 2 / total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x, x_dot = x + tau * x_dot, x_dot + tau * x_acc
        theta, theta_dot = theta + tau * theta_dot, theta_dot + tau * theta_acc
        obs = jnp.stack([x, x_dot, theta, theta_dot])
        t = t + 1
        terminated = (jnp.abs(x) > x_limit) | (jnp.abs(theta) > theta_limit)
        done = terminated | (t >= max_steps)
        reset_obs, reset_t = env_reset(key)
        next_obs = jnp.where(done, reset_obs, obs)
        return (next_obs, jnp.where(done, reset_t, t)), obs, 1.0, terminated, done

    def orthogonal(key, n_in, n_out, gain):
        return jax.nn.initializers.orthogonal(gain)(key, (n_in, n_out), jnp.float32)

    def mlp_init(key, sizes, head_gain):
        keys = jax.random.split(key, len(sizes) - 1)
        gains = [np.sqrt(2.0)] * (len(sizes) - 2) + [head_gain]
        return [(orthogonal(k, a, b, g), jnp.zeros(b, jnp.float32))
                for k, a, b, g in zip(keys, sizes[:-1], sizes[1:], gains)]

    def mlp(params, x):
        for W, b in params[:-1]:
            x = jnp.tanh(x @ W + b)
        W, b = params[-1]
        return x @ W + b

    def loss_fn(params, obs, actions, old_log_prob, advantages, returns):
        log_probs = jax.nn.log_softmax(mlp(params["actor"], obs))
        log_prob = jnp.take_along_axis(log_probs, actions[:, None], 1)[:, 0]
        values = mlp(params["critic"], obs)[:, 0]
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = jnp.exp(log_prob - old_log_prob)
        surrogate = jnp.maximum(-advantages * ratio,
                                -advantages * jnp.clip(ratio, 1 - CLIP, 1 + CLIP)).mean()
        return surrogate + VF_COEF * 0.5 * ((values - returns) ** 2).mean()

    num_updates = -(-total_steps // (N_ENVS * N_STEPS))
    num_minibatch_steps = num_updates * EPOCHS * MINIBATCHES

    def adam(params, grads, m, v, count):
        norm = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(grads)))
        grads = jax.tree_util.tree_map(lambda g: g * jnp.minimum(1.0, MAX_GRAD_NORM /
                                                                  (norm + 1e-6)), grads)
        count = count + 1
        lr = LR * (1.0 - (count - 1) // (EPOCHS * MINIBATCHES) / num_updates)
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        m_hat, v_hat = 1 - 0.9 ** count, 1 - 0.999 ** count
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * (m / m_hat) / (jnp.sqrt(v / v_hat) + ADAM_EPS), params, m, v)
        return params, m, v, count

    def train(key):
        key, actor_key, critic_key, env_key = jax.random.split(key, 4)
        params = {"actor": mlp_init(actor_key, (4, 64, 64, 2), 0.01),
                  "critic": mlp_init(critic_key, (4, 64, 64, 1), 1.0)}
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        env_state = jax.vmap(env_reset)(jax.random.split(env_key, N_ENVS))
        episode_return = jnp.zeros(N_ENVS)

        def collect_step(carry, _):
            params, env_state, episode_return, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            obs = env_state[0]
            logits = mlp(params["actor"], obs)
            action = jax.random.categorical(act_key, logits)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
            value = mlp(params["critic"], obs)[:, 0]
            env_state, next_obs, reward, terminated, done = jax.vmap(env_step)(
                jax.random.split(step_key, N_ENVS), env_state, action)
            next_value = mlp(params["critic"], next_obs)[:, 0]   # the true next state's value
            episode_return = episode_return + reward
            ended_return = jnp.where(done, episode_return, jnp.nan)
            episode_return = jnp.where(done, 0.0, episode_return)
            row = (obs, action, log_prob, value, reward, terminated, done, next_value,
                   ended_return)
            return (params, env_state, episode_return, key), row

        def update(carry, _):
            params, m, v, count, env_state, episode_return, key = carry
            (params, env_state, episode_return, key), rollout = jax.lax.scan(
                collect_step, (params, env_state, episode_return, key), None, N_STEPS)
            obs, actions, old_log_prob, values, rewards, terminated, done, next_values, ended = \
                rollout

            def gae_step(advantage, row):
                reward, value, next_value, terminated, done = row
                delta = reward + GAMMA * next_value * (1 - terminated) - value
                advantage = delta + GAMMA * LAM * (1 - done) * advantage
                return advantage, advantage
            _, advantages = jax.lax.scan(gae_step, jnp.zeros(N_ENVS),
                                         (rewards, values, next_values, terminated, done),
                                         reverse=True)
            returns = advantages + values
            batch = jax.tree_util.tree_map(lambda x: x.reshape((N_STEPS * N_ENVS,) + x.shape[2:]),
                                           (obs, actions, old_log_prob, advantages, returns))

            def epoch(carry, _):
                params, m, v, count, key = carry
                key, perm_key = jax.random.split(key)
                order = jax.random.permutation(perm_key, N_STEPS * N_ENVS)
                shuffled = jax.tree_util.tree_map(
                    lambda x: x[order].reshape((MINIBATCHES, -1) + x.shape[1:]), batch)

                def minibatch(carry, mb):
                    params, m, v, count = carry
                    grads = jax.grad(loss_fn)(params, *mb)
                    return adam(params, grads, m, v, count), None
                (params, m, v, count), _ = jax.lax.scan(minibatch, (params, m, v, count),
                                                        shuffled)
                return (params, m, v, count, key), None
            (params, m, v, count, key), _ = jax.lax.scan(epoch, (params, m, v, count, key),
                                                         None, EPOCHS)
            return (params, m, v, count, env_state, episode_return, key), ended

        carry = (params, zeros, zeros, jnp.int32(0), env_state, episode_return, key)
        _, ended = jax.lax.scan(update, carry, None, num_updates)
        return ended

    ended = np.asarray(jax.jit(train)(jax.random.PRNGKey(seed)))
    last = ended[-10:]
    assert num_minibatch_steps > 0
    return float(np.nanmean(last)) if np.isfinite(last).any() else float("nan")


# ---- the minipg side -----------------------------------------------------------------------

def minipg_train(total_steps, seed):
    import tempfile
    import minipg
    with tempfile.TemporaryDirectory() as run_dir:
        result = minipg.train("CartPole-v1", "ppo", total_steps, seed, run_dir=run_dir,
                              log_every=-1)
    return float(np.mean([h["mean_return"] for h in result.history[-10:]]))


# ---- the comparison ------------------------------------------------------------------------

def child(side, steps, seed):
    start = time.perf_counter()
    final = (jax_train if side == "jax" else minipg_train)(steps, seed)
    print(f"RESULT {final} {time.perf_counter() - start}", flush=True)


def one_process(side, steps, seed):
    """(wall s, CPU s, in-process training s, mean return at the end) of a fresh process."""
    env = dict(os.environ, **ONE_THREAD)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", side,
                           "--steps", str(steps), str(steps), "--seed", str(seed)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - launched
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT"):
            _, final, inside = line.split()
            return wall, cpu, float(inside), float(final)
    raise RuntimeError(f"{side} child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[100_000, 500_000],
                        help="the two run lengths (env steps) the lines are fitted on")
    parser.add_argument("--repeats", type=int, default=2, help="processes per side and length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=["minipg", "jax"], help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true",
                        help="one 2,048-step process per side: checks that the script runs "
                             "(JAX's half skipped when jax is not installed)")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.steps[0], args.seed)
        return None
    try:
        import jax
        sides = ["minipg", "jax"]
        print(f"jax {jax.__version__}")
    except ImportError:
        sides = ["minipg"]
        print("jax is not installed: the JAX half is skipped (pip install \"jax[cpu]\")")
    lengths = [2_048] if args.smoke else sorted(args.steps)
    repeats = 1 if args.smoke else args.repeats
    print(f"CartPole-v1 PPO, minipg's default settings on both sides, fresh process each, one "
          f"thread; load average {os.getloadavg()[0]:.1f}")
    print(f"{'steps':>9} {'side':<7} {'wall s':>7} {'CPU s':>7} {'in-process s':>12} "
          f"{'mean return (last 10 updates)':>30}")
    best = {}
    for _ in range(repeats):
        for steps in lengths:
            for side in sides:
                wall, cpu, inside, final = one_process(side, steps, args.seed)
                key = (side, steps)
                best[key] = min(best.get(key, (np.inf,) * 3), (cpu, wall, inside))
                print(f"{steps:>9,} {side:<7} {wall:>7.2f} {cpu:>7.2f} {inside:>12.2f} "
                      f"{final:>30.1f}", flush=True)
    if len(sides) == 2 and len(lengths) == 2:
        (s1, s2) = lengths
        print("\nbest of each, CPU seconds (wall in parentheses):")
        lines = {}
        for side in sides:
            (c1, w1, _), (c2, w2, _) = best[(side, s1)], best[(side, s2)]
            slope = (c2 - c1) / (s2 - s1)
            lines[side] = (c1 - slope * s1, slope)
            print(f"  {side:<7} {s1:,} steps {c1:.2f} s ({w1:.2f}), {s2:,} steps {c2:.2f} s "
                  f"({w2:.2f}): fixed {lines[side][0]:.2f} s + {slope * 1e6:.2f} s per 1M "
                  f"steps")
        (a_m, b_m), (a_j, b_j) = lines["minipg"], lines["jax"]
        ratio = best[("jax", s1)][0] / best[("minipg", s1)][0]
        print(f"  at {s1:,} steps the JAX process costs {ratio:.2f}x minipg's")
        if b_m > b_j:
            print(f"  break-even: {(a_j - a_m) / (b_m - b_j):,.0f} env steps "
                  f"(JAX's fixed cost over minipg's, divided by minipg's extra cost per step)")
        else:
            print("  no break-even: JAX's cost per step is not below minipg's")
    return best


if __name__ == "__main__":
    main()

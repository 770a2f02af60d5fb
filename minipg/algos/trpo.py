"""Trust Region Policy Optimization (Schulman et al. 2015), and the natural policy gradient.

A gradient step bounds how far the PARAMETERS move; what matters is how far the POLICY moves.
TRPO maximises the importance-sampled surrogate on the batch collected by pi_old, subject to a
bound on the mean KL divergence between the old and the new policy on the same states:

    maximise    L(theta)      = mean_i ratio_i A_i,    ratio_i = pi_theta(a_i|s_i) / pi_old(a_i|s_i)
    subject to  KL_bar(theta) = mean_i KL(pi_old(.|s_i) || pi_theta(.|s_i))  <=  max_kl

Around theta_old, with d = theta - theta_old, L is linear and KL_bar quadratic (KL_bar and its
gradient are 0 there, and its Hessian is the Fisher information F):

    L(theta)      ~ L(theta_old) + g^T d,        g = grad L = mean_i A_i score_i
    KL_bar(theta) ~ (1/2) d^T F d,               F = mean_i E_a[score score^T] at s_i

The best step of the linear model inside the ellipsoid (1/2) d^T F d <= max_kl is

    x  = F^-1 g                                  (the natural gradient direction)
    d* = sqrt(2 max_kl / x^T F x) x              (scaled so that (1/2) d*^T F d* = max_kl)

x comes from conjugate gradient, which needs F only through products F v: F is never formed.
F v = (1/B) sum_i J_i^T F_i J_i v, J_i the Jacobian of sample i's distribution parameters with
respect to params (policy.jvp gives J v, policy.backward gives J^T u) and F_i the Fisher of
the distribution itself, in closed form (dist.fisher_vector_product).

Both models are approximations, so a backtracking line search tries d*, backtrack_coef * d*,
backtrack_coef^2 * d*, ... and keeps the first step whose exact KL_bar (closed form, dist.kl)
is <= max_kl and whose exact surrogate improves; if none does, the policy stays where it was.
With line_search=False the update is the natural policy gradient: d* is taken as it is.

The value function is fitted on its own, by value_epochs passes of Adam over the batch: the
trainer's optimizer holds only its parameters (optimized_params), so learning_rate, anneal_lr
and max_grad_norm apply to the critic alone, and vf_coef is not used.
"""
import math
from dataclasses import dataclass

import numpy as np

from minipg.core.optim import clip_and_step
from minipg.core.losses import normalize
from minipg.core.checks import check_bool, check_int, check_real
from minipg.algos.config import ActorCriticConfig
from minipg.core.optim import global_norm
from minipg.core.losses import value_loss
from minipg.core.returns import gae

COLLECTS = "rollout"
"""How the run collects for this algorithm: a (T, N) rollout (minipg/envs/rollout.py)."""
# Episodes run on across rollouts (the collector keeps them going): a segment cut by the
# rollout's end bootstraps from V.


@dataclass
class Config(ActorCriticConfig):
    # Defaults tuned on CartPole-v1 (benchmarks/bench_cartpole.py --algo trpo): a 512-step
    # batch, and a critic fitted well (10 epochs); seeds 0-4 solve it within ~20k env steps.
    num_envs: int = 4
    num_steps: int = 128
    learning_rate: float = 1e-3
    max_kl: float = 0.01
    """delta, the trust region: a step is kept only if the mean KL(pi_old || pi_new) over the
    batch is at most this."""
    cg_iters: int = 10
    """At most this many conjugate-gradient iterations for x = F^-1 g."""
    cg_residual_tol: float = 1e-10
    """Conjugate gradient stops early once the squared residual |g - F x|^2 is below this."""
    cg_damping: float = 0.1
    """lambda in F + lambda I, the matrix conjugate gradient inverts: keeps it positive definite
    (softmax logits have a null direction) and the step short where F is tiny."""
    backtrack_coef: float = 0.8
    """Each line-search trial shrinks the step by this factor."""
    backtrack_iters: int = 10
    """Trials of the line search before it gives up and keeps the old policy."""
    line_search: bool = True
    """False: the natural policy gradient, the step sqrt(2 max_kl / x^T F x) x taken whatever
    its KL and surrogate."""
    value_epochs: int = 10
    """Passes of Adam over the batch that fit the value function, per update."""
    value_minibatches: int = 4
    """Minibatches per value pass; the minibatch size is the batch size divided by this."""

    def validate(self):
        super().validate()
        check_real("max_kl", self.max_kl, 0.0, low_inclusive=False)
        check_int("cg_iters", self.cg_iters, 1)
        check_real("cg_residual_tol", self.cg_residual_tol, 0.0)
        check_real("cg_damping", self.cg_damping, 0.0)
        check_real("backtrack_coef", self.backtrack_coef, 0.0, 1.0, low_inclusive=False,
                   high_inclusive=False)
        check_int("backtrack_iters", self.backtrack_iters, 1)
        check_bool("line_search", self.line_search)
        check_int("value_epochs", self.value_epochs, 1)
        check_int("value_minibatches", self.value_minibatches, 1)


def optimized_params(policy, value_fn):
    """The vector the trainer's optimizer updates: the value function's parameters only. TRPO
    moves the policy itself, by the natural-gradient step and the line search."""
    return value_fn.params


# ------------------------------------------------------------------------------------------
# The Fisher, applied
# ------------------------------------------------------------------------------------------

def fisher_operator(policy, dist, cache, damping=0.0):
    """v -> (F + damping I) v, F the policy's Fisher on the batch of the forward pass
    (dist, cache) = policy.forward(obs):

        F v = (1/B) sum_i J_i^T F_i (J_i v)

    J_i v is policy.jvp (forward mode), F_i the distribution's closed-form Fisher, J_i^T u
    policy.backward. One forward pass serves every product, as long as params stay unchanged.
    """
    damping = check_real("damping", damping, 0.0)
    B = int(np.prod(dist.batch_shape, dtype=int))

    def product(vector):
        directions = policy.jvp(cache, vector)                        # u_i = J_i v
        fisher_directions = dist.fisher_vector_product(directions)    # F_i u_i
        result = policy.backward(cache, fisher_directions)            # sum_i J_i^T F_i u_i
        result *= 1.0 / B
        result += damping * np.asarray(vector, dtype=result.dtype)
        return result

    return product


def fisher_vector_product(policy, obs, vector, damping=0.0):
    """F v + damping * v at the policy's current parameters, on the observations obs (B, obs_dim):

        F v = (1/B) sum_i J_i^T F_i J_i v

    F is the Hessian of the mean KL(pi_old(.|s_i) || pi_theta(.|s_i)) at theta = theta_old, and
    equally the mean Fisher information E_a[score score^T] of the policy's parameters.
    vector and the result are laid out like policy.params.
    """
    dist, cache = policy.forward(obs)
    return fisher_operator(policy, dist, cache, damping)(vector)


def conjugate_gradient(matvec, b, iters, residual_tol=1e-10):
    """x ~ A^-1 b for a symmetric positive (semi-)definite A known only by matvec(v) = A v.

        x_0 = 0,  r_0 = b,  p_0 = b
        alpha_k = r_k.r_k / p_k.A p_k
        x_{k+1} = x_k + alpha_k p_k
        r_{k+1} = r_k - alpha_k A p_k                 the residual b - A x_{k+1}
        p_{k+1} = r_{k+1} + (r_{k+1}.r_{k+1} / r_k.r_k) p_k      A-conjugate to p_0 .. p_k

    Step k minimises the A-norm of the error over span(b, A b, ..., A^k b), so an n x n system
    is solved in at most n steps (in exact arithmetic), and a few steps already go most of the
    way. Stops after iters steps, once r.r < residual_tol, or when p.A p <= 0 (A is not positive
    definite along p). Started from 0 with b in the range of a singular A, the iterates stay in
    that range: the limit is the minimum-norm solution pinv(A) b.
    """
    x = np.zeros_like(b)
    r = b.copy()
    p = b.copy()
    rr = float(r @ r)
    for _ in range(iters):
        if rr < residual_tol:
            break
        Ap = matvec(p)
        curvature = float(p @ Ap)
        if not curvature > 0:
            break
        alpha = rr / curvature
        x += alpha * p
        r -= alpha * Ap
        rr_next = float(r @ r)
        p *= rr_next / rr
        p += r
        rr = rr_next
    return x


# ------------------------------------------------------------------------------------------
# The surrogate and the update
# ------------------------------------------------------------------------------------------

def surrogate(dist, actions, old_log_prob, advantages, ent_coef=0.0):
    """L = mean_i ratio_i A_i + ent_coef * mean_i H_i (to maximise), and dL/d log_prob_i:

        ratio_i = exp(log_prob_i - old_log_prob_i),     dL/d log_prob_i = ratio_i A_i / B

    (d ratio / d log_prob = ratio). At theta_old ratio = 1, and the gradient into params is the
    policy gradient mean_i A_i score_i (plus the entropy bonus's).
    """
    B = len(advantages)
    ratio = np.exp(dist.log_prob(actions) - old_log_prob)
    value = float(np.dot(ratio, advantages)) / B
    if ent_coef:
        value += ent_coef * float(dist.entropy().sum()) / B
    return value, ratio * advantages * (1.0 / B)


def update(rollout, policy, value_fn, optim, config, rng):
    """One TRPO (or natural policy gradient) step of the policy, then value_epochs of Adam on
    the critic; returns statistics for the log (those of policy_step, and the value loss).

    optim holds the value function's parameters only (optimized_params).
    """
    if optim.params.size != value_fn.params.size:
        raise ValueError(f"optim must hold the value function's {value_fn.params.size} "
                         f"parameters only (trpo.optimized_params), got {optim.params.size}")
    # 1. Advantages over the whole (T, N) rollout and the value targets; real transitions only.
    advantages = gae(rollout.rewards, rollout.values, rollout.next_values,
                     rollout.terminated, rollout.truncated, config.gamma, config.lam)
    returns = advantages + rollout.values
    mask = rollout.mask
    b_obs, b_actions = rollout.obs[mask], rollout.actions[mask]
    b_advantages, b_returns = advantages[mask], returns[mask]
    if config.norm_adv:
        b_advantages = normalize(b_advantages)

    # 2. The policy: one step inside the trust region.
    stats = policy_step(policy, b_obs, b_actions, b_advantages, config)
    # 3. The critic, on its own: regression on the lambda-returns of the old critic.
    stats["value_loss"] = fit_value_function(value_fn, optim, b_obs, b_returns, config, rng)
    return stats


def policy_step(policy, obs, actions, advantages, config):
    """Move the policy by the natural gradient, as far as the trust region allows; returns

        kl                    mean KL(pi_old || pi_new) over the batch, of the step kept (0 if none)
        backtrack_step        the fraction backtrack_coef^k of the full step d* that was kept
                              (1: the full step; 0: the line search kept the old policy)
        expected_improvement  g^T d for the step d kept: the surrogate's linear prediction
        actual_improvement    L(theta_old + d) - L(theta_old), measured on the batch
        entropy, grad_norm    mean entropy of pi_old, |g|
    """
    B = len(obs)
    # The surrogate's gradient at theta_old, where ratio = 1: g = mean_i A_i score_i.
    dist_old, cache = policy.forward(obs)
    old_log_prob = dist_old.log_prob(actions)
    surrogate_old, grad_log_prob = surrogate(dist_old, actions, old_log_prob, advantages,
                                             config.ent_coef)
    g = policy.backward(cache, dist_old.param_grads(actions, grad_log_prob, config.ent_coef / B))
    try:
        grad_norm = global_norm(g)
    except ValueError as error:
        raise FloatingPointError(f"non-finite policy gradient: {error}") from None
    stats = {"entropy": float(dist_old.entropy().sum()) / B, "grad_norm": grad_norm,
             "kl": 0.0, "backtrack_step": 0.0, "expected_improvement": 0.0,
             "actual_improvement": 0.0}

    # The natural gradient direction x = (F + damping I)^-1 g, and the step to the edge of the
    # trust region, (1/2) d*^T F d* = max_kl.
    fisher = fisher_operator(policy, dist_old, cache, config.cg_damping)
    x = conjugate_gradient(fisher, g, config.cg_iters, config.cg_residual_tol)
    xFx = float(x @ fisher(x))
    if not (xFx > 0 and math.isfinite(xFx)):        # g = 0: there is nothing to climb
        return stats
    full_step = math.sqrt(2.0 * config.max_kl / xFx) * x
    expected_full = float(g @ full_step)

    # Backtracking line search on the exact KL and surrogate; the natural policy gradient makes
    # one trial and keeps it.
    theta_old = policy.params.copy()
    for k in range(config.backtrack_iters if config.line_search else 1):
        fraction = config.backtrack_coef ** k
        policy.params[...] = theta_old + fraction * full_step
        dist = policy.distribution(obs)
        kl = float(dist_old.kl(dist).sum()) / B
        improvement = surrogate(dist, actions, old_log_prob, advantages,
                                config.ent_coef)[0] - surrogate_old
        if not config.line_search or (kl <= config.max_kl and improvement > 0):
            stats.update(kl=kl, backtrack_step=fraction,
                         expected_improvement=fraction * expected_full,
                         actual_improvement=improvement)
            return stats
    policy.params[...] = theta_old                 # no trial kept: the old policy stays
    return stats


def fit_value_function(value_fn, optim, obs, returns, config, rng):
    """value_epochs passes of Adam over (obs, returns) in value_minibatches shuffled
    minibatches, on the loss 0.5 * mean (V(s) - return)^2; returns the mean loss."""
    B = len(obs)
    minibatch_size = max(1, math.ceil(B / config.value_minibatches))
    losses = []
    for _ in range(config.value_epochs):
        order = rng.permutation(B)
        for start in range(0, B, minibatch_size):
            mb = order[start:start + minibatch_size]
            values, cache = value_fn.forward(obs[mb])
            loss, grad_values = value_loss(values, returns[mb])
            clip_and_step(optim, value_fn.backward(cache, grad_values), config.max_grad_norm)
            losses.append(loss)
    return float(np.mean(losses))

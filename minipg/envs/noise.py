"""Exploration noise that is correlated in time, for Gaussian policies (`noise_correlation`).

With independent noise, a_t = mu(s_t) + sigma * xi_t, the pushes of successive steps cancel:
on MountainCarContinuous a random policy never climbs the hill, never sees the +100 of the goal,
and learns that doing nothing is cheapest. Coloured noise keeps pushing one way for a while.
Each env runs a first-order autoregressive (AR(1)) process per action dimension:

    eps_0 ~ N(0, I),    eps_t = rho * eps_{t-1} + sqrt(1 - rho^2) * xi_t,    xi_t ~ N(0, I) iid
    a_t   = mu(s_t) + sigma * eps_t

Stationary: if eps_{t-1} ~ N(0, I), then eps_t is Gaussian with variance rho^2 + (1 - rho^2) = 1,
so at EVERY step a_t | s_t ~ N(mu(s_t), sigma^2) -- exactly the policy's density -- while
Corr(eps_t, eps_{t+k}) = rho^k: pushes last about 1 / (1 - rho) steps. rho = 0 is the usual
independent noise. The process starts afresh (eps ~ N(0, I)) at every episode start.

What the gradient uses, and the bias. The log-probability stored and differentiated is that
marginal density, log pi(a_t|s_t) = log N(a_t; mu(s_t), sigma^2) (DiagGaussian: its score is
written out and finite-difference tested in minipg/core/distributions.py), so nothing in the losses
changes. But the actions of one episode are no longer independent given the states: the
behaviour policy is beta(a_t | s_t, eps_{t-1}) = N(mu(s_t) + sigma rho eps_{t-1},
sigma^2 (1 - rho^2)), whose trajectory density is not prod_t pi(a_t|s_t). The score-function
estimator sum_t grad log pi(a_t|s_t) A_t is then an estimate of the gradient of J for a policy
that is not exactly the one that acted: biased, with a bias that vanishes as rho -> 0 (and,
for the mean, as sigma -> 0, where both act alike). gSDE (state-dependent exploration, rl-zoo's
choice for this env) makes the same trade: it too differentiates the per-step marginal while
its noise is shared across steps. Evaluation (policy.act) draws independent noise: the same
marginal policy.
"""
import numpy as np

from minipg.core.checks import check_real


class ColouredNoise:
    """The AR(1) noise of num_envs envs, each with action_dim independent dimensions."""

    def __init__(self, num_envs, action_dim, rho):
        self.rho = check_real("noise_correlation", rho, 0.0, 1.0, high_inclusive=False)
        self.eps = None                       # (N, D) once started; None: start afresh
        self.shape = (int(num_envs), int(action_dim))

    def sample(self, dist, rng, restart=None):
        """Actions mu + sigma * eps_t for the DiagGaussian dist (N, D), advancing eps by one
        step; restart (N,) bool: the envs whose process starts afresh at this step."""
        xi = rng.standard_normal(self.shape)
        if self.eps is None:
            eps = xi
        else:
            eps = self.rho * self.eps + np.sqrt(1.0 - self.rho ** 2) * xi
            if restart is not None:
                eps[restart] = xi[restart]
        self.eps = eps
        return dist.mean + dist.std * eps.astype(dist.mean.dtype)

    def restart(self):
        """Every env starts afresh at its next step (after the envs are reset)."""
        self.eps = None

    def state(self):
        return {"noise_eps": None if self.eps is None else self.eps.copy()}

    def load_state(self, state):
        eps = state.get("noise_eps")
        if eps is not None and np.shape(eps) != self.shape:
            raise ValueError(f"noise_eps has shape {np.shape(eps)}, expected {self.shape}")
        self.eps = None if eps is None else np.array(eps, dtype=np.float64)

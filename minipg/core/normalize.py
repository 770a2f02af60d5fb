"""Running statistics for observation normalisation and reward scaling.

Two common fixes for environments whose numbers are far from unit scale (MuJoCo's velocities,
LunarLander's shaping rewards):

    observations   o' = clip((o - mean) / sqrt(var + eps), -clip_obs, clip_obs)
                   mean and var over every observation seen in training, per dimension
    rewards        r' = clip(r / sqrt(var(R) + eps), -clip_reward, clip_reward)
                   R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t, the discounted return so far

The reward is divided by the spread of the return, not of the reward: the critic's targets and
the advantages are returns, and this keeps them near unit scale whatever the reward's units. It
is only divided, never centred: subtracting a mean would change which episodes are better to
end early. The statistics are updated during training and frozen at evaluation; the
observation statistics belong to the policy (it was trained on normalised inputs) and travel
with it in the checkpoint.

In training the observation statistics are updated once per rollout, from all of its steps
in one batch (what one call per step would cost -- two NumPy reductions and a dozen small
operations per env step -- is most of a cheap env's own step). What that changes: the
observations of a rollout are all normalised with the statistics as they stood at its start
(frozen for the rollout; the first rollout of a run is normalised with mean 0 and variance 1,
i.e. only clipped). The reward scaler runs per step (scale): each reward is divided by the std
of the returns seen up to its step.

The running mean and variance merge each new batch into the totals exactly (Chan, Golub and
LeVeque's pairwise update), so after any sequence of batches they equal the two-pass mean and
(population, ddof = 0) variance of everything seen:

    n_ab    = n_a + n_b
    delta   = mean_b - mean_a
    mean_ab = mean_a + delta * n_b / n_ab
    M2_ab   = M2_a + M2_b + delta^2 * n_a * n_b / n_ab          (M2 = n * var)
"""
import numpy as np

from minipg.core.checks import check_real
from minipg.core.returns import update_kernels

__all__ = ["RunningMeanStd", "normalize_obs", "obs_normalizer", "RewardScaler"]


class RunningMeanStd:
    """The mean and variance, per entry of `shape`, of every sample passed to update().

    Before any update the mean is 0 and the variance 1 (normalisation does nothing).
    """

    def __init__(self, shape=()):
        self.shape = tuple(int(n) for n in shape)
        self.count = 0
        self.mean = np.zeros(self.shape)
        self.var = np.ones(self.shape)

    def update(self, x):
        """Merge the samples x (..., *shape) (any leading dims) into the statistics."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[x.ndim - len(self.shape):] != self.shape:
            raise ValueError(f"x must have shape (..., {', '.join(map(str, self.shape))}), "
                             f"got shape {x.shape}")
        batch = x.reshape((-1,) + self.shape)
        n_b = len(batch)
        if n_b == 0:
            return
        mean_b, var_b = batch.mean(axis=0), batch.var(axis=0)
        n_a, n_ab = self.count, self.count + n_b
        delta = mean_b - self.mean
        m2 = (self.var * n_a if n_a else 0.0) + var_b * n_b + delta * delta * n_a * n_b / n_ab
        self.mean = self.mean + delta * n_b / n_ab
        self.var = m2 / n_ab
        self.count = n_ab

    def state(self, prefix):
        """The statistics as arrays (for a checkpoint), under names that start with prefix."""
        return {prefix + "count": np.array(self.count), prefix + "mean": self.mean.copy(),
                prefix + "var": self.var.copy()}

    @classmethod
    def from_state(cls, state, prefix):
        stats = cls(np.asarray(state[prefix + "mean"]).shape)
        stats.count = int(state[prefix + "count"])
        stats.mean = np.asarray(state[prefix + "mean"], dtype=np.float64).copy()
        stats.var = np.asarray(state[prefix + "var"], dtype=np.float64).copy()
        return stats


def obs_normalizer(stats, dtype, eps=1e-8):
    """(mean, scale) in dtype, scale = 1 / sqrt(var + eps): normalize_obs's two constants, for
    a caller that normalises many batches with the same frozen statistics (the collector)."""
    return stats.mean.astype(dtype), (1.0 / np.sqrt(stats.var + eps)).astype(dtype)


def normalize_obs(obs, stats, clip_obs=10.0, eps=1e-8):
    """clip((obs - mean) / sqrt(var + eps), -clip_obs, clip_obs), in the dtype of obs if float."""
    obs = np.asarray(obs)
    dtype = obs.dtype if obs.dtype in (np.float32, np.float64) else np.float64
    mean, scale = obs_normalizer(stats, dtype, eps)
    normalized = (obs - mean) * scale
    return np.clip(normalized, -clip_obs, clip_obs, out=normalized)


class RewardScaler:
    """r / sqrt(var(R) + eps), clipped, with R the running discounted return of each env.

    scale(rewards, dones) takes one step of N environments: it updates R_t = gamma R_{t-1} + r_t,
    merges R_t into the statistics, then divides; done (terminated or truncated) starts R again
    at the next step. The env's own rewards are untouched: logs and evaluations use them.
    """

    def __init__(self, num_envs, gamma, clip_reward=10.0, eps=1e-8):
        self.gamma = check_real("gamma", gamma, 0.0, 1.0)
        self.clip_reward = check_real("clip_reward", clip_reward, 0.0, low_inclusive=False)
        self.eps = eps
        self.returns = np.zeros(num_envs)
        self.stats = RunningMeanStd()

    def scale(self, rewards, dones, real=None):
        """The scaled rewards of one step (N,). real (N,) bool: False at a reset step (not a
        transition), whose return enters no statistic.

        Called once per env step while collecting: the compiled kernel
        (update_kernels.reward_scale_step) does in one call what scale_reference does in a
        dozen NumPy calls, with the same numbers bit for bit; MINIPG_PURE_NUMPY=1 runs the
        reference."""
        stats = self.stats
        computed = None if update_kernels is None else update_kernels.reward_scale_step(
            self.returns, rewards, dones, real, self.gamma, stats.count, float(stats.mean),
            float(stats.var), self.eps, self.clip_reward)
        if computed is None:              # no kernels, or arrays it does not take
            return self.scale_reference(rewards, dones, real)
        scaled, count, mean, var = computed
        if count != stats.count:          # as RunningMeanStd.update leaves them: scalars
            stats.count, stats.mean, stats.var = count, np.float64(mean), np.float64(var)
        return scaled

    def scale_reference(self, rewards, dones, real=None):
        """scale() in NumPy: the readable reference the kernel is tested against."""
        rewards = np.asarray(rewards, dtype=np.float64)
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns if real is None else self.returns[np.asarray(real, bool)])
        self.returns[np.asarray(dones, bool)] = 0.0
        scaled = rewards / np.sqrt(self.stats.var + self.eps)
        return np.clip(scaled, -self.clip_reward, self.clip_reward)

    def state(self, prefix):
        """The running returns and their statistics as arrays, under names that start with
        prefix (for a checkpoint: a resume continues them exactly)."""
        return {prefix + "returns": self.returns.copy(), **self.stats.state(prefix + "stats/")}

    def load_state(self, state, prefix):
        returns = np.asarray(state[prefix + "returns"], dtype=np.float64)
        if returns.shape != self.returns.shape:
            raise ValueError(f"{prefix}returns has shape {returns.shape}, expected "
                             f"{self.returns.shape}")
        self.returns = returns.copy()
        self.stats = RunningMeanStd.from_state(state, prefix + "stats/")

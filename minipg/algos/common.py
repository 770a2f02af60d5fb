"""The pieces all three algorithms share: the chain rule from a loss on log_prob to the policy,
advantage normalisation, the value regression, and one optimizer step for both networks.

Every policy-gradient loss here has the form

    L = sum_i w_i * log pi(a_i|s_i)  +  c * sum_i H(pi(.|s_i))  (+ terms without the policy)

where the per-sample weights w_i = dL/d log_prob_i carry the estimator (-A_i / B for a mean over
B steps) and c = dL/dH_i the entropy bonus (-ent_coef / B). The gradient with respect to the
distribution parameters is then the score weighted by w plus the entropy gradient weighted by c;
`policy_backward` forms it and hands it to the network.
"""
import numpy as np

from minipg.distributions import Categorical
from minipg.optim import clip_grad_norm
from minipg.policies import value_loss


def policy_backward(policy, dist, actions, grad_log_prob, grad_entropy=0.0):
    """Backpropagate L = sum_i grad_log_prob_i * log pi(a_i|s_i) + grad_entropy * sum_i H_i.

    dist must be the distribution of the policy's LAST forward pass (its cache is used).
        Categorical:  dL/dz_i       = grad_log_prob_i * (onehot(a_i) - pi_i) + grad_entropy * dH/dz_i
        Gaussian:     dL/dmu_i      = grad_log_prob_i * (a_i - mu_i) / sigma^2
                      dL/dlog_std   = sum_i grad_log_prob_i * (((a_i - mu_i) / sigma)^2 - 1)
                                      + grad_entropy * B * dH/dlog_std
    """
    if isinstance(dist, Categorical):
        grad_logits = grad_log_prob[:, None] * dist.score(actions)
        if grad_entropy:
            grad_logits += grad_entropy * dist.entropy_grad()
        policy.backward(grad_logits)
    else:
        score_mean, score_log_std = dist.score(actions)
        grad_mean = grad_log_prob[:, None] * score_mean
        # log_std is shared by every sample: its gradient is the sum of the per-sample ones.
        grad_log_std = grad_log_prob @ score_log_std
        grad_log_std += grad_entropy * len(grad_log_prob) * dist.entropy_grad()
        policy.backward(grad_mean, grad_log_std)


def score_function_loss(log_prob, psi, denominator):
    """The vanilla policy-gradient surrogate and its gradient with respect to log_prob:

        L = -(1 / denominator) * sum_i psi_i * log pi(a_i|s_i),    dL/d log_prob_i = -psi_i / denominator

    Its gradient is minus the estimate (1/denominator) sum_i psi_i * score_i of grad J.
    denominator = B averages per step; the number of episodes averages per trajectory.
    """
    loss = -float(np.sum(psi * log_prob)) / denominator
    return loss, -psi / denominator


def normalize(advantages, eps=1e-8):
    """(A - mean(A)) / (std(A) + eps). A batch of one gives 0, not NaN (std is 0, eps is not)."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def value_backward(value_fn, obs, targets, vf_coef):
    """Regress V on its targets: L_V = vf_coef * 0.5 * mean_i (V(s_i) - target_i)^2, per step.

    Returns the unscaled 0.5 * mean square (minipg.policies.value_loss) for the log.
    """
    loss, grad_values = value_loss(value_fn.predict(obs), targets)
    value_fn.backward(vf_coef * grad_values)
    return float(loss)


def first_non_finite(**arrays):
    """"name[index]" of the first array (in the order given) holding a NaN or inf, else None."""
    for name, array in arrays.items():
        array = np.asarray(array, dtype=np.float64)
        if not np.isfinite(array).all():
            return f"{name}[{tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])}]"
    return None


def optimizer_step(policy, value_fn, policy_optim, value_optim, max_grad_norm):
    """Clip the global norm over BOTH networks' gradients, then step each optimizer.

    Returns the gradient norm before clipping (a useful health signal in the logs). A NaN or
    inf gradient, or a step that leaves a parameter non-finite, raises FloatingPointError
    naming the network: training stops where the trouble first appeared.
    """
    networks = {"policy": policy} if value_fn is None else {"policy": policy, "value": value_fn}
    raise_if_non_finite(**{f"{name} gradient": net.grads for name, net in networks.items()})
    grads = [net.grads for net in networks.values()]
    if max_grad_norm > 0:
        norm = clip_grad_norm(grads, max_grad_norm)
    else:
        norm = float(np.sqrt(sum(float(g @ g) for g in grads)))
    policy_optim.step(policy.grads)
    if value_fn is not None:
        value_optim.step(value_fn.grads)
    # In the dtype the network computes in: a float64 weight of 1e300 is finite, its float32
    # copy is not. (copy=False: no copy for float64 networks.)
    raise_if_non_finite(**{f"{name} parameters": net.params.astype(net.net.dtype, copy=False)
                           for name, net in networks.items()})
    return norm


def raise_if_non_finite(**arrays):
    """FloatingPointError naming the first array (in the order given) holding a NaN or inf."""
    where = first_non_finite(**arrays)
    if where is not None:
        raise FloatingPointError(f"non-finite value first seen in {where}")

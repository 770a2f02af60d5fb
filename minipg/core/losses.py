"""The losses the algorithms share: the score-function surrogate, advantage normalisation and the
value regression, each with its gradient.

Every loss here has the form

    L = sum_i w_i * log pi(a_i|s_i)  +  c * sum_i H(pi(.|s_i))  (+ terms without the policy)

where the per-sample weights w_i = dL/d log_prob_i carry the estimator (-A_i / B for a mean over
B steps) and c = dL/dH_i the entropy bonus (-ent_coef / B). An update then reads as the chain
rule, one line per link:

    dL/dlog pi         the algorithm's loss            (score_function_loss, clipped_surrogate)
    dL/d(dist params)  dist.param_grads(actions, w, c)
    dL/dparams         policy.backward(cache, dist_grads), value_fn.backward(cache, dL/dV)
    step               clip_and_step(optim, grad, max_grad_norm)      (minipg/core/optim.py)
"""
import numpy as np



def score_function_loss(log_prob, psi, denominator):
    """The vanilla policy-gradient surrogate and its gradient with respect to log_prob:

        L = -(1 / denominator) * sum_i psi_i * log pi(a_i|s_i)
        dL/d log_prob_i = -psi_i / denominator

    Its gradient is minus the estimate (1/denominator) sum_i psi_i * score_i of grad J.
    denominator = B averages per step; the number of episodes averages per trajectory.
    """
    loss = -float(np.dot(psi, log_prob)) / denominator
    return loss, psi * (-1.0 / denominator)


def normalize(advantages, eps=1e-8):
    """(A - mean(A)) / (std(A) + eps). A batch of one gives 0, not NaN (std is 0, eps is not)."""
    centred = advantages - advantages.sum() / advantages.size
    std = np.sqrt(np.dot(centred, centred) / centred.size)
    return centred * (1.0 / (std + eps))


def value_loss(values, targets):
    """Squared-error regression of V onto its targets, and its gradient wrt the values:

        loss = 0.5 * mean_i (V_i - target_i)^2,    dloss/dV_i = (V_i - target_i) / n

    The mean is over every sample i in the batch (every time step of every environment), so a
    batch of any size gives a loss on the same scale. Returns (loss, grad), grad shaped like
    values.
    """
    values, targets = np.asarray(values), np.asarray(targets)
    if values.shape != targets.shape:
        raise ValueError(f"values and targets must have the same shape, got {values.shape} and "
                         f"{targets.shape}")
    if values.size == 0:
        raise ValueError("values is an empty batch; the mean squared error is undefined")
    error = values - targets
    return 0.5 * float(np.dot(error.ravel(), error.ravel())) / error.size, error / error.size

"""What the policy-gradient algorithms share: the score-function loss, advantage normalisation,
and the last link of the chain, one clipped optimizer step.

Every loss here has the form

    L = sum_i w_i * log pi(a_i|s_i)  +  c * sum_i H(pi(.|s_i))  (+ terms without the policy)

where the per-sample weights w_i = dL/d log_prob_i carry the estimator (-A_i / B for a mean over
B steps) and c = dL/dH_i the entropy bonus (-ent_coef / B). An update then reads as the chain
rule, one line per link:

    dL/dlog pi         the algorithm's loss            (score_function_loss, clipped_surrogate)
    dL/d(dist params)  dist.param_grads(actions, w, c)
    dL/dparams         policy.backward(cache, dist_grads), value_fn.backward(cache, dL/dV)
    step               clip_and_step(optim, grad, max_grad_norm)
"""
import numpy as np

from minipg.optim import clip_grad_norm, global_norm


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


def clip_and_step(optim, grad, max_grad_norm):
    """Clip the global norm of grad (all networks the optimizer holds) to max_grad_norm (0: no
    clipping), then take one optimizer step; returns the norm before clipping for the log.

    A NaN or inf in grad raises FloatingPointError before the parameters are touched, and so
    does a step that would leave a parameter non-finite (a learning rate far too large).
    """
    try:
        norm = clip_grad_norm(grad, max_grad_norm) if max_grad_norm > 0 else global_norm(grad)
    except ValueError as error:
        raise FloatingPointError(f"non-finite gradient: {error}") from None
    optim.step(grad)
    try:
        global_norm(optim.params)
    except ValueError:
        index = int(np.argmax(~np.isfinite(optim.params)))
        raise FloatingPointError(f"parameters non-finite after an optimizer step (first at "
                                 f"index {index}): the step was far too large") from None
    return norm

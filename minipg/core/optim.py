"""Optimizers on one flat parameter vector, global-norm gradient clipping, learning-rate schedules.

An optimizer holds the flat `params` array it was given (float32 or float64; its state has the
same dtype) and updates it IN PLACE on each step(grad): the networks' layers are views into that
array, so rebinding it would cut them off. step takes the gradient it applies, as an argument:
the gradient is a value the algorithm computed (backward returns it), not a buffer the
optimizer reads behind the reader's back. The learning rate is an attribute checked when it is
set (a property: a negative or NaN rate raises ValueError at the assignment, not at every step);
a trainer sets it from a schedule before each update:

    optimizer.learning_rate = schedule(fraction_done)
    optimizer.step(grad)

What step() checks costs nothing next to the step itself: the gradient's shape and dtype, and
its finiteness through its norm (one dot product). Whether the parameters are still finite
after the steps of an update is checked once per iteration by the training loops
(params_stay_finite around the update: minipg/run/loop.py, minipg/lm/), not after every step.

`state()` gives copies of everything step() carries from one call to the next (Adam's moments
and step count, SGD's velocity) as numpy arrays, and `load_state(state)` puts them back, so a
checkpoint can resume training exactly where it stopped.
"""
import contextlib

import numpy as np

from minipg.core.checks import check_real
from minipg.core.returns import update_kernels

__all__ = ["Adam", "SGD", "clip_grad_norm", "global_norm", "clip_and_step",
           "check_finite_params", "params_stay_finite", "constant_schedule", "linear_schedule"]


def _read_state(state, arrays, scalars):
    """state[name] for each name, checked: arrays shaped like the optimizer's own, scalars 0-d.

    arrays is {name: the optimizer's array}; scalars is {name: python type}. ValueError names
    the first entry that is missing or has the wrong shape.
    """
    if not hasattr(state, "keys"):
        raise TypeError(f"state must be a dict of numpy arrays (from state()), got "
                        f"{type(state).__name__}")
    missing = [name for name in [*arrays, *scalars] if name not in state]
    if missing:
        raise ValueError(f"state has no entry {missing[0]!r}; expected "
                         f"{sorted([*arrays, *scalars])}")
    values = {}
    for name, own in arrays.items():
        value = np.asarray(state[name])
        if value.shape != own.shape:
            raise ValueError(f"state[{name!r}] has shape {value.shape}, but the optimizer's "
                             f"parameters have shape {own.shape}")
        if value.dtype.kind not in "fiu" or not np.isfinite(value).all():
            raise ValueError(f"state[{name!r}] must hold finite real numbers")
        values[name] = value
    for name, kind in scalars.items():
        value = np.asarray(state[name])
        if value.shape != ():
            raise ValueError(f"state[{name!r}] must be a single number, got shape {value.shape}")
        values[name] = kind(value)
    return values


def _check_params(params):
    if not isinstance(params, np.ndarray) or params.dtype.kind != "f" or params.ndim != 1:
        raise TypeError("params must be a flat (1-d) float numpy array, updated in place")
    if not params.flags.writeable:
        raise ValueError("params must be writeable: the optimizer updates it in place")
    return params


def _check_grad(grad, params):
    grad = np.asarray(grad)
    if grad.shape != params.shape:
        raise ValueError(f"grad must have the shape of params {params.shape}, got {grad.shape}")
    if grad.dtype.kind != "f":
        raise TypeError(f"grad must be a float array, got dtype {grad.dtype}")
    global_norm(grad)          # raises on a NaN or inf: one dot product, no boolean array
    return grad


def global_norm(grad):
    """sqrt(sum of g^2 over every entry), raising ValueError if it is NaN or inf (a NaN or inf
    entry, or entries so large that their squares overflow)."""
    flat = grad.ravel()
    norm = float(np.sqrt(np.dot(flat, flat)))
    if not np.isfinite(norm):
        bad = ~np.isfinite(flat)
        where = (f"a non-finite value (NaN or inf) at index {int(np.argmax(bad))}" if bad.any()
                 else "values whose squares overflow")
        raise ValueError(f"grad contains {where}: the loss or its gradient blew up before "
                         f"this step")
    return norm


class _LearningRate:
    """The learning_rate property of both optimizers: a float >= 0, checked when it is set."""

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = check_real("learning_rate", value, 0.0)


class Adam(_LearningRate):
    """Adam (Kingma & Ba, 2015), bias correction written out. With g = grad at step t = 1, 2, ...:

        m_t     = beta1 * m_{t-1} + (1 - beta1) * g          first moment, m_0 = 0
        v_t     = beta2 * v_{t-1} + (1 - beta2) * g^2        second moment, v_0 = 0
        m_hat   = m_t / (1 - beta1^t)                        undo the bias toward m_0 = 0
        v_hat   = v_t / (1 - beta2^t)
        params -= learning_rate * m_hat / (sqrt(v_hat) + eps)

    The last line is computed as the paper suggests, with both corrections folded into scalars
    (the same number, fewer passes over the vector):

        params -= (learning_rate * sqrt(1 - beta2^t) / (1 - beta1^t))
                  * m_t / (sqrt(v_t) + eps * sqrt(1 - beta2^t))
    """

    def __init__(self, params, learning_rate=3e-4, betas=(0.9, 0.999), eps=1e-8):
        self.params = _check_params(params)
        self.learning_rate = learning_rate          # checked by the setter
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = check_real("betas[0]", betas[0], 0.0, 1.0, high_inclusive=False)
        self.beta2 = check_real("betas[1]", betas[1], 0.0, 1.0, high_inclusive=False)
        self.eps = check_real("eps", eps, 0.0, low_inclusive=False)
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.t = 0
        self._scratch = np.empty_like(params)   # the step allocates nothing per call

    def step(self, grad, grad_checked=False):
        """One Adam update of params, in place, from the gradient of the loss.

        grad_checked=True skips the scan for NaN and inf (the caller has just computed the
        gradient's norm, which finds them: clip_and_step)."""
        g = np.asarray(grad) if grad_checked else _check_grad(grad, self.params)
        if (update_kernels is not None and g.dtype == self.params.dtype
                and g.flags.c_contiguous and g.shape == self.params.shape):
            self.t += 1
            sqrt_bias_correction2 = np.sqrt(1.0 - self.beta2 ** self.t)
            # the scalars as step_reference's NumPy operations see them (see the kernel)
            update_kernels.adam_step(
                self.params, g, self.m, self.v, 1.0 - self.beta1, 1.0 - self.beta2,
                self.eps * sqrt_bias_correction2,
                self._learning_rate * sqrt_bias_correction2 / (1.0 - self.beta1 ** self.t))
            return
        self.step_reference(g)

    def step_reference(self, g):
        """step() in NumPy: the readable reference the compiled kernel is held to (bit for bit)
        and what runs with MINIPG_PURE_NUMPY=1. g: a checked gradient."""
        learning_rate = self._learning_rate         # checked when it was set
        self.t += 1
        m, v, s = self.m, self.v, self._scratch
        np.subtract(g, m, out=s)                  # m_t = m + (1 - beta1) (g - m)
        s *= 1.0 - self.beta1
        m += s
        np.multiply(g, g, out=s)                  # v_t = v + (1 - beta2) (g^2 - v)
        s -= v
        s *= 1.0 - self.beta2
        v += s
        bias_correction1 = 1.0 - self.beta1 ** self.t
        sqrt_bias_correction2 = np.sqrt(1.0 - self.beta2 ** self.t)
        np.sqrt(v, out=s)
        s += self.eps * sqrt_bias_correction2
        np.divide(m, s, out=s)
        s *= learning_rate * sqrt_bias_correction2 / bias_correction1
        self.params -= s

    def state(self):
        """Copies of m, v, the step count t and the learning rate: {name: numpy array}."""
        return {"m": self.m.copy(), "v": self.v.copy(), "t": np.array(self.t, np.int64),
                "learning_rate": np.array(self.learning_rate, np.float64)}

    def load_state(self, state):
        """Continue from state(): m and v are copied in place, t and learning_rate set."""
        values = _read_state(state, {"m": self.m, "v": self.v}, {"t": int, "learning_rate": float})
        if values["t"] < 0:
            raise ValueError(f"state['t'] must be >= 0, got {values['t']}")
        learning_rate = check_real("state['learning_rate']", values["learning_rate"], 0.0)
        self.m[...] = values["m"]
        self.v[...] = values["v"]
        self.t, self._learning_rate = values["t"], learning_rate


class SGD(_LearningRate):
    """Stochastic gradient descent with optional (heavy-ball) momentum:

        velocity = momentum * velocity + g,     params -= learning_rate * velocity

    momentum = 0 is plain gradient descent, params -= learning_rate * g.
    """

    def __init__(self, params, learning_rate, momentum=0.0):
        self.params = _check_params(params)
        self.learning_rate = learning_rate          # checked by the setter
        self.momentum = check_real("momentum", momentum, 0.0, 1.0, high_inclusive=False)
        self.velocity = np.zeros_like(params)

    def step(self, grad, grad_checked=False):
        """One SGD update of params, in place (grad_checked: as Adam.step)."""
        g = np.asarray(grad) if grad_checked else _check_grad(grad, self.params)
        self.velocity *= self.momentum
        self.velocity += g
        self.params -= self._learning_rate * self.velocity

    def state(self):
        """Copies of the velocity and the learning rate: {name: numpy array}."""
        return {"velocity": self.velocity.copy(),
                "learning_rate": np.array(self.learning_rate, np.float64)}

    def load_state(self, state):
        """Continue from state(): the velocity is copied in place, learning_rate set."""
        values = _read_state(state, {"velocity": self.velocity}, {"learning_rate": float})
        learning_rate = check_real("state['learning_rate']", values["learning_rate"], 0.0)
        self.velocity[...] = values["velocity"]
        self._learning_rate = learning_rate


def clip_grad_norm(grad, max_norm):
    """Scale a flat gradient in place so that its L2 norm is at most max_norm.

        norm = sqrt(sum over every entry of g^2)
        if norm > max_norm:  g *= max_norm / norm      (the direction is kept, only the length)

    With the parameters of several networks in one vector, this is the global norm over all of
    them. Returns the norm before clipping, worth logging: a norm that keeps hitting max_norm
    means the step size is being set by the clip, not by the learning rate. A NaN or inf
    anywhere in grad raises ValueError.
    """
    max_norm = check_real("max_norm", max_norm, 0.0, low_inclusive=False)
    if not isinstance(grad, np.ndarray) or grad.dtype.kind != "f":
        raise TypeError("grad must be a float numpy array (it is scaled in place)")
    norm = global_norm(grad)
    if norm > max_norm:
        grad *= max_norm / norm
    return norm


def clip_and_step(optim, grad, max_grad_norm):
    """Clip the global norm of grad (all networks the optimizer holds) to max_grad_norm (0: no
    clipping), then take one optimizer step; returns the norm before clipping for the log.

    A NaN or inf in grad raises FloatingPointError before the parameters are touched (free: the
    norm is computed anyway). The parameters the step leaves are not scanned here: a training
    loop checks them once per iteration, after the update (check_finite_params).
    """
    try:
        norm = clip_grad_norm(grad, max_grad_norm) if max_grad_norm > 0 else global_norm(grad)
    except ValueError as error:
        raise FloatingPointError(f"non-finite gradient: {error}") from None
    if isinstance(optim, (Adam, SGD)):        # the norm above has scanned grad already
        optim.step(grad, grad_checked=True)
    else:                                     # any object with step(grad)
        optim.step(grad)
    return norm


def check_finite_params(**params):
    """FloatingPointError if a parameter vector (by name, in the order given) holds a NaN or
    inf, or values so large that their squares overflow: what an optimizer step far too large
    (a learning rate far too high) leaves. One dot product per vector (global_norm), cheap
    enough for once per iteration: training loops call it right after each update.
    """
    for name, vector in params.items():
        try:
            global_norm(vector)
        except ValueError:
            bad = ~np.isfinite(vector)
            where = (f"first at index {int(np.argmax(bad))}" if bad.any()
                     else "values whose squares overflow")
            raise FloatingPointError(f"parameters non-finite after an optimizer step ({name}, "
                                     f"{where}): the step was far too large") from None


@contextlib.contextmanager
def params_stay_finite(**params):
    """`with params_stay_finite(policy=policy.params): update(...)`: check_finite_params after
    the block. A step far too large in the middle of an update with several steps makes the
    next forward or gradient fail first (a NaN logit, a NaN gradient): when the block raises
    ValueError or FloatingPointError and the parameters are no longer finite, the parameters'
    FloatingPointError is raised instead, the cause rather than its consequence."""
    try:
        yield
    except (ValueError, FloatingPointError):
        check_finite_params(**params)
        raise
    check_finite_params(**params)


def constant_schedule(value):
    """f(fraction_done) = value: a fixed learning rate."""
    value = check_real("value", value, 0.0)
    return lambda fraction_done: value


def linear_schedule(initial, final=0.0):
    """f(fraction_done) = initial + (final - initial) * fraction_done, fraction clipped to [0, 1].

    fraction_done = steps done / total steps; the clip tolerates a last iteration that
    overshoots the total.
    """
    initial = check_real("initial", initial, 0.0)
    final = check_real("final", final, 0.0)

    def schedule(fraction_done):
        fraction_done = min(max(float(fraction_done), 0.0), 1.0)
        return initial + (final - initial) * fraction_done

    return schedule

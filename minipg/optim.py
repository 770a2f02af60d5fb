"""Optimizers on one flat parameter vector, global-norm gradient clipping, learning-rate schedules.

An optimizer holds the flat float64 `params` array it was given and updates it IN PLACE on each
step(grads): the network's layers are views into that array, so rebinding it would cut them off.
The learning rate is a plain attribute; a trainer sets it from a schedule before each update:

    optimizer.learning_rate = schedule(fraction_done)
    optimizer.step(grads)

`state()` gives copies of everything step() carries from one call to the next (Adam's moments
and step count, SGD's velocity) as numpy arrays, and `load_state(state)` puts them back, so a
checkpoint can resume training exactly where it stopped.
"""
import numbers

import numpy as np

__all__ = ["Adam", "SGD", "clip_grad_norm", "constant_schedule", "linear_schedule"]


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


def _check_real(name, value, low, high, low_inclusive=True):
    """value as a float in [low, high) (or (low, high) if not low_inclusive); NaN is rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    above_low = value >= low if low_inclusive else value > low
    if not (above_low and value < high):
        interval = f"{'[' if low_inclusive else '('}{low}, {high})"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def _check_params(params):
    if not isinstance(params, np.ndarray) or params.dtype.kind != "f" or params.ndim != 1:
        raise TypeError("params must be a flat (1-d) float numpy array, updated in place")
    if not params.flags.writeable:
        raise ValueError("params must be writeable: the optimizer updates it in place")
    return params


def _check_grads(grads, params):
    grads = np.asarray(grads)
    if grads.shape != params.shape:
        raise ValueError(f"grads must have the shape of params {params.shape}, got {grads.shape}")
    if not np.isfinite(grads).all():
        raise ValueError(f"grads contain a non-finite value (NaN or inf) at index "
                         f"{int(np.argmax(~np.isfinite(grads)))}; the loss or its gradient "
                         f"blew up before this step")
    return grads


class Adam:
    """Adam (Kingma & Ba, 2015), bias correction written out. With g = grads at step t = 1, 2, ...:

        m_t     = beta1 * m_{t-1} + (1 - beta1) * g          first moment, m_0 = 0
        v_t     = beta2 * v_{t-1} + (1 - beta2) * g^2        second moment, v_0 = 0
        m_hat   = m_t / (1 - beta1^t)                        undo the bias toward m_0 = 0
        v_hat   = v_t / (1 - beta2^t)
        params -= learning_rate * m_hat / (sqrt(v_hat) + eps)
    """

    def __init__(self, params, learning_rate=3e-4, betas=(0.9, 0.999), eps=1e-8):
        self.params = _check_params(params)
        self.learning_rate = _check_real("learning_rate", learning_rate, 0.0, np.inf)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = _check_real("betas[0]", betas[0], 0.0, 1.0)
        self.beta2 = _check_real("betas[1]", betas[1], 0.0, 1.0)
        self.eps = _check_real("eps", eps, 0.0, np.inf, low_inclusive=False)
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.t = 0
        self._scratch = np.empty_like(params)   # the step allocates nothing per call

    def step(self, grads):
        """One Adam update of params, in place, from the gradient of the loss."""
        g = _check_grads(grads, self.params)
        # Checked here, not only in __init__: a schedule may have set it since.
        learning_rate = _check_real("learning_rate", self.learning_rate, 0.0, np.inf)
        self.t += 1
        s = self._scratch
        self.m *= self.beta1
        np.multiply(g, 1.0 - self.beta1, out=s)
        self.m += s                                        # m_t
        self.v *= self.beta2
        np.multiply(g, g, out=s)
        s *= 1.0 - self.beta2
        self.v += s                                        # v_t
        bias_correction1 = 1.0 - self.beta1 ** self.t
        bias_correction2 = 1.0 - self.beta2 ** self.t
        np.divide(self.v, bias_correction2, out=s)         # v_hat
        np.sqrt(s, out=s)
        s += self.eps
        np.divide(self.m, s, out=s)                        # m_t / (sqrt(v_hat) + eps)
        s *= learning_rate / bias_correction1         # m_hat = m_t / (1 - beta1^t)
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
        learning_rate = _check_real("state['learning_rate']", values["learning_rate"], 0.0, np.inf)
        self.m[...] = values["m"]
        self.v[...] = values["v"]
        self.t, self.learning_rate = values["t"], learning_rate


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum:

        velocity = momentum * velocity + g,     params -= learning_rate * velocity

    momentum = 0 is plain gradient descent, params -= learning_rate * g.
    """

    def __init__(self, params, learning_rate, momentum=0.0):
        self.params = _check_params(params)
        self.learning_rate = _check_real("learning_rate", learning_rate, 0.0, np.inf)
        self.momentum = _check_real("momentum", momentum, 0.0, 1.0)
        self.velocity = np.zeros_like(params)

    def step(self, grads):
        """One SGD update of params, in place."""
        g = _check_grads(grads, self.params)
        learning_rate = _check_real("learning_rate", self.learning_rate, 0.0, np.inf)
        self.velocity *= self.momentum
        self.velocity += g
        self.params -= learning_rate * self.velocity

    def state(self):
        """Copies of the velocity and the learning rate: {name: numpy array}."""
        return {"velocity": self.velocity.copy(),
                "learning_rate": np.array(self.learning_rate, np.float64)}

    def load_state(self, state):
        """Continue from state(): the velocity is copied in place, learning_rate set."""
        values = _read_state(state, {"velocity": self.velocity}, {"learning_rate": float})
        learning_rate = _check_real("state['learning_rate']", values["learning_rate"], 0.0, np.inf)
        self.velocity[...] = values["velocity"]
        self.learning_rate = learning_rate


def clip_grad_norm(grads, max_norm):
    """Scale the gradients in place so that their global L2 norm is at most max_norm.

        norm = sqrt(sum over every array and entry of g^2)
        if norm > max_norm:  g *= max_norm / norm      (the direction is kept, only the length)

    grads is one flat array or a list of arrays (one norm across all of them). Returns the norm
    before clipping, worth logging: a norm that keeps hitting max_norm means the step size is
    being set by the clip, not by the learning rate.
    """
    max_norm = _check_real("max_norm", max_norm, 0.0, np.inf, low_inclusive=False)
    arrays = [grads] if isinstance(grads, np.ndarray) else list(grads)
    for g in arrays:
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError("grads must be a float numpy array or a list of them (scaled in "
                            "place)")
    norm = float(np.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in arrays)))
    if not np.isfinite(norm):
        raise ValueError("grads have a non-finite norm (NaN or inf): the loss or its gradient "
                         "blew up")
    if norm > max_norm:
        scale = max_norm / norm
        for g in arrays:
            g *= scale
    return norm


def constant_schedule(value):
    """f(fraction_done) = value: a fixed learning rate."""
    value = _check_real("value", value, 0.0, np.inf)
    return lambda fraction_done: value


def linear_schedule(initial, final=0.0):
    """f(fraction_done) = initial + (final - initial) * fraction_done, fraction clipped to [0, 1].

    fraction_done = steps done / total steps; the clip tolerates a last iteration that
    overshoots the total.
    """
    initial = _check_real("initial", initial, 0.0, np.inf)
    final = _check_real("final", final, 0.0, np.inf)

    def schedule(fraction_done):
        fraction_done = min(max(float(fraction_done), 0.0), 1.0)
        return initial + (final - initial) * fraction_done

    return schedule

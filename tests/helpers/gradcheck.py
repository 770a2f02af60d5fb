"""Central finite differences: the yardstick every hand-written gradient in minipg is held to."""
import numpy as np


def numerical_gradient(f, x, h=1e-5):
    """(f(x + h e_i) - f(x - h e_i)) / 2h for every entry of the float64 array x (moved in place
    and restored); f takes no argument and reads x. The error is O(h^2)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + h
        f_plus = f()
        x[i] = saved - h
        f_minus = f()
        x[i] = saved
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a, b):
    """|a - b| / (|a| + |b|): scale-free, and 0 only when the two agree."""
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)

"""Argument checks, one set for the whole library, so that every bad input fails the same way.

    wrong type   -> TypeError   ("learning_rate must be a real number, got 'fast'")
    wrong value  -> ValueError  ("gamma must be in [0.0, 1.0], got 1.5"; NaN and inf are wrong
                                 values of every real argument)

Each error names the argument. Checks run at the public boundary (a constructor, a config, a
public function), not inside the loops that call the same code thousands of times.
"""
import math
import numbers

import numpy as np

__all__ = ["as_generator", "check_int", "check_real", "check_bool", "check_choice",
           "check_float_dtype", "first_non_finite", "raise_if_non_finite"]


def as_generator(rng, name="rng"):
    """A numpy Generator from a Generator (returned as is), an int seed, or None (fresh entropy).

    Every function in minipg that samples takes its randomness this way.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ValueError(f"{name} must be a non-negative int seed, got {rng}")
        return np.random.default_rng(rng)
    raise TypeError(f"{name} must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def check_int(name, value, low=None):
    """value as an int (>= low when given); a bool or a float is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_real(name, value, low=-np.inf, high=np.inf, low_inclusive=True, high_inclusive=True):
    """value as a finite float in the interval [low, high] (ends open where said).

    NaN and +-inf are rejected whatever the interval: no setting of minipg means "infinite"
    (an infinite coefficient or step size only turns the first update into NaN).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        interval = (f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}")
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    """value, if it is one of choices (strings); else ValueError listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_float_dtype(name, dtype):
    """np.dtype float32 or float64 from a dtype or its name."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from error
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be float32 or float64, got {dtype.name}")
    return dtype


def first_non_finite(**arrays):
    """"name[index]" of the first array (in the order given) holding a NaN or inf, else None."""
    for name, array in arrays.items():
        array = np.asarray(array)
        if not np.isfinite(array).all():
            return f"{name}[{tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])}]"
    return None


def raise_if_non_finite(**arrays):
    """FloatingPointError naming the first array (in the order given) holding a NaN or inf."""
    where = first_non_finite(**arrays)
    if where is not None:
        raise FloatingPointError(f"non-finite value first seen in {where}")

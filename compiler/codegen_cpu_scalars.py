"""Scalar functions that the registry's templates call, compiled for the CPU with Numba.

Each matches its NumPy counterpart for every input, NaN included (Python's max() does not:
max(1.0, nan) is 1.0). Kernels call them inlined, so they cost nothing at run time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_inline = njit(inline="always", cache=True, error_model="numpy")


@_inline
def maximum_(a, b):
    return a if (a >= b or a != a) else b  # a NaN on either side wins, as in np.maximum


@_inline
def minimum_(a, b):
    return a if (a <= b or a != a) else b


@_inline
def floordiv_(a, b):
    """NumPy's floor division of floats (npy_divmod), exact where floor(a / b) is not."""
    if b == 0:
        return a / b
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != 0 and (b < 0) != (mod < 0):
        div -= 1
    if div == 0:
        return math.copysign(0.0, a / b)
    floor = np.floor(div)
    if div - floor > 0.5:
        floor += 1
    return floor


@_inline
def floormod_(a, b):
    """NumPy's floor modulo of floats: the remainder has the divisor's sign."""
    if b == 0:
        return np.fmod(a, b)
    mod = np.fmod(a, b)
    if mod != 0:
        if (b < 0) != (mod < 0):
            mod += b
    else:
        mod = math.copysign(0.0, b)
    return mod


@_inline
def bdim_(n, d):
    """The broadcast of an iteration size `n` with an operand's size `d` (NumPy's rule)."""
    if n == 1:
        return d
    if d == 1 or d == n:
        return n
    raise ValueError("operands could not be broadcast together")

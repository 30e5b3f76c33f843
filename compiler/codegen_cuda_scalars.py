"""Scalar functions for CUDA kernels, and the `math` they call.

On a GPU, Numba maps `math.exp` and friends to libdevice, typed by their argument (float32 stays
float32), and these helpers become device functions. Under the simulator
(NUMBA_ENABLE_CUDASIM=1) kernels run as Python: Python's `math` would compute float32 in float64
and raise where NumPy gives inf or nan (math.log(0), math.exp(1000)), so `kernel_math` is then a
namespace of NumPy's ufuncs, which keep the dtype and the IEEE results.

Each helper matches its NumPy counterpart, NaN included (see codegen_cpu_scalars). Numbers in
them are globals of the kernel's float type (ONE, HALF), so a float32 helper stays float32: one
copy of each helper per float dtype. numba.cuda is imported only inside functions.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any

import numpy as np


def simulating() -> bool:
    """Whether Numba's CUDA target is the simulator (fixed when numba is first imported)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def kernel_math() -> Any:
    """The `math` that kernels call: the module itself on a GPU, NumPy's ufuncs under the
    simulator (float32 kept float32, inf and nan instead of exceptions)."""
    if not simulating():
        return math
    return _simulated_math()


@functools.cache
def _simulated_math() -> types.SimpleNamespace:
    def quiet(ufunc: Any) -> Any:
        def call(*args: Any) -> Any:
            with np.errstate(all="ignore"):  # per thread: the simulator's threads start afresh
                return ufunc(*args)
        return call

    names = ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh", "floor", "fmod",
             "copysign")
    space = {name: quiet(getattr(np, name)) for name in names}
    return types.SimpleNamespace(inf=math.inf, nan=math.nan, pi=math.pi, e=math.e, **space)


# ---- the helpers, as plain Python; `scalar_functions` binds them per dtype and jits them ---------


def maximum_(a, b):
    return a if (a >= b or a != a) else b  # a NaN on either side wins, as in np.maximum


def minimum_(a, b):
    return a if (a <= b or a != a) else b


def floordiv_(a, b):
    """NumPy's floor division of floats (npy_divmod), exact where floor(a / b) is not."""
    if b == 0 or a != a or a - a != a - a:  # b = 0, a NaN or infinite: as a / b, or NaN
        return a / b if b == 0 else a - a
    mod = math.fmod(a, b)
    div = (a - mod) / b
    if mod != 0 and (b < 0) != (mod < 0):
        div -= ONE
    if div == 0:
        return math.copysign(div, a / b)
    floor = math.floor(div)
    if div - floor > HALF:
        floor += ONE
    return floor


def floormod_(a, b):
    """NumPy's floor modulo of floats: the remainder has the divisor's sign."""
    if b == 0 or a != a or a - a != a - a:
        return a - a if b != 0 else math.fmod(a, b)
    mod = math.fmod(a, b)
    if mod != 0:
        if (b < 0) != (mod < 0):
            mod += b
    else:
        mod = math.copysign(mod, b)
    return mod


ONE, HALF = 1.0, 0.5  # rebound per dtype in each jitted copy
HELPERS = (maximum_, minimum_, floordiv_, floormod_)


@functools.cache
def scalar_functions(dtype_name: str) -> dict[str, Any]:
    """The helpers as CUDA device functions whose numbers have dtype `dtype_name`, by name."""
    from numba import cuda

    scalar = np.dtype(dtype_name).type
    space = dict(globals(), math=kernel_math(), ONE=scalar(1), HALF=scalar(0.5))
    out = {}
    for fn in HELPERS:
        copy = types.FunctionType(fn.__code__, space, fn.__name__, fn.__defaults__)
        out[fn.__name__] = cuda.jit(device=True)(copy)
    return out

"""Scalar functions that the registry's templates call, compiled for the CPU with Numba.

Each matches its NumPy counterpart for every input, NaN included (Python's max() does not:
max(1.0, nan) is 1.0). Kernels call them inlined, so they cost nothing at run time.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

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


# ---- float32 exp, log and tanh that vectorize ---------------------------------------------------
# math.exp and friends are scalar libm calls, which keep LLVM from vectorizing a loop (Numba has
# no SVML here). These are Cephes' single-precision algorithms (range reduction plus a short
# polynomial), written with selects instead of branches so that whole loops vectorize; they are
# accurate to a few ulp over the whole float32 range, inf, nan and denormals included.


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float32, as an int32 (a bitcast, free at run time)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))
    return types.int32(types.float32), codegen


@intrinsic
def _bits_float(typingctx, x):
    """The float32 with these bits."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma): exact steps that fast-math may not reorder."""
    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)
    return types.float32(types.float32, types.float32, types.float32), codegen


F = np.float32
_EXP_HI, _EXP_LO = F(88.72283905206835), F(-103.97208)
_LOG2E, _LN2_HI, _LN2_LO = F(1.44269504088896341), F(0.693359375), F(-2.12194440e-4)
_EXP_P = (F(1.9875691500e-4), F(1.3981999507e-3), F(8.3334519073e-3), F(4.1665795894e-2),
          F(1.6666665459e-1), F(5.0000001201e-1))
_LOG_P = (F(7.0376836292e-2), F(-1.1514610310e-1), F(1.1676998740e-1), F(-1.2420140846e-1),
          F(1.4249322787e-1), F(-1.6668057665e-1), F(2.0000714765e-1), F(-2.4999993993e-1),
          F(3.3333331174e-1))
# tanh x = x + x^3 P(x^2) on [0, 1]: fitted to tanh's relative error (least squares on Chebyshev
# nodes, reweighted toward minimax): 1.06 ulp at most, in float32 arithmetic
_TANH_P = (F(-3.552978e-4), F(2.2902356e-3), F(-7.930675e-3), F(2.1476055e-2), F(-5.3876076e-2),
           F(1.3332283e-1), F(-3.3333293e-1))
_SQRT_HALF, _HALF, _ONE, _TWO, _ZERO = F(0.707106781186547524), F(0.5), F(1), F(2), F(0)
_INF, _NAN, _TWO23 = F(np.inf), F(np.nan), F(2.0 ** 23)


@_inline
def exp_f32(x):
    """e^x for float32: x = n ln2 + r, e^r by a polynomial, times 2^n built from bits."""
    c = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(_LOG2E * c + _HALF)
    r = _fma(-n, _LN2_LO, _fma(-n, _LN2_HI, c))  # Cody-Waite: c - n ln2 in two exact steps
    p = _EXP_P[0]
    p = p * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    p = p * (r * r) + r + _ONE
    k = np.int32(n)
    # p 2^k: k in [-100, 127] goes straight into p's exponent bits (p is in [0.7, 1.5)); the
    # rest (down to -150 for denormal results, or 128) is one multiply, so nothing reorders it
    k1 = min(max(k, np.int32(-100)), np.int32(127))
    y = _bits_float(_float_bits(p) + (k1 << 23)) * _bits_float((k - k1 + 127) << 23)
    y = _INF if x > _EXP_HI else y
    y = _ZERO if x < _EXP_LO else y
    return x if x != x else y


@_inline
def log_f32(x):
    """ln x for float32: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m by a polynomial."""
    tiny = x < F(1.1754944e-38)  # denormals: scale into the normal range first
    s = x * _TWO23 if tiny else x
    bits = _float_bits(s)
    e = F((bits >> 23) - 126) - (F(23) if tiny else _ZERO)
    m = _bits_float((bits & 0x007FFFFF) | 0x3F000000)  # in [0.5, 1)
    low = m < _SQRT_HALF
    e = e - _ONE if low else e
    m = (m + m - _ONE) if low else (m - _ONE)
    z = m * m
    p = _LOG_P[0]
    for c in _LOG_P[1:]:
        p = p * m + c
    y = _fma(_LN2_LO, e, p * m * z) - _HALF * z
    y = _fma(_LN2_HI, e, m + y)
    y = -_INF if x == _ZERO else y
    y = _INF if x == _INF else y
    y = _NAN if x < _ZERO else y
    return x if x != x else y


@_inline
def tanh_f32(x):
    """tanh for float32: 1 - 2 e / (1 + e) with e = e^-2|x| for |x| > 1, a polynomial below.
    e is e^-|x| squared: the e^-|x| that a sigmoid of the same x computes (its template's), so
    a loop that takes both computes one exponential, not two (W2: 4.66 -> 4.14 ms). The
    polynomial reaches up to 1, where e's error (e^-|x|'s, doubled) weighs little on the
    result: at most 1.2 ulp over the float32 range."""
    a = abs(x)
    e = exp_f32(-a)
    e = e * e
    big = _ONE - (e + e) / (_ONE + e)
    big = -big if x < _ZERO else big
    z = x * x
    p = _TANH_P[0]
    for c in _TANH_P[1:]:
        p = p * z + c
    small = p * z * x + x
    return big if a > _ONE else small

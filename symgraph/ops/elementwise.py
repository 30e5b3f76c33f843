"""Elementwise ops: out[i] = f(x[i], y[i], ...) with NumPy broadcasting.

Gradient rules return output-shaped gradients; the autodiff driver sums them down to each input's
shape. Scalar templates are what the code generators render, one call per element.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.graph import Tensor, apply, convert_to_tensor, graph_of
from symgraph.ops.inference import (
    TensorType,
    broadcast,
    check_kind,
    comparison,
    elementwise,
    same_dtype,
)
from symgraph.registry import NOT_DIFFERENTIABLE, OpDef, OpKind, register

E = OpKind.ELEMENTWISE
FLOAT, NUMERIC, ANY = "f", "fiu", "fiub"


def _int_zero_check(y: np.ndarray) -> None:
    if y.dtype.kind in "iu" and np.any(y == 0):
        raise ZeroDivisionError("integer division by zero")


def _floordiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _int_zero_check(y)
    return np.floor_divide(x, y)


def _mod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _int_zero_check(y)
    return np.mod(x, y)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x), written so that neither branch overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


# ---- registry entries ------------------------------------------------------------------------

ADD = register(OpDef("add", E, elementwise(NUMERIC), np.add, scalar="({0} + {1})",
                     commutative=True, grad=lambda n, g: (g, g)))
SUBTRACT = register(OpDef("subtract", E, elementwise(NUMERIC), np.subtract, scalar="({0} - {1})",
                          grad=lambda n, g: (g, -g)))
MULTIPLY = register(OpDef("multiply", E, elementwise(NUMERIC), np.multiply, scalar="({0} * {1})",
                          commutative=True,
                          grad=lambda n, g: (g * n.inputs[1], g * n.inputs[0])))
# d(x/y) = dx/y - x dy/y^2
DIVIDE = register(OpDef("divide", E, elementwise(FLOAT), np.divide, scalar="({0} / {1})",
                        grad=lambda n, g: (g / n.inputs[1],
                                           -g * n.inputs[0] / square(n.inputs[1]))))
FLOORDIV = register(OpDef("floordiv", E, elementwise(NUMERIC), _floordiv,
                          scalar="floordiv_({0}, {1})", grad=NOT_DIFFERENTIABLE))
# x mod y = x - floor(x/y) y: d/dx = 1, d/dy = -floor(x/y)
MOD = register(OpDef("mod", E, elementwise(NUMERIC), _mod, scalar="floormod_({0}, {1})",
                     grad=lambda n, g: (g, -g * floordiv(n.inputs[0], n.inputs[1]))))


def _pow_grad(n, g):
    x, y = n.inputs
    positive = greater(x, 0)
    log_x = where(positive, log(where(positive, x, ones_like(x))), zeros_like(x))
    # d(x^y)/dx = y x^(y-1); d(x^y)/dy = x^y ln x (taken as 0 where x <= 0, as TF1 does)
    return g * y * pow(x, y - 1), g * n.output * log_x


POW = register(OpDef("pow", E, elementwise(NUMERIC), np.power, scalar="({0} ** {1})",
                     grad=_pow_grad))
MAXIMUM = register(OpDef("maximum", E, elementwise(NUMERIC), np.maximum,
                         scalar="maximum_({0}, {1})", commutative=True,
                         grad=lambda n, g: _select_grad(greater_equal(*n.inputs), g)))
MINIMUM = register(OpDef("minimum", E, elementwise(NUMERIC), np.minimum,
                         scalar="minimum_({0}, {1})", commutative=True,
                         grad=lambda n, g: _select_grad(less_equal(*n.inputs), g)))


def _select_grad(take_first: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    zero = zeros_like(g)
    return where(take_first, g, zero), where(take_first, zero, g)


NEGATIVE = register(OpDef("negative", E, elementwise(NUMERIC), np.negative, scalar="(-{0})",
                          grad=lambda n, g: (-g,)))
SQUARE = register(OpDef("square", E, elementwise(NUMERIC), np.square, scalar="({0} * {0})",
                        grad=lambda n, g: (g * 2 * n.inputs[0],)))
SQRT = register(OpDef("sqrt", E, elementwise(FLOAT), np.sqrt, scalar="math.sqrt({0})",
                      grad=lambda n, g: (g / (2 * n.output),)))
RSQRT = register(OpDef("rsqrt", E, elementwise(FLOAT), lambda x: 1 / np.sqrt(x),
                       scalar="(1 / math.sqrt({0}))",
                       grad=lambda n, g: (-0.5 * g * n.output * square(n.output),)))
RECIPROCAL = register(OpDef("reciprocal", E, elementwise(FLOAT), np.reciprocal,
                            scalar="(1 / {0})", grad=lambda n, g: (-g * square(n.output),)))
EXP = register(OpDef("exp", E, elementwise(FLOAT), np.exp, scalar="math.exp({0})",
                     grad=lambda n, g: (g * n.output,)))  # d/dx e^x = e^x: reuse the output
LOG = register(OpDef("log", E, elementwise(FLOAT), np.log, scalar="math.log({0})",
                     grad=lambda n, g: (g / n.inputs[0],)))
LOG1P = register(OpDef("log1p", E, elementwise(FLOAT), np.log1p, scalar="math.log1p({0})",
                       grad=lambda n, g: (g / (1 + n.inputs[0]),)))
EXPM1 = register(OpDef("expm1", E, elementwise(FLOAT), np.expm1, scalar="math.expm1({0})",
                       grad=lambda n, g: (g * (n.output + 1),)))
ABS = register(OpDef("abs", E, elementwise(NUMERIC), np.abs, scalar="abs({0})",
                     grad=lambda n, g: (g * sign(n.inputs[0]),)))
# sign is piecewise constant: its derivative is 0 wherever it exists (TF1 returns zeros too)
SIGN = register(OpDef("sign", E, elementwise(NUMERIC), np.sign,
                      scalar="(1 if {0} > 0 else (-1 if {0} < 0 else {0}))",  # NaN stays NaN
                      grad=lambda n, g: (zeros_like(g),)))
SIN = register(OpDef("sin", E, elementwise(FLOAT), np.sin, scalar="math.sin({0})",
                     grad=lambda n, g: (g * cos(n.inputs[0]),)))
COS = register(OpDef("cos", E, elementwise(FLOAT), np.cos, scalar="math.cos({0})",
                     grad=lambda n, g: (-g * sin(n.inputs[0]),)))
TANH = register(OpDef("tanh", E, elementwise(FLOAT), np.tanh, scalar="math.tanh({0})",
                      grad=lambda n, g: (g * (1 - square(n.output)),)))
# with e = e^-|x|: 1 / (1 + e) for x >= 0, e / (1 + e) below (no overflow, exact tails)
SIGMOID = register(OpDef("sigmoid", E, elementwise(FLOAT), _sigmoid,
                         scalar="((1 if {0} >= 0 else math.exp(-abs({0}))) / "
                                "(1 + math.exp(-abs({0}))))",
                         grad=lambda n, g: (g * n.output * (1 - n.output),)))

EQUAL = register(OpDef("equal", E, comparison(ANY), np.equal, scalar="({0} == {1})",
                       commutative=True, grad=NOT_DIFFERENTIABLE))
NOT_EQUAL = register(OpDef("not_equal", E, comparison(ANY), np.not_equal,
                           scalar="({0} != {1})", commutative=True, grad=NOT_DIFFERENTIABLE))
LESS = register(OpDef("less", E, comparison(NUMERIC), np.less, scalar="({0} < {1})",
                      grad=NOT_DIFFERENTIABLE))
LESS_EQUAL = register(OpDef("less_equal", E, comparison(NUMERIC), np.less_equal,
                            scalar="({0} <= {1})", grad=NOT_DIFFERENTIABLE))
GREATER = register(OpDef("greater", E, comparison(NUMERIC), np.greater, scalar="({0} > {1})",
                         grad=NOT_DIFFERENTIABLE))
GREATER_EQUAL = register(OpDef("greater_equal", E, comparison(NUMERIC), np.greater_equal,
                               scalar="({0} >= {1})", grad=NOT_DIFFERENTIABLE))
LOGICAL_AND = register(OpDef("logical_and", E, elementwise("b"), np.logical_and,
                             scalar="({0} and {1})", commutative=True, grad=NOT_DIFFERENTIABLE))
LOGICAL_OR = register(OpDef("logical_or", E, elementwise("b"), np.logical_or,
                            scalar="({0} or {1})", commutative=True, grad=NOT_DIFFERENTIABLE))
LOGICAL_NOT = register(OpDef("logical_not", E, elementwise("b"), np.logical_not,
                             scalar="(not {0})", grad=NOT_DIFFERENTIABLE))


def _where_infer(inputs: list, attrs: dict) -> TensorType:
    cond, x, y = inputs
    check_kind(cond, "b")
    return TensorType(same_dtype([x, y]), broadcast(inputs))


WHERE = register(OpDef("where", E, _where_infer, np.where, scalar="({1} if {0} else {2})",
                       grad=lambda n, g: (None,) + _select_grad(n.inputs[0], g)))


def _cast_infer(inputs: list, attrs: dict) -> TensorType:
    return TensorType(attrs["dtype"], inputs[0].shape)


def _cast_grad(n, g):
    src = n.inputs[0].dtype
    # only float-to-float casts carry a gradient; a path through integers has none
    return (cast(g, src),) if src.is_floating and n.dtype.is_floating else (None,)


CAST = register(OpDef("cast", E, _cast_infer, lambda x, dtype: x.astype(dtype.np),
                      scalar="{0}", grad=_cast_grad))
IDENTITY = register(OpDef("identity", E, lambda i, a: TensorType(i[0].dtype, i[0].shape),
                          lambda x: x, scalar="{0}", grad=lambda n, g: (g,)))
STOP_GRADIENT = register(OpDef("stop_gradient", E,
                               lambda i, a: TensorType(i[0].dtype, i[0].shape),
                               lambda x: x, scalar="{0}", grad=NOT_DIFFERENTIABLE))
ADD_N = register(OpDef("add_n", E, elementwise(NUMERIC), lambda *xs: sum(xs[1:], xs[0]),
                       scalar="({*})", commutative=True, grad=lambda n, g: (g,) * len(n.inputs)))


# ---- user functions --------------------------------------------------------------------------


def _operands(x: Any, y: Any, graph: Any = None) -> tuple[Tensor, Tensor]:
    """Both operands as tensors; a non-tensor one takes the tensor one's dtype (TF1's rule)."""
    graph = graph or graph_of((x, y))
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = convert_to_tensor(x, graph=graph)  # two plain values: the first sets the dtype
    if not isinstance(y, Tensor):
        return x, _adopt_dtype(y, x, graph)
    if not isinstance(x, Tensor):
        return _adopt_dtype(x, y, graph), y
    return x, y


def _adopt_dtype(value: Any, tensor: Tensor, graph: Any) -> Tensor:
    """`value` as a constant of `tensor`'s dtype; one that would change kind is refused."""
    try:
        return convert_to_tensor(value, dtype=tensor.dtype, graph=graph)
    except TypeError as e:
        raise TypeError(f"cannot combine {value!r} with {tensor.describe()}: {e}") from None


def _binary(opdef: OpDef, x: Any, y: Any, name: str | None) -> Tensor:
    """Applies a binary op to two tensors or a tensor and a value."""
    x, y = _operands(x, y)
    return apply(opdef, x, y, name=name)


def _unary(opdef: OpDef, x: Any, name: str | None) -> Tensor:
    return apply(opdef, convert_to_tensor(x), name=name)


def add(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x + y with broadcasting."""
    return _binary(ADD, x, y, name)


def subtract(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(SUBTRACT, x, y, name)


def multiply(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(MULTIPLY, x, y, name)


def divide(x: Any, y: Any, name: str | None = None) -> Tensor:
    """True division. Integer operands are first cast to float64, as TF1's `truediv` does."""
    x, y = _operands(x, y)
    if x.dtype == y.dtype and x.dtype.is_integer:
        target = _dt.float32 if x.dtype.np.itemsize <= 2 else _dt.float64
        x, y = cast(x, target), cast(y, target)
    return apply(DIVIDE, x, y, name=name)


truediv = divide


def floordiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """floor(x / y); integer division by zero is an error at run time."""
    return _binary(FLOORDIV, x, y, name)


def mod(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x - floor(x / y) * y, with the sign of y (Python's and TF1's floormod)."""
    return _binary(MOD, x, y, name)


floormod = mod


def pow(x: Any, y: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF1's name
    return _binary(POW, x, y, name)


def maximum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(MAXIMUM, x, y, name)


def minimum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(MINIMUM, x, y, name)


def negative(x: Any, name: str | None = None) -> Tensor:
    return _unary(NEGATIVE, x, name)


def square(x: Any, name: str | None = None) -> Tensor:
    return _unary(SQUARE, x, name)


def sqrt(x: Any, name: str | None = None) -> Tensor:
    return _unary(SQRT, x, name)


def rsqrt(x: Any, name: str | None = None) -> Tensor:
    """1 / sqrt(x)."""
    return _unary(RSQRT, x, name)


def reciprocal(x: Any, name: str | None = None) -> Tensor:
    return _unary(RECIPROCAL, x, name)


def exp(x: Any, name: str | None = None) -> Tensor:
    return _unary(EXP, x, name)


def log(x: Any, name: str | None = None) -> Tensor:
    """Natural logarithm."""
    return _unary(LOG, x, name)


def log1p(x: Any, name: str | None = None) -> Tensor:
    """log(1 + x), accurate for small x."""
    return _unary(LOG1P, x, name)


def expm1(x: Any, name: str | None = None) -> Tensor:
    """e^x - 1, accurate for small x."""
    return _unary(EXPM1, x, name)


def abs(x: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF1's name
    return _unary(ABS, x, name)


def sign(x: Any, name: str | None = None) -> Tensor:
    return _unary(SIGN, x, name)


def sin(x: Any, name: str | None = None) -> Tensor:
    return _unary(SIN, x, name)


def cos(x: Any, name: str | None = None) -> Tensor:
    return _unary(COS, x, name)


def tanh(x: Any, name: str | None = None) -> Tensor:
    return _unary(TANH, x, name)


def sigmoid(x: Any, name: str | None = None) -> Tensor:
    """1 / (1 + e^-x), computed without overflow."""
    return _unary(SIGMOID, x, name)


def equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    """Elementwise x == y, a bool tensor."""
    return _binary(EQUAL, x, y, name)


def not_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(NOT_EQUAL, x, y, name)


def less(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(LESS, x, y, name)


def less_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(LESS_EQUAL, x, y, name)


def greater(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(GREATER, x, y, name)


def greater_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(GREATER_EQUAL, x, y, name)


def logical_and(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(LOGICAL_AND, x, y, name)


def logical_or(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary(LOGICAL_OR, x, y, name)


def logical_not(x: Any, name: str | None = None) -> Tensor:
    return _unary(LOGICAL_NOT, x, name)


def where(condition: Any, x: Any, y: Any, name: str | None = None) -> Tensor:
    """Elementwise `x if condition else y`, with broadcasting (TF2's `where`)."""
    graph = graph_of((condition, x, y))
    condition = convert_to_tensor(condition, dtype=_dt.bool_, graph=graph)
    x, y = _operands(x, y, graph)
    return apply(WHERE, condition, x, y, name=name)


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    """Converts to `dtype`; float to int truncates toward zero, as in TF1."""
    x = convert_to_tensor(x)
    dtype = _dt.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    return apply(CAST, x, name=name, dtype=dtype)


def identity(x: Any, name: str | None = None) -> Tensor:
    return _unary(IDENTITY, x, name)


def stop_gradient(x: Any, name: str | None = None) -> Tensor:
    """The same value, but gradients do not flow through it."""
    return _unary(STOP_GRADIENT, x, name)


def add_n(inputs: list, name: str | None = None) -> Tensor:
    """Sum of a list of tensors of one dtype."""
    if not inputs:
        raise ValueError("add_n needs at least one input")
    graph = graph_of(inputs)
    tensors = [convert_to_tensor(t, graph=graph) for t in inputs]
    if len(tensors) == 1:
        return tensors[0]
    return apply(ADD_N, *tensors, name=name)


def zeros_like(x: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    """Zeros with x's (run-time) shape."""
    from symgraph.ops.shape_ops import fill_like

    return fill_like(x, 0, dtype=dtype, name=name)


def ones_like(x: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    from symgraph.ops.shape_ops import fill_like

    return fill_like(x, 1, dtype=dtype, name=name)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any,
                  name: str | None = None) -> Tensor:
    """min(max(t, lo), hi); the gradient passes where lo <= t <= hi."""
    t = convert_to_tensor(t)
    return minimum(maximum(t, clip_value_min), clip_value_max, name=name)

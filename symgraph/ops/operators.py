"""Python operators on Tensor: `+ - * / // % ** @`, unary `-`, abs(), comparisons, indexing.

`==` and `!=` keep Python identity, as in TF1, so tensors stay usable as dict keys
(`feed_dict={x: ...}`); use sg.equal for elementwise equality.
"""

from __future__ import annotations

from symgraph.graph import Tensor
from symgraph.ops import elementwise as ew
from symgraph.ops import linalg, shape_ops


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _logical(fn):
    """`&`, `|` are logical and/or on bool tensors, as in TF1."""
    def op(x, y):
        if not x.dtype.is_bool:
            raise TypeError(f"& and | need bool tensors, got {x.describe()}")
        return fn(x, y)
    return op


_OPERATORS = {
    "__add__": ew.add, "__radd__": _reflected(ew.add),
    "__sub__": ew.subtract, "__rsub__": _reflected(ew.subtract),
    "__mul__": ew.multiply, "__rmul__": _reflected(ew.multiply),
    "__truediv__": ew.divide, "__rtruediv__": _reflected(ew.divide),
    "__floordiv__": ew.floordiv, "__rfloordiv__": _reflected(ew.floordiv),
    "__mod__": ew.mod, "__rmod__": _reflected(ew.mod),
    "__pow__": ew.pow, "__rpow__": _reflected(ew.pow),
    "__matmul__": linalg.matmul, "__rmatmul__": _reflected(linalg.matmul),
    "__lt__": ew.less, "__le__": ew.less_equal, "__gt__": ew.greater, "__ge__": ew.greater_equal,
    "__and__": _logical(ew.logical_and), "__rand__": _reflected(ew.logical_and),
    "__or__": _logical(ew.logical_or), "__ror__": _reflected(ew.logical_or),
    "__neg__": lambda self: ew.negative(self),
    "__abs__": lambda self: ew.abs(self),
    "__invert__": lambda self: ew.logical_not(self),
    "__getitem__": shape_ops.getitem,
}


def install() -> None:
    """Puts the operators on Tensor (and so on Variable, its subclass)."""
    for name, fn in _OPERATORS.items():
        setattr(Tensor, name, fn)

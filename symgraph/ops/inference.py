"""Shared shape and dtype rules for op construction (the `infer` functions of the registry).

`graph.apply` prefixes every message raised here with the op's name and the user's file:line.
"""

from __future__ import annotations

from collections.abc import Sequence

from symgraph.dtypes import DType, bool_
from symgraph.registry import TensorType
from symgraph.shapes import TensorShape, broadcast_shapes

_KIND_WORDS = {"f": "floating", "iu": "integer", "b": "bool", "fiu": "numeric", "fiub": "any"}


def same_dtype(inputs: Sequence) -> DType:
    """The one dtype all inputs share; mixed dtypes are an error (never silently widened)."""
    first = inputs[0]
    for t in inputs[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"inputs must have one dtype, got {first.describe()} and "
                            f"{t.describe()}; use sg.cast to convert one of them")
    return first.dtype


def broadcast(inputs: Sequence) -> TensorShape:
    """The NumPy broadcast shape of the inputs, or an error naming each of them."""
    shape = broadcast_shapes([t.shape for t in inputs])
    if shape is None:
        names = " and ".join(t.describe() for t in inputs)
        raise ValueError(f"shapes cannot be broadcast together: {names}")
    return shape


def check_kind(t, allowed: str) -> None:
    """`allowed` is a string of NumPy kind letters: 'f' float, 'iu' integer, 'b' bool."""
    if t.dtype.np.kind not in allowed:
        raise TypeError(f"needs {_KIND_WORDS.get(allowed, allowed)} input, got {t.describe()}")


def elementwise(kinds: str, result: DType | None = None):
    """An infer rule for a broadcasting elementwise op on inputs of one dtype among `kinds`.

    The result has the inputs' dtype, or `result` (bool for comparisons).
    """

    def infer(inputs: list, attrs: dict) -> TensorType:
        dtype = same_dtype(inputs)
        for t in inputs:
            check_kind(t, kinds)
        return TensorType(result or dtype, broadcast(inputs))

    return infer


def comparison(kinds: str):
    return elementwise(kinds, bool_)


def rank_of(t, what: str = "input") -> int:
    """The static rank of `t`, or an error when the op needs it and it is unknown."""
    if t.shape.rank is None:
        raise ValueError(f"needs a known rank for its {what}, got {t.describe()}")
    return t.shape.rank

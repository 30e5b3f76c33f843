"""Matrix multiplication, 2-D and batched (batch dims broadcast, as NumPy's and TF2's matmul)."""

from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.graph import Tensor, apply, convert_to_tensor, graph_of
from symgraph.ops.inference import check_kind, same_dtype
from symgraph.registry import OpDef, OpKind, TensorType, register
from symgraph.shapes import TensorShape, broadcast_shapes


def _matmul_infer(inputs: list, attrs: dict) -> TensorType:
    a, b = inputs
    dtype = same_dtype(inputs)
    check_kind(a, "fiu")
    for t in (a, b):
        if t.shape.rank is not None and t.shape.rank < 2:
            raise ValueError(f"matmul needs rank >= 2 operands, got {t.describe()}")
    if a.shape.rank is None or b.shape.rank is None:
        return TensorType(dtype, TensorShape(None))
    m, ka = a.shape[-2:] if not attrs["transpose_a"] else reversed(a.shape[-2:].dims)
    kb, n = b.shape[-2:] if not attrs["transpose_b"] else reversed(b.shape[-2:].dims)
    if ka is not None and kb is not None and ka != kb:
        raise ValueError(f"inner dimensions differ ({ka} vs {kb}): {a.describe()} and "
                         f"{b.describe()} (transpose_a={attrs['transpose_a']}, "
                         f"transpose_b={attrs['transpose_b']})")
    batch = broadcast_shapes([a.shape[:-2], b.shape[:-2]])
    if batch is None:
        raise ValueError(f"batch dimensions cannot be broadcast: {a.describe()} and "
                         f"{b.describe()}")
    return TensorType(dtype, TensorShape(list(batch.dims) + [m, n]))


def _swap(x: np.ndarray, t: bool) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if t else x


def _matmul_np(a: np.ndarray, b: np.ndarray, transpose_a: bool, transpose_b: bool) -> np.ndarray:
    return np.matmul(_swap(a, transpose_a), _swap(b, transpose_b))


def _matmul_grad(n, g):
    a, b = n.inputs
    ta, tb = n.attrs["transpose_a"], n.attrs["transpose_b"]
    # C = op(A) op(B): dA = g op(B)^T (transposed back if A was), dB likewise
    if not ta and not tb:
        ga, gb = matmul(g, b, transpose_b=True), matmul(a, g, transpose_a=True)
    elif not ta and tb:
        ga, gb = matmul(g, b), matmul(g, a, transpose_a=True)
    elif ta and not tb:
        ga, gb = matmul(b, g, transpose_b=True), matmul(a, g)
    else:
        ga, gb = (matmul(b, g, transpose_a=True, transpose_b=True),
                  matmul(g, a, transpose_a=True, transpose_b=True))
    from symgraph.ops.reduce import sum_to

    # batched operands may have been broadcast against each other's batch dims; sum_to decides
    # (equal static shapes with None batch dims can still differ at run time: 1 against 2)
    ga = sum_to(ga, a, others=[_batch_only(b)])
    gb = sum_to(gb, b, others=[_batch_only(a)])
    return ga, gb


def _batch_only(t: Tensor) -> TensorShape:
    """t's shape with its matrix dims as 1: what can stretch the other operand's batch dims."""
    return TensorShape(None) if t.shape.rank is None else TensorShape(list(t.shape[:-2]) + [1, 1])


MATMUL = register(OpDef("matmul", OpKind.MATMUL, _matmul_infer, _matmul_np, grad=_matmul_grad))


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False,
           name: str | None = None) -> Tensor:
    """Matrix product of the last two axes: (..., m, k) @ (..., k, n) -> (..., m, n).

    `transpose_a`/`transpose_b` swap the last two axes of an operand first.
    """
    graph = graph_of((a, b))
    a = convert_to_tensor(a, graph=graph)
    b = convert_to_tensor(b, dtype=a.dtype if not isinstance(b, Tensor) else None, graph=graph)
    return apply(MATMUL, a, b, name=name, transpose_a=bool(transpose_a),
                 transpose_b=bool(transpose_b))

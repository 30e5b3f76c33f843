"""The reference executor: each node computed with NumPy from its registry entry. The oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.errors import InvalidArgumentError
from symgraph.graph import Node
from symgraph.ops.state import VARIABLE


def evaluate(node: Node, args: list, state: Any) -> Any:
    """The value of one node given its input values; checks it against the static type."""
    opdef = node.opdef
    if opdef is VARIABLE:  # the store checked its value when it was written
        return state.read(node)
    if opdef.effect is not None:
        out = opdef.effect(state, node, *args)
    elif opdef.numpy is not None:
        out = opdef.numpy(*args, **node.attrs)
    else:
        return None  # control-only node (no_op): fetched for its effect
    if not opdef.has_output:
        return None
    out = np.asarray(out)
    if out.dtype != node.dtype.np:
        out = out.astype(node.dtype.np)
    _check_shape(node, out)
    return out


def _check_shape(node: Node, out: np.ndarray) -> None:
    shape = node.shape
    dims = shape.dims
    if dims is None or dims == out.shape:  # the usual case, at a tuple comparison's cost
        return
    if out.ndim != len(dims) or any(d is not None and d != o for d, o in zip(dims, out.shape)):
        raise InvalidArgumentError(
            f"{node.describe()} computed a value of shape {out.shape}, but its static shape is "
            f"{shape}; the fed values do not fit the graph", node)

"""Symbolic reverse-mode differentiation: appends gradient nodes to the same graph.

The gradient graph is made of ordinary registered ops, so it can be run, optimized, visualized
and differentiated again. This driver does the cross-cutting work once: it finds the nodes between
xs and ys, sums the contributions of fan-out, unbroadcasts elementwise gradients to each input's
shape, skips integer and bool paths, and stops at `stop_gradient` and `stop_gradients`.
"""

from __future__ import annotations

from typing import Any

from symgraph.graph import Node, Tensor, convert_to_tensor, graph_of
from symgraph.ops.elementwise import add_n
from symgraph.ops.reduce import sum_to
from symgraph.ops.shape_ops import fill_like
from symgraph.registry import NOT_DIFFERENTIABLE, OpKind


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _data_inputs(node: Node) -> list[tuple[int, Tensor]]:
    refs = node.opdef.ref_inputs
    return [(i, t) for i, t in enumerate(node.inputs) if i not in refs]


def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients",
              stop_gradients: Any = None) -> list[Tensor | None]:
    """Symbolic gradients of sum(ys) with respect to each of xs.

    Args:
      ys: a tensor or a list of tensors (floating); their gradients are summed.
      xs: a tensor or a list of tensors (variables, placeholders or any intermediate tensor).
      grad_ys: optional tensors of ys' shapes to start from (default: ones).
      stop_gradients: tensors treated as constants.

    Returns:
      One tensor per x, shaped like x, or None where x does not reach ys.
    """
    ys, xs = _as_list(ys), _as_list(xs)
    grad_ys = [None] * len(ys) if grad_ys is None else _as_list(grad_ys)
    if len(grad_ys) != len(ys):
        raise ValueError(f"grad_ys has {len(grad_ys)} entries for {len(ys)} ys")
    graph = graph_of(ys + xs)
    ys = [convert_to_tensor(y, graph=graph) for y in ys]
    for t in ys + xs:
        if not isinstance(t, Tensor):
            raise TypeError(f"gradients takes tensors, got {type(t).__name__}")
    for y in ys:
        if not y.dtype.is_floating:
            raise TypeError(f"gradients need floating ys, got {y.describe()}")
    stops = {t.node.id for t in _as_list(stop_gradients or [])}

    x_ids = {x.node.id for x in xs}
    between = _nodes_between(graph, x_ids, {y.node.id for y in ys}, stops)
    pending: dict[int, list[Tensor]] = {}
    grads: dict[int, Tensor] = {}
    with graph.as_default(), graph.name_scope(name):
        for y, gy in zip(ys, grad_ys):
            if y.node.id not in between:
                continue
            if gy is None:
                gy = fill_like(y, 1, name=f"{_base(y.node)}_seed")
            else:
                gy = convert_to_tensor(gy, dtype=y.dtype, graph=graph)
                if not gy.shape.is_compatible_with(y.shape):
                    raise ValueError(f"grad_ys entry {gy.describe()} does not fit {y.describe()}")
            pending.setdefault(y.node.id, []).append(gy)

        for node_id in sorted(pending.keys() | between, reverse=True):
            if node_id not in pending:
                continue
            node = graph.nodes[node_id]
            parts = pending.pop(node_id)
            g = parts[0] if len(parts) == 1 else add_n(parts)
            grads[node_id] = g
            if node_id in stops or not any(t.node.id in between for _, t in _data_inputs(node)):
                continue
            _backprop(node, g, between, pending)
    return [grads.get(x.node.id) for x in xs]


def _base(node: Node) -> str:
    return node.name.rsplit("/", 1)[-1]


def _nodes_between(graph, x_ids: set[int], y_ids: set[int], stops: set[int]) -> set[int]:
    """Ids of floating nodes on a data path from some x to some y (x and y included)."""
    back: set[int] = set()
    todo = list(y_ids)
    while todo:
        i = todo.pop()
        if i in back:
            continue
        back.add(i)
        todo.extend(t.node.id for _, t in _data_inputs(graph.nodes[i]))
    between: set[int] = set()
    for i in sorted(back):
        node = graph.nodes[i]
        if not node.dtype.is_floating or (i in stops and i not in x_ids):
            continue  # integer and bool values carry no gradient; stopped ones pass none on
        if i in x_ids or any(t.node.id in between for _, t in _data_inputs(node)):
            between.add(i)
    return between


def _backprop(node: Node, g: Tensor, between: set[int], pending: dict) -> None:
    opdef = node.opdef
    if opdef.grad is NOT_DIFFERENTIABLE:
        return
    if opdef.grad is None:
        raise LookupError(f"no gradient is defined for op type {opdef.name!r}, used by "
                          f"{node.describe()}; gradients cannot flow through it")
    with node.graph.name_scope(f"{_base(node)}_grad"):
        in_grads = opdef.grad(node, g)
        if len(in_grads) != len(node.inputs):
            raise RuntimeError(f"the gradient rule of {opdef.name!r} returned {len(in_grads)} "
                               f"entries for {len(node.inputs)} inputs")
        for i, (x, gx) in enumerate(zip(node.inputs, in_grads)):
            if gx is None or x.node.id not in between or i in opdef.ref_inputs:
                continue
            if opdef.kind is OpKind.ELEMENTWISE:
                others = [t.shape for j, t in enumerate(node.inputs) if j != i]
                gx = sum_to(gx, x, others)
            pending.setdefault(x.node.id, []).append(gx)

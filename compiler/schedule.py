"""Pruning to the fetched subgraph and ordering its steps."""

from __future__ import annotations

from collections.abc import Sequence

from symgraph.graph import Node
from symgraph.registry import OpKind


def needed_nodes(fetches: Sequence[Node], feeds: set[int]) -> list[Node]:
    """The nodes that fetches need, through data and control inputs, stopping at fed nodes.

    A variable named by an assignment (a ref input) is not read by it, so it is not needed
    unless something else reads it: initializers run before the variable has a value.
    """
    seen: set[int] = set()
    order: list[Node] = []
    todo = list(fetches)
    while todo:
        node = todo.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        order.append(node)
        if node.id in feeds:
            continue
        refs = node.opdef.ref_inputs
        todo.extend(t.node for i, t in enumerate(node.inputs) if i not in refs)
        todo.extend(node.control_inputs)
    return order


def schedule(fetches: Sequence[Node], feeds: set[int]) -> tuple[tuple[Node, ...],
                                                                 tuple[tuple[int, ...], ...]]:
    """Steps in creation order (a topological order: inputs are always created first).

    Creation order also fixes the order of state ops: a variable's tensor is read before any
    assignment created after it, and `read_value()` reads after its control dependencies.
    Returns the steps and, for each, the ids of values that no later step needs.
    """
    steps = tuple(sorted((n for n in needed_nodes(fetches, feeds) if n.id not in feeds),
                         key=lambda n: n.id))
    keep = {n.id for n in fetches}
    last_use: dict[int, int] = {}
    for i, node in enumerate(steps):
        refs = node.opdef.ref_inputs
        for j, t in enumerate(node.inputs):
            if j not in refs:
                last_use[t.node.id] = i
    free: list[list[int]] = [[] for _ in steps]
    for value_id, i in last_use.items():
        if value_id not in keep:
            free[i].append(value_id)
    return steps, tuple(tuple(f) for f in free)


def unfed_placeholders(steps: Sequence[Node]) -> tuple[Node, ...]:
    """Source steps that have no way to compute a value: placeholders left without a feed."""
    return tuple(n for n in steps if n.opdef.kind is OpKind.SOURCE and n.opdef.numpy is None
                 and n.opdef.effect is None)

"""Pruning to the fetched subgraph, ordering its steps, and when each value can be dropped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compiler.program import live_nodes
from symgraph.graph import Node
from symgraph.registry import OpKind


def needed_nodes(fetches: Sequence[Node], feeds: set[int]) -> list[Node]:
    """The nodes that fetches need, through data and control inputs, stopping at fed nodes.

    A variable named by an assignment (a ref input) is not read by it, so it is not needed
    unless something else reads it: initializers run before the variable has a value.
    """
    if not fetches:
        return []
    nodes = fetches[0].graph.nodes
    return [nodes[i] for i in live_nodes(fetches, feeds, through_refs=False)]


def is_leaf(node: Node) -> bool:
    """A constant or a variable's value: no inputs, available from the start of a run."""
    return node.opdef.kind is OpKind.SOURCE and not node.inputs and not node.control_inputs \
        and (node.opdef.numpy is not None or node.opdef.effect is not None)


def schedule(fetches: Sequence[Node], feeds: set[int]) -> list[Node]:
    """The nodes to compute: leaves first, then the rest in creation order (a topological order:
    inputs are always created first).

    Creation order also fixes the order of state ops: a variable's tensor is read before any
    assignment (an assignment is created after its variable), and `read_value()` reads after
    its control dependencies. Reading every variable first keeps that true.
    """
    return sorted((n for n in needed_nodes(fetches, feeds) if n.id not in feeds),
                  key=lambda n: (not is_leaf(n), n.id))


def step_inputs(step: Any) -> tuple[int, ...]:
    """Ids of the values a step reads: a node's data inputs, or a kernel's inputs."""
    if isinstance(step, Node):
        refs = step.opdef.ref_inputs
        return tuple(t.node.id for i, t in enumerate(step.inputs) if i not in refs)
    return step.inputs


def lifetimes(steps: Sequence[Any], keep: set[int]) -> tuple[tuple[int, ...], ...]:
    """For each step, the ids of values that no later step reads (and are not fetched)."""
    last_use: dict[int, int] = {}
    for i, step in enumerate(steps):
        for value_id in step_inputs(step):
            last_use[value_id] = i
    free: list[list[int]] = [[] for _ in steps]
    for value_id, i in last_use.items():
        if value_id not in keep:
            free[i].append(value_id)
    return tuple(tuple(f) for f in free)


def unfed_placeholders(steps: Sequence[Node]) -> tuple[Node, ...]:
    """Source steps that have no way to compute a value: placeholders left without a feed."""
    return tuple(n for n in steps if n.opdef.kind is OpKind.SOURCE and n.opdef.numpy is None
                 and n.opdef.effect is None)

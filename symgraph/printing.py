"""A text view of a graph: one row per node with id, op, name, shape, dtype and inputs."""

from __future__ import annotations

from typing import Any

from symgraph.graph import Graph, Node, Tensor, get_default_graph


def _nodes_for(target: Any) -> list[Node]:
    if target is None:
        target = get_default_graph()
    if isinstance(target, Graph):
        return list(target.nodes)
    roots = target if isinstance(target, (list, tuple)) else [target]
    seen: dict[int, Node] = {}
    todo = [r.node if isinstance(r, Tensor) else r for r in roots]
    while todo:
        node = todo.pop()
        if node.id in seen:
            continue
        seen[node.id] = node
        todo.extend(t.node for t in node.inputs)
        todo.extend(node.control_inputs)
    return [seen[i] for i in sorted(seen)]


def summary(target: Any = None, print_fn: Any = print) -> str:
    """Prints (and returns) a table of the nodes of a graph, or of those a tensor depends on.

    Columns: id, op, name, static shape, dtype, and inputs by id (control inputs as ^id).
    """
    rows = [("id", "op", "name", "shape", "dtype", "inputs")]
    for node in _nodes_for(target):
        inputs = [str(t.node.id) for t in node.inputs] + [f"^{c.id}" for c in node.control_inputs]
        shape = str(node.shape) if node.opdef.has_output else "-"
        dtype = node.dtype.name if node.opdef.has_output else "-"
        rows.append((str(node.id), node.opdef.name, node.name, shape, dtype, ", ".join(inputs)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text

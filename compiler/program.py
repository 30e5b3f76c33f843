"""A Program: the part of a graph that one set of fetches needs, in a graph of its own.

Passes take a Program and return a new one; nodes are never changed in place. `rebuild` is the
one way to make the new graph: it copies the live nodes in order and lets a local rewrite
replace any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from symgraph.graph import Graph, Node, Tensor, get_default_graph
from symgraph.ops.state import PLACEHOLDER, VARIABLE
from symgraph.registry import OpDef, TensorType


@dataclass(frozen=True)
class Program:
    """graph: a private graph; outputs: one node per fetch, in the caller's order; inputs: one
    placeholder per feed, in the caller's order (None where the fetches do not need that feed);
    origin: for each node id of `graph`, the user's node it stands for (errors name that one).
    """

    graph: Graph
    outputs: tuple[Node, ...]
    inputs: tuple[Node | None, ...]
    origin: dict[int, Node]

    def user_node(self, node: Node) -> Node:
        """The node of the user's graph that `node` computes (itself if it is not from here)."""
        return self.origin.get(node.id, node) if node.graph is self.graph else node


# rewrite(node, new_inputs) -> a Tensor of the new graph to use instead of a copy, or None.
Rewrite = Callable[[Node, list[Tensor]], Any]


def live_nodes(outputs: Sequence[Node], stop: set[int] = frozenset(),
               through_refs: bool = True) -> set[int]:
    """Ids of the nodes that `outputs` depend on, through inputs and control inputs, not looking
    past the nodes in `stop`. With through_refs=False, an assignment's variable (a ref input,
    named rather than read) does not count as a dependency."""
    seen: set[int] = set()
    todo = list(outputs)
    while todo:
        node = todo.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        if node.id in stop:
            continue
        refs = () if through_refs else node.opdef.ref_inputs
        todo.extend(t.node for i, t in enumerate(node.inputs) if i not in refs)
        todo.extend(node.control_inputs)
    return seen


def extract(graph: Graph, fetches: Sequence[Node], feeds: Sequence[Node]) -> Program:
    """Copies what `fetches` need into a new graph; each fed node becomes a placeholder there."""
    feed_ids = {n.id for n in feeds}
    live = live_nodes(fetches, feed_ids)
    dst = Graph()
    dst.seed = graph.seed
    mapping: dict[int, Node] = {}
    for node in _copy_order(graph.nodes, live):
        if node.id in feed_ids:
            mapping[node.id] = dst.create_node(
                PLACEHOLDER, (), {"dtype": node.dtype, "shape": node.shape}, node.name + "/",
                TensorType(node.dtype, node.shape), node.location)
        else:
            mapping[node.id] = _copy(dst, node, mapping)
    origin = {new.id: graph.nodes[old] for old, new in mapping.items()}
    return Program(dst, tuple(mapping[n.id] for n in fetches),
                   tuple(mapping.get(n.id) for n in feeds), origin)


def rebuild(program: Program, rewrite: Rewrite | None = None,
            controls: dict[int, Sequence[Node]] | None = None) -> Program:
    """A new Program with the live nodes copied in order, each offered to `rewrite` first.

    A rewrite is offered only nodes without control inputs, whose data inputs it gets already
    rebuilt; what it returns replaces the node for every consumer. `controls` adds control
    inputs (nodes of the old graph) to the copies of some nodes (by old id); those nodes are
    copied, not offered. Dead nodes are dropped.
    """
    src = program.graph
    live = live_nodes(program.outputs)
    dst = Graph()
    dst.seed = src.seed
    mapping: dict[int, Node] = {}
    origin: dict[int, Node] = {}
    with dst.as_default():
        for node in _copy_order(src.nodes, live):
            new = None
            extra = tuple(mapping[c.id] for c in (controls or {}).get(node.id, ()))
            if rewrite is not None and not node.control_inputs and not extra:
                new = rewrite(node, [mapping[t.node.id].output for t in node.inputs])
            mapping[node.id] = new.node if isinstance(new, Tensor) \
                else _copy(dst, node, mapping, extra)
            origin.setdefault(mapping[node.id].id, program.user_node(node))
    return Program(dst, tuple(mapping[n.id] for n in program.outputs),
                   tuple(None if n is None or n.id not in live else mapping[n.id]
                         for n in program.inputs), origin)


def _copy_order(nodes: Sequence[Node], live: set[int]) -> list[Node]:
    """Variables first (their names are the keys of session state and must stay exact), then
    the rest in creation order, which keeps every input before its consumers."""
    chosen = [n for n in nodes if n.id in live]
    return [n for n in chosen if n.opdef is VARIABLE] + \
        [n for n in chosen if n.opdef is not VARIABLE]


def _copy(dst: Graph, node: Node, mapping: dict[int, Node], extra: tuple[Node, ...] = ()
          ) -> Node:
    name = node.name + "/" if node.opdef is VARIABLE else node.name
    return dst.create_node(node.opdef, tuple(mapping[t.node.id].output for t in node.inputs),
                           node.attrs, name, TensorType(node.dtype, node.shape), node.location,
                           tuple(mapping[c.id] for c in node.control_inputs) + extra)


def make_node(opdef: OpDef, inputs: Sequence[Tensor], attrs: dict, like: Node) -> Tensor:
    """A new node for a rewrite, in the graph being built, standing for `like`: it takes its
    name and user line, so errors read as if they came from the user's own node."""
    graph = inputs[0].graph if inputs else get_default_graph()
    out = opdef.infer(list(inputs), attrs)
    return graph.create_node(opdef, tuple(inputs), attrs, like.name, out, like.location).output

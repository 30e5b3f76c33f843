"""The one place that orders the compiler's stages, from fetches and feeds to a Plan."""

from __future__ import annotations

from collections.abc import Sequence

from compiler.plan import Plan
from compiler.schedule import schedule, unfed_placeholders
from symgraph.graph import Graph, Node


def compile_plan(graph: Graph, fetches: Sequence[Node], feeds: Sequence[Node]) -> Plan:
    """Prunes the graph to what `fetches` need given `feeds`, and orders the steps."""
    feed_ids = {n.id for n in feeds}
    steps, free_after = schedule(fetches, feed_ids)
    return Plan(graph=graph, steps=steps, fetches=tuple(fetches), feeds=tuple(feeds),
                free_after=free_after, unfed=unfed_placeholders(steps))

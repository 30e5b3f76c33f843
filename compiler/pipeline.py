"""The one place that orders the compiler's stages, from fetches and feeds to a Plan."""

from __future__ import annotations

from collections.abc import Sequence

from compiler import passes
from compiler.plan import Plan
from compiler.program import Program, extract
from compiler.schedule import schedule, unfed_placeholders
from symgraph.graph import Graph, Node

# The optimizing passes, in order. The reference device runs none: it is the oracle.
PASSES = (
    passes.simplify,
    passes.fold_constants,
    passes.eliminate_common_subexpressions,
    passes.simplify,
    passes.eliminate_dead_code,
)


def optimize(program: Program) -> Program:
    for optimization in PASSES:
        program = optimization(program)
    return program


def compile_plan(graph: Graph, fetches: Sequence[Node], feeds: Sequence[Node],
                 optimize_graph: bool = False) -> Plan:
    """Extracts what `fetches` need given `feeds`, optionally optimizes it, orders the steps."""
    program = extract(graph, fetches, feeds)
    if optimize_graph:
        program = optimize(program)
    feed_ids = {n.id for n in program.inputs if n is not None}
    steps, free_after = schedule(program.outputs, feed_ids)
    return Plan(program=program, steps=steps, free_after=free_after,
                unfed=unfed_placeholders(steps))

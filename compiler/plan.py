"""The compiler's output: a Plan, the ordered steps that compute a set of fetches from feeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler.program import Program
from symgraph.graph import Node


@dataclass(frozen=True)
class Plan:
    """What a device executes for one (fetches, feeds) signature.

    Attributes:
      program: the graph the steps belong to, with its outputs (one per fetch) and inputs (one
        placeholder per feed).
      steps: in order; each a Node (computed by the reference function of its op) or a compiled
        kernel (codegen_cpu.Kernel): a fused loop computing several nodes, or one convolution or
        pooling node (codegen_cpu_nn).
      free_after: for each step, the ids of values no later step needs (dropped after it).
      unfed: placeholders the steps need but no feed supplies (the run must fail, naming them).
    """

    program: Program
    steps: tuple[Any, ...]
    free_after: tuple[tuple[int, ...], ...]
    unfed: tuple[Node, ...]

    @property
    def kernels(self) -> list[Any]:
        return [s for s in self.steps if not isinstance(s, Node)]


def describe(plan: Plan) -> str:
    """The plan step by step, for SYMGRAPH_DEBUG=4: each kernel with the user's ops it computes
    (and their lines), each op run by its NumPy reference, and the values dropped after it."""
    program = plan.program
    nodes = program.graph.nodes
    lines = [f"plan: {len(plan.steps)} steps, {len(plan.kernels)} compiled kernels"]
    for i, (step, free) in enumerate(zip(plan.steps, plan.free_after)):
        if isinstance(step, Node):
            user = program.user_node(step)
            lines.append(f"{i:4d} op     {step.opdef.name} {step.shape} "
                         f"'{user.name}' ({user.location})")
        else:
            lines.append(f"{i:4d} kernel {step.name}: {len(step.members)} ops")
            for m in step.members:
                user = program.user_node(m)
                lines.append(f"            {m.opdef.name} {m.shape} '{user.name}' "
                             f"({user.location})")
        if free:
            lines.append("            drops " + ", ".join(
                f"'{program.user_node(nodes[v]).name}'" for v in free))
    return "\n".join(lines)

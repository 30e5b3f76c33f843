"""The compiler's output: a Plan, the ordered steps that compute a set of fetches from feeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler.program import Program
from symgraph.graph import Node


@dataclass(frozen=True)
class Update:
    """A kernel step that computes a variable's next value into the array it reads the old one
    from (an optimizer's update, in place: one copy of each weight and slot, not two).

    The executor passes that array at the step's input positions `slots` (where the variable's
    value goes) and takes it back as the step's output `output`, which the variable's assign
    then keeps. With `reuse`, the array is the variable's own buffer in the session's store:
    no later step reads the variable's old value (nor any view of it) and no fetch returns it.
    Without, it is a copy made for the run, and the old value stays intact for its readers.
    """

    var: Node
    slots: tuple[int, ...]
    output: int
    reuse: bool
    assign: int | None = None  # the variable's assign, which this step makes (fold_assigns)


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
      updates: for each step, the variables it updates in place (usually none).
      folded: for each step, whether a step before it does its work (schedule.fold_assigns):
        an unobserved run skips it.
    """

    program: Program
    steps: tuple[Any, ...]
    free_after: tuple[tuple[int, ...], ...]
    unfed: tuple[Node, ...]
    updates: tuple[tuple[Update, ...], ...] = ()
    folded: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not self.updates:  # one entry per step: the executor zips them with the steps
            object.__setattr__(self, "updates", ((),) * len(self.steps))
        if not self.folded:
            object.__setattr__(self, "folded", (False,) * len(self.steps))

    @property
    def kernels(self) -> list[Any]:
        return [s for s in self.steps if not isinstance(s, Node)]


def describe(plan: Plan) -> str:
    """The plan step by step, for SYMGRAPH_DEBUG=4: each kernel with the user's ops it computes
    (and their lines), each op run by its NumPy reference, and the values dropped after it."""
    program = plan.program
    nodes = program.graph.nodes
    lines = [f"plan: {len(plan.steps)} steps, {len(plan.kernels)} compiled kernels"]
    for i, (step, free, updates) in enumerate(zip(plan.steps, plan.free_after, plan.updates)):
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
        for u in updates:
            how = "its own buffer" if u.reuse else "a copy (its old value is read later or fetched)"
            lines.append(f"            updates '{program.user_node(u.var).name}' in place, "
                         f"in {how}")
        if free:
            lines.append("            drops " + ", ".join(
                f"'{program.user_node(nodes[v]).name}'" for v in free))
    return "\n".join(lines)

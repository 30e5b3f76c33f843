"""Fusion: groups of elementwise nodes that one generated loop computes.

A group is a set of elementwise nodes of one static shape (the iteration space). A node joins a
group when every input it takes from outside the group is computed before the group's first
node: the group then runs, whole, at its first node's place in the schedule, so nothing it needs
comes later and everything it gives is ready for later consumers. This is the one legality rule
(`can_join`); it admits producer-consumer chains and siblings that read the same inputs.
Positions are places in the schedule; values not computed by any step (feeds) are at -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from symgraph.graph import Node
from symgraph.registry import OpKind
from symgraph.shapes import TensorShape

FUSABLE_KINDS = "fb"  # float and bool values; integer math keeps NumPy's error semantics


def is_fusable(node: Node) -> bool:
    """An elementwise node with a scalar template over floats or bools, with no side effects."""
    op = node.opdef
    return (op.kind is OpKind.ELEMENTWISE and op.scalar is not None and op.effect is None
            and not node.control_inputs and node.shape.rank is not None
            and node.dtype.np.kind in FUSABLE_KINDS
            and all(t.dtype.np.kind in FUSABLE_KINDS for t in node.inputs))


@dataclass
class Group:
    """Nodes computed by one kernel, in schedule order."""

    shape: TensorShape
    first: int  # the schedule position of the first member: where the kernel runs
    members: list[Node] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)

    def add(self, node: Node) -> None:
        self.members.append(node)
        self.ids.add(node.id)

    def inputs(self) -> list[Node]:
        """Nodes outside the group whose values members read, in first-use order."""
        seen: dict[int, Node] = {}
        for m in self.members:
            for t in m.inputs:
                if t.node.id not in self.ids:
                    seen.setdefault(t.node.id, t.node)
        return list(seen.values())

    def outputs(self, consumers: dict[int, list[Node]], keep: set[int]) -> list[Node]:
        """Members whose values are needed outside the group (or are fetched)."""
        return [m for m in self.members if m.id in keep
                or any(c.id not in self.ids for c in consumers.get(m.id, ()))]


def can_join(node: Node, group: Group, position: dict[int, int]) -> bool:
    """Whether `node` may be computed in `group`'s loop (see the module docstring)."""
    return (node.shape == group.shape
            and all(t.node.id in group.ids or position.get(t.node.id, -1) < group.first
                    for t in node.inputs))


def find_groups(steps: Sequence[Node]) -> list[Group]:
    """Groups of fusable nodes (a group of one still gets a compiled loop). A node joins the group
    holding one of its inputs if it can, else a recent group it can join (siblings on the same
    data), else starts one."""
    groups: list[Group] = []
    group_of: dict[int, Group] = {}
    position = {n.id: i for i, n in enumerate(steps)}
    for i, node in enumerate(steps):
        if not is_fusable(node):
            continue
        producers = [group_of[t.node.id] for t in node.inputs if t.node.id in group_of]
        candidates = [g for g in producers if can_join(node, g, position)] or \
            [g for g in reversed(groups[-8:]) if can_join(node, g, position)]
        if candidates:
            group = candidates[0]
        else:
            group = Group(node.shape, i)
            groups.append(group)
        group.add(node)
        group_of[node.id] = group
    return groups

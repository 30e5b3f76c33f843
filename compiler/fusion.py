"""Fusion: groups of nodes that one generated loop nest computes.

A group iterates over one static shape. Its members are elementwise nodes of that shape and
reductions of such members (they accumulate as the loop runs). The group runs, whole, at one
place in the schedule (`first`, a member's place: its first member's, or a later one's where the
group waits, below). A node joins a group when every input it takes from outside the group is
computed before that place, so nothing the group needs comes later and everything it gives is
ready for later consumers. A group may wait for a later member's inputs, and run at that
member's place instead, when nothing outside it reads its members' values (or runs after them by
a control dependency) before then: in `tanh(x*2 + exp(v))` with v of another shape, x*2 waits
for exp(v), and one loop computes x*2, the sum and the tanh. Where the shape has None dims, the
node must also read a value of that shape that the group reads or computes, so that it spans the
same loop when fed. A reduction is complete only when the loop ends, so no member may read one.
These rules are `can_join`, the one place that decides.
Positions are places in the schedule; values not computed by any step (feeds) are at -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from symgraph.graph import Node
from symgraph.ops.state import ASSIGN, ASSIGN_ADD, ASSIGN_SUB, VARIABLE
from symgraph.registry import OpKind
from symgraph.shapes import TensorShape

FUSABLE_KINDS = "fb"  # float and bool values; integer math keeps NumPy's error semantics


def _value_inputs(node: Node) -> list:
    return [t for i, t in enumerate(node.inputs) if i not in node.opdef.shape_inputs]


def is_elementwise(node: Node) -> bool:
    """A node a loop can compute one element at a time: an elementwise op, or an op with a
    scalar template whose inputs all have its static shape (sum_to, where it is the identity),
    over floats or bools, with no side effects."""
    op = node.opdef
    return (op.scalar is not None and op.effect is None and not node.control_inputs
            and node.shape.rank is not None and node.dtype.np.kind in FUSABLE_KINDS
            and all(t.dtype.np.kind in FUSABLE_KINDS for t in _value_inputs(node))
            and (op.kind is OpKind.ELEMENTWISE or is_same_shape(node)))


def is_same_shape(node: Node) -> bool:
    """A non-elementwise op fused as elementwise because its static shapes agree; its kernel
    checks that the run-time shapes agree too."""
    return node.opdef.kind is not OpKind.ELEMENTWISE and all(
        t.shape == node.shape for t in node.inputs)


def is_reduction(node: Node) -> bool:
    """A reduction over static axes of a float input, with a combine template."""
    op = node.opdef
    return (op.reduce_combine is not None and not node.control_inputs
            and node.attrs.get("axis") is not None and node.dtype.is_floating
            and node.inputs[0].shape.rank is not None)


@dataclass
class Group:
    """Nodes computed by one kernel, in schedule order."""

    shape: TensorShape
    first: int  # where the kernel runs: the schedule position of a member (the first, or later)
    members: list[Node] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)
    reductions: set[int] = field(default_factory=set)

    def add(self, node: Node) -> None:
        self.members.append(node)
        self.ids.add(node.id)
        if is_reduction(node):
            self.reductions.add(node.id)

    def inputs(self) -> list[Node]:
        """Nodes outside the group whose values or shapes members read, in first-use order."""
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


def _available(t, group: Group, ready: dict[int, int]) -> bool:
    node_id = t.node.id
    if node_id in group.ids:
        return node_id not in group.reductions
    return ready.get(node_id, -1) < group.first


def _same_extent(node: Node, group: Group) -> bool:
    """`node` spans the group's loop at run time: the shape is fully static, or node reads a value
    of that shape which the group reads or computes. Two values of one static shape with None
    dims may differ when fed ((3, 1) and its transpose (1, 3)): the kernel would refuse them."""
    if group.shape.is_fully_defined():
        return True
    shared = group.ids | {t.node.id for m in group.members for t in m.inputs}
    return any(t.node.id in shared and t.shape == group.shape for t in node.inputs)


def _can_wait(group: Group, place: int, ready: dict[int, int],
              readers: dict[int, list[Node]], inside: set[int] | None = None) -> bool:
    """Nothing outside `group` (or `inside`, the loop it is to join) reads a member's value, or
    depends on a member by a control input, before `place`: the group may run there instead of
    at its own place."""
    inside = group.ids if inside is None else inside
    return all(r.id in inside or ready[r.id] >= place
               for m in group.members for r in readers.get(m.id, ()))


def can_join(node: Node, group: Group, ready: dict[int, int]) -> bool:
    """Whether `node` may be computed in `group`'s loop (see the module docstring). `ready`:
    where each node's value is computed (its group's place, or its own)."""
    if is_reduction(node):
        x = node.inputs[0]
        return (x.node.id in group.ids and x.node.id not in group.reductions
                and x.shape == group.shape)
    return (node.shape == group.shape and _same_extent(node, group)
            and all(_available(t, group, ready) for t in node.inputs))


def find_groups(steps: Sequence[Node]) -> list[Group]:
    """Groups of fusable nodes (a group of one still gets a compiled loop). A node joins the group
    holding one of its inputs if it can, else a recent group it can join (siblings on the same
    data), else starts one. A reduction only ever joins the group of its input."""
    groups: list[Group] = []
    group_of: dict[int, Group] = {}
    position = {n.id: i for i, n in enumerate(steps)}
    ready = dict(position)  # where each value is computed: its group's place, once grouped
    readers: dict[int, list[Node]] = {}  # through data and control inputs
    for node in steps:
        for t in {t.node.id: t for t in node.inputs}.values():
            readers.setdefault(t.node.id, []).append(node)
        for c in node.control_inputs:
            readers.setdefault(c.id, []).append(node)
    for i, node in enumerate(steps):
        reduction = is_reduction(node)
        if not reduction and not is_elementwise(node):
            continue
        producers = [group_of[t.node.id] for t in node.inputs if t.node.id in group_of]
        candidates = [g for g in producers if can_join(node, g, ready)]
        if not candidates and not reduction:
            candidates = [g for g in reversed(groups[-8:])
                          if _shares_data(node, g) and can_join(node, g, ready)]
        if not candidates and not reduction:  # a producer's group that can wait for node
            waiting = next((g for g in producers if _waits_for(node, g, i, ready, readers)),
                           None)  # (the first that can: _waits_for moves it)
            candidates = [] if waiting is None else [waiting]
        if candidates:
            group = candidates[0]
        elif reduction:
            continue  # its input is computed elsewhere: the reference reduction runs it
        else:
            group = Group(node.shape, i)
            groups.append(group)
        group.add(node)
        group_of[node.id] = group
        ready[node.id] = group.first
        for other in producers:  # siblings that meet here: one loop, if legal
            if other is group or other.first >= group.first or not any(g is other for g in groups):
                continue
            if _absorb(other, group, position, ready):  # at the earlier one's place
                groups = [g for g in groups if g is not group]
                group_of.update((m.id, other) for m in group.members)
                group = other
            elif _can_wait(other, group.first, ready, readers, other.ids | group.ids) \
                    and _absorb(group, other, position, ready):  # the earlier one waits
                groups = [g for g in groups if g is not other]
                group_of.update((m.id, group) for m in other.members)
    return groups


def _waits_for(node: Node, group: Group, place: int, ready: dict[int, int],
               readers: dict[int, list[Node]]) -> bool:
    """`group` can wait to run at `place` (node's), and node can then join it; if so the group
    is moved there."""
    if not _can_wait(group, place, ready, readers):
        return False
    earlier, group.first = group.first, place
    if not can_join(node, group, ready):
        group.first = earlier
        return False
    ready.update((m.id, place) for m in group.members)
    return True


def _shares_data(node: Node, group: Group) -> bool:
    """`node` reads a tensor that `group` reads or computes (a scalar that every update reads
    does not count), or the loop is over scalars (one loop of all such work compiles once).
    Unrelated loops of one shape (the updates of two biases) stay apart: each then matches the
    kernels of its kind elsewhere, where their union would be one more kernel to compile
    (~0.25 s cold) to save a call (~1 us) a step. Siblings whose values meet later are joined
    there (_absorb)."""
    if group.shape.rank == 0:
        return True
    shared = group.ids | {t.node.id for m in group.members for t in m.inputs}
    return any(t.node.id in shared and t.shape == group.shape for t in node.inputs)


def _absorb(into: Group, other: Group, position: dict[int, int], ready: dict[int, int]
            ) -> bool:
    """Moves every member of `other` into `into`, to run at into's place, if each can join it
    (its inputs are ready by then); members stay in schedule order."""
    trial = Group(into.shape, into.first, list(into.members), set(into.ids),
                  set(into.reductions))
    for m in other.members:
        if not can_join(m, trial, ready):
            return False
        trial.add(m)
    if any(t.node.id in trial.reductions for m in into.members for t in m.inputs):
        return False  # a later loop's member would read a sum before the loop ends
    into.members = sorted(trial.members, key=lambda m: position[m.id])
    into.ids, into.reductions = trial.ids, trial.reductions
    ready.update((m.id, into.first) for m in other.members)
    return True


def in_place_updates(groups: Sequence[Group], steps: Sequence[Node]
                     ) -> list[list[tuple[Node, Node]]]:
    """For each group, the (variable, member) pairs its kernel computes in place: the member's
    value is assigned to the variable by its only writer among the steps, and the group reads
    the variable's value at the member's whole static shape (rank >= 1, no broadcasting), so
    the loop can store element i of the new value where it has just read element i of the old
    one (TF1's ApplyAdam, ApplyMomentum). The kernel is then rendered only that way; whether a
    run may hand it the variable's own array, or a copy, is decided on the final steps
    (schedule.in_place_updates)."""
    writers: dict[int, int] = {}
    for n in steps:
        if n.opdef in (ASSIGN, ASSIGN_ADD, ASSIGN_SUB):
            writers[n.inputs[0].node.id] = writers.get(n.inputs[0].node.id, 0) + 1
    group_of = {m.id: g for g in groups for m in g.members}
    pairs: dict[int, list[tuple[Node, Node]]] = {id(g): [] for g in groups}
    for n in steps:
        if n.opdef is not ASSIGN:
            continue
        var, value = n.inputs[0].node, n.inputs[1].node
        group = group_of.get(value.id)
        if (group is None or var.opdef is not VARIABLE or writers[var.id] != 1
                or value.id in group.reductions or group.shape.rank == 0
                or not group.shape.is_fully_defined() or var.shape != group.shape
                or value.shape != group.shape or value.dtype != var.dtype):
            continue
        if any(value.id == m.id or var.id == v.id for v, m in pairs[id(group)]):
            continue  # one member's value assigned twice: the first variable takes it
        if any(t.node.id == var.id and i not in m.opdef.shape_inputs
               for m in group.members for i, t in enumerate(m.inputs)):
            pairs[id(group)].append((var, value))
    return [pairs[id(g)] for g in groups]

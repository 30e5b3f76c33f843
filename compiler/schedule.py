"""Pruning to the fetched subgraph, ordering its steps, when each value can be dropped, and
which in-place updates may write the variable's own buffer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from compiler.plan import Update
from compiler.program import live_nodes
from symgraph.graph import Node
from symgraph.ops.state import ASSIGN, READ_VARIABLE
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
    """The nodes to compute: leaves first, then scalars computed from leaves alone, then the rest
    in creation order (a topological order: inputs are always created first).

    Creation order also fixes the order of state ops: a variable's tensor is read before any
    assignment (an assignment is created after its variable), and `read_value()` reads after
    its control dependencies. Reading every variable first keeps that true. The early scalars
    (Adam's lr_t, from its beta powers) are then ready before any loop that reads them starts,
    so an update may join a loop that began before the update's own scalars were created.
    """
    needed = [n for n in needed_nodes(fetches, feeds) if n.id not in feeds]
    early: set[int] = set()
    for n in sorted(needed, key=lambda n: n.id):
        if _is_early_scalar(n, early, feeds):
            early.add(n.id)
    return sorted(needed, key=lambda n: (not is_leaf(n), n.id not in early, n.id))


def _is_early_scalar(node: Node, early: set[int], feeds: set[int]) -> bool:
    """A pure scalar whose inputs are all leaves (fed or not) or early scalars."""
    op = node.opdef
    return (op.effect is None and op.numpy is not None and op.has_output
            and not node.control_inputs and node.shape.is_fully_defined()
            and node.shape.num_elements() == 1
            and all(t.node.id in early or t.node.id in feeds or is_leaf(t.node)
                    for t in node.inputs))


def step_inputs(step: Any) -> tuple[int, ...]:
    """Ids of the values a step reads: a node's data inputs, or a kernel's inputs."""
    if isinstance(step, Node):
        refs = step.opdef.ref_inputs
        return tuple(t.node.id for i, t in enumerate(step.inputs) if i not in refs)
    return step.inputs


def step_outputs(step: Any) -> tuple[int, ...]:
    """Ids of the values a step makes: a node's own (none for no_op), or a kernel's outputs."""
    if isinstance(step, Node):
        return (step.id,) if step.opdef.has_output else ()
    return step.outputs


def may_share_memory(step: Any) -> tuple[int, ...]:
    """Ids of the values whose memory a step's outputs may share. A node run by its NumPy
    reference may return a view of an input (transpose, reshape) or the input itself
    (check_numerics): any of them. A compiled kernel's outputs are new arrays, except the inputs
    it declares it passes through as they are (`passes_through`, input positions: the cuda
    check_numerics returns x once it has scanned it)."""
    if isinstance(step, Node):
        return step_inputs(step)
    return tuple(step.inputs[k] for k in getattr(step, "passes_through", ()))


def lifetimes(steps: Sequence[Any], keep: set[int]) -> tuple[tuple[int, ...], ...]:
    """For each step, the ids of values that no later step reads (and are not fetched): after
    their last reader, or, read by none, after the step that makes them (a kernel's output that
    only some fetches need, an assignment's value)."""
    last_use: dict[int, int] = {}
    for i, step in enumerate(steps):
        for value_id in step_outputs(step):
            last_use.setdefault(value_id, i)
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


def in_place_updates(steps: Sequence[Any], pairs: Sequence[tuple[Node, Node]],
                     keep: set[int]) -> tuple[tuple[Update, ...], ...]:
    """For each step, the in-place updates it makes (plan.Update): `pairs` are the (variable,
    value) pairs whose kernels were rendered in place (fusion.in_place_updates).

    An update may write the variable's own buffer (`reuse`) when, from that step on, nothing
    reads the variable's old value: every consumer in a run sees the value from before the
    run's assignments (TF1), and a fetched variable returns it. Values that may share its
    memory count as the value (may_share_memory: a node's output when it reads one of them, a
    kernel's when it passes one through). A `read_variable` between the step and the assign
    would see the new value early.
    """
    var_of = {value.id: var for var, value in pairs}
    at: dict[int, int] = {}  # variable id -> the step that updates it
    for p, step in enumerate(steps):
        if not isinstance(step, Node):
            at.update((var_of[out].id, p) for out in step.outputs if out in var_of)
    assign_at = {s.inputs[0].node.id: j for j, s in enumerate(steps) if isinstance(s, Node)
                 and s.opdef is ASSIGN and s.inputs[1].node.id in var_of}
    old: dict[int, set[int]] = {v: {v} for v in at}  # value id -> variables it may view
    early: set[int] = set()  # variables read by a read_variable after their update step
    last_use: dict[int, int] = {}
    for j, s in enumerate(steps):
        for v in step_inputs(s):
            last_use[v] = j
        var = s.inputs[0].node.id if isinstance(s, Node) and s.opdef is READ_VARIABLE else None
        if var in at and j < assign_at.get(var, len(steps)):
            old[s.id] = {var}
            if j > at[var]:
                early.add(var)
            continue
        seen = set().union(*(old.get(v, ()) for v in may_share_memory(s)))
        if seen:
            old.update((out, seen) for out in step_outputs(s))
    views: dict[int, list[int]] = {}  # variable id -> the values that may view its old value
    for value, variables in old.items():
        for var in variables:
            views.setdefault(var, []).append(value)

    def may_reuse(var: int, p: int, slots: tuple[int, ...]) -> bool:
        others = [v for k, v in enumerate(steps[p].inputs) if k not in slots]
        return var not in early and not any(
            v in keep or last_use.get(v, -1) > p or v in others for v in views[var])

    updates: list[tuple[Update, ...]] = []
    for p, step in enumerate(steps):
        found = []
        if not isinstance(step, Node):
            for q, out in enumerate(step.outputs):
                var = var_of.get(out)
                if var is not None:
                    slots = tuple(k for k, v in enumerate(step.inputs) if v == var.id)
                    found.append(Update(var, slots, q, may_reuse(var.id, p, slots)))
        updates.append(tuple(found))
    return tuple(updates)


def fold_assigns(steps: Sequence[Any], updates: tuple[tuple[Update, ...], ...]
                 ) -> tuple[tuple[tuple[Update, ...], ...], tuple[bool, ...]]:
    """The updates with each assign that comes right after its kernel step (only such assigns
    between them), and keeps the value that step computed in place, given to that step to make
    (Update.assign); and which steps are thereby folded (the executor's unobserved loop skips
    them). An assign run as a step of its own cost ~3.5 us: W1's twenty, 70 us of its ~3 ms."""
    new = [list(found) for found in updates]
    folded = [False] * len(steps)
    for p, found in enumerate(updates):
        by_value = {steps[p].outputs[u.output]: k for k, u in enumerate(found)}
        j = p + 1
        while found and j < len(steps):
            step = steps[j]
            if not isinstance(step, Node) or step.opdef is not ASSIGN:
                break
            k = by_value.get(step.inputs[1].node.id)
            if k is None or found[k].var.id != step.inputs[0].node.id \
                    or new[p][k].assign is not None:
                break
            new[p][k] = replace(found[k], assign=step.id)
            folded[j] = True
            j += 1
    return tuple(tuple(found) for found in new), tuple(folded)

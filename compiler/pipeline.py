"""The one place that orders the compiler's stages, from fetches and feeds to a Plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compiler import passes
from compiler.cache import debug
from compiler.plan import Plan, describe
from compiler.program import Program, extract
from compiler.schedule import (
    fold_assigns,
    in_place_updates,
    lifetimes,
    schedule,
    unfed_placeholders,
)
from symgraph.graph import Graph, Node

# The optimizing passes, in order. The reference device runs none: it is the oracle.
PASSES = (
    passes.expand_relative_assignments,
    passes.forward_assigned_values,
    passes.simplify,
    passes.fold_constants,
    passes.eliminate_common_subexpressions,
    passes.simplify,
    passes.eliminate_dead_code,
)
TARGETS = ("reference", "cpu", "cuda")


def optimize(program: Program) -> Program:
    for optimization in PASSES:
        before = len(program.graph.nodes)
        program = optimization(program)
        debug(1, f"pass {optimization.__name__}: {before} -> {len(program.graph.nodes)} nodes")
    return program


def fuse(steps: list[Node], program: Program, target: str = "cpu"
         ) -> tuple[list[Any], list[tuple[Node, Node]]]:
    """Replaces each fusable group of steps by one compiled kernel, run at the group's place
    (fusion.Group.first, a member's), and each node with a kernel of its own (cpu: convolution
    and pooling, codegen_cpu_nn; cuda: matmul, softmax, cross-entropy, convolution and pooling,
    codegen_cuda_ops) by it.
    Also returns the (variable, value) pairs whose kernels compute the value in place."""
    from compiler import fusion

    if target == "cuda":
        from compiler.codegen_cuda import compile_group
        from compiler.codegen_cuda_ops import compile_node
    else:
        from compiler.codegen_cpu_startup import start_numba

        start_numba()  # once per process (gc.freeze: see there)
        from compiler.codegen_cpu import compile_group  # imports Numba: only when compiling
        from compiler.codegen_cpu_nn import compile_node, share_patches, share_winners

    consumers: dict[int, list[Node]] = {}
    for node in steps:
        for t in node.inputs:
            consumers.setdefault(t.node.id, []).append(node)
    keep = {n.id for n in program.outputs}
    kernel_at: dict[int, Any] = {}
    fused: set[int] = set()
    groups = fusion.find_groups(steps)
    node_kernels: dict[int, Any] = {}
    for node in steps:
        kernel = compile_node(node)
        if kernel is not None:
            debug(1, f"kernel {kernel.name}: {node.opdef.name}")
            node_kernels[node.id] = kernel
    in_place = fusion.in_place_updates(groups, steps)
    for group, pairs in zip(groups, in_place):
        if target == "cpu":  # an epilogue that stores into its product (conv, matmul)
            from compiler.epilogue import in_place_products

            pairs = pairs + in_place_products(group, group.outputs(consumers, keep),
                                              consumers, keep, node_kernels)
        kernel = (compile_group(group, consumers, keep, pairs) if pairs
                  else compile_group(group, consumers, keep))
        debug(1, f"kernel {kernel.name}: " + " -> ".join(m.opdef.name for m in group.members))
        kernel_at[steps[group.first].id] = kernel
        fused |= group.ids
    kernel_at.update(node_kernels)
    compiled = [kernel_at.get(n.id, n) for n in steps if n.id not in fused or n.id in kernel_at]
    if target == "cpu":
        from compiler.epilogue import attach_epilogues

        share_patches(list(kernel_at.values()))
        share_winners(list(kernel_at.values()))
        compiled = attach_epilogues(compiled, keep)
    return compiled, [pair for pairs in in_place for pair in pairs]


def compile_plan(graph: Graph, fetches: Sequence[Node], feeds: Sequence[Node],
                 target: str = "reference") -> Plan:
    """Extracts what `fetches` need given `feeds`; for "cpu" and "cuda" also optimizes it and
    compiles fused kernels; orders the steps and plans when each value is dropped."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    program = extract(graph, fetches, feeds)
    if target != "reference":
        program = optimize(program)
    feed_ids = {n.id for n in program.inputs if n is not None}
    nodes = schedule(program.outputs, feed_ids)
    unfed = unfed_placeholders(nodes)
    compiled = target != "reference" and not unfed
    steps, pairs = fuse(nodes, program, target) if compiled else (nodes, [])
    keep = {n.id for n in program.outputs}
    updates, folded = fold_assigns(steps, in_place_updates(steps, pairs, keep))
    plan = Plan(program=program, steps=tuple(steps), free_after=lifetimes(steps, keep),
                unfed=unfed, updates=updates, folded=folded)
    debug(4, describe(plan))
    return plan

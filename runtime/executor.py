"""Runs a Plan: reference steps through NumPy, compiled kernels directly."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.reference import evaluate
from symgraph.errors import InvalidArgumentError, OpError
from symgraph.graph import Node

fallbacks = 0  # kernels that refused their inputs' shapes and ran node by node (tests read it)


def run_steps(plan: Any, values: dict[int, Any], state: Any) -> dict[int, Any]:
    """Runs a plan's steps; `values` holds the fed values by node id and gets every result."""
    with np.errstate(all="ignore"):  # inf and nan propagate as in TF1; no warnings per op
        for step, free in zip(plan.steps, plan.free_after):
            if isinstance(step, Node):
                _run_node(step, values, state)
            else:
                _run_kernel(step, values, state)
            for value_id in free:
                values.pop(value_id, None)
    return values


def _run_node(node: Node, values: dict[int, Any], state: Any) -> None:
    refs = node.opdef.ref_inputs
    args = [None if i in refs else values[t.node.id] for i, t in enumerate(node.inputs)]
    try:
        values[node.id] = evaluate(node, args, state)
    except OpError:
        raise
    except Exception as e:  # a NumPy error for run-time values: name the op and its inputs
        inputs = ", ".join(f"{t.name} {np.shape(a)} {np.asarray(a).dtype}"
                           for t, a in zip(node.inputs, args) if a is not None)
        raise InvalidArgumentError(f"{node.describe()} failed on inputs [{inputs}]: "
                                   f"{type(e).__name__}: {e}", node) from e


def _run_kernel(kernel: Any, values: dict[int, Any], state: Any) -> None:
    try:
        outs = kernel.fn(*[values[i] for i in kernel.inputs])
    except ValueError:
        # The kernel refuses shapes it cannot loop over (operands that do not broadcast, or a
        # member smaller than the group at run time). Running its nodes one by one gives the
        # right values, or the error that names the user's op.
        global fallbacks
        fallbacks += 1
        for node in kernel.members:
            _run_node(node, values, state)
        return
    for value_id, out in zip(kernel.outputs, outs):
        values[value_id] = out

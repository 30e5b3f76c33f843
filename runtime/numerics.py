"""check_numerics=True: find the first op whose value holds NaN or Inf, and say so.

After each step the checker looks at the values the step wrote. A fused kernel computes many
ops in one loop and writes only some of their values, so when one of its outputs is bad the
kernel's ops are re-run one by one through NumPy (the reference) on the same inputs, and the
first op whose value holds NaN or Inf is the one named. Values a kernel computes and consumes
internally are seen only through the outputs they reach.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.profiler import step_writes
from runtime.reference import evaluate
from symgraph.errors import InvalidArgumentError
from symgraph.graph import Node
from symgraph.ops.numerics import describe_values


def is_bad(value: Any) -> bool:
    """A floating array with a NaN or an Inf in it."""
    return (isinstance(value, np.ndarray) and value.dtype.kind in "fc"
            and not np.isfinite(value).all())


class NumericsChecker:
    """An executor observer that raises InvalidArgumentError at the first NaN or Inf."""

    def begin(self, plan: Any, values: dict[int, Any]) -> None:
        program = plan.program
        for node in program.inputs:
            if node is not None and is_bad(values.get(node.id)):
                user = program.user_node(node)
                raise InvalidArgumentError(
                    f"check_numerics: the value fed for {user.output.describe()} holds NaN or "
                    f"Inf ({describe_values(values[node.id])})", node)

    def after_step(self, plan: Any, index: int, step: Any, values: dict[int, Any], state: Any,
                   start: int, end: int) -> None:
        for value_id in step_writes(step):
            if is_bad(values.get(value_id)):
                if isinstance(step, Node):
                    refs = step.opdef.ref_inputs
                    args = [None if i in refs else values.get(t.node.id)
                            for i, t in enumerate(step.inputs)]
                    raise _error(plan, step, args, values[value_id], "")
                _blame_kernel(plan, step, values, state, value_id)

    def end(self, plan: Any, values: dict[int, Any]) -> None:
        pass


def _blame_kernel(plan: Any, kernel: Any, values: dict[int, Any], state: Any,
                  bad_id: int) -> None:
    """Re-runs the kernel's ops one by one with NumPy and raises naming the first bad one."""
    local = {i: values[i] for i in kernel.inputs if i in values}
    chain = " -> ".join(m.opdef.name for m in kernel.members[:8])
    if len(kernel.members) > 8:
        chain += f" -> ... ({len(kernel.members)} ops)"
    where = f"inside fused kernel {kernel.name} ({chain}), found by re-running its ops one by one"
    with np.errstate(all="ignore"):
        for member in kernel.members:
            args = [local.get(t.node.id) for t in member.inputs]
            local[member.id] = out = evaluate(member, args, state)
            if is_bad(out):
                raise _error(plan, member, args, out, where)
    member = next(m for m in kernel.members if m.id == bad_id)
    args = [local.get(t.node.id) for t in member.inputs]
    raise _error(plan, member, args, values[bad_id],
                 f"inside fused kernel {kernel.name}; NumPy computes finite values for all its "
                 "ops from the same inputs, so the compiled loop differs from the reference here")


def _error(plan: Any, node: Node, args: list, out: np.ndarray, where: str) -> InvalidArgumentError:
    program = plan.program
    user = program.user_node(node)
    verb = "holds" if node.opdef.effect is not None and not node.inputs else "produced"
    lines = [f"check_numerics: {user.describe()} {verb} NaN or Inf ({describe_values(out)})"
             + (f"\n  {where}" if where else "")]
    refs = node.opdef.ref_inputs
    for i, (t, value) in enumerate(zip(node.inputs, args)):
        if i in refs or value is None:
            continue
        source = program.user_node(t.node)
        lines.append(f"  input {i}: '{source.output.name}' from {source.location} "
                     f"({describe_values(value)})")
    return InvalidArgumentError("\n".join(lines), node)

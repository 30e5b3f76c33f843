"""Runs a Plan: reference steps through NumPy, compiled kernels directly.

Observers (a run's Tracer, its NumericsChecker) see each step as it finishes; a run without
them takes the plain loop and pays nothing for their existence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from runtime.numerics import NumericsChecker
from runtime.profiler import Tracer, wants_trace
from runtime.reference import evaluate
from symgraph.errors import InvalidArgumentError, OpError
from symgraph.graph import Node

fallbacks = 0  # kernels that refused their inputs' shapes and ran node by node (tests read it)


def observers_for(options: Any, run_metadata: Any, check_numerics: bool,
                  device: str = "") -> list[Any]:
    """The observers one Session.run asks for: a Tracer when it is traced (TF1's RunOptions
    with a trace level, and a RunMetadata to fill), a NumericsChecker when numerics are
    checked. Usually none."""
    observers: list[Any] = []
    if check_numerics:
        observers.append(NumericsChecker())
    if wants_trace(options, run_metadata):
        observers.append(Tracer(run_metadata, device))
    return observers


def run_steps(plan: Any, values: dict[int, Any], state: Any,
              observers: Sequence[Any] = ()) -> dict[int, Any]:
    """Runs a plan's steps; `values` holds the fed values by node id and gets every result."""
    with np.errstate(all="ignore"):  # inf and nan propagate as in TF1; no warnings per op
        if observers:
            return _run_observed(plan, values, state, observers)
        for step, free, updates, folded in zip(plan.steps, plan.free_after, plan.updates,
                                               plan.folded):
            if folded:  # an assign that the kernel step before it made (fold_assigns)
                pass
            elif isinstance(step, Node):
                _run_node(step, values, state)
            else:
                _run_kernel(step, values, state, updates, fold=True)
            for value_id in free:
                values.pop(value_id, None)
    return values


def _run_observed(plan: Any, values: dict[int, Any], state: Any,
                  observers: Sequence[Any]) -> dict[int, Any]:
    """The same loop, with each step timed and shown to the observers before its inputs are
    dropped (`begin` sees the feeds; `end` runs only when every step succeeded). A checked
    run updates variables in copies: a step that makes a NaN fails before its assignment,
    leaving the variable as it was, and the checker can re-run it on its inputs."""
    clock = time.perf_counter_ns
    for observer in observers:
        observer.begin(plan, values)
    checked = any(isinstance(o, NumericsChecker) for o in observers)
    for index, (step, free, updates) in enumerate(
            zip(plan.steps, plan.free_after, plan.updates)):
        start = clock()
        if isinstance(step, Node):
            _run_node(step, values, state)
        else:
            _run_kernel(step, values, state, updates, reuse=not checked)
        end = clock()
        for observer in observers:
            observer.after_step(plan, index, step, values, state, start, end)
        for value_id in free:
            values.pop(value_id, None)
    for observer in observers:
        observer.end(plan, values)
    return values


def _run_node(node: Node, values: dict[int, Any], state: Any) -> None:
    refs = node.opdef.ref_inputs
    args = [None if i in refs else values[t.node.id] for i, t in enumerate(node.inputs)]
    values[node.id] = evaluate_naming_errors(node, args, state)


def evaluate_naming_errors(node: Node, args: list, state: Any) -> Any:
    """The node's reference value; any failure comes back naming the op, its line and its
    inputs' shapes and dtypes (every device's host path goes through here)."""
    try:
        return evaluate(node, args, state)
    except OpError as e:
        if e.node is None:  # raised by an op's own function (check_numerics): name the op
            raise type(e)(f"{node.describe()}: {e}", node) from None
        raise
    except Exception as e:  # a NumPy error for run-time values: name the op and its inputs
        inputs = ", ".join(f"{t.name} {np.shape(a)} {np.asarray(a).dtype}"
                           for t, a in zip(node.inputs, args) if a is not None)
        raise InvalidArgumentError(f"{node.describe()} failed on inputs [{inputs}]: "
                                   f"{type(e).__name__}: {e}", node) from e


def _run_kernel(kernel: Any, values: dict[int, Any], state: Any,
                updates: Sequence[Any] = (), reuse: bool = True, fold: bool = False) -> None:
    """Runs a kernel step; with `fold`, also the assigns folded into it (Update.assign): the
    variable keeps the value computed into its array, as its assign would have it keep."""
    args = [values[i] for i in kernel.inputs]
    buffers = []
    for update in updates:  # compiler.plan.Update: the kernel writes the variable's array
        buffer = state.buffer_for_update(update.var, args[update.slots[0]],
                                         reuse and update.reuse)
        for k in update.slots:
            args[k] = buffer
        buffers.append(buffer)
    try:
        outs = kernel.function_for(args)(*args)
    except ValueError:
        # The kernel refuses shapes it cannot loop over (operands that do not broadcast, or a
        # member smaller than the group at run time). Running its nodes one by one gives the
        # right values, or the error that names the user's op.
        global fallbacks
        fallbacks += 1
        for node in kernel.members:
            _run_node(node, values, state)
        if fold:
            _assign_folded(kernel, values, state, updates)
        return
    if buffers:
        outs = list(outs)
        for update, buffer in zip(updates, buffers):
            # the variable's next value: a read-only view of the buffer, which its assign
            # keeps (the buffer itself stays writable, for the next update)
            outs[update.output] = buffer.view()
    for value_id, out in zip(kernel.outputs, outs):
        # a kernel's outputs are new arrays that nothing writes to again: read-only, a variable
        # assigned one keeps it without a copy (a fetch of one gets a copy instead)
        out.setflags(write=False)
        values[value_id] = out
    if fold:
        _assign_folded(kernel, values, state, updates)


def _assign_folded(kernel: Any, values: dict[int, Any], state: Any,
                   updates: Sequence[Any]) -> None:
    """What the assigns folded into a kernel step do (schedule.fold_assigns): the variable
    keeps the value, which is also the assign's own value."""
    for update in updates:
        if update.assign is not None:
            value = values[kernel.outputs[update.output]]
            state.write(update.var, value)
            values[update.assign] = value

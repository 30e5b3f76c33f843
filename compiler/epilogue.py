"""Epilogues: a matmul or convolution and the fused elementwise kernel that takes its result
(bias-add, activation, ...) run as one step.

The product goes straight from BLAS into the fused loop, while it is still in cache, and never
becomes a value the executor stores, drops or lets a profile or a picture show apart: in a plan,
`dense` is one step. Only a product that nothing else reads (not another step, not a fetch)
is folded in; the elementwise kernel keeps its place, after every other value it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.schedule import step_inputs
from symgraph.graph import Node
from symgraph.registry import OpKind

# ops whose result may open an epilogue: BLAS products (node steps), and convolution kernels
PRODUCERS = ("matmul", "conv2d")


@dataclass(frozen=True)
class Epilogue:
    """A product and the kernel that consumes it, as one kernel step (see the module doc)."""

    name: str
    fn: Callable[..., tuple]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    members: tuple[Node, ...]
    producer: Any = None  # the product's step (a Node or a kernel): its temporaries count too

    def function_for(self, args: Sequence[Any]) -> Callable[..., tuple]:
        return self.fn


def _producer(step: Any) -> tuple[Callable[..., Any], int, str] | None:
    """(fn(*inputs) -> product, product id, name) for a step that may open an epilogue."""
    if isinstance(step, Node):
        if step.opdef.kind is not OpKind.MATMUL or step.opdef.name not in PRODUCERS:
            return None
        op, attrs, dtype = step.opdef.numpy, dict(step.attrs), step.dtype.np
        return (lambda *a: np.asarray(op(*a, **attrs), dtype=dtype)), step.id, step.opdef.name
    members = getattr(step, "members", ())
    if len(members) == 1 and members[0].opdef.name in PRODUCERS and len(step.outputs) == 1:
        kernel = step
        return (lambda *a: kernel.fn(*a)[0]), step.outputs[0], kernel.name
    return None


def _is_fused_loop(step: Any) -> bool:
    """A kernel generated from a group of elementwise ops and reductions (codegen_cpu)."""
    return not isinstance(step, Node) and hasattr(step, "function_for") and all(
        m.opdef.scalar is not None or m.opdef.reduce_combine is not None for m in step.members)


def attach_epilogues(steps: Sequence[Any], keep: set[int]) -> list[Any]:
    """The steps with each product that only one fused loop reads folded into that loop."""
    readers: dict[int, list[int]] = {}
    for i, step in enumerate(steps):
        for value_id in set(step_inputs(step)):
            readers.setdefault(value_id, []).append(i)
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for i, step in enumerate(steps):
        found = _producer(step)
        if found is None:
            continue
        product, value_id, name = found
        users = readers.get(value_id, [])
        if value_id in keep or len(users) != 1 or users[0] in replaced:
            continue
        consumer = steps[users[0]]
        if not _is_fused_loop(consumer):
            continue
        replaced[users[0]] = _join(step, product, value_id, name, consumer)
        dropped.add(i)
    return [replaced.get(i, s) for i, s in enumerate(steps) if i not in dropped]


def _join(producer: Any, product: Callable[..., Any], value_id: int, name: str,
          consumer: Any) -> Epilogue:
    head = step_inputs(producer)
    rest = [v for v in consumer.inputs if v != value_id]
    # where each of the consumer's inputs comes from: the product (None) or an argument
    where = [None if v == value_id else len(head) + rest.index(v) for v in consumer.inputs]
    split = len(head)

    def run(*args: Any) -> tuple:
        out = product(*args[:split])
        # read-only, as every kernel output is (runtime.executor): a loop shared by an
        # epilogue and by other steps then compiles one version, not one per writability
        out.setflags(write=False)
        loop_args = [out if k is None else args[k] for k in where]
        return consumer.function_for(loop_args)(*loop_args)

    members = tuple(producer.members) if hasattr(producer, "members") else (producer,)
    return Epilogue(f"{name}+{consumer.name}", run, tuple(head) + tuple(rest),
                    tuple(consumer.outputs), members + tuple(consumer.members), producer)

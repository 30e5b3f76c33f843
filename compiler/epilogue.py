"""Epilogues: a matmul or convolution and the fused elementwise kernel that takes its result
(bias-add, activation, ...) run as one step.

The product goes straight from BLAS into the fused loop, while it is still in cache, and never
becomes a value the executor stores, drops or lets a profile or a picture show apart: in a plan,
`dense` is one step. Only a product that nothing else reads (not another step, not a fetch)
is folded in; the elementwise kernel keeps its place, after every other value it reads.

Where it can (in_place_products), the loop goes further: rendered to store its result into
the product's own array, it runs on blocks of rows. A convolution calls it on each block of
output rows as soon as its thread has computed it, on that thread, while the block is in that
core's cache, instead of over the whole product afterwards on the main thread (W3's first
layer's bias and ReLU, 64x28x28x32, read and wrote 6.4 MB from the shared cache in ~0.5 ms);
a matrix product's rows are split over the threads after the GEMM.
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
    in_place: bool = False  # the loop's output is the product's array (in_place_products)

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


def in_place_products(group: Any, outputs: Sequence[Node], consumers: dict[int, list[Node]],
                      keep: set[int], kernels: dict[int, Any]) -> list[tuple[Node, Node]]:
    """The (product, output) pair whose product the group's loop may overwrite with its one
    output, block by block (see the module doc), or none. The product is a convolution with a
    kernel of its own (rank 4), or a matrix product (rank 2, BLAS); the group is its only
    reader and is elementwise over exactly its shape (the same static dims and dtype); every
    other value it reads is a scalar or a vector along the last axis (a bias), so that any
    block of whole rows is the loop over that block."""
    if group.reductions or len(outputs) != 1:
        return []
    out = outputs[0]
    inputs = group.inputs()
    for node in inputs:
        rank = {"conv2d": 4, "matmul": 2}.get(node.opdef.name)
        if (rank is None or (node.opdef.name == "conv2d") != (node.id in kernels)
                or node.id in keep or node.shape.rank != rank or None in node.shape.dims[1:]
                or not node.dtype.is_floating
                or out.shape != node.shape or group.shape != node.shape
                or out.dtype != node.dtype
                or any(c.id not in group.ids for c in consumers.get(node.id, ()))):
            continue
        channels = node.shape.dims[-1]
        if all(other is node or other.shape.rank == 0 or (
                other.shape.rank == 1 and other.shape.dims[0] in (1, channels))
               for other in inputs):
            return [(node, out)]
    return []


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
    members = tuple(producer.members) if hasattr(producer, "members") else (producer,)
    if consumer.inputs.index(value_id) in getattr(consumer, "writes", ()):
        return _join_in_place(producer, where, split, consumer, name, head, rest, members)

    def run(*args: Any) -> tuple:
        out = product(*args[:split])
        # read-only, as every kernel output is (runtime.executor): a loop shared by an
        # epilogue and by other steps then compiles one version, not one per writability
        out.setflags(write=False)
        loop_args = [out if k is None else args[k] for k in where]
        return consumer.function_for(loop_args)(*loop_args)

    return Epilogue(f"{name}+{consumer.name}", run, tuple(head) + tuple(rest),
                    tuple(consumer.outputs), members + tuple(consumer.members), producer)


def _join_in_place(producer: Any, where: list[int | None], split: int, consumer: Any,
                   name: str, head: Sequence[int], rest: Sequence[int],
                   members: tuple[Node, ...]) -> Epilogue:
    """The loop runs on each block of the product (in_place_products) and stores its output
    into the block, so the product, whole, is the output: a convolution calls it on each block
    as soon as it has computed it; a matrix product's rows are split into parts on the thread
    budget from SPLIT_MIN values (W4's bias and ReLU over 10000x512 took ~3.3 ms on the main
    thread after each GEMM)."""
    def loop(block: np.ndarray, args: tuple) -> None:
        loop_args = [block if k is None else args[k] for k in where]
        consumer.function_for(loop_args, part=True)(*loop_args)

    if isinstance(producer, Node):  # BLAS
        from compiler.codegen_cpu_nn import by_images

        op, attrs, dtype = producer.opdef.numpy, dict(producer.attrs), producer.dtype.np

        def run(*args: Any) -> tuple:
            out = np.asarray(op(*args[:split], **attrs), dtype=dtype)
            if not (out.flags.owndata and out.flags.writeable and out.flags.c_contiguous):
                out = np.array(out, order="C")  # a new array of its own, to store into
            by_images(lambda first, last: loop(out[first:last], args), out.shape[0], out.size)
            return (out,)
    else:
        convolve = producer.fn

        def run(*args: Any) -> tuple:
            return convolve(*args[:split], then=lambda block: loop(block, args))

    return Epilogue(f"{name}+{consumer.name}", run, tuple(head) + tuple(rest),
                    tuple(consumer.outputs), members + tuple(consumer.members), producer,
                    in_place=True)

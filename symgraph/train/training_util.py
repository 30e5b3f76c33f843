"""The global step: an int64 variable counting training steps (TF1's `tf.train.*global_step`)."""

from __future__ import annotations

from typing import Any

from symgraph import dtypes as _dt
from symgraph.graph import Graph, Tensor, get_default_graph
from symgraph.ops.state import constant
from symgraph.variables import GraphKeys, Variable


def get_global_step(graph: Graph | None = None) -> Variable | None:
    """The graph's global step variable (GraphKeys.GLOBAL_STEP), or None if it has none."""
    graph = graph or get_default_graph()
    steps = graph.get_collection(GraphKeys.GLOBAL_STEP)
    if not steps:
        return None
    if len(steps) > 1:
        names = ", ".join(s.describe() for s in steps)
        raise ValueError(f"the graph has more than one global step: {names}")
    return steps[0]


def create_global_step(graph: Graph | None = None) -> Variable:
    """Makes the global step: 'global_step', int64, 0, non-trainable; an error if it exists."""
    graph = graph or get_default_graph()
    existing = get_global_step(graph)
    if existing is not None:
        raise ValueError(f"the global step already exists: {existing.describe()}")
    with graph.as_default(), graph.name_scope(None), graph.control_dependencies(None):
        return Variable(constant(0, dtype=_dt.int64), trainable=False, name="global_step",
                        collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph: Graph | None = None) -> Variable:
    """The graph's global step, made on first use."""
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    return step if step is not None else create_global_step(graph)


def global_step(sess: Any, global_step_tensor: Tensor) -> int:
    """The global step's value in `sess`, as a Python int."""
    return int(sess.run(global_step_tensor))

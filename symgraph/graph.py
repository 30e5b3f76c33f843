"""The graph IR: a Graph of immutable Nodes (TF1's Operations), each with one output Tensor.

Nodes are appended in creation order, so a node's id is a topological position: every input of a
node has a smaller id. Each node remembers the user's file:line that created it, for errors.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.registry import OpDef, TensorType
from symgraph.shapes import TensorShape

_PACKAGE_DIRS = tuple(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep + pkg + os.sep
    for pkg in ("symgraph", "compiler", "runtime")
)


def user_location() -> str:
    """file:line of the innermost caller outside symgraph's own packages."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIRS) and not filename.startswith("<frozen"):
            return f"{_short_path(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _short_path(filename: str) -> str:
    try:
        return _short_path_from(filename, os.getcwd())
    except OSError:  # the working directory was removed
        return filename


@functools.lru_cache(maxsize=256)
def _short_path_from(filename: str, cwd: str) -> str:
    """Memoized: every node created asks (relpath: ~5 us; a few files make a whole graph)."""
    try:
        rel = os.path.relpath(filename, cwd)
    except ValueError:
        return filename
    return filename if rel.startswith(".." + os.sep + "..") else rel


class Node:
    """One operation in a graph (TF1's `Operation`). Immutable once created."""

    __slots__ = ("id", "graph", "opdef", "inputs", "control_inputs", "attrs", "name", "dtype",
                 "shape", "location", "output", "__weakref__")

    def __init__(self, graph: Graph, node_id: int, opdef: OpDef, inputs: tuple[Tensor, ...],
                 control_inputs: tuple[Node, ...], attrs: dict, name: str, out: TensorType,
                 location: str) -> None:
        self.id = node_id
        self.graph = graph
        self.opdef = opdef
        self.inputs = inputs
        self.control_inputs = control_inputs
        self.attrs = attrs
        self.name = name
        self.dtype = out.dtype
        self.shape = out.shape
        self.location = location
        self.output = Tensor(self)

    @property
    def type(self) -> str:
        """The op's registered name, as TF1's `Operation.type`."""
        return self.opdef.name

    @property
    def outputs(self) -> list[Tensor]:
        return [self.output] if self.opdef.has_output else []

    @property
    def op(self) -> Node:
        return self

    def run(self, feed_dict: Any = None, session: Any = None) -> None:
        """Runs this operation in `session` or the default session (TF1's `Operation.run`)."""
        _session_for(session).run(self, feed_dict=feed_dict)

    def describe(self) -> str:
        return f"'{self.name}' ({self.opdef.name}, created at {self.location})"

    def __repr__(self) -> str:
        return f"<sg.Operation '{self.name}' type={self.opdef.name}>"


class Tensor:
    """The output of a Node: a symbolic value with a static dtype and shape.

    Arithmetic operators (`+ - * / // % ** @`, comparisons, indexing) are installed by
    `symgraph.ops.operators`. `==` keeps Python identity, as in TF1, so tensors work as dict keys.
    """

    __slots__ = ("node",)
    __array_ufunc__ = None  # NumPy defers to our reflected operators: `ndarray + tensor` works
    __array_priority__ = 100

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def op(self) -> Node:
        return self.node

    @property
    def dtype(self) -> _dt.DType:
        return self.node.dtype

    @property
    def shape(self) -> TensorShape:
        return self.node.shape

    def get_shape(self) -> TensorShape:
        return self.node.shape

    @property
    def name(self) -> str:
        return f"{self.node.name}:0"

    @property
    def graph(self) -> Graph:
        return self.node.graph

    def describe(self) -> str:
        """How errors name a tensor: name, shape, dtype and the user's line that created it."""
        return (f"'{self.name}' (shape {self.shape}, {self.dtype.name}, "
                f"created at {self.node.location})")

    def eval(self, feed_dict: Any = None, session: Any = None) -> np.ndarray:
        """This tensor's value in `session` or the default session (TF1's `Tensor.eval`)."""
        return _session_for(session).run(self, feed_dict=feed_dict)

    def __repr__(self) -> str:
        return f"<sg.Tensor '{self.name}' shape={self.shape} dtype={self.dtype.name}>"

    def __bool__(self) -> bool:
        raise TypeError("using a symbolic tensor as a Python bool is not allowed: "
                        f"{self.describe()}; use sg.where, or run the graph to get a value")

    def __len__(self) -> int:
        dim = self.shape[0] if self.shape.rank else None
        if dim is None:
            raise TypeError(f"len() needs a known first dimension: {self.describe()}")
        return dim

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]


# ---------------------------------------------------------------------------------------------
# Graph


_NAME_RE = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


class Graph:
    """A static dataflow graph (TF1's `tf.Graph`). Nodes are only ever appended."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._names: dict[str, Node] = {}
        self._name_counts: dict[str, int] = {}
        self._scope: str = ""
        self._control_deps: list[list[Node]] = []
        self._collections: dict[str, list] = {}
        self._lock = threading.RLock()
        self._unfeedable: set[int] = set()  # node ids whose values may not be fed
        self.seed: int | None = None  # graph-level random seed (sg.set_random_seed)

    # -- identity and lookup -------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Number of nodes; grows with every node added."""
        return len(self.nodes)

    def get_operations(self) -> list[Node]:
        return list(self.nodes)

    def get_operation_by_name(self, name: str) -> Node:
        try:
            return self._names[name]
        except KeyError:
            raise KeyError(f"the graph has no operation named {name!r}") from None

    def get_tensor_by_name(self, name: str) -> Tensor:
        op_name, _, index = name.rpartition(":")
        if not op_name or index != "0":
            raise KeyError(f"{name!r} is not a tensor name of the form 'op_name:0'")
        return self.get_operation_by_name(op_name).output

    # -- feeding -------------------------------------------------------------------------------
    def prevent_feeding(self, tensor: Tensor) -> None:
        """Marks `tensor` as one whose value a run may not replace with a fed value (TF1's
        `Graph.prevent_feeding`): for values that other parts of the graph rely on."""
        self._unfeedable.add(tensor.node.id)

    def is_feedable(self, tensor: Tensor) -> bool:
        return tensor.node.id not in self._unfeedable

    # -- defaults -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        """Makes this graph the default for new nodes inside the `with` block."""
        _stack().append(self)
        try:
            yield self
        finally:
            _stack().pop()

    # -- naming ---------------------------------------------------------------------------------
    def unique_name(self, name: str, mark_used: bool = True) -> str:
        """`name` under the current scope, made unique with a `_N` suffix as TF1 does."""
        full = f"{self._scope}/{name}" if self._scope else name
        key = full.lower()
        count = self._name_counts.get(key, 0)
        unique = full
        if count:
            while f"{full}_{count}".lower() in self._name_counts:
                count += 1
            unique = f"{full}_{count}"
        if mark_used:
            self._name_counts[key] = count + 1
            self._name_counts.setdefault(unique.lower(), 1)
        return unique

    @contextlib.contextmanager
    def name_scope(self, name: str | None) -> Iterator[str]:
        """Prefixes the names of nodes created inside with `name/` (TF1 semantics).

        A name ending in "/" re-enters that exact scope; None or "" resets to the top level.
        """
        old = self._scope
        if not name:
            new = ""
        elif name.endswith("/"):
            new = name[:-1]
        else:
            _check_name(name)
            new = self.unique_name(name)
        self._scope = new
        try:
            yield (new + "/") if new else ""
        finally:
            self._scope = old

    # -- control dependencies ------------------------------------------------------------------
    @contextlib.contextmanager
    def control_dependencies(self, control_inputs: Iterable[Any] | None) -> Iterator[None]:
        """Nodes created inside run only after `control_inputs` (None clears the outer ones)."""
        if control_inputs is None:
            saved, self._control_deps = self._control_deps, []
            try:
                yield
            finally:
                self._control_deps = saved
            return
        nodes = [_as_node(c, "a control dependency") for c in control_inputs]
        self._control_deps.append(nodes)
        try:
            yield
        finally:
            self._control_deps.pop()

    # -- collections ---------------------------------------------------------------------------
    def add_to_collection(self, key: str, value: Any) -> None:
        self._collections.setdefault(key, []).append(value)

    def get_collection(self, key: str) -> list:
        return list(self._collections.get(key, []))

    def get_collection_ref(self, key: str) -> list:
        return self._collections.setdefault(key, [])

    # -- node creation --------------------------------------------------------------------------
    def create_node(self, opdef: OpDef, inputs: Sequence[Tensor], attrs: dict, name: str | None,
                    out: TensorType, location: str,
                    control_inputs: Sequence[Node] = ()) -> Node:
        """Appends a node. Callers (`apply`) have already converted inputs and inferred `out`."""
        with self._lock:
            if name is not None and name.endswith("/"):
                unique = name[:-1]  # an exact name reserved by name_scope (TF1's convention)
                if unique in self._names:
                    raise ValueError(f"the graph already has a node named {unique!r}")
                self._name_counts.setdefault(unique.lower(), 1)
            else:
                if name is not None:
                    _check_name(name)
                unique = self.unique_name(name or opdef.name)
            deps: list[Node] = list(control_inputs)
            for group in self._control_deps:
                deps.extend(group)
            seen: set[int] = set()
            ctrl = tuple(d for d in deps if not (d.id in seen or seen.add(d.id)))
            node = Node(self, len(self.nodes), opdef, tuple(inputs), ctrl, attrs, unique, out,
                        location)
            self.nodes.append(node)
            self._names[unique] = node
            return node

    def __repr__(self) -> str:
        return f"<sg.Graph with {len(self.nodes)} nodes>"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid node name: use letters, digits and '_.-/', "
                         "starting with a letter, digit or '.'")


_local = threading.local()
_global_default: list[Graph] = [Graph()]


def _stack() -> list[Graph]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def get_default_graph() -> Graph:
    """The graph new nodes go into: the innermost `as_default()`, else the process-wide one."""
    stack = _stack()
    return stack[-1] if stack else _global_default[0]


def reset_default_graph() -> None:
    """Replaces the process-wide default graph with a new, empty one."""
    if _stack():
        raise RuntimeError("reset_default_graph() called inside a `with graph.as_default()` block")
    _global_default[0] = Graph()


def name_scope(name: str | None) -> contextlib.AbstractContextManager[str]:
    """`with sg.name_scope("layer1"):` prefixes node names in the default graph."""
    return get_default_graph().name_scope(name)


def control_dependencies(control_inputs: Iterable[Any] | None) -> contextlib.AbstractContextManager:
    return get_default_graph().control_dependencies(control_inputs)


def _as_node(value: Any, what: str) -> Node:
    if isinstance(value, Node):
        return value
    if isinstance(value, Tensor):
        return value.node
    raise TypeError(f"{what} must be a tensor or an operation, not {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Building nodes


def graph_of(values: Iterable[Any]) -> Graph:
    """The one graph that the tensors among `values` live in (the default graph if none)."""
    graph = None
    first = None
    for v in values:
        if isinstance(v, Tensor):
            if graph is None:
                graph, first = v.graph, v
            elif v.graph is not graph:
                raise ValueError(f"{v.describe()} and {first.describe()} belong to different "
                                 "graphs; an op's inputs must all come from one graph")
    return graph if graph is not None else get_default_graph()


def convert_to_tensor(value: Any, dtype: Any = None, name: str | None = None,
                      graph: Graph | None = None) -> Tensor:
    """A Tensor for `value`: tensors pass through, everything else becomes a constant.

    Python floats default to float32 and ints to int32 unless `dtype` says otherwise; values that
    would change kind (1.5 into int32) are refused, as in TF1.
    """
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != _dt.as_dtype(dtype):
            raise TypeError(f"expected a {_dt.as_dtype(dtype).name} tensor, got {value.describe()}")
        return value
    from symgraph.ops.state import constant  # constants are ops like any other

    return constant(value, dtype=dtype, name=name, graph=graph)


def apply(opdef: OpDef, *inputs: Any, name: str | None = None, **attrs: Any) -> Tensor:
    """Creates a node for `opdef` on tensor inputs and returns its output tensor.

    The op's `infer` rule checks the inputs and gives the output type; its errors come back with
    the op's name and the user's file:line.
    """
    graph = graph_of(inputs)
    tensors = []
    for x in inputs:
        if not isinstance(x, Tensor):
            raise TypeError(f"{opdef.name}: inputs must be tensors here, got {type(x).__name__}")
        tensors.append(x)
    location = user_location()
    try:
        out = opdef.infer(tensors, attrs)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{opdef.name} at {location}: {e}") from None
    node = graph.create_node(opdef, tensors, attrs, name, out, location)
    return node.output


def _session_for(session: Any) -> Any:
    if session is not None:
        return session
    from symgraph import session_context

    return session_context.get_default_session()

"""Variables: named tensors whose values live in a Session and persist across runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from symgraph import dtypes as _dt
from symgraph.graph import Node, Tensor, apply, convert_to_tensor, get_default_graph, graph_of
from symgraph.ops import state
from symgraph.ops.state import group


class GraphKeys:
    """Names of the standard collections, as in TF1."""

    GLOBAL_VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    UPDATE_OPS = "update_ops"
    REGULARIZATION_LOSSES = "regularization_losses"
    LOSSES = "losses"
    GLOBAL_STEP = "global_step"
    SUMMARIES = "summaries"


class Variable(Tensor):
    """A tensor whose value is kept by the session between runs (TF1's `tf.Variable`).

    Reading it in a run gives the value it had when the run began; `assign`, `assign_add` and
    `assign_sub` return ops that write it. `initializer` sets it to `initial_value`.
    """

    __slots__ = ("initial_value", "initializer", "trainable")

    def __init__(self, initial_value: Any = None, trainable: bool = True, name: str | None = None,
                 dtype: Any = None, collections: Iterable[str] | None = None,
                 validate_shape: bool = True) -> None:
        if initial_value is None:
            raise ValueError("a Variable needs an initial_value")
        graph = graph_of([initial_value]) if isinstance(initial_value, Tensor) else \
            get_default_graph()
        with graph.as_default(), graph.control_dependencies(None), \
                graph.name_scope(name or "Variable") as scope:
            if callable(initial_value):
                initial_value = initial_value()
            init = convert_to_tensor(initial_value, dtype=dtype, name="initial_value")
            shape = init.shape
            if validate_shape and not shape.is_fully_defined():
                raise ValueError(f"the initial value of variable {scope[:-1]!r} needs a fully "
                                 f"known shape, got {init.describe()}")
            node = apply(state.VARIABLE, name=scope, dtype=init.dtype, shape=shape).node
            super().__init__(node)
            self.initial_value = init
            self.trainable = bool(trainable)
            self.initializer = apply(state.ASSIGN, self, init, name="Assign").node
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        collections = list(collections)
        if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections.append(GraphKeys.TRAINABLE_VARIABLES)
        for key in collections:
            graph.add_to_collection(key, self)

    @property
    def var_name(self) -> str:
        """The variable's name without ':0', the key of its value in sessions and checkpoints."""
        return self.node.name

    def value(self) -> Tensor:
        return self

    def read_value(self) -> Tensor:
        """A read that happens after this op's control dependencies (sees earlier assignments)."""
        return apply(state.READ_VARIABLE, self)

    def initialized_value(self) -> Tensor:
        return self.initial_value

    def assign(self, value: Any, use_locking: bool = False, name: str | None = None,
               read_value: bool = True) -> Tensor:
        """An op that sets the variable to `value` and gives the new value."""
        value = convert_to_tensor(value, dtype=self.dtype, graph=self.graph)
        return apply(state.ASSIGN, self, value, name=name)

    def assign_add(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Tensor:
        """An op that adds `delta` to the variable and gives the new value."""
        delta = convert_to_tensor(delta, dtype=self.dtype, graph=self.graph)
        return apply(state.ASSIGN_ADD, self, delta, name=name)

    def assign_sub(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Tensor:
        delta = convert_to_tensor(delta, dtype=self.dtype, graph=self.graph)
        return apply(state.ASSIGN_SUB, self, delta, name=name)

    def load(self, value: Any, session: Any = None) -> None:
        """Writes `value` into the variable in `session` (TF1's `Variable.load`)."""
        from symgraph.graph import _session_for

        _session_for(session).load_variable(self, value)

    def __repr__(self) -> str:
        return (f"<sg.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}>")


def assign(ref: Variable, value: Any, name: str | None = None) -> Tensor:
    return ref.assign(value, name=name)


def assign_add(ref: Variable, value: Any, name: str | None = None) -> Tensor:
    return ref.assign_add(value, name=name)


def assign_sub(ref: Variable, value: Any, name: str | None = None) -> Tensor:
    return ref.assign_sub(value, name=name)


def get_collection(key: str, scope: str | None = None) -> list:
    """The items of a collection of the default graph, optionally those whose name starts so."""
    items = get_default_graph().get_collection(key)
    if scope is None:
        return items
    return [v for v in items if getattr(v, "name", "").startswith(scope)]


def add_to_collection(key: str, value: Any) -> None:
    get_default_graph().add_to_collection(key, value)


def global_variables(scope: str | None = None) -> list[Variable]:
    return get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def trainable_variables(scope: str | None = None) -> list[Variable]:
    return get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def variables_initializer(var_list: Iterable[Variable], name: str = "init") -> Node:
    """One operation that initializes every variable in `var_list`."""
    return group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer() -> Node:
    """One operation that initializes every global variable of the default graph."""
    return variables_initializer(global_variables())


initialize_all_variables = global_variables_initializer


def is_variable(t: Any) -> bool:
    return isinstance(t, Tensor) and t.node.opdef is state.VARIABLE


__all__ = ["GraphKeys", "Variable", "_dt"]

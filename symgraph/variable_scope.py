"""`get_variable` and `variable_scope`: variables shared by name, with TF1's semantics.

Each graph has a store of the variables made by `get_variable`, keyed by full name
('scope/inner/w'). Creating a name that exists, or reusing one that does not, is an error unless
the scope's `reuse` says otherwise (True: must exist; AUTO_REUSE: either). A variable scope also
opens a name scope for the ops created inside it, and sets defaults (initializer, regularizer)
that inner scopes inherit.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from symgraph import dtypes as _dt
from symgraph import initializers as _init
from symgraph.graph import Graph, Tensor, get_default_graph
from symgraph.ops.state import constant
from symgraph.shapes import TensorShape
from symgraph.variables import GraphKeys, Variable


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE


class VariableScope:
    """A named scope of variables and its defaults (TF1's `tf.VariableScope`)."""

    def __init__(self, name: str, reuse: Any = None, initializer: Any = None,
                 regularizer: Any = None, dtype: Any = _dt.float32,
                 name_scope: str = "") -> None:
        self.name = name
        self._reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.dtype = _dt.as_dtype(dtype)
        self.original_name_scope = name_scope

    @property
    def reuse(self) -> Any:
        return self._reuse

    def reuse_variables(self) -> None:
        """From now on this scope reuses variables (TF1's `scope.reuse_variables()`)."""
        self._reuse = True

    def set_initializer(self, initializer: Any) -> None:
        self.initializer = initializer

    def set_regularizer(self, regularizer: Any) -> None:
        self.regularizer = regularizer

    def global_variables(self) -> list[Variable]:
        prefix = self.name + "/" if self.name else ""
        return [v for v in get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES)
                if v.var_name.startswith(prefix)]

    def trainable_variables(self) -> list[Variable]:
        prefix = self.name + "/" if self.name else ""
        return [v for v in get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES)
                if v.var_name.startswith(prefix)]

    def __repr__(self) -> str:
        return f"<sg.VariableScope {self.name!r} reuse={self._reuse}>"


class _GraphState:
    """Per-graph: the variables made by get_variable, scope-name counts, each thread's scope."""

    def __init__(self) -> None:
        self.variables: dict[str, Variable] = {}
        self.scope_counts: dict[str, int] = {}
        self.local = threading.local()

    def current(self) -> VariableScope:
        scope = getattr(self.local, "scope", None)
        if scope is None:
            scope = self.local.scope = VariableScope("")
        return scope


_STATES: weakref.WeakKeyDictionary[Graph, _GraphState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(graph: Graph | None = None) -> _GraphState:
    graph = graph or get_default_graph()
    with _STATES_LOCK:
        st = _STATES.get(graph)
        if st is None:
            st = _STATES[graph] = _GraphState()
        return st


def get_variable_scope() -> VariableScope:
    """The current variable scope of the default graph."""
    return _state().current()


@contextlib.contextmanager
def variable_scope(name_or_scope: str | VariableScope | None, default_name: str | None = None,
                   values: Any = None, initializer: Any = None, regularizer: Any = None,
                   reuse: Any = None, dtype: Any = None) -> Iterator[VariableScope]:
    """Opens a variable scope: `get_variable("w")` inside makes or finds 'name/w'.

    Args:
      name_or_scope: a name (relative to the current scope), a VariableScope to re-enter, or
        None with `default_name` (made unique: 'dense', 'dense_1', ...).
      reuse: True (variables must exist), AUTO_REUSE (make or find), None/False (inherit the
        outer scope's; at the top, make only). Once reuse is on, inner scopes keep it.
      initializer, regularizer, dtype: defaults for get_variable inside (inherited).
    """
    graph = get_default_graph()
    st = _state(graph)
    outer = st.current()
    if reuse is not None and reuse is not False and reuse is not True and reuse is not AUTO_REUSE:
        raise ValueError(f"reuse must be True, False, None or sg.AUTO_REUSE, got {reuse!r}")
    if isinstance(name_or_scope, VariableScope):
        base = name_or_scope
        full = base.name
        ns_name = base.original_name_scope or (full + "/" if full else "")
        inherited_reuse = base.reuse
    else:
        if name_or_scope is None:
            if default_name is None:
                raise ValueError("variable_scope needs a name_or_scope or a default_name")
            name = _unique_scope_name(st, outer.name, default_name)
        elif isinstance(name_or_scope, str) and name_or_scope:
            name = name_or_scope
        else:
            raise TypeError(f"variable_scope takes a non-empty name or a VariableScope, got "
                            f"{name_or_scope!r}")
        base = outer
        full = f"{outer.name}/{name}" if outer.name else name
        ns_name = name
        inherited_reuse = outer.reuse
    st.scope_counts[full] = st.scope_counts.get(full, 0) + 1
    # reuse is inherited and cannot be switched off inside a reusing scope (TF1)
    if outer.reuse is True or outer.reuse is AUTO_REUSE:
        new_reuse = outer.reuse if reuse is None or reuse is False else reuse
    else:
        new_reuse = inherited_reuse if reuse is None else reuse
    with graph.name_scope(ns_name) as ns:
        scope = VariableScope(
            full, reuse=new_reuse,
            initializer=initializer if initializer is not None else base.initializer,
            regularizer=regularizer if regularizer is not None else base.regularizer,
            dtype=dtype if dtype is not None else base.dtype,
            name_scope=ns)
        st.local.scope = scope
        try:
            yield scope
        finally:
            st.local.scope = outer


def _unique_scope_name(st: _GraphState, outer: str, prefix: str) -> str:
    name, i = prefix, 1
    while (f"{outer}/{name}" if outer else name) in st.scope_counts:
        name = f"{prefix}_{i}"
        i += 1
    return name


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                 regularizer: Any = None, trainable: bool = True,
                 collections: Iterable[str] | None = None, validate_shape: bool = True) -> Variable:
    """The variable 'scope/name': made if new, returned if reused (TF1's `tf.get_variable`).

    Args:
      shape: static shape (fully known when the initializer is a callable).
      dtype: default float32 (the scope's dtype).
      initializer: an initializer (called with shape and dtype), a tensor or a value; default
        the scope's, else glorot_uniform for floats and zeros otherwise (as in TF1).
      regularizer: callable(weights) -> scalar tensor, added to REGULARIZATION_LOSSES.
      collections: default [GLOBAL_VARIABLES] (+ TRAINABLE_VARIABLES if trainable).

    Raises:
      ValueError: the variable exists and the scope does not reuse, or it does not exist and
        the scope requires reuse, or the shape or dtype asked for differs from the existing one.
    """
    graph = get_default_graph()
    st = _state(graph)
    scope = st.current()
    full = f"{scope.name}/{name}" if scope.name else name
    given_dtype = None if dtype is None else _dt.as_dtype(dtype)
    shape = None if shape is None else TensorShape(shape)
    reuse = scope.reuse
    existing = st.variables.get(full)
    if existing is not None:
        if reuse is not True and reuse is not AUTO_REUSE:
            raise ValueError(
                f"variable {full} already exists (created at {existing.node.location}), "
                "disallowed; did you mean to set reuse=True or reuse=sg.AUTO_REUSE in "
                "variable_scope?")
        if shape is not None and not shape.is_compatible_with(existing.shape):
            raise ValueError(f"trying to share variable {full}, but the shape asked for, {shape}, "
                             f"differs from the existing {existing.describe()}")
        if given_dtype is not None and given_dtype != existing.dtype:
            raise ValueError(f"trying to share variable {full}, but the dtype asked for, "
                             f"{given_dtype.name}, differs from the existing "
                             f"{existing.describe()}")
        return existing
    if reuse is True:
        raise ValueError(f"variable {full} does not exist, or was not created with "
                         "sg.get_variable(); did you mean to set reuse=sg.AUTO_REUSE in "
                         "variable_scope?")
    if initializer is None:
        initializer = scope.initializer
    if given_dtype is None and isinstance(initializer, Tensor):
        given_dtype = initializer.dtype  # TF1: a tensor initializer brings its dtype
    dtype = given_dtype or scope.dtype
    init_value = _initial_value(full, shape, dtype, initializer)
    with graph.name_scope(None):
        var = Variable(init_value, trainable=trainable, name=full, dtype=dtype,
                       collections=collections, validate_shape=validate_shape)
    if var.var_name != full:
        raise ValueError(f"cannot create variable {full}: the graph already has an operation "
                         f"of that name; the variable was named {var.var_name!r} instead")
    st.variables[full] = var
    regularizer = regularizer if regularizer is not None else scope.regularizer
    if regularizer is not None:
        with graph.name_scope(None), graph.control_dependencies(None), \
                graph.name_scope(f"{full}/Regularizer"):
            loss = regularizer(var)
        if loss is not None:
            graph.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
    return var


def _initial_value(full: str, shape: TensorShape | None, dtype: _dt.DType, initializer: Any):
    """A zero-argument callable that builds the initial value inside the variable's scope."""
    if initializer is None:
        initializer = _init.GlorotUniform() if dtype.is_floating else _init.Zeros()
    if isinstance(initializer, Tensor):
        if shape is not None and not shape.is_compatible_with(initializer.shape):
            raise ValueError(f"variable {full}: the initializer {initializer.describe()} does "
                             f"not have the shape asked for, {shape}")
        return initializer
    if not callable(initializer):  # a value: a scalar fills `shape`, an array must fit it
        return lambda: constant(initializer, dtype=dtype, shape=shape, name="initial_value")
    if shape is None or not shape.is_fully_defined():
        raise ValueError(f"the shape of a new variable ({full}) must be fully defined, but "
                         f"it is {shape}")
    return lambda: initializer(shape.as_list(), dtype=dtype, partition_info=None)


__all__ = ["AUTO_REUSE", "VariableScope", "get_variable", "get_variable_scope", "variable_scope"]

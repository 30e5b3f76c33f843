"""Sources, state and control: constants, placeholders, variables, assignments, groups."""

from __future__ import annotations

from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.graph import Graph, Node, Tensor, _as_node, apply, get_default_graph, user_location
from symgraph.ops.inference import same_dtype
from symgraph.registry import NOT_DIFFERENTIABLE, OpDef, OpKind, TensorType, register
from symgraph.shapes import TensorShape


def _attr_type(inputs: list, attrs: dict) -> TensorType:
    return TensorType(attrs["dtype"], attrs["shape"])


CONSTANT = register(OpDef("constant", OpKind.SOURCE, _attr_type, lambda value, **_: value,
                          grad=NOT_DIFFERENTIABLE))
# A placeholder's value must be fed; the executor reports a missing feed (numpy=None).
PLACEHOLDER = register(OpDef("placeholder", OpKind.SOURCE, _attr_type, None,
                             grad=NOT_DIFFERENTIABLE))


def _with_default_infer(inputs: list, attrs: dict) -> TensorType:
    default, shape = inputs[0], attrs["shape"]
    if not default.shape.is_compatible_with(shape):
        raise ValueError(f"the default value {default.describe()} does not fit shape {shape}")
    return TensorType(default.dtype, shape)


PLACEHOLDER_WITH_DEFAULT = register(OpDef(
    "placeholder_with_default", OpKind.SOURCE, _with_default_infer, lambda x, **_: x,
    grad=lambda n, g: (g,)))


def _read(state, node: Node, *args: Any) -> np.ndarray:
    return state.read(node)


def _read_ref(state, node: Node, ref: Any) -> np.ndarray:
    return state.read(node.inputs[0].node)


VARIABLE = register(OpDef("variable", OpKind.SOURCE, _attr_type, None, grad=NOT_DIFFERENTIABLE,
                          effect=_read))


def _ref_infer(inputs: list, attrs: dict) -> TensorType:
    ref = inputs[0]
    if ref.node.opdef is not VARIABLE:
        raise TypeError(f"the first input must be a variable, got {ref.describe()}")
    if len(inputs) > 1:
        value = inputs[1]
        same_dtype([ref, value])
        if not value.shape.is_compatible_with(ref.shape):
            raise ValueError(f"cannot assign {value.describe()} to variable {ref.describe()}: "
                             "shapes differ")
    return TensorType(ref.dtype, ref.shape)


def _assign(state, node: Node, ref: Any, value: np.ndarray) -> np.ndarray:
    state.write(node.inputs[0].node, value)
    return value


def _owned(value: Any) -> np.ndarray:
    """A value computed here that nothing else holds, made read-only so that the store keeps it
    as it is instead of copying it (a copy of every updated weight, every step, otherwise)."""
    value = np.asarray(value)
    if value.flags.owndata:
        value.setflags(write=False)
    return value


def _assign_add(state, node: Node, ref: Any, delta: np.ndarray) -> np.ndarray:
    var = node.inputs[0].node
    value = _owned(state.read(var) + delta)
    state.write(var, value)
    return value


def _assign_sub(state, node: Node, ref: Any, delta: np.ndarray) -> np.ndarray:
    var = node.inputs[0].node
    value = _owned(state.read(var) - delta)
    state.write(var, value)
    return value


# Assignments have no gradient rule: differentiating through a write is an error (as in TF1).
ASSIGN = register(OpDef("assign", OpKind.STATE, _ref_infer, None, grad=None, ref_inputs=(0,),
                        effect=_assign))
ASSIGN_ADD = register(OpDef("assign_add", OpKind.STATE, _ref_infer, None, grad=None,
                            ref_inputs=(0,), effect=_assign_add))
ASSIGN_SUB = register(OpDef("assign_sub", OpKind.STATE, _ref_infer, None, grad=None,
                            ref_inputs=(0,), effect=_assign_sub))
# A read at a chosen point of the run (after its control dependencies), unlike the variable's
# own tensor, which every consumer in a run sees before that run's assignments.
READ_VARIABLE = register(OpDef("read_variable", OpKind.STATE, _ref_infer, None,
                               grad=lambda n, g: (None,), ref_inputs=(0,), effect=_read_ref))
NO_OP = register(OpDef("no_op", OpKind.CONTROL,
                       lambda i, a: TensorType(_dt.bool_, TensorShape(())), None,
                       grad=NOT_DIFFERENTIABLE, has_output=False))


# ---- user functions --------------------------------------------------------------------------


def constant(value: Any, dtype: Any = None, shape: Any = None, name: str | None = None,
             graph: Graph | None = None) -> Tensor:
    """A tensor with a fixed value. Python floats are float32 unless `dtype` says otherwise.

    With `shape`, a single value fills the shape and a value of that many elements is reshaped;
    any other size is an error (nothing is padded or truncated).
    """
    if isinstance(value, Tensor):
        raise TypeError(f"constant() takes a value, not a tensor: {value.describe()}")
    dtype = _dt.default_dtype_for(value) if dtype is None else _dt.as_dtype(dtype)
    arr = np.array(_dt.convert_array(value, dtype, "constant"), dtype=dtype.np, copy=True)
    if shape is not None:
        target = TensorShape(shape)
        if not target.is_fully_defined():
            raise ValueError(f"constant shape must be fully known, got {target}")
        if arr.size == 1:
            arr = np.full(target.dims, arr.reshape(()), dtype=dtype.np)
        elif arr.size == target.num_elements():
            arr = arr.reshape(target.dims)
        else:
            raise ValueError(f"constant has {arr.size} values, which cannot fill shape {target}")
    arr.setflags(write=False)
    graph = graph or get_default_graph()
    with graph.as_default():
        return apply(CONSTANT, name=name, value=arr, dtype=dtype,
                     shape=TensorShape(arr.shape))


def placeholder(dtype: Any = _dt.float32, shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor whose value is fed at run time. `shape` may have None dims, or be None."""
    return apply(PLACEHOLDER, name=name, dtype=_dt.as_dtype(dtype), shape=TensorShape(shape))


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """A tensor that is `input` unless fed (a `training` flag defaulting to False, say)."""
    from symgraph.graph import convert_to_tensor

    return apply(PLACEHOLDER_WITH_DEFAULT, convert_to_tensor(input), name=name,
                 shape=TensorShape(shape))


def no_op(name: str | None = None) -> Node:
    """An operation that does nothing (useful with control dependencies)."""
    return apply(NO_OP, name=name).node


def group(*inputs: Any, name: str | None = None) -> Node:
    """An operation that runs all `inputs` (tensors or operations); fetching it gives None."""
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
        inputs = tuple(inputs[0])
    nodes = [_as_node(x, "group() input") for x in inputs]
    graph = nodes[0].graph if nodes else get_default_graph()
    location = user_location()
    out = TensorType(_dt.bool_, TensorShape(()))
    return graph.create_node(NO_OP, (), {}, name or "group_deps", out, location,
                             control_inputs=nodes)


def tuple_(tensors: list, name: str | None = None) -> list[Tensor]:
    """Identity of each tensor, each available only after all have been computed (TF1 `tuple`)."""
    from symgraph.ops.elementwise import identity

    gate = group(*tensors, name=name)
    graph = gate.graph
    with graph.control_dependencies([gate]):
        return [identity(t) for t in tensors]

"""The op registry: every op declared once, as data that every stage of symgraph reads.

An OpDef says how to infer an op's output type (construction), its gradient (autodiff), how to
compute it with NumPy (the reference executor), and, for elementwise ops, the scalar template the
code generators render. Passes query the properties here; nothing switches on op names.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from symgraph.dtypes import DType
from symgraph.shapes import TensorShape


class OpKind(enum.Enum):
    """Families of ops; code generation has one skeleton per family."""

    ELEMENTWISE = "elementwise"  # out[i] = f(in0[i], in1[i], ...) with NumPy broadcasting
    REDUCTION = "reduction"  # combines elements along axes
    MATMUL = "matmul"  # BLAS
    SHAPE = "shape"  # moves or selects elements: reshape, transpose, slice, concat, ...
    INDEX = "index"  # index arithmetic: argmax, one_hot, ...
    SOURCE = "source"  # no data inputs: placeholder, constant, variable
    STATE = "state"  # writes or reads session state at a point in the run: assign, read
    CONTROL = "control"  # no data: groups control dependencies


class _NotDifferentiable:
    """Marks an op that carries no gradient, on purpose (said out loud, never a silent 0)."""

    def __repr__(self) -> str:
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = _NotDifferentiable()


@dataclass(frozen=True)
class TensorType:
    """What an op produces: element type and static shape."""

    dtype: DType
    shape: TensorShape


# infer(inputs: list[Tensor], attrs: dict) -> TensorType; raises ValueError/TypeError on bad input.
InferFn = Callable[[list, dict], TensorType]
# grad(node, g) -> one entry per input: a Tensor shaped like the op's *output* for broadcasting
# elementwise ops (the autodiff driver unbroadcasts), like the input otherwise, or None.
GradFn = Callable[[Any, Any], tuple]


@dataclass(frozen=True, eq=False)
class OpDef:
    """One op, declared once."""

    name: str
    kind: OpKind
    infer: InferFn
    numpy: Callable[..., Any] | None  # numpy(*arrays, **attrs) -> array; None: executor does it
    grad: GradFn | _NotDifferentiable | None  # None: no rule (an error when a gradient needs it)
    # elementwise template over {0}, {1}, ... (and {attr} for scalar attributes); "{*}" stands
    # for all operands joined by " + " (add_n)
    scalar: str | None = None
    # reductions that codegen can fuse: acc = combine(acc, x) from `reduce_init`, then
    # finish(acc, count) where count is the number of elements combined ({0}, {1} in templates)
    reduce_combine: str | None = None
    reduce_init: float = 0.0
    reduce_finish: str | None = None
    commutative: bool = False
    ref_inputs: tuple[int, ...] = ()  # inputs that name a variable rather than read its value
    shape_inputs: tuple[int, ...] = ()  # inputs read only for their run-time shape
    has_output: bool = True  # False for ops fetched only for their effect (no_op)
    # effect(state, node, *input_values) -> value, for ops that read or write session state
    # (variables, assignments); `state` offers read(var_node) and write(var_node, array).
    effect: Callable[..., Any] | None = None
    doc: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"OpDef({self.name!r})"


REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    """Adds an op to the registry; each name once."""
    if opdef.name in REGISTRY:
        raise ValueError(f"op {opdef.name!r} is registered twice")
    REGISTRY[opdef.name] = opdef
    return opdef


def lookup(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} is registered") from None

"""The kernel IR: a fused group lowered to a small, backend-neutral description.

Both code generators start here: codegen_cpu renders it to one Numba loop nest, codegen_cuda to
CUDA kernels. The IR says what the loop computes, not how it is scheduled:

- the loop: its rank and static shape; loop dimension d has the run-time size n<d>, the NumPy
  broadcast of the sizes of every input axis that lines up with d (`dims`);
- inputs: for each input axis, how the loop index reaches it (`Axis.kind`): "zero" for a static 1
  (always index 0), "loop" where the static size equals the loop's (the loop index itself), and
  "stride" where only the run time knows (index 0 if that size is 1, else the loop index);
- checks a kernel makes before it runs (a member that reads only some inputs must still span the
  loop; a member fused because its static shapes agree must get no broadcasting): a kernel that
  fails one refuses its inputs (ValueError) and the executor runs the group's nodes one by one;
- the body, in member order: `Compute` (v<j> = dtype(expr)), `Store` (an elementwise output),
  `Reduce` (acc = combine(acc, value) from init, then finish(acc, count) and a cast);
- in-place outputs (`writes`): an output stored into the array of the input it replaces (an
  optimizer's update of a variable), which the loop reads at the same index just before; those
  whose arrays other steps read too (`shared`: the weight, not its slots) the cpu backend
  stores a chunk at a time, by a loop of their own.

Expressions are the registry's templates with operands and scalar attributes substituted and every
number replaced by a named constant of the statement's literal dtype (`constants`), so float32
kernels compute in float32. They keep the generic spellings (`math.exp`, `maximum_`): each backend
maps those to its own scalar functions. Nothing in the IR comes from a user's string.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from compiler.fusion import Group, is_reduction, is_same_shape
from symgraph.dtypes import DType, float64
from symgraph.graph import Node


@dataclass(frozen=True)
class Axis:
    """One axis of an input: the loop dimension `dim` it lines up with, and how it is indexed
    ("zero": static size 1; "loop": static size equal to the loop's; "stride": run-time)."""

    dim: int
    kind: str


@dataclass(frozen=True)
class Input:
    """Input `slot` (a<slot> in the kernel): its axes, and whether its values are read (an input
    read only for its shape is not)."""

    slot: int
    axes: tuple[Axis, ...]
    read: bool

    @property
    def rank(self) -> int:
        return len(self.axes)


@dataclass(frozen=True)
class PartialCheck:
    """At run time, the broadcast of the input axes `pairs` ((slot, axis)) on loop dimension
    `dim` must be the whole n<dim>: a member reading only those inputs spans the loop."""

    dim: int
    pairs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SameShapeCheck:
    """Input `slot`'s run-time shape must be the loop's (no broadcasting)."""

    slot: int


@dataclass(frozen=True)
class Compute:
    """v<index> = dtype(expr). `uses` are the values (x<k>, v<j>) that expr reads; in a kernel
    whose literal dtype (`math_dtype`) is float32 a backend may swap math.* for float32 code."""

    index: int
    expr: str
    dtype: str  # numpy dtype name ("float32", "bool", ...)
    math_dtype: str
    uses: tuple[str, ...]

    @property
    def var(self) -> str:
        return f"v{self.index}"


@dataclass(frozen=True)
class Store:
    """Output `slot` (o<slot>, of the loop's shape) holds `var` at every loop position."""

    slot: int
    var: str
    dtype: str


@dataclass(frozen=True)
class Reduce:
    """Output `slot` = finish(combine over `axes` of `value`, from init), cast to `dtype`.

    `combine` and `finish` are templates over {0} (the accumulator) and {1} (the value, or for
    finish the count of combined elements); `init` is a number (float, maybe +-inf); `init_name`
    names it as a float64 constant (the CPU accumulates in float64). The output has the loop's
    shape without `axes` (or with 1 there when `keepdims`).
    """

    slot: int
    value: str
    axes: tuple[int, ...]
    combine: str
    init: float
    init_name: str
    finish: str | None
    keepdims: bool
    dtype: str


@dataclass(frozen=True)
class KernelIR:
    """A fused group, ready for a backend to render (see the module docstring)."""

    rank: int
    shape: tuple[int | None, ...]  # the loop's static shape
    inputs: tuple[Input, ...]  # every input, by slot; `read` ones are loaded as x<slot>
    dims: tuple[tuple[tuple[int, int], ...], ...]  # per loop dim: its (slot, axis) pairs
    checks: tuple[PartialCheck | SameShapeCheck, ...]
    body: tuple[Compute | Store | Reduce, ...]
    constants: tuple[tuple[str, str, str], ...]  # (name, dtype name, Python literal)
    outputs: int
    # (output slot, input slot): the output is stored into that input's own array, in place;
    # the input has the loop's whole static shape, so element i is read before it is written
    writes: tuple[tuple[int, int], ...] = ()
    # output slots of `writes` whose arrays other steps read too (codegen_cpu stores them a
    # chunk at a time, in loops of their own: _render_chunked_stores)
    shared: tuple[int, ...] = ()

    @property
    def loads(self) -> list[Input]:
        return [i for i in self.inputs if i.read]

    @property
    def reductions(self) -> list[Reduce]:
        return [s for s in self.body if isinstance(s, Reduce)]


class _TypedConstants(ast.NodeTransformer):
    """Replaces numeric literals with named constants of one dtype."""

    def __init__(self, dtype: DType, table: dict[tuple[str, str], str]) -> None:
        self.dtype = dtype
        self.table = table

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            return node
        return ast.copy_location(ast.Name(id=constant(self.table, self.dtype.np.name,
                                                      node.value), ctx=ast.Load()), node)


def constant(table: dict[tuple[str, str], str], dtype_name: str, value: float) -> str:
    """The name of a constant holding `value` as `dtype_name`, added to `table` if new."""
    v = float(value)
    literal = repr(v) if math.isfinite(v) else ("math.nan" if v != v else
                                                ("math.inf" if v > 0 else "-math.inf"))
    return table.setdefault((dtype_name, literal), f"K{len(table)}")


def _dtype_name(dtype: DType) -> str:
    return "bool" if dtype.is_bool else dtype.np.name


def _literal_dtype(node: Node) -> DType:
    """The dtype a template's numbers take: the node's own, or its inputs' for comparisons."""
    if node.dtype.is_floating:
        return node.dtype
    floats = [t.dtype for t in node.inputs if t.dtype.is_floating]
    return floats[0] if floats else node.dtype


def _render(template: str, operands: list[str], attrs: dict, dtype: DType,
            constants: dict) -> str:
    if "{*}" in template:
        template = template.replace("{*}", " + ".join(f"{{{i}}}" for i in range(len(operands))))
    scalars = {k: repr(v) for k, v in attrs.items() if isinstance(v, (int, float, bool))}
    text = template.format(*operands, **scalars)
    return ast.unparse(_TypedConstants(dtype, constants).visit(ast.parse(text, mode="eval")))


_VALUE = re.compile(r"\b[xv]\d+\b")


def lower(group: Group, inputs: Sequence[Node], outputs: Sequence[Node],
          in_place: Sequence[tuple[Node, Node]] = ()) -> KernelIR:
    """The IR of `group`, reading `inputs` (slots in order) and producing `outputs` (in order);
    each (input, output) pair of `in_place` (fusion.in_place_updates) stores the output into
    the input's array."""
    rank = group.shape.rank
    slot = {n.id: k for k, n in enumerate(inputs)}
    dims: dict[int, list[tuple[int, int]]] = {d: [] for d in range(rank)}
    for k, n in enumerate(inputs):
        r = n.shape.rank
        for j in range(r):
            dims[rank - r + j].append((k, j))

    closure: dict[int, set[int]] = {}  # the inputs each member depends on
    for m in group.members:
        closure[m.id] = set()
        for t in m.inputs:
            closure[m.id] |= closure.get(t.node.id, {slot[t.node.id]}
                                         if t.node.id in slot else set())
    checks: list[PartialCheck | SameShapeCheck] = []
    for o in outputs:
        node = o.inputs[0].node if is_reduction(o) else o
        for d in range(rank):
            if group.shape[d] is not None:
                continue
            own = tuple((k, j) for k, j in dims[d] if k in closure[node.id])
            if len(own) != len(dims[d]):
                checks.append(PartialCheck(d, own))
    for m in group.members:
        if is_same_shape(m):
            checks += [SameShapeCheck(slot[t.node.id]) for t in m.inputs if t.node.id in slot]

    reads = {slot[t.node.id] for m in group.members for i, t in enumerate(m.inputs)
             if t.node.id in slot and i not in m.opdef.shape_inputs}
    ins = []
    for k, n in enumerate(inputs):
        r = n.shape.rank
        axes = []
        for j in range(r):
            d = rank - r + j
            static = n.shape[j]
            kind = ("zero" if static == 1 else "loop" if static is not None
                    and static == group.shape[d] else "stride")
            axes.append(Axis(d, kind))
        ins.append(Input(k, tuple(axes), k in reads))

    constants: dict[tuple[str, str], str] = {}
    value = {n.id: f"x{k}" for k, n in enumerate(inputs)}
    out_slot = {o.id: q for q, o in enumerate(outputs)}
    body: list[Compute | Store | Reduce] = []
    for j, m in enumerate(group.members):
        if is_reduction(m):
            op = m.opdef
            init = constant(constants, float64.np.name, op.reduce_init)
            body.append(Reduce(out_slot[m.id], value[m.inputs[0].node.id],
                               tuple(sorted(m.attrs["axis"])), op.reduce_combine,
                               float(op.reduce_init), init, op.reduce_finish,
                               bool(m.attrs["keepdims"]), _dtype_name(m.dtype)))
            continue
        operands = ["" if i in m.opdef.shape_inputs else value[t.node.id]
                    for i, t in enumerate(m.inputs)]
        literal = _literal_dtype(m)
        expr = _render(m.opdef.scalar, operands, m.attrs, literal, constants)
        uses = tuple(dict.fromkeys(_VALUE.findall(expr)))
        body.append(Compute(j, expr, _dtype_name(m.dtype), literal.np.name, uses))
        value[m.id] = f"v{j}"
        if m.id in out_slot:
            body.append(Store(out_slot[m.id], f"v{j}", _dtype_name(m.dtype)))
    table = tuple((name, dtype_name, literal)
                  for (dtype_name, literal), name in constants.items())
    return KernelIR(rank, tuple(group.shape.dims), tuple(ins),
                    tuple(tuple(dims[d]) for d in range(rank)), tuple(checks), tuple(body),
                    table, len(outputs),
                    tuple((out_slot[o.id], slot[i.id]) for i, o in in_place))

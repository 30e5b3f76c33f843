"""Graph-to-graph optimizations: each takes a Program and returns a new one (nodes never change).

Every pass is `rebuild` with a local rewrite, so each also drops dead code. Only pure ops are
touched: an op with an `effect` (variables, assignments, random draws) is never folded, merged
or removed while live.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.program import Program, live_nodes, make_node, rebuild
from symgraph.dtypes import DType
from symgraph.graph import Node, Tensor
from symgraph.ops import elementwise as ew
from symgraph.ops import nn as nn_ops
from symgraph.ops import shape_ops
from symgraph.ops.reduce import REDUCE_SUM
from symgraph.ops.state import ASSIGN, ASSIGN_ADD, ASSIGN_SUB, CONSTANT
from symgraph.registry import OpDef
from symgraph.shapes import TensorShape

FOLD_LIMIT = 1 << 16  # largest folded constant, in elements: bigger ones cost more than they save


def is_pure(opdef: OpDef) -> bool:
    """Computes a value from its inputs alone: safe to fold, merge and drop."""
    return opdef.effect is None and opdef.numpy is not None and opdef.has_output


def eliminate_dead_code(program: Program) -> Program:
    """Drops the nodes no output depends on."""
    return rebuild(program)


# ---- common subexpressions ----------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    """A hashable, exact stand-in for an attribute value."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (DType, TensorShape)):
        return (type(value).__name__, repr(value))
    if isinstance(value, float):
        return ("float", value.hex())  # keeps -0.0 apart from 0.0
    return value


def structural_key(node: Node, inputs: list[Tensor]) -> tuple:
    """What makes two pure nodes compute the same value: op, inputs, attributes. The two
    inputs of a commutative op count in either order (a*b is b*a, exactly in IEEE arithmetic;
    add_n of three or more is not reordered: its sums would round differently)."""
    ids = tuple(t.node.id for t in inputs)
    if node.opdef.commutative and len(ids) == 2:
        ids = tuple(sorted(ids))
    return (node.opdef.name, ids, _freeze(node.attrs))


def eliminate_common_subexpressions(program: Program) -> Program:
    """Merges pure nodes with the same op, inputs and attributes (equal constants included)."""
    seen: dict[tuple, Tensor] = {}

    def rewrite(node: Node, inputs: list[Tensor]) -> Tensor | None:
        if not is_pure(node.opdef):
            return None
        key = structural_key(node, inputs)
        if key in seen:
            return seen[key]
        seen[key] = make_node(node.opdef, inputs, node.attrs, node)
        return seen[key]

    return rebuild(program, rewrite)


# ---- constant folding ---------------------------------------------------------------------------


def constant_value(t: Tensor) -> np.ndarray | None:
    """The value of a constant that may be used in place of its node; a constant with control
    inputs must still wait for them, so it is not one."""
    node = t.node
    return node.attrs["value"] if node.opdef is CONSTANT and not node.control_inputs else None


def make_constant(value: np.ndarray, like: Node) -> Tensor:
    arr = np.array(value, dtype=like.dtype.np, copy=True)
    arr.setflags(write=False)
    return make_node(CONSTANT, [], {"value": arr, "dtype": like.dtype,
                                    "shape": TensorShape(arr.shape)}, like)


def fold_constants(program: Program) -> Program:
    """Computes, once, every pure node whose values are all constants (inputs read only for
    their shape count as constant when that shape is fully known statically)."""

    def rewrite(node: Node, inputs: list[Tensor]) -> Tensor | None:
        if node.opdef is CONSTANT or not is_pure(node.opdef) or not inputs:
            return None
        values = []
        for i, t in enumerate(inputs):
            if i in node.opdef.shape_inputs and t.shape.is_fully_defined():
                values.append(np.broadcast_to(np.zeros((), t.dtype.np), t.shape.dims))
            else:
                values.append(constant_value(t))
        if any(v is None for v in values):
            return None
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(node.opdef.numpy(*values, **node.attrs))
        except Exception:
            return None  # let it fail at run time, with the usual error naming the op
        if out.size > FOLD_LIMIT or not node.shape.is_compatible_with(out.shape):
            return None
        return make_constant(out, node)

    return rebuild(program, rewrite)


# ---- algebraic simplification -------------------------------------------------------------------


def _is_constant_equal_to(t: Tensor, value: float) -> bool:
    v = constant_value(t)
    return v is not None and v.size > 0 and bool(np.all(v == value))


def _same_type(a: Tensor, node: Node) -> bool:
    """`a` can stand for node's output: same dtype and the same static shape."""
    return a.dtype == node.dtype and a.shape == node.shape


def _passes_through(x: Tensor, neutral: Tensor, node: Node) -> bool:
    """`x op neutral` is `x` itself: same type, and the neutral constant cannot broadcast `x` to a
    bigger shape (against an unknown rank, only a 0-d constant is sure not to)."""
    return _same_type(x, node) and (x.shape.rank is not None or neutral.shape.rank == 0)


def _producer(t: Tensor) -> OpDef | None:
    """The op computing `t`, when a rewrite may look through it: a node with control inputs
    must still run after them, so a rewrite that would bypass it (and drop it) may not."""
    return None if t.node.control_inputs else t.node.opdef


def _simplify_one(node: Node, inputs: list[Tensor]) -> Tensor | None:
    op = node.opdef
    if op in (ew.IDENTITY, ew.STOP_GRADIENT):  # forward values pass through unchanged
        return inputs[0]
    if op in (ew.MULTIPLY, ew.ADD, ew.SUBTRACT, ew.DIVIDE):
        neutral = 1 if op in (ew.MULTIPLY, ew.DIVIDE) else 0
        x, y = inputs
        if _is_constant_equal_to(y, neutral) and _passes_through(x, y, node):
            return x  # x * 1, x + 0, x - 0, x / 1
        if op.commutative and _is_constant_equal_to(x, neutral) and _passes_through(y, x, node):
            return y  # 1 * y, 0 + y
    if op is ew.NEGATIVE and _producer(inputs[0]) is ew.NEGATIVE:
        return inputs[0].node.inputs[0]  # -(-x)
    if op is ew.LOG and _producer(inputs[0]) is ew.EXP:
        return inputs[0].node.inputs[0]  # log(exp(x))
    if op is ew.LOG and _producer(inputs[0]) is nn_ops.SOFTMAX:
        inner = inputs[0].node  # log(softmax(x)) -> the stable log_softmax(x)
        return make_node(nn_ops.LOG_SOFTMAX, list(inner.inputs), dict(inner.attrs), node)
    if op is shape_ops.TRANSPOSE and _producer(inputs[0]) is shape_ops.TRANSPOSE:
        inner = inputs[0].node
        perm = tuple(inner.attrs["perm"][p] for p in node.attrs["perm"])
        source = inner.inputs[0]
        if perm == tuple(range(len(perm))):
            return source
        return make_node(shape_ops.TRANSPOSE, [source], {"perm": perm}, node)
    if op is shape_ops.RESHAPE:
        x = inputs[0]
        if _producer(x) in (shape_ops.RESHAPE, shape_ops.RESHAPE_LIKE) and \
                x.node.inputs[0].shape.rank is not None:
            x = x.node.inputs[0]  # reshape(reshape(x)) = reshape(x)
            if _same_type(x, node) and node.shape.is_fully_defined():
                return x
            return make_node(shape_ops.RESHAPE, [x], dict(node.attrs), node)
        if _same_type(x, node) and node.shape.is_fully_defined():
            return x  # a reshape to the shape it already has
    return None


def simplify(program: Program) -> Program:
    """Algebraic identities: x*1, x+0, -(-x), log(exp(x)), log(softmax(x)) -> log_softmax(x),
    transpose of transpose, reshape of reshape, identity and stop_gradient (forward); and the
    gradient of a ReLU that feeds a max pool taken at the pool's size (_relu_pool)."""
    readers: dict[int, set[int]] = {n.id: {-1} for n in program.outputs}  # -1: fetched
    for node in program.graph.nodes:
        for t in node.inputs:
            readers.setdefault(t.node.id, set()).add(node.id)

    def rewrite(node: Node, inputs: list[Tensor]) -> Tensor | None:
        found = _simplify_one(node, inputs)
        return found if found is not None else _relu_pool(node, inputs, readers)

    return rebuild(program, rewrite)


# ---- a ReLU's gradient through a max pool --------------------------------------------------------


def _is_relu_of(h: Tensor, z: Tensor | None = None) -> bool:
    """h = relu(z) (of anything, when z is None): max pooling over it never picks a padded tap,
    since its values are >= 0 or NaN and padding is -inf."""
    return _producer(h) is nn_ops.RELU and (z is None or h.node.inputs[0].node is z.node)


def _is_zeros(t: Tensor) -> bool:
    """A 0 scalar, or fill_like(_, 0)."""
    if _producer(t) is shape_ops.FILL_LIKE:
        return t.node.attrs["value"] == 0
    return t.shape.rank == 0 and _is_constant_equal_to(t, 0)


def _relu_pool(node: Node, inputs: list[Tensor], readers: dict[int, set[int]]) -> Tensor | None:
    """conv - ReLU - max pool, differentiated: the ReLU's mask applies to the pooled gradient,
    and the bias gradient sums it, instead of the full-size one (a 2x2 pool: 4x fewer
    elements). Two identities, for h = relu(z):

    - where(z > 0, max_pool_grad(h, g), 0) = max_pool_grad(h, where(max_pool(h) > 0, g, 0)):
      each position receives the g of the windows it wins, and a window's winner holds the
      window's maximum, relu(z_p), which is > 0 exactly where z_p > 0 (a NaN passes neither).
    - reduce_sum(max_pool_grad(h, g)) over batch, rows and columns = the same sum of g: the
      scatter moves each g to one position of the image, never to padding.

    The first applies where nothing else reads or fetches the full-size gradient (no work is
    doubled). On W3 the full-size mask-and-sum loops (0.76 ms a step) became pooled ones (0.36
    ms, with the comparison), and the forward no longer writes a full-size mask: 17.7 -> 16.7
    ms a step."""
    if node.opdef is ew.WHERE:
        cond, grads, zeros = inputs
        if _producer(cond) is not ew.GREATER or _producer(grads) is not nn_ops.MAX_POOL_GRAD:
            return None
        (z, zero), (h, g) = cond.node.inputs, grads.node.inputs
        only_here = {node.id, node.inputs[2].node.id}  # fill_like reads just its shape
        if not (_is_relu_of(h, z) and zero.shape.rank == 0 and _is_constant_equal_to(zero, 0)
                and _is_zeros(zeros) and _same_type(grads, node)
                and readers.get(node.inputs[1].node.id, set()) <= only_here):
            return None
        attrs = dict(grads.node.attrs)
        pooled = make_node(nn_ops.MAX_POOL, [h], attrs, grads.node)
        passes = make_node(ew.GREATER, [pooled, zero], {}, cond.node)
        # a 0-d zero, not fill_like(g): the comparison, the mask and the bias sum then share
        # one loop (a fill_like of g would start a loop of its own, which the comparison's,
        # reading other data, may not join)
        masked = make_node(ew.WHERE, [passes, g, make_constant(0, node)], {}, node)
        return make_node(nn_ops.MAX_POOL_GRAD, [h, masked], attrs, grads.node)
    if node.opdef is REDUCE_SUM:
        x = inputs[0]
        if _producer(x) is not nn_ops.MAX_POOL_GRAD or not _is_relu_of(x.node.inputs[0]):
            return None
        axes = node.attrs["axis"]
        if x.shape.rank != 4 or (axes is not None and not {0, 1, 2} <= set(axes)):
            return None
        return make_node(REDUCE_SUM, [x.node.inputs[1]], dict(node.attrs), node)
    return None


# ---- relative assignments ------------------------------------------------------------------------
WRITERS = (ASSIGN, ASSIGN_ADD, ASSIGN_SUB)


def expand_relative_assignments(program: Program) -> Program:
    """assign_sub(v, d) -> assign(v, v - d), and assign_add likewise, for a variable that no
    other op of the program writes: then its read at the start of the run is the value the
    update starts from, and the subtraction fuses into the kernel that computes d (an
    optimizer's update becomes one pass over its arrays instead of two)."""
    writes: dict[int, int] = {}
    for node in program.graph.nodes:
        if node.opdef in WRITERS:
            var = node.inputs[0].node.id
            writes[var] = writes.get(var, 0) + 1

    def rewrite(node: Node, inputs: list[Tensor]) -> Tensor | None:
        if node.opdef not in (ASSIGN_ADD, ASSIGN_SUB) or writes[node.inputs[0].node.id] != 1:
            return None
        var, delta = inputs
        step = ew.ADD if node.opdef is ASSIGN_ADD else ew.SUBTRACT
        value = make_node(step, [var, delta], {}, node)
        return make_node(ASSIGN, [var, value], {}, node)

    return rebuild(program, rewrite)


def forward_assigned_values(program: Program) -> Program:
    """A fusable node that reads an assignment's output reads the assigned value instead (the
    output is that value: TF1's `m_t = m.assign(...)`), so an optimizer's update of a weight
    joins the loop that updates its slots (Adam: one pass over w, m and v instead of two). The
    assignment must still run whenever those readers do: it becomes a control input of the
    first non-fusable nodes downstream of them (the weight's own assignment). An assignment
    whose fusable readers lead to a fetched fusable node keeps them: a control input there
    would cost that node its loop."""
    from compiler.fusion import is_elementwise, is_reduction

    live = live_nodes(program.outputs)
    nodes = [n for n in program.graph.nodes if n.id in live]
    fetched = {n.id for n in program.outputs}
    consumers: dict[int, list[Node]] = {}
    for node in nodes:
        for t in node.inputs:
            consumers.setdefault(t.node.id, []).append(node)

    def fusable(node: Node) -> bool:
        return is_elementwise(node) or is_reduction(node)

    forwarded: set[int] = set()  # assignments whose fusable readers read their value
    controls: dict[int, list[Node]] = {}
    for node in nodes:
        if node.opdef is not ASSIGN or node.inputs[1].shape != node.shape:
            continue
        readers = [c for c in consumers.get(node.id, ()) if fusable(c)]
        anchors: dict[int, Node] = {}
        todo, seen = list(readers), set()
        while todo:
            n = todo.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            if n.id in fetched:
                anchors[n.id] = n
            for c in consumers.get(n.id, ()):
                if fusable(c):
                    todo.append(c)
                else:
                    anchors[c.id] = c
        if not readers or any(fusable(a) for a in anchors.values()):
            continue
        forwarded.add(node.id)
        for anchor in anchors.values():
            controls.setdefault(anchor.id, []).append(node)

    def rewrite(node: Node, inputs: list[Tensor]) -> Tensor | None:
        if not fusable(node) or not any(t.node.id in forwarded for t in node.inputs):
            return None
        routed = [new.node.inputs[1] if old.node.id in forwarded else new
                  for old, new in zip(node.inputs, inputs)]
        return make_node(node.opdef, routed, node.attrs, node)

    return rebuild(program, rewrite, controls)

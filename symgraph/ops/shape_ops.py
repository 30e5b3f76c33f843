"""Ops that move or select elements without arithmetic: reshape, transpose, slicing, concat, ...

Ops whose gradient needs a shape that may be unknown until run time (None dims) take a second
`like` input and read its run-time shape: reshape_like, broadcast_like, slice_grad.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.graph import Tensor, apply, convert_to_tensor, graph_of
from symgraph.ops.inference import broadcast, rank_of, same_dtype
from symgraph.registry import NOT_DIFFERENTIABLE, OpDef, OpKind, TensorType, register
from symgraph.shapes import TensorShape, broadcast_shapes, normalize_axis

S = OpKind.SHAPE


# ---- reshape ----------------------------------------------------------------------------------


def _reshape_infer(inputs: list, attrs: dict) -> TensorType:
    x, target = inputs[0], attrs["shape"]
    if target.count(-1) > 1:
        raise ValueError(f"reshape of {x.describe()} to {list(target)}: at most one -1 is allowed")
    known = 1
    for d in target:
        if d != -1:
            if d < 0:
                raise ValueError(f"reshape of {x.describe()}: bad dimension {d} in {list(target)}")
            known *= d
    total = x.shape.num_elements()
    dims: list = list(target)
    if -1 in target:
        i = target.index(-1)
        if total is None:
            dims[i] = None
        elif known == 0 or total % known:
            raise ValueError(f"cannot reshape {x.describe()} ({total} elements) to "
                             f"{list(target)}")
        else:
            dims[i] = total // known
    elif total is not None and total != known:
        raise ValueError(f"cannot reshape {x.describe()} ({total} elements) to {list(target)} "
                         f"({known} elements)")
    return TensorType(x.dtype, TensorShape(dims))


def _reshape_grad(n, g):
    x = n.inputs[0]
    return (reshape(g, x.shape.dims) if x.shape.is_fully_defined() else reshape_like(g, x),)


RESHAPE = register(OpDef("reshape", S, _reshape_infer, lambda x, shape: x.reshape(shape),
                         grad=_reshape_grad))
RESHAPE_LIKE = register(OpDef(
    "reshape_like", S, lambda i, a: TensorType(i[0].dtype, i[1].shape),
    lambda x, like: x.reshape(like.shape),
    grad=lambda n, g: (reshape_like(g, n.inputs[0]), None)))


def reshape(tensor: Any, shape: Sequence[int], name: str | None = None) -> Tensor:
    """The same elements in a new shape; one dimension may be -1 (inferred)."""
    tensor = convert_to_tensor(tensor)
    if isinstance(shape, Tensor):
        raise TypeError("reshape takes a static shape (a list of ints, one may be -1); "
                        "to copy another tensor's run-time shape use sg.reshape_like")
    target = tuple(-1 if d is None else int(d) for d in TensorShape(shape).dims)
    return apply(RESHAPE, tensor, name=name, shape=target)


def reshape_like(tensor: Any, like: Tensor, name: str | None = None) -> Tensor:
    """`tensor` reshaped to `like`'s run-time shape."""
    return apply(RESHAPE_LIKE, convert_to_tensor(tensor), like, name=name)


# ---- transpose, expand_dims, squeeze ---------------------------------------------------------


def _transpose_infer(inputs: list, attrs: dict) -> TensorType:
    x, perm = inputs[0], attrs["perm"]
    if sorted(perm) != list(range(rank_of(x))):
        raise ValueError(f"perm {list(perm)} is not a permutation of the axes of {x.describe()}")
    return TensorType(x.dtype, TensorShape([x.shape[p] for p in perm]))


def _transpose_grad(n, g):
    perm = n.attrs["perm"]
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (transpose(g, inverse),)


TRANSPOSE = register(OpDef("transpose", S, _transpose_infer,
                           lambda x, perm: np.transpose(x, perm), grad=_transpose_grad))


def transpose(a: Any, perm: Sequence[int] | None = None, name: str | None = None) -> Tensor:
    """Permutes the axes; by default reverses them (a matrix transpose for rank 2)."""
    a = convert_to_tensor(a)
    rank = rank_of(a) if perm is None else len(perm)
    perm = tuple(reversed(range(rank))) if perm is None else tuple(int(p) for p in perm)
    return apply(TRANSPOSE, a, name=name, perm=perm)


def _expand_infer(inputs: list, attrs: dict) -> TensorType:
    x = inputs[0]
    dims = list(x.shape.dims)
    dims.insert(attrs["axis"], 1)
    return TensorType(x.dtype, TensorShape(dims))


EXPAND_DIMS = register(OpDef("expand_dims", S, _expand_infer,
                             lambda x, axis: np.expand_dims(x, axis),
                             grad=lambda n, g: (squeeze(g, [n.attrs["axis"]]),)))


def expand_dims(input: Any, axis: int, name: str | None = None) -> Tensor:  # noqa: A002
    """Inserts a dimension of size 1 at `axis` (in [-rank-1, rank])."""
    x = convert_to_tensor(input)
    rank = rank_of(x)
    axis = normalize_axis(int(axis), rank + 1)
    return apply(EXPAND_DIMS, x, name=name, axis=axis)


def _squeeze_infer(inputs: list, attrs: dict) -> TensorType:
    x, axes = inputs[0], attrs["axis"]
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of {x.describe()}: its size is not 1")
    return TensorType(x.dtype, TensorShape([d for i, d in enumerate(x.shape) if i not in axes]))


def _squeeze_grad(n, g):
    for a in n.attrs["axis"]:  # ascending, so each index is right after the earlier inserts
        g = expand_dims(g, a)
    return (g,)


SQUEEZE = register(OpDef("squeeze", S, _squeeze_infer, lambda x, axis: np.squeeze(x, axis),
                         grad=_squeeze_grad))


def squeeze(input: Any, axis: int | Sequence[int] | None = None,  # noqa: A002
            name: str | None = None) -> Tensor:
    """Removes dimensions of size 1 (all statically known ones when `axis` is None)."""
    x = convert_to_tensor(input)
    rank = rank_of(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = tuple(sorted({normalize_axis(int(a), rank) for a in
                             ([axis] if isinstance(axis, int) else axis)}))
    return apply(SQUEEZE, x, name=name, axis=axes)


# ---- concat and stack -------------------------------------------------------------------------


def _concat_infer(inputs: list, attrs: dict) -> TensorType:
    dtype = same_dtype(inputs)
    axis = attrs["axis"]
    first = inputs[0]
    rank = rank_of(first)
    dims = list(first.shape.dims)
    total = 0
    for t in inputs:
        if rank_of(t) != rank:
            raise ValueError(f"concat needs inputs of one rank: {first.describe()} and "
                             f"{t.describe()}")
        for i, (a, b) in enumerate(zip(dims, t.shape.dims)):
            if i == axis:
                continue
            if a is not None and b is not None and a != b:
                raise ValueError(f"concat along axis {axis}: dimension {i} differs between "
                                 f"{first.describe()} and {t.describe()}")
            dims[i] = a if a is not None else b
        total = None if total is None or t.shape[axis] is None else total + t.shape[axis]
    dims[axis] = total
    return TensorType(dtype, TensorShape(dims))


def _concat_grad(n, g):
    return tuple(apply(CONCAT_PART, g, *n.inputs, axis=n.attrs["axis"], index=i)
                 for i in range(len(n.inputs)))


def _concat_part(g: np.ndarray, *parts: np.ndarray, axis: int, index: int) -> np.ndarray:
    start = builtins.sum(p.shape[axis] for p in parts[:index])
    sl = [slice(None)] * g.ndim
    sl[axis] = slice(start, start + parts[index].shape[axis])
    return g[tuple(sl)]


def _concat_part_grad(n, gg):
    # the part sits at `index` of a concat; every other piece of g gets zero
    parts = n.inputs[1:]
    i = n.attrs["index"]
    pieces = [gg if j == i else zeros_like_t(p, gg.dtype) for j, p in enumerate(parts)]
    return (concat(pieces, n.attrs["axis"]),) + (None,) * len(parts)


CONCAT = register(OpDef("concat", S, _concat_infer,
                        lambda *xs, axis: np.concatenate(xs, axis=axis), grad=_concat_grad))
# The slice of `g` that concat input `index` came from; sizes are read from the inputs at run time.
CONCAT_PART = register(OpDef(
    "concat_part", S,
    lambda i, a: TensorType(i[0].dtype, TensorShape(
        [d if k != a["axis"] else i[1 + a["index"]].shape[k] for k, d in enumerate(i[0].shape)])),
    _concat_part, grad=_concat_part_grad))


def concat(values: Sequence[Any], axis: int, name: str | None = None) -> Tensor:
    """Joins tensors of one dtype and rank along `axis`."""
    if not values:
        raise ValueError("concat needs at least one tensor")
    graph = graph_of(values)
    tensors = [convert_to_tensor(v, graph=graph) for v in values]
    axis = normalize_axis(int(axis), rank_of(tensors[0]))
    if len(tensors) == 1:
        return tensors[0]
    return apply(CONCAT, *tensors, name=name, axis=axis)


def _stack_infer(inputs: list, attrs: dict) -> TensorType:
    dtype = same_dtype(inputs)
    first = inputs[0]
    dims = list(first.shape.dims)
    for t in inputs[1:]:
        if not t.shape.is_compatible_with(first.shape):
            raise ValueError(f"stack needs tensors of one shape: {first.describe()} and "
                             f"{t.describe()}")
        dims = [a if a is not None else b for a, b in zip(dims, t.shape.dims)]
    dims.insert(attrs["axis"], len(inputs))
    return TensorType(dtype, TensorShape(dims))


def _stack_grad(n, g):
    axis = n.attrs["axis"]
    return tuple(g[(slice(None),) * axis + (i,)] for i in range(len(n.inputs)))


STACK = register(OpDef("stack", S, _stack_infer, lambda *xs, axis: np.stack(xs, axis=axis),
                       grad=_stack_grad))


def stack(values: Sequence[Any], axis: int = 0, name: str | None = None) -> Tensor:
    """Stacks tensors of one shape along a new axis."""
    if not values:
        raise ValueError("stack needs at least one tensor")
    graph = graph_of(values)
    tensors = [convert_to_tensor(v, graph=graph) for v in values]
    axis = normalize_axis(int(axis), rank_of(tensors[0]) + 1)
    return apply(STACK, *tensors, name=name, axis=axis)


# ---- tile, broadcast, pad -----------------------------------------------------------------------


def _tile_infer(inputs: list, attrs: dict) -> TensorType:
    x, m = inputs[0], attrs["multiples"]
    if len(m) != rank_of(x):
        raise ValueError(f"tile multiples {list(m)} must have one entry per axis of "
                         f"{x.describe()}")
    return TensorType(x.dtype, TensorShape([None if d is None else d * k
                                            for d, k in zip(x.shape, m)]))


def _sum_tiles(g: np.ndarray, multiples: tuple) -> np.ndarray:
    split = []
    for d, k in zip(g.shape, multiples):
        split += [k, d // k]
    return g.reshape(split).sum(axis=tuple(range(0, 2 * len(multiples), 2)))


TILE = register(OpDef("tile", S, _tile_infer, lambda x, multiples: np.tile(x, multiples),
                      grad=lambda n, g: (apply(SUM_TILES, g, multiples=n.attrs["multiples"]),)))
# The gradient of tile: adds up the copies (a reduction over the tile grid).
SUM_TILES = register(OpDef(
    "sum_tiles", OpKind.REDUCTION,
    lambda i, a: TensorType(i[0].dtype, TensorShape([None if d is None else d // k for d, k in
                                                     zip(i[0].shape, a["multiples"])])),
    _sum_tiles, grad=lambda n, g: (tile(g, n.attrs["multiples"]),)))


def tile(input: Any, multiples: Sequence[int], name: str | None = None) -> Tensor:  # noqa: A002
    """Repeats the tensor `multiples[i]` times along axis i."""
    m = tuple(int(k) for k in multiples)
    if any(k < 0 for k in m):
        raise ValueError(f"tile multiples must be non-negative, got {list(m)}")
    return apply(TILE, convert_to_tensor(input), name=name, multiples=m)


def _broadcast_to_infer(inputs: list, attrs: dict) -> TensorType:
    x, shape = inputs[0], attrs["shape"]
    out = broadcast_shapes([x.shape, shape])
    if out is None or out != shape:
        raise ValueError(f"cannot broadcast {x.describe()} to shape {shape}")
    return TensorType(x.dtype, shape)


def _sum_to_grad(n, g):
    from symgraph.ops.reduce import sum_to

    return (sum_to(g, n.inputs[0], others=[n.shape]),)


BROADCAST_TO = register(OpDef("broadcast_to", S, _broadcast_to_infer,
                              lambda x, shape: np.broadcast_to(x, shape.dims),
                              grad=_sum_to_grad))


def broadcast_to(input: Any, shape: Sequence[int], name: str | None = None) -> Tensor:  # noqa: A002
    """`input` repeated along new or size-1 axes to `shape` (NumPy broadcasting)."""
    target = TensorShape(shape)
    if not target.is_fully_defined():
        raise ValueError(f"broadcast_to needs a fully known shape, got {target}; "
                         "use sg.broadcast_like to take another tensor's run-time shape")
    return apply(BROADCAST_TO, convert_to_tensor(input), name=name, shape=target)


def _broadcast_like_infer(inputs: list, attrs: dict) -> TensorType:
    x, like = inputs
    out = broadcast([x, like])
    return TensorType(x.dtype, out)


# Elementwise: out[i] = x[i] under NumPy broadcasting, so the autodiff driver sums the output-shaped
# gradient back to x's shape, and fused loops compute it like any other elementwise op.
BROADCAST_LIKE = register(OpDef(
    "broadcast_like", OpKind.ELEMENTWISE, _broadcast_like_infer,
    lambda x, like: np.broadcast_to(x, np.broadcast_shapes(x.shape, like.shape)),
    scalar="{0}", shape_inputs=(1,), grad=lambda n, g: (g, None)))


def broadcast_like(input: Any, like: Tensor, name: str | None = None) -> Tensor:  # noqa: A002
    """`input` broadcast against `like`'s run-time shape."""
    return apply(BROADCAST_LIKE, convert_to_tensor(input), like, name=name)


def _pad_infer(inputs: list, attrs: dict) -> TensorType:
    x, pads = inputs[0], attrs["paddings"]
    if len(pads) != rank_of(x):
        raise ValueError(f"paddings {[list(p) for p in pads]} need one [before, after] pair per "
                         f"axis of {x.describe()}")
    return TensorType(x.dtype, TensorShape([None if d is None else d + a + b
                                            for d, (a, b) in zip(x.shape, pads)]))


def _pad_grad(n, g):
    spec = tuple(("s", a, -b if b else None, 1) for a, b in n.attrs["paddings"])
    return (apply(STRIDED_SLICE, g, spec=spec),)


PAD = register(OpDef("pad", S, _pad_infer,
                     lambda x, paddings, constant_values: np.pad(
                         x, paddings, constant_values=constant_values),
                     grad=_pad_grad))


def pad(tensor: Any, paddings: Sequence[Sequence[int]], mode: str = "CONSTANT",
        constant_values: Any = 0, name: str | None = None) -> Tensor:
    """Pads each axis with `paddings[i] = [before, after]` copies of `constant_values`.

    Only mode "CONSTANT" is offered: it is the one neural networks use (zero padding).
    """
    if mode.upper() != "CONSTANT":
        raise ValueError(f"pad mode {mode!r} is not offered; only 'CONSTANT' is")
    pads = tuple((int(a), int(b)) for a, b in paddings)
    if any(a < 0 or b < 0 for a, b in pads):
        raise ValueError(f"paddings must be non-negative, got {[list(p) for p in pads]}")
    x = convert_to_tensor(tensor)
    value = _dt.convert_array(constant_values, x.dtype, "pad constant_values").item()
    return apply(PAD, x, name=name, paddings=pads, constant_values=value)


# ---- slicing (__getitem__) ---------------------------------------------------------------------
# A normalized spec is a tuple of ("i", k) ints, ("s", start, stop, step) slices, ("n",) newaxis;
# an Ellipsis is expanded into full slices when the rank is known.


def _index_objects(spec: tuple) -> tuple:
    out = []
    for item in spec:
        if item[0] == "i":
            out.append(item[1])
        elif item[0] == "s":
            out.append(slice(item[1], item[2], item[3]))
        elif item[0] == "n":
            out.append(None)
        else:
            out.append(Ellipsis)
    return tuple(out)


def normalize_index(x: Tensor, key: Any) -> tuple:
    """The normalized spec of `x[key]`, or an error for indices that are not static."""
    if not isinstance(key, tuple):
        key = (key,)
    spec: list = []
    for k in key:
        if k is None:
            spec.append(("n",))
        elif k is Ellipsis:
            spec.append(("e",))
        elif isinstance(k, slice):
            parts = []
            for v in (k.start, k.stop, k.step):
                if v is not None and not hasattr(v, "__index__"):
                    raise TypeError(f"slice bounds must be ints or None, got {v!r} in indexing "
                                    f"{x.describe()}")
                parts.append(None if v is None else int(v))
            if parts[2] == 0:
                raise ValueError(f"slice step cannot be zero, in indexing {x.describe()}")
            spec.append(("s", parts[0], parts[1], 1 if parts[2] is None else parts[2]))
        elif hasattr(k, "__index__") and not isinstance(k, (bool, np.bool_)):
            spec.append(("i", int(k)))
        else:
            raise TypeError(f"cannot index {x.describe()} with {type(k).__name__}: use ints, "
                            "slices, None and Ellipsis")
    if sum(1 for s in spec if s[0] == "e") > 1:
        raise ValueError(f"an index can have only one Ellipsis, in indexing {x.describe()}")
    consumed = sum(1 for s in spec if s[0] in "is")
    rank = x.shape.rank
    if rank is not None:
        if consumed > rank:
            raise ValueError(f"too many indices ({consumed}) for {x.describe()}")
        fill = [("s", None, None, 1)] * (rank - consumed)
        if any(s[0] == "e" for s in spec):
            i = next(i for i, s in enumerate(spec) if s[0] == "e")
            spec[i:i + 1] = fill
        else:
            spec += fill
    return tuple(spec)


def _slice_infer(inputs: list, attrs: dict) -> TensorType:
    x, spec = inputs[0], attrs["spec"]
    if x.shape.rank is None:
        return TensorType(x.dtype, TensorShape(None))
    consumed = sum(1 for item in spec if item[0] != "n")
    if consumed != x.shape.rank:  # a spec made for unknown rank, checked against a known one
        raise ValueError(f"the index uses {consumed} axes but {x.describe()} has "
                         f"{x.shape.rank}")
    dims: list = []
    axis = 0
    for item in spec:
        if item[0] == "n":
            dims.append(1)
            continue
        d = x.shape[axis]
        axis += 1
        if item[0] == "i":
            if d is not None and not -d <= item[1] < d:
                raise ValueError(f"index {item[1]} is out of range for axis {axis - 1} (size "
                                 f"{d}) of {x.describe()}")
        else:
            dims.append(None if d is None else len(range(*slice(*item[1:]).indices(d))))
    return TensorType(x.dtype, TensorShape(dims))


def _slice_grad(n, g):
    return (apply(SLICE_GRAD, g, n.inputs[0], spec=n.attrs["spec"]),)


def _slice_grad_np(g: np.ndarray, like: np.ndarray, spec: tuple) -> np.ndarray:
    out = np.zeros(like.shape, g.dtype)
    out[_index_objects(spec)] = g
    return out


STRIDED_SLICE = register(OpDef("strided_slice", S, _slice_infer,
                               lambda x, spec: x[_index_objects(spec)], grad=_slice_grad))
# Zeros shaped like `like`, with g written where the slice `spec` of `like` came from.
SLICE_GRAD = register(OpDef(
    "slice_grad", S, lambda i, a: TensorType(i[0].dtype, i[1].shape), _slice_grad_np,
    grad=lambda n, g: (apply(STRIDED_SLICE, g, spec=n.attrs["spec"]), None)))


def getitem(x: Tensor, key: Any) -> Tensor:
    """`x[key]` with ints, slices (with steps), None/newaxis and Ellipsis, as in NumPy."""
    return apply(STRIDED_SLICE, x, spec=normalize_index(x, key))


# ---- filled tensors and shapes ---------------------------------------------------------------


FILL_LIKE = register(OpDef(
    "fill_like", OpKind.ELEMENTWISE, lambda i, a: TensorType(a["dtype"], i[0].shape),
    lambda x, value, dtype: np.full(x.shape, value, dtype.np), scalar="{value}",
    shape_inputs=(0,), grad=NOT_DIFFERENTIABLE))


def fill_like(x: Any, value: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    """A tensor of `x`'s run-time shape filled with the scalar `value`."""
    x = convert_to_tensor(x)
    dtype = x.dtype if dtype is None else _dt.as_dtype(dtype)
    value = _dt.convert_array(value, dtype, "fill value").item()
    return apply(FILL_LIKE, x, name=name, value=value, dtype=dtype)


def zeros_like_t(x: Tensor, dtype: Any = None) -> Tensor:
    return fill_like(x, 0, dtype=dtype)


SHAPE = register(OpDef("shape", OpKind.INDEX,
                       lambda i, a: TensorType(a["out_type"], TensorShape([i[0].shape.rank])),
                       lambda x, out_type: np.array(x.shape, out_type.np),
                       shape_inputs=(0,), grad=NOT_DIFFERENTIABLE))
SIZE = register(OpDef("size", OpKind.INDEX,
                      lambda i, a: TensorType(a["out_type"], TensorShape(())),
                      lambda x, out_type: np.array(x.size, out_type.np),
                      shape_inputs=(0,), grad=NOT_DIFFERENTIABLE))


def shape(input: Any, out_type: Any = _dt.int32, name: str | None = None) -> Tensor:  # noqa: A002
    """The run-time shape of `input`, as a 1-D integer tensor."""
    x = convert_to_tensor(input)
    rank_of(x)
    return apply(SHAPE, x, name=name, out_type=_dt.as_dtype(out_type))


def size(input: Any, out_type: Any = _dt.int32, name: str | None = None) -> Tensor:  # noqa: A002
    """The run-time number of elements of `input`, as an integer scalar."""
    return apply(SIZE, convert_to_tensor(input), name=name, out_type=_dt.as_dtype(out_type))


def fill(dims: Sequence[int], value: Any, name: str | None = None) -> Tensor:
    """A tensor of static shape `dims` filled with `value` (a scalar or a scalar tensor)."""
    value = convert_to_tensor(value)
    if value.shape.rank != 0:
        raise ValueError(f"fill needs a scalar value, got {value.describe()}")
    return broadcast_to(value, dims, name=name)


def zeros(shape: Sequence[int], dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    """A tensor of zeros with a static shape."""
    dtype = _dt.as_dtype(dtype)
    from symgraph.ops.state import constant

    return fill(shape, constant(0, dtype=dtype), name=name)


def ones(shape: Sequence[int], dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    """A tensor of ones with a static shape."""
    dtype = _dt.as_dtype(dtype)
    from symgraph.ops.state import constant

    return fill(shape, constant(1, dtype=dtype), name=name)

"""Reductions (sum, mean, max, min, prod over axes), sum_to, and index ops (argmax, one_hot)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.graph import Tensor, apply, convert_to_tensor
from symgraph.ops.elementwise import cast, equal, where
from symgraph.ops.inference import check_kind
from symgraph.ops.shape_ops import broadcast_like, expand_dims, fill_like
from symgraph.registry import NOT_DIFFERENTIABLE, OpDef, OpKind, TensorType, register
from symgraph.shapes import TensorShape, normalize_axes, normalize_axis

R = OpKind.REDUCTION


def _reduce_infer(kinds: str):
    def infer(inputs: list, attrs: dict) -> TensorType:
        x, axes, keep = inputs[0], attrs["axis"], attrs["keepdims"]
        check_kind(x, kinds)
        if x.shape.rank is None:
            return TensorType(x.dtype, TensorShape(() if axes is None and not keep else None))
        dims = [(1 if keep else None) if i in axes else d for i, d in enumerate(x.shape)]
        return TensorType(x.dtype, TensorShape([d for i, d in enumerate(dims)
                                                if keep or i not in axes]))

    return infer


def _expand_to_input(n, t: Tensor) -> Tensor:
    """A reduction's output-shaped `t`, broadcast back over the reduced axes of the input."""
    x, axes = n.inputs[0], n.attrs["axis"]
    if not n.attrs["keepdims"]:
        if axes is None:
            return broadcast_like(t, x)  # unknown rank, reduced to a scalar
        leading = 0  # reduced axes 0, 1, ..., k-1 need no expand: broadcasting prepends them
        while leading in axes:
            leading += 1
        for a in axes:
            if a >= leading:
                t = expand_dims(t, a - leading)
    return broadcast_like(t, x)


def _count(n) -> Any:
    """How many input elements each output element of a reduction combines."""
    x = n.inputs[0]
    axes = n.attrs["axis"]
    if axes is not None and all(x.shape[a] is not None for a in axes):
        count = 1
        for a in axes:
            count *= x.shape[a]
        return count
    from symgraph.ops.shape_ops import size

    return cast(size(x), x.dtype) / cast(size(n.output), x.dtype)


def _sum_grad(n, g):
    return (_expand_to_input(n, g),)


def _mean_grad(n, g):
    return (_expand_to_input(n, g) / _count(n),)


def _extremum_grad(n, g):
    # the gradient goes to the elements equal to the extremum, shared equally between ties
    x = n.inputs[0]
    mask = cast(equal(x, _expand_to_input(n, n.output)), x.dtype)
    ties = reduce_sum(mask, n.attrs["axis"], keepdims=True)
    return (_expand_to_input(n, g) * mask / ties,)


def _prod_grad(n, g):
    # d prod / d x_i = product of the others, exact where x has zeros, and written so that its
    # own gradient is exact there too: no division by a zero, no branch that drops a dependence
    x, axes = n.inputs[0], n.attrs["axis"]
    is_zero = equal(x, 0)
    zero_count = reduce_sum(cast(is_zero, x.dtype), axes, keepdims=True)
    nonzero = where(is_zero, fill_like(x, 1), x)
    prod_nonzero = reduce_prod(nonzero, axes, keepdims=True)
    # at a zero x_i, the others' product is prod_nonzero times the other zeros: 1 when x_i is
    # the only zero, the other zero itself (a value of 0 with a slope) when there are two, and
    # 0 with a zero slope when there are more
    other_zeros = reduce_sum(where(is_zero, x, fill_like(x, 0)), axes, keepdims=True) - x
    zeros_factor = where(equal(zero_count, 1), fill_like(x, 1),
                         where(equal(zero_count, 2), other_zeros, fill_like(x, 0)))
    # at a nonzero x_i it is prod / x_i, which is 0 (with the right slope) beside a zero
    others = where(is_zero, prod_nonzero * zeros_factor, _expand_to_input(n, n.output) / nonzero)
    return (_expand_to_input(n, g) * others,)


def _np_reduce(fn):
    def run(x: np.ndarray, axis: tuple | None, keepdims: bool) -> np.ndarray:
        return fn(x, axis=axis, keepdims=keepdims)

    return run


REDUCE_SUM = register(OpDef("reduce_sum", R, _reduce_infer("fiu"), _np_reduce(np.sum),
                            grad=_sum_grad, reduce_combine="({0} + {1})"))
def _np_mean(x: np.ndarray, axis: tuple | None, keepdims: bool) -> np.ndarray:
    """np.mean; the mean of no elements is NaN (0 / 0) as in TF and in the compiled kernels,
    without NumPy's "Mean of empty slice" warning."""
    if x.size:
        return np.mean(x, axis=axis, keepdims=keepdims)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.mean(x, axis=axis, keepdims=keepdims)


REDUCE_MEAN = register(OpDef("reduce_mean", R, _reduce_infer("fiu"), _np_mean,
                             grad=_mean_grad, reduce_combine="({0} + {1})",
                             reduce_finish="({0} / {1})"))
def _np_extremum(fn, sign: int):
    """max/min that give their identity over no elements (-inf for max, the lowest integer for
    ints), as the compiled kernels do and as TF does, where NumPy would raise."""
    def run(x: np.ndarray, axis: tuple | None, keepdims: bool) -> np.ndarray:
        if x.size:
            return fn(x, axis=axis, keepdims=keepdims)
        if x.dtype.kind == "f":
            identity = -sign * np.inf
        else:
            info = np.iinfo(x.dtype)
            identity = info.min if sign > 0 else info.max
        return fn(x, axis=axis, keepdims=keepdims, initial=identity)

    return run


REDUCE_MAX = register(OpDef("reduce_max", R, _reduce_infer("fiu"), _np_extremum(np.max, 1),
                            grad=_extremum_grad, reduce_combine="maximum_({0}, {1})",
                            reduce_init=-np.inf))
REDUCE_MIN = register(OpDef("reduce_min", R, _reduce_infer("fiu"), _np_extremum(np.min, -1),
                            grad=_extremum_grad, reduce_combine="minimum_({0}, {1})",
                            reduce_init=np.inf))
REDUCE_PROD = register(OpDef("reduce_prod", R, _reduce_infer("fiu"), _np_reduce(np.prod),
                             grad=_prod_grad, reduce_combine="({0} * {1})", reduce_init=1.0))


def _reduce(opdef: OpDef, x: Any, axis: Any, keepdims: bool, name: str | None) -> Tensor:
    x = convert_to_tensor(x)
    rank = x.shape.rank
    if rank is None:
        if axis is not None:
            raise ValueError(f"{opdef.name} over an axis needs a known rank: {x.describe()}")
        axes = None
    else:
        axes = normalize_axes(axis, rank)
    return apply(opdef, x, name=name, axis=axes, keepdims=bool(keepdims))


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: bool = False,
               name: str | None = None) -> Tensor:
    """Sum over `axis` (None: all axes; an int or a list)."""
    return _reduce(REDUCE_SUM, input_tensor, axis, keepdims, name)


def reduce_mean(input_tensor: Any, axis: Any = None, keepdims: bool = False,
                name: str | None = None) -> Tensor:
    """Mean over `axis`; integer inputs give an integer mean truncated toward zero, as in TF1."""
    return _reduce(REDUCE_MEAN, input_tensor, axis, keepdims, name)


def reduce_max(input_tensor: Any, axis: Any = None, keepdims: bool = False,
               name: str | None = None) -> Tensor:
    return _reduce(REDUCE_MAX, input_tensor, axis, keepdims, name)


def reduce_min(input_tensor: Any, axis: Any = None, keepdims: bool = False,
               name: str | None = None) -> Tensor:
    return _reduce(REDUCE_MIN, input_tensor, axis, keepdims, name)


def reduce_prod(input_tensor: Any, axis: Any = None, keepdims: bool = False,
                name: str | None = None) -> Tensor:
    return _reduce(REDUCE_PROD, input_tensor, axis, keepdims, name)


# ---- sum_to: the inverse of broadcasting ---------------------------------------------------------


def _sum_to_np(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    lead = x.ndim - like.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(like.shape) if d == 1 and x.shape[lead + i] != 1)
    out = x.sum(axis=axes, keepdims=True) if axes else x
    return out.reshape(like.shape)


# When x and `like` have one static shape, sum_to is the identity unless a None dim turns out to
# be 1 at run time: fused loops compute it as "{0}" after checking the shapes agree.
SUM_TO = register(OpDef(
    "sum_to", R, lambda i, a: TensorType(i[0].dtype, i[1].shape), _sum_to_np,
    grad=lambda n, g: (broadcast_like(g, n.inputs[0]), None), scalar="{0}", shape_inputs=(1,)))


def sum_to(g: Tensor, x: Tensor, others: Sequence[TensorShape] = ()) -> Tensor:
    """`g` summed down to `x`'s shape: the gradient of broadcasting `x` against `others`.

    Axes are decided statically where the shapes allow it (reduce_sum); where a None dim could be
    1 at run time, the sum_to op decides from the run-time shapes.
    """
    xs, gs = x.shape, g.shape
    if xs.rank is None or gs.rank is None:
        return apply(SUM_TO, g, x)
    lead = gs.rank - xs.rank
    axes = list(range(lead))
    for i, d in enumerate(xs.dims):
        gd = gs[lead + i]
        if d == 1:
            if gd != 1:
                axes.append(lead + i)
        elif d is None and gd != d:
            return apply(SUM_TO, g, x)
        elif d is None:
            # x's dim is unknown: it is certainly not broadcast when no other operand could
            # have stretched it (each other operand lacks this axis or has size 1 there)
            for s in others:
                j = i - (xs.rank - s.rank)
                if s.rank is None or (j >= 0 and s[j] != 1):
                    return apply(SUM_TO, g, x)
    if not axes:
        return g if gs == xs else apply(SUM_TO, g, x)
    out = reduce_sum(g, list(range(lead))) if lead else g
    keep = [a - lead for a in axes if a >= lead]
    return reduce_sum(out, keep, keepdims=True) if keep else out


# ---- index ops ----------------------------------------------------------------------------


def _arg_infer(inputs: list, attrs: dict) -> TensorType:
    x, axis = inputs[0], attrs["axis"]
    check_kind(x, "fiu")
    return TensorType(attrs["output_type"], TensorShape([d for i, d in enumerate(x.shape)
                                                         if i != axis]))


ARGMAX = register(OpDef("argmax", OpKind.INDEX, _arg_infer,
                        lambda x, axis, output_type: np.argmax(x, axis).astype(output_type.np),
                        grad=NOT_DIFFERENTIABLE))
ARGMIN = register(OpDef("argmin", OpKind.INDEX, _arg_infer,
                        lambda x, axis, output_type: np.argmin(x, axis).astype(output_type.np),
                        grad=NOT_DIFFERENTIABLE))


def _arg(opdef: OpDef, x: Any, axis: int | None, output_type: Any, name: str | None) -> Tensor:
    x = convert_to_tensor(x)
    from symgraph.ops.inference import rank_of

    axis = normalize_axis(0 if axis is None else int(axis), rank_of(x))
    return apply(opdef, x, name=name, axis=axis, output_type=_dt.as_dtype(output_type))


def argmax(input: Any, axis: int | None = None, output_type: Any = _dt.int64,  # noqa: A002
           name: str | None = None) -> Tensor:
    """Index of the largest value along `axis` (default 0, as in TF1); first one on ties."""
    return _arg(ARGMAX, input, axis, output_type, name)


def argmin(input: Any, axis: int | None = None, output_type: Any = _dt.int64,  # noqa: A002
           name: str | None = None) -> Tensor:
    return _arg(ARGMIN, input, axis, output_type, name)


def _one_hot_infer(inputs: list, attrs: dict) -> TensorType:
    idx = inputs[0]
    check_kind(idx, "iu")
    dims = list(idx.shape.dims) if idx.shape.rank is not None else None
    if dims is not None:
        dims.insert(attrs["axis"] if attrs["axis"] >= 0 else len(dims), attrs["depth"])
    return TensorType(attrs["dtype"], TensorShape(dims))


def _one_hot_np(idx: np.ndarray, depth: int, on_value: Any, off_value: Any, axis: int,
                dtype: _dt.DType) -> np.ndarray:
    hot = idx[..., None] == np.arange(depth)  # out-of-range indices give all-off rows, as in TF1
    out = np.where(hot, np.asarray(on_value, dtype.np), np.asarray(off_value, dtype.np))
    return out if axis == -1 else np.moveaxis(out, -1, axis)


ONE_HOT = register(OpDef("one_hot", OpKind.INDEX, _one_hot_infer, _one_hot_np,
                         grad=NOT_DIFFERENTIABLE))


def one_hot(indices: Any, depth: int, on_value: Any = None, off_value: Any = None,
            axis: int = -1, dtype: Any = None, name: str | None = None) -> Tensor:
    """A one-hot encoding of integer `indices` along a new axis of size `depth`."""
    idx = convert_to_tensor(indices)
    dtype = _dt.float32 if dtype is None else _dt.as_dtype(dtype)
    on = _dt.convert_array(1 if on_value is None else on_value, dtype, "one_hot on_value").item()
    off = _dt.convert_array(0 if off_value is None else off_value, dtype,
                            "one_hot off_value").item()
    if idx.shape.rank is not None and axis != -1:
        axis = normalize_axis(int(axis), idx.shape.rank + 1)
    return apply(ONE_HOT, idx, name=name, depth=int(depth), on_value=on, off_value=off,
                 axis=axis, dtype=dtype)


def _in_top_k_infer(inputs: list, attrs: dict) -> TensorType:
    predictions, targets = inputs
    check_kind(predictions, "f")
    check_kind(targets, "iu")
    if predictions.shape.rank not in (None, 2) or targets.shape.rank not in (None, 1):
        raise ValueError(f"in_top_k needs predictions (batch, classes) and targets (batch,), got "
                         f"{predictions.describe()} and {targets.describe()}")
    batch = predictions.shape[0] if predictions.shape.rank else None
    if targets.shape.rank and not TensorShape([batch]).is_compatible_with(targets.shape):
        raise ValueError(f"in_top_k: {targets.describe()} does not match the batch of "
                         f"{predictions.describe()}")
    if batch is None and targets.shape.rank:
        batch = targets.shape[0]
    return TensorType(_dt.bool_, TensorShape([batch]))


def _in_top_k_np(predictions: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """TF1's rule: the target's score is beaten by fewer than k classes (ties all count as in);
    a target out of range, or a row with a non-finite score, is never in the top k."""
    classes = predictions.shape[1]
    valid = (targets >= 0) & (targets < classes) & np.isfinite(predictions).all(axis=1)
    safe = np.where(valid, targets, 0)
    score = predictions[np.arange(len(targets)), safe]
    beaten_by = (predictions > score[:, None]).sum(axis=1)
    return valid & (beaten_by < k)


IN_TOP_K = register(OpDef("in_top_k", OpKind.INDEX, _in_top_k_infer, _in_top_k_np,
                          grad=NOT_DIFFERENTIABLE))


def in_top_k(predictions: Any, targets: Any, k: int, name: str | None = None) -> Tensor:
    """Whether each target class is among the k highest predictions of its row (TF1's
    `tf.nn.in_top_k`): predictions float (batch, classes), targets int (batch,) -> bool (batch,).
    """
    p = convert_to_tensor(predictions)
    t = convert_to_tensor(targets, graph=p.graph)
    return apply(IN_TOP_K, p, t, name=name, k=int(k))


__all__ = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
           "sum_to", "argmax", "argmin", "one_hot", "in_top_k"]

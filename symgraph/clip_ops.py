"""Gradient clipping by norm (TF1's clip_ops): clip_by_norm, global_norm, clip_by_global_norm.

None entries pass through untouched, so a `compute_gradients` list can be clipped as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from symgraph.graph import Tensor, convert_to_tensor, name_scope
from symgraph.ops.elementwise import (
    add_n,
    cast,
    greater,
    identity,
    maximum,
    minimum,
    ones_like,
    sqrt,
    square,
    where,
)
from symgraph.ops.reduce import reduce_sum


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Tensor:
    """t * clip_norm / max(||t||_2, clip_norm), the norm taken over `axes` (all by default).

    The norm's square root is guarded where it is 0, so the gradient stays finite (TF1).
    """
    with name_scope(name or "clip_by_norm"):
        t = convert_to_tensor(t)
        clip = convert_to_tensor(clip_norm, dtype=t.dtype)
        l2sum = reduce_sum(square(t), axes, keepdims=True)
        positive = greater(l2sum, 0)
        l2norm = where(positive, sqrt(where(positive, l2sum, ones_like(l2sum))), l2sum)
        return identity(t * clip / maximum(l2norm, clip))


def global_norm(t_list: Sequence[Any], name: str | None = None) -> Tensor:
    """sqrt(sum of every entry's squared L2 norm), skipping None entries; in the dtype of the
    first tensor."""
    tensors = [convert_to_tensor(t) for t in t_list if t is not None]
    if not tensors:
        raise ValueError("global_norm needs at least one tensor that is not None")
    with name_scope(name or "global_norm"):
        dtype = tensors[0].dtype
        squares = [reduce_sum(square(t)) for t in tensors]
        squares = [s if s.dtype == dtype else cast(s, dtype) for s in squares]
        return sqrt(add_n(squares))


def clip_by_global_norm(t_list: Sequence[Any], clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list[Tensor | None], Tensor]:
    """Scales every tensor by clip_norm / max(global_norm, clip_norm).

    Returns the clipped list (None entries kept) and the global norm before clipping. A global
    norm of inf or nan makes every entry nan, as in TF1.
    """
    if isinstance(t_list, Tensor) or not isinstance(t_list, (list, tuple)):
        raise TypeError("clip_by_global_norm takes a list of tensors")
    norm = global_norm(t_list) if use_norm is None else convert_to_tensor(use_norm)
    with name_scope(name or "clip_by_global_norm"):
        clip = convert_to_tensor(clip_norm, dtype=norm.dtype)
        scale = clip * minimum(1.0 / norm, 1.0 / clip)
        scale = scale + (norm - norm)  # nan when the norm is inf or nan
        out: list[Tensor | None] = []
        for t in t_list:
            if t is None:
                out.append(None)
                continue
            t = convert_to_tensor(t)
            s = scale if scale.dtype == t.dtype else cast(scale, t.dtype)
            out.append(identity(t * s))
        return out, norm

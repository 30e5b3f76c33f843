"""Weight regularizers (TF1's `tf.contrib.layers.l1_regularizer` / `l2_regularizer`).

A regularizer is a callable(weights) -> scalar tensor (or None for no penalty). `get_variable`
adds its result to GraphKeys.REGULARIZATION_LOSSES. Note the TF1 convention kept here:
`l2_regularizer(scale)` is scale * sum(w**2) / 2 (TF1's `l2_loss`), unlike Keras's `l2`, which has
no 1/2; `sg.regularizers.l2` is the TF1 one.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

from symgraph.graph import Tensor, convert_to_tensor, name_scope
from symgraph.ops.elementwise import abs as _abs
from symgraph.ops.elementwise import add, multiply, square
from symgraph.ops.reduce import reduce_sum

Regularizer = Callable[[Tensor], "Tensor | None"]


def _check_scale(scale: Any, what: str) -> float:
    if isinstance(scale, bool) or not isinstance(scale, Real):
        raise TypeError(f"{what} scale must be a Python number, got {scale!r}")
    if scale < 0.0:
        raise ValueError(f"{what} scale must be >= 0, got {scale}")
    return float(scale)


def l1_regularizer(scale: float, scope: str | None = None) -> Regularizer:
    """weights -> scale * sum(|w|); scale 0 gives no penalty (None), as in TF1."""
    scale = _check_scale(scale, "l1_regularizer")

    def l1(weights: Tensor) -> Tensor | None:
        if scale == 0.0:
            return None
        w = convert_to_tensor(weights)
        with name_scope(scope or "l1_regularizer"):
            return multiply(reduce_sum(_abs(w)), scale)

    return l1


def l2_regularizer(scale: float, scope: str | None = None) -> Regularizer:
    """weights -> scale * sum(w**2) / 2 (TF1's l2_loss); scale 0 gives no penalty (None)."""
    scale = _check_scale(scale, "l2_regularizer")

    def l2(weights: Tensor) -> Tensor | None:
        if scale == 0.0:
            return None
        w = convert_to_tensor(weights)
        with name_scope(scope or "l2_regularizer"):
            return multiply(reduce_sum(square(w)), scale / 2.0)

    return l2


def l1_l2_regularizer(scale_l1: float = 1.0, scale_l2: float = 1.0,
                      scope: str | None = None) -> Regularizer:
    """The sum of an l1 and an l2 regularizer (TF1's l1_l2_regularizer)."""
    r1, r2 = l1_regularizer(scale_l1), l2_regularizer(scale_l2)

    def l1_l2(weights: Tensor) -> Tensor | None:
        with name_scope(scope or "l1_l2_regularizer"):
            parts = [p for p in (r1(weights), r2(weights)) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else add(parts[0], parts[1])

    return l1_l2


def apply_regularization(regularizer: Regularizer, weights_list: list) -> Tensor | None:
    """The sum of `regularizer` over `weights_list` (None when every penalty is None)."""
    penalties = [p for p in (regularizer(w) for w in weights_list) if p is not None]
    if not penalties:
        return None
    total = penalties[0]
    for p in penalties[1:]:
        total = add(total, p)
    return total


l1 = l1_regularizer
l2 = l2_regularizer
l1_l2 = l1_l2_regularizer

"""check_numerics: passes a floating tensor through, or fails the run when it holds NaN or Inf.

Not fused (no scalar template): the check runs on the whole value, where the error can count the
bad entries and give their range. Its gradient is the identity, so checks can sit inside a model.
"""

from __future__ import annotations

import numpy as np

from symgraph.errors import InvalidArgumentError
from symgraph.registry import OpDef, OpKind, TensorType, register


def _infer(inputs: list, attrs: dict) -> TensorType:
    x = inputs[0]
    if not x.dtype.is_floating:
        raise TypeError(f"check_numerics needs a floating tensor, got {x.describe()}")
    return TensorType(x.dtype, x.shape)


def describe_values(value: np.ndarray) -> str:
    """'shape (2, 3) float32, 1 NaN, 0 Inf, finite range [-1, 2]': what an error says of a value."""
    arr = np.asarray(value)
    text = f"shape {arr.shape} {arr.dtype}"
    if arr.dtype.kind not in "fc":
        if arr.size:
            text += f", range [{arr.min()}, {arr.max()}]"
        return text
    nan = int(np.isnan(arr).sum())
    inf = int(np.isinf(arr).sum())
    finite = arr[np.isfinite(arr)]
    text += f", {nan} NaN, {inf} Inf of {arr.size}"
    if finite.size:
        text += f", finite range [{finite.min():.6g}, {finite.max():.6g}]"
    return text


def _check(x: np.ndarray, message: str, tensor: str) -> np.ndarray:
    arr = np.asarray(x)
    if not np.isfinite(arr).all():
        raise InvalidArgumentError(f"{message}: {tensor} has NaN or Inf values "
                                   f"({describe_values(arr)})")
    return arr


CHECK_NUMERICS = register(OpDef("check_numerics", OpKind.SHAPE, _infer, _check,
                                grad=lambda node, g: (g,)))

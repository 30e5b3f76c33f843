"""Learning-rate schedules driven by the global step, as TF1 computes them.

Each returns a scalar tensor of the learning rate's dtype (float32 for a Python number); the step
is cast to that dtype. p = global_step / decay_steps, floored when `staircase`.
  exponential_decay     lr * decay_rate ** p
  inverse_time_decay    lr / (1 + decay_rate * p)
  cosine_decay          lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) /
                        decay_steps)) + alpha)
  piecewise_constant    values[i] for boundaries[i-1] < x <= boundaries[i]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from symgraph import dtypes as _dt
from symgraph.graph import Tensor, convert_to_tensor, name_scope
from symgraph.ops.elementwise import cast, cos, divide, floordiv, less_equal, minimum, pow, where


def _as(value: Any, dtype: _dt.DType, what: str) -> Tensor:
    if value is None:
        raise ValueError(f"{what} is required")
    if isinstance(value, Tensor):
        return value if value.dtype == dtype else cast(value, dtype)
    return convert_to_tensor(value, dtype=dtype)


def _lr(learning_rate: Any) -> Tensor:
    lr = convert_to_tensor(learning_rate)
    if not lr.dtype.is_floating:
        raise TypeError(f"the learning rate must be floating, got {lr.describe()}")
    return lr


def _progress(global_step: Any, decay_steps: Any, dtype: _dt.DType, staircase: bool) -> Tensor:
    step = _as(global_step, dtype, "global_step")
    steps = _as(decay_steps, dtype, "decay_steps")
    return floordiv(step, steps) if staircase else divide(step, steps)


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate * decay_rate ** (global_step / decay_steps)."""
    with name_scope(name or "ExponentialDecay"):
        lr = _lr(learning_rate)
        p = _progress(global_step, decay_steps, lr.dtype, staircase)
        return lr * pow(_as(decay_rate, lr.dtype, "decay_rate"), p)


def inverse_time_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                       staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate / (1 + decay_rate * global_step / decay_steps)."""
    with name_scope(name or "InverseTimeDecay"):
        lr = _lr(learning_rate)
        p = _progress(global_step, decay_steps, lr.dtype, staircase)
        return lr / (1 + _as(decay_rate, lr.dtype, "decay_rate") * p)


def cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, alpha: float = 0.0,
                 name: str | None = None) -> Tensor:
    """Cosine from learning_rate down to alpha * learning_rate over decay_steps, then flat."""
    with name_scope(name or "CosineDecay"):
        lr = _lr(learning_rate)
        steps = _as(decay_steps, lr.dtype, "decay_steps")
        step = minimum(_as(global_step, lr.dtype, "global_step"), steps)
        cosine = 0.5 * (1 + cos(math.pi * step / steps))
        alpha_t = _as(alpha, lr.dtype, "alpha")
        return lr * ((1 - alpha_t) * cosine + alpha_t)


def piecewise_constant(x: Any, boundaries: Sequence[Any], values: Sequence[Any],
                       name: str | None = None) -> Tensor:
    """values[0] while x <= boundaries[0], values[i] for boundaries[i-1] < x <= boundaries[i],
    values[-1] after the last boundary. Boundaries take x's dtype; values share one dtype."""
    if len(values) != len(boundaries) + 1:
        raise ValueError(f"piecewise_constant needs one more value than boundaries, got "
                         f"{len(values)} values for {len(boundaries)} boundaries")
    with name_scope(name or "PiecewiseConstant"):
        x = convert_to_tensor(x)
        bounds = [_as(b, x.dtype, "a boundary") for b in boundaries]
        first = convert_to_tensor(values[0])
        vals = [first] + [convert_to_tensor(v, dtype=first.dtype) for v in values[1:]]
        result = vals[-1]
        for b, v in zip(reversed(bounds), reversed(vals[:-1])):
            result = where(less_equal(x, b), v, result)
        return result

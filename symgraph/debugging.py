"""sg.debugging: finding where NaN and Inf come from (TF's tf.debugging).

`check_numerics(x, message)` is an op that passes x through and fails the run naming x and the
user's line when x holds NaN or Inf. For a whole model at once, run the session with
`sg.Session(check_numerics=True)` (or call `enable_check_numerics()` before creating sessions):
every value a step computes is checked, and an error names the first op that produced NaN or
Inf, even inside a fused kernel.
"""

from __future__ import annotations

from typing import Any

from symgraph.graph import Tensor, apply, convert_to_tensor
from symgraph.ops.numerics import CHECK_NUMERICS

_enabled = [False]


def check_numerics(tensor: Any, message: str, name: str | None = None) -> Tensor:
    """`tensor` unchanged; running it fails with InvalidArgumentError when it holds NaN or Inf.

    Args:
      tensor: a floating tensor (any shape).
      message: starts the error's text, to tell checks apart.
      name: the op's name (default "CheckNumerics", as in TF).

    Returns:
      A tensor equal to `tensor`, with the same shape and dtype; its gradient is the identity.
    """
    x = convert_to_tensor(tensor)
    return apply(CHECK_NUMERICS, x, name=name or "CheckNumerics", message=str(message),
                 tensor=x.describe())


def assert_all_finite(t: Any, msg: str, name: str | None = None) -> Tensor:
    """TF's other name for check_numerics."""
    return check_numerics(t, msg, name=name)


def enable_check_numerics() -> None:
    """Sessions created from now on (without check_numerics=False) check every value they
    compute for NaN and Inf, as `sg.Session(check_numerics=True)` does."""
    _enabled[0] = True


def disable_check_numerics() -> None:
    """Undoes enable_check_numerics for sessions created from now on."""
    _enabled[0] = False


def check_numerics_enabled() -> bool:
    """Whether new sessions check numerics by default."""
    return _enabled[0]

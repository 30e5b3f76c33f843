"""The default session stack, so `Tensor.eval()` finds the session of an enclosing `with` block.

The Session class lives in runtime/; it pushes itself here, which keeps imports one-way.
"""

from __future__ import annotations

import threading
from typing import Any

_local = threading.local()


def _stack() -> list:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def push(session: Any) -> None:
    _stack().append(session)


def pop(session: Any) -> None:
    stack = _stack()
    if stack and stack[-1] is session:
        stack.pop()


def remove(session: Any) -> None:
    """Takes `session` off the stack wherever it is (an InteractiveSession closed out of order)."""
    stack = _stack()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is session:
            del stack[i]
            return


def get_default_session() -> Any:
    """The innermost session entered with `with sess:` or `sess.as_default()`."""
    stack = _stack()
    if not stack:
        raise ValueError("no default session: pass session=..., or run inside `with sg.Session():`")
    return stack[-1]

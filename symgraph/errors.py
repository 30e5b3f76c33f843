"""Errors raised while running a graph, with TF1's class names.

Build-time mistakes (impossible shapes, mixed dtypes) raise ValueError or TypeError at once;
run-time failures raise these, each naming the node and the user's line that created it.
"""

from __future__ import annotations

from typing import Any


class OpError(Exception):
    """A failure while running an operation; `node` is the operation when one is to blame."""

    def __init__(self, message: str, node: Any = None) -> None:
        super().__init__(message)
        self.node = node

    @property
    def op(self) -> Any:
        return self.node

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgumentError(OpError, ValueError):
    """A run-time value is unfit for its op: a missing feed, a wrong shape, a bad index."""


class FailedPreconditionError(OpError):
    """The session is not ready for this run: a variable was read before being initialized."""


class NotFoundError(OpError):
    """Something named does not exist: a checkpoint, a file, a variable."""


class DataLossError(OpError):
    """A file is truncated or corrupt."""

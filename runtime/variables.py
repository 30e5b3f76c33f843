"""Variable storage: the values of one session's variables, kept between runs."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from symgraph.errors import FailedPreconditionError, InvalidArgumentError
from symgraph.graph import Node


def _has_writable_base(arr: np.ndarray) -> bool:
    """Whether some array that `arr` views can still be written (a compiled kernel's output
    owns its memory through a non-array base, which nobody writes)."""
    base = arr.base
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return True
        base = base.base
    return False


class VariableStore:
    """Maps variable names to read-only arrays; a write replaces the array, never mutates it.

    Read-only values mean a fetched value can never alias the session's state by accident, and a
    read taken earlier in a run keeps its value when the variable is assigned later in that run.
    """

    def __init__(self) -> None:
        self._values: dict[str, np.ndarray] = {}
        self._rngs: dict[int, np.random.Generator] = {}
        self._lock = threading.Lock()

    def read(self, var: Node) -> np.ndarray:
        try:
            return self._values[var.name]
        except KeyError:
            raise FailedPreconditionError(
                f"attempting to use uninitialized variable {var.output.describe()}; run "
                "sg.global_variables_initializer() or "
                f"'{var.name}/Assign' (the variable's .initializer) first", var) from None

    def write(self, var: Node, value: Any) -> None:
        arr = np.asarray(value)
        if arr.dtype != var.dtype.np:
            arr = arr.astype(var.dtype.np)
        if var.shape.rank is not None and (
                arr.ndim != var.shape.rank
                or any(d is not None and d != a for d, a in zip(var.shape, arr.shape))):
            raise InvalidArgumentError(
                f"cannot assign a value of shape {arr.shape} to variable '{var.name}' of shape "
                f"{var.shape} (created at {var.location})", var)
        # only an array no one else can change is kept as is (another variable's value, or a
        # kernel's read-only output); a view, even a read-only one, may see its writable base
        # change
        if arr.flags.writeable or not arr.flags.c_contiguous or _has_writable_base(arr):
            arr = np.array(arr, copy=True, order="C")
        arr.setflags(write=False)
        with self._lock:
            self._values[var.name] = arr

    def rng(self, node: Node) -> np.random.Generator:
        """The random stream of one random op in this session, created on its first run.

        A seeded op (attr `seed`, a tuple of ints) replays the same values in every new session;
        an unseeded one draws fresh entropy.
        """
        with self._lock:
            gen = self._rngs.get(node.id)
            if gen is None:
                seed = node.attrs.get("seed")
                gen = self._rngs[node.id] = np.random.default_rng(
                    None if seed is None else list(seed))
            return gen

    def is_initialized(self, var: Node) -> bool:
        return var.name in self._values

    def names(self) -> list[str]:
        return list(self._values)

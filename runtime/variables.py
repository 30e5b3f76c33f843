"""Variable storage: the values of one session's variables, kept between runs."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from symgraph.errors import FailedPreconditionError, InvalidArgumentError
from symgraph.graph import Node


def _has_writable_base(arr: np.ndarray) -> bool:
    """Whether some array that `arr` views can still be written (a compiled kernel's output
    owns its memory through a non-array base, which nobody writes; a store's own buffer is
    writable, so a view of it is copied before another variable keeps it)."""
    base = arr.base
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return True
        base = base.base
    return False


class VariableStore:
    """Maps variable names to read-only arrays; a write replaces the array.

    Read-only values mean a fetched value can never alias the session's state by accident (a
    fetch copies a read-only value), and a read taken earlier in a run keeps its value when the
    variable is assigned later in that run.

    The one exception is an in-place update (compiler.plan.Update: an optimizer's step written
    into the array it reads, as TF1's ApplyAdam does): the store keeps, per variable, at most
    one buffer of its own (`_buffers`), writable, which nothing outside the store and the
    update kernels ever holds; the variable's value is then a read-only view of it. Values
    that may be shared (a constant, another variable's value, a checkpoint's or a user's
    array) are copied into a new buffer on the first update, never written.

    Runs of one session take turns (Session.run holds its lock); `load` from another thread
    during a run may be lost to the run's update, as with TF1's use_locking=False, and no
    array a user was given ever changes.
    """

    def __init__(self) -> None:
        self._values: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
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
        name = var.name
        buffer = self._buffers.get(name)
        if buffer is not None and type(value) is np.ndarray and _views_whole(value, buffer):
            # the variable's own buffer, which an update has just written in place (its dtype
            # and shape are the variable's): nothing to check or convert
            with self._lock:
                if self._buffers.get(name) is buffer:
                    self._values[name] = value
                    return
        arr = np.asarray(value)
        if arr.dtype != var.dtype.np:
            arr = arr.astype(var.dtype.np)
        if var.shape.rank is not None and (
                arr.ndim != var.shape.rank
                or any(d is not None and d != a for d, a in zip(var.shape, arr.shape))):
            raise InvalidArgumentError(
                f"cannot assign a value of shape {arr.shape} to variable '{var.name}' of shape "
                f"{var.shape} (created at {var.location})", var)
        name = var.name
        buffer = self._buffers.get(name)
        if buffer is not None and _views_whole(arr, buffer):
            # the variable's own buffer, which an update has just written in place
            with self._lock:
                if self._buffers.get(name) is buffer:
                    self._values[name] = arr
                    return
        # only an array no one else can change is kept as is (another variable's value, or a
        # kernel's read-only output); a view, even a read-only one, may see its writable base
        # change
        if arr.flags.writeable or not arr.flags.c_contiguous or _has_writable_base(arr):
            arr = np.array(arr, copy=True, order="C")
        arr.setflags(write=False)
        with self._lock:
            self._values[name] = arr
            self._buffers.pop(name, None)

    def buffer_for_update(self, var: Node, value: np.ndarray, reuse: bool) -> np.ndarray:
        """A writable, C-contiguous array holding `value` (the variable's value, as this run
        read it), for a kernel that overwrites it with the variable's next value: the store's
        own buffer where `reuse` allows it and `value` is a view of it, else a new copy, which
        becomes the store's own when the variable is assigned its view (write)."""
        name = var.name
        with self._lock:
            buffer = self._buffers.get(name)
            if reuse and buffer is not None and value.base is buffer \
                    and self._values.get(name) is value:
                return buffer
        buffer = np.array(value, copy=True, order="C")
        with self._lock:
            self._buffers[name] = buffer
        return buffer

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


def _views_whole(arr: np.ndarray, buffer: np.ndarray) -> bool:
    """`arr` is a read-only view of all of `buffer`, element for element (a C-contiguous view
    of the same shape starts where the buffer starts)."""
    return (arr.base is buffer and not arr.flags.writeable and arr.shape == buffer.shape
            and arr.flags.c_contiguous)

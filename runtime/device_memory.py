"""The cuda device's memory: the pool a run's values take their buffers from, the buffers that
hold the session's variables between runs, and the device's counters (Stats). A module of its
own, apart from running the steps (runtime.device_cuda), because which values may share a
buffer, and for how long, is one question with one answer: a buffer given back too early is
overwritten while something still reads it.

Buffers. Every device array a run makes comes from a BufferPool keyed by (shape, dtype) and goes
back to it as soon as nothing can read it any more: after the last step that reads any value
viewing it (plan.free_after; reshape and the other VIEW_OPS, and check_numerics, which passes its
input through, view their input's buffer: device_cuda's `_Run.views` counts them), unless a
variable holds it (DeviceVariableStore.held). Fetched values are never dropped (free_after leaves
them out) and constants, kept per plan, are not pool buffers. A buffer a variable lets go of when
it is assigned goes back once no value of the run views it (a value read before the assignment
keeps the old value). A later step of the same run may be lent it at once: kernels and copies are
queued on one stream, so the steps that read it before run first. Values no step reads, and fetched
ones once copied out, go back when the run ends. A run's device memory is therefore the values live
at once, not all of them (buffers are shared only between values of one shape and dtype), and the
steady state of a training loop allocates nothing after its first run: each run asks for the same
buffers in the same order.

In-place updates. An optimizer's fused update (plan.updates, compiler.schedule.in_place_updates)
writes a weight's or slot's next value into the variable's own buffer, which the variable then
keeps: no new buffer, no hand-over between buffers, one copy of each weight. The store hands the
kernel that buffer only when the plan allows it (no later step reads, and no fetch returns, the
old value or a value that may view it: a view op's, or a kernel's that passes its input through,
as check_numerics does and declares), the variable's value spans it, no other variable holds it
(`v2.assign(v1)` shares a buffer) and no NumericsChecker watches the run (a NaN must leave the
variable as it was); else a new pool buffer holding a copy of the old value
(`Stats.copies_on_device`), as the cpu's store does. numba.cuda is imported only inside
functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.variables import VariableStore
from symgraph.errors import InvalidArgumentError
from symgraph.graph import Node


@dataclass
class Stats:
    """What the device did, for tests and SYMGRAPH_DEBUG: buffers allocated (the pool's misses),
    host-to-device, device-to-host and device-to-device copies (an in-place update of a value
    still read later), kernel launches, and nodes run on the host by op."""

    allocations: int = 0
    copies_in: int = 0
    copies_out: int = 0
    copies_on_device: int = 0
    kernels: int = 0
    host_ops: Counter = field(default_factory=Counter)


class BufferPool:
    """Device buffers by (shape, dtype), lent during a run and given back as soon as nothing
    reads them (or, at the latest, when the run ends)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._free: dict[tuple, list[Any]] = {}
        self._idle: set[int] = set()  # ids of the buffers in _free
        self._lent: dict[int, Any] = {}
        self._owned: set[int] = set()  # ids of every buffer the pool made (alive: kept in lists)

    def take(self, shape: tuple, dtype: np.dtype) -> Any:
        key = (tuple(int(d) for d in shape), np.dtype(dtype).str)
        free = self._free.get(key)
        if free:
            buf = free.pop()
            self._idle.discard(id(buf))
        else:
            from numba import cuda

            buf = cuda.device_array(key[0], np.dtype(dtype))
            self._owned.add(id(buf))
            self.stats.allocations += 1
        self._lent[id(buf)] = buf
        return buf

    def give(self, buf: Any) -> None:
        """Takes back a buffer now (the caller knows nothing reads it later in the run). Giving
        one twice keeps it once (a twice-listed buffer would be lent to two values); arrays the
        pool did not make (constants, views) are ignored."""
        self._lent.pop(id(buf), None)
        if id(buf) in self._owned and id(buf) not in self._idle:
            self._idle.add(id(buf))
            self._free.setdefault((tuple(buf.shape), buf.dtype.str), []).append(buf)

    def owns(self, buf: Any) -> bool:
        return id(buf) in self._owned

    def end_run(self, held: set[int], dropped: Sequence[Any]) -> None:
        """Takes back every buffer lent in this run that no variable holds, and the ones that
        variables let go of during it."""
        for key, buf in list(self._lent.items()):
            if key not in held:
                self.give(buf)
        self._lent.clear()
        for buf in dropped:
            if id(buf) not in held:
                self.give(buf)


class DeviceVariableStore(VariableStore):
    """A session's variables as device arrays. Each holds a pool buffer (or a view of one); a
    write replaces the buffer, never changes it, as VariableStore does with NumPy arrays."""

    def __init__(self, pool: BufferPool, stats: Stats) -> None:
        super().__init__()
        self.pool = pool
        self.stats = stats
        self._bases: dict[str, Any] = {}
        self.held: Counter = Counter()  # id(buffer) -> variables holding it
        self.dropped: list[Any] = []  # buffers let go during this run

    def write(self, var: Node, value: Any, base: Any = None) -> None:
        """Stores `value` (device or host) for `var`; `base` is the pool buffer a device value
        views, if any: it is held, not copied. Anything else is copied into a pool buffer."""
        shape = tuple(value.shape)
        if var.shape.rank is not None and (
                len(shape) != var.shape.rank
                or any(d is not None and d != a for d, a in zip(var.shape, shape))):
            raise InvalidArgumentError(
                f"cannot assign a value of shape {shape} to variable '{var.name}' of shape "
                f"{var.shape} (created at {var.location})", var)
        dtype = np.dtype(var.dtype.np)
        if isinstance(value, np.ndarray) or np.dtype(value.dtype) != dtype \
                or base is None or not self.pool.owns(base):
            if not isinstance(value, np.ndarray):
                value = value.copy_to_host()
                self.stats.copies_out += 1
            buf = self.pool.take(shape, dtype)
            buf.copy_to_device(contiguous(np.asarray(value, dtype)))
            self.stats.copies_in += 1
            value = base = buf
        with self._lock:
            old = self._bases.get(var.name)
            self.held[id(base)] += 1
            self._values[var.name] = value
            self._bases[var.name] = base
            if old is not None:
                self.held[id(old)] -= 1
                if self.held[id(old)] <= 0:
                    del self.held[id(old)]
                    self.dropped.append(old)

    def base(self, var: Node) -> Any:
        return self._bases.get(var.name)

    def buffer_for_update(self, var: Node, value: Any, reuse: bool) -> Any:
        """A device array holding `value` (the variable's value as this run read it) for a
        kernel that overwrites it with the variable's next value. The variable's own buffer
        where `reuse` allows it, `value` is the variable's value now and spans all of it, and no
        other variable holds it; else a new pool buffer with a copy of `value`, which the
        variable's assign then holds, as it would a new kernel output."""
        with self._lock:
            base = self._bases.get(var.name)
            if (reuse and base is not None and self._values.get(var.name) is value
                    and self.held[id(base)] == 1 and value.size == base.size):
                return value
        buf = self.pool.take(tuple(value.shape), value.dtype)
        buf.copy_to_device(value)  # one stream: after the writes of earlier steps
        self.stats.copies_on_device += 1
        return buf

    def end_run(self) -> None:
        self.pool.end_run(set(self.held), self.dropped)
        self.dropped = []

    def host_values(self) -> dict[str, np.ndarray]:
        """Every variable's value, copied to the host (a debugging aid)."""
        return {name: v.copy_to_host() for name, v in self._values.items()}



def contiguous(x: np.ndarray) -> np.ndarray:
    """x in C order (np.ascontiguousarray would make a 0-d array 1-d)."""
    return x if x.flags.c_contiguous else np.array(x, order="C")

"""The cuda device: runs a plan compiled for target "cuda" with its values on an NVIDIA GPU (or
Numba's CUDA simulator), and keeps the session's variables there between runs.

Where values live. A value is a device array or a host (NumPy) array, and moves only when a step
needs it on the other side: feeds stay on the host until a device step reads them (then copied
in once per run); a kernel's outputs stay on the device; only fetched values are copied out.
Variables (and so optimizer slots) are device arrays for the session's life (DeviceVariableStore).

Buffers. Every device array a run makes comes from a BufferPool keyed by (shape, dtype) and
goes back to it as soon as nothing can read it any more: after the last step that reads any
value viewing it (plan.free_after; reshape and the other VIEW_OPS, and check_numerics, which
passes its input through, view their input's buffer: `_Run.views` counts them), unless a
variable holds it (DeviceVariableStore.held). Fetched values are never dropped (free_after
leaves them out) and constants, kept per plan, are not pool buffers. A buffer a variable lets
go of when it is assigned goes back once no value of the run views it (a value read before the
assignment keeps the old value). A later step of the same run may be lent it at once: kernels
and copies are queued on one stream, so the steps that read it before run first. Values no
step reads, and fetched ones once copied out, go back when the run ends. A run's device memory
is therefore the values live at once, not all of them (buffers are shared only between values
of one shape and dtype), and the steady state of a training loop allocates nothing after its
first run: each run asks for the same buffers in the same order.

In-place updates. An optimizer's fused update (plan.updates, compiler.schedule.in_place_updates)
writes a weight's or slot's next value into the variable's own buffer, which the variable then
keeps: no new buffer, no hand-over between buffers, one copy of each weight. The store hands the
kernel that buffer only when the plan allows it, the variable's value spans it, no other variable
holds it (`v2.assign(v1)` shares a buffer), every value of the run viewing it is dropped after the
step (a kernel that passes its input through, as check_numerics does, is a view the plan does not
see) and no NumericsChecker watches the run (a NaN must leave the variable as it was); else a new
pool buffer holding a copy of the old value (`Stats.copies_on_device`), as the cpu's store does.

Steps. A fused group is a codegen_cuda.CudaKernel; matmul, softmax, cross-entropy, convolution,
pooling, the index ops (argmax/argmin, one_hot, in_top_k), the data-movement ops (transpose,
slices and their gradient, concat and its gradient, stack, tile, broadcast_to, pad,
check_numerics), the reductions fusion leaves out (integer ones, axes known only at run time,
sum_to, sum_tiles) and the random draws a codegen_cuda_ops.CudaNodeKernel (an input a kernel
reads only for its shape is not copied in); an elementwise node fusion leaves out (integers,
control inputs) or a lone reduction a CudaKernel of its own. Variables, assignments, reads and
constants are handled here (constants are copied in once per plan); assign_add/assign_sub are
kernels fed the variable's value at their step; reshape, expand_dims, squeeze and an unfed
placeholder_with_default are views of their input, on whichever side it is; shape and size are
computed from the run-time shape (no data moves). Every other node (integer division and
powers, float16 values) runs on the host through its NumPy reference, its inputs copied out
and its output copied in when a device step needs it: an explicit fallback, counted per op in
`Stats.host_ops` (and printed with SYMGRAPH_DEBUG=2), as is a node whose kernel refuses its
inputs (shapes the reference rejects). numba.cuda is imported only inside functions.

Random numbers. Random ops and dropout masks draw on the device from xoroshiro128+ states, one
array per random node kept in `CudaDevice.random` for the session's life, seeded from the
node's (graph seed, op seed) as the host seeds its NumPy stream: a seeded graph gives the same
numbers in every new session and new numbers in every run, but not the host's numbers (TF1 too
draws differently on GPU and CPU); only the distributions agree (codegen_cuda_random). A node
that falls back to the host draws from the host's stream.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.cache import debug
from compiler.codegen_cuda_random import RandomStates
from runtime.executor import evaluate_naming_errors
from runtime.numerics import NumericsChecker
from runtime.reference import evaluate
from runtime.variables import VariableStore
from symgraph.errors import InvalidArgumentError
from symgraph.graph import Node

# nodes that are views of their first input (same elements, same order), on either side
VIEW_OPS = frozenset({"reshape", "reshape_like", "expand_dims", "squeeze",
                      "placeholder_with_default"})
# nodes whose value is a function of their input's shape: computed on the host, no copy out
SHAPE_OPS = frozenset({"shape", "size"})


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
            buf.copy_to_device(_contiguous(np.asarray(value, dtype)))
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


class _HostView(Mapping):
    """The run's values as NumPy arrays, copied out on first use: what a NumericsChecker reads."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __getitem__(self, key: int) -> Any:
        if key not in self.run.values:
            raise KeyError(key)
        return self.run.host(key)

    def __iter__(self) -> Iterator[int]:
        return iter(self.run.values)

    def __len__(self) -> int:
        return len(self.run.values)


class _Run:
    """One run of a plan: the values by node id, on whichever side they are, and which pool
    buffer each device value views (a buffer goes back to the pool when the last value that
    views it is dropped and no variable holds it)."""

    def __init__(self, device: CudaDevice, values: dict[int, Any]) -> None:
        self.device = device
        self.values = values
        self.host_copies: dict[int, np.ndarray] = {}
        self.bases: dict[int, Any] = {}  # value id -> the pool buffer its device array views
        self.views: Counter = Counter()  # id(pool buffer) -> values of this run viewing it

    def dev(self, vid: int) -> Any:
        """The value on the device (copied in, into a pool buffer, the first time)."""
        value = self.values[vid]
        if isinstance(value, np.ndarray) or np.isscalar(value):
            host = _contiguous(np.asarray(value))
            buf = self.device.pool.take(host.shape, host.dtype)
            buf.copy_to_device(host)
            self.device.stats.copies_in += 1
            self.put(vid, buf, buf)
            self.host_copies[vid] = host
            value = buf
        return value

    def host(self, vid: int) -> np.ndarray:
        """The value on the host (copied out the first time)."""
        value = self.values[vid]
        if value is None or isinstance(value, np.ndarray):
            return value
        host = self.host_copies.get(vid)
        if host is None:
            host = self.host_copies[vid] = value.copy_to_host()
            host.setflags(write=False)
            self.device.stats.copies_out += 1
        return host

    def put(self, vid: int, value: Any, base: Any = None) -> None:
        """Sets a value; `base`: the pool buffer it views, if it is not one itself."""
        self._unview(vid)
        self.values[vid] = value
        self.host_copies.pop(vid, None)
        base = value if base is None else base
        if self.device.pool.owns(base):
            self.bases[vid] = base
            self.views[id(base)] += 1

    def base(self, vid: int) -> Any:
        return self.bases.get(vid, self.values.get(vid))

    def last_read_now(self, buf: Any, free: Sequence[int]) -> bool:
        """No value of the run that views `buf` is read after this step or fetched: every one
        is among `free`, the values dropped after it (plan.free_after)."""
        return self.views[id(buf)] == sum(1 for vid in free if self.bases.get(vid) is buf)

    def drop(self, vid: int) -> None:
        """Forgets a value no later step reads. Its buffer goes back to the pool when no other
        value of the run views it and no variable holds it: the next step may be lent it (one
        stream: kernels queued before still read it first)."""
        self.values.pop(vid, None)
        self.host_copies.pop(vid, None)
        base = self._unview(vid)
        if base is not None and not self.views[id(base)]:
            self.release(base)

    def release(self, buf: Any) -> None:
        """Gives `buf` back unless a value of this run views it or a variable holds it."""
        if id(buf) not in self.views and id(buf) not in self.device.store.held:
            self.device.pool.give(buf)

    def _unview(self, vid: int) -> Any:
        base = self.bases.pop(vid, None)
        if base is not None:
            self.views[id(base)] -= 1
            if not self.views[id(base)]:
                del self.views[id(base)]
        return base


class CudaDevice:
    """The cuda device of one Session: its buffer pool, its variables, its constants."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.pool = BufferPool(self.stats)
        self.store = DeviceVariableStore(self.pool, self.stats)
        self._constants: dict[tuple[int, int], Any] = {}  # (id(plan), node id) -> device array
        self.random = RandomStates()  # the random nodes' RNG states, for the session's life
        self._lock = threading.Lock()

    def run(self, plan: Any, values: dict[int, Any], observers: Sequence[Any] = ()
            ) -> dict[int, Any]:
        """Runs `plan`'s steps; returns the values (fetched ones copied to the host)."""
        with self._lock, np.errstate(all="ignore"):
            run = _Run(self, values)
            try:
                self._steps(plan, run, observers)
                fetched = {n.id for n in plan.program.outputs}
                return {vid: run.host(vid) for vid in list(run.values) if vid in fetched}
            finally:
                self.store.end_run()

    def _steps(self, plan: Any, run: _Run, observers: Sequence[Any]) -> None:
        host_view = _HostView(run)
        seen = [host_view if isinstance(o, NumericsChecker) else run.values for o in observers]
        for observer, view in zip(observers, seen):
            observer.begin(plan, view)
        clock = time.perf_counter_ns
        dropped = len(self.store.dropped)  # variables' old buffers, let go of in this run
        # a checked run updates in copies: a step that makes a NaN leaves the variable as it was
        reuse = not any(isinstance(o, NumericsChecker) for o in observers)
        for index, (step, free, updates) in enumerate(
                zip(plan.steps, plan.free_after, plan.updates)):
            start = clock()
            if isinstance(step, Node):
                self._node(step, run)
            else:
                self._kernel(step, run, updates, free, reuse)
            if observers:
                from numba import cuda

                cuda.synchronize()  # a step's time is its kernels' time, not their launch's
                end = clock()
                for observer, view in zip(observers, seen):
                    observer.after_step(plan, index, step, view, self.store, start, end)
            for value_id in free:  # their last reader has run (plan.free_after)
                run.drop(value_id)
            for buf in self.store.dropped[dropped:]:  # an old buffer no value views any more
                run.release(buf)
            dropped = len(self.store.dropped)
        for observer, view in zip(observers, seen):
            observer.end(plan, view)

    def _kernel(self, kernel: Any, run: _Run, updates: Sequence[Any] = (),
                free: Sequence[int] = (), reuse: bool = True) -> None:
        ir = getattr(kernel, "ir", None)
        reads = [i.read for i in ir.inputs] if ir is not None else \
            getattr(kernel, "reads", None) or [True] * len(kernel.inputs)
        try:
            for i in getattr(kernel, "checked", ()):
                kernel.host_check([run.host(kernel.inputs[i])])
            target = getattr(kernel, "assigns", None)
            args = [self.store.read(target) if target is not None and i == 0  # its value now
                    else run.dev(v) if read else run.values[v]
                    for i, (v, read) in enumerate(zip(kernel.inputs, reads))]
            written = self._update_buffers(kernel, run, args, updates, free, reuse)
            if getattr(kernel, "stateful", False):
                outs = kernel.launch(args, self.pool.take, self.pool.give, self.random)
            else:
                outs = kernel.launch(args, self.pool.take, self.pool.give)
        except ValueError:
            # refused shapes or values (as the CPU kernels do): the reference runs the nodes,
            # giving the right values or the error that names the user's op
            from runtime import executor

            executor.fallbacks += 1
            for node in kernel.members:
                self._host(node, run)
            return
        self.stats.kernels += 1
        if target is not None:
            self.store.write(target, outs[0], outs[0])
            run.put(kernel.outputs[0], self.store.read(target), self.store.base(target))
            return
        for q, (vid, out) in enumerate(zip(kernel.outputs, outs)):
            if q in written:  # an in-place update: the buffer its variable's assign keeps
                run.put(vid, out, written[q])
                continue
            # an output that is an input (check_numerics passes x through) views its buffer
            alias = next((v for a, v in zip(args, kernel.inputs) if a is out), None)
            run.put(vid, out, out if alias is None else run.base(alias))

    def _update_buffers(self, kernel: Any, run: _Run, args: list[Any], updates: Sequence[Any],
                        free: Sequence[int], reuse: bool) -> dict[int, Any]:
        """Puts, at each in-place update's input slots, the array its kernel overwrites (the
        variable's own buffer, or a copy of its value; DeviceVariableStore.buffer_for_update);
        returns the pool buffer each such output is, or views, by output position."""
        written = {}
        for update in updates:  # compiler.plan.Update
            slot = update.slots[0]
            old = run.base(kernel.inputs[slot])
            own = reuse and update.reuse and run.last_read_now(old, free)
            value = args[slot]
            buffer = self.store.buffer_for_update(update.var, value, own)
            for k in update.slots:
                args[k] = buffer
            written[update.output] = old if buffer is value else buffer  # else a new buffer
        return written

    def _node(self, node: Node, run: _Run) -> None:
        op = node.opdef.name
        store = self.store
        if op == "variable":
            run.put(node.id, store.read(node), store.base(node))
        elif op == "read_variable":
            var = node.inputs[0].node
            run.put(node.id, store.read(var), store.base(var))
        elif op == "assign":
            var, vid = node.inputs[0].node, node.inputs[1].node.id
            store.write(var, run.dev(vid), run.base(vid))
            run.put(node.id, store.read(var), store.base(var))
        elif op == "constant":
            key = (id(node.graph), node.id)
            value = self._constants.get(key)
            if value is None:
                from numba import cuda

                value = self._constants[key] = cuda.to_device(
                    _contiguous(evaluate(node, [], store)))
                self.stats.copies_in += 1
            run.put(node.id, value)
        elif op in VIEW_OPS:
            vid = node.inputs[0].node.id
            x = run.values[vid]
            shapes = [_shape_only(run.values[t.node.id]) for t in node.inputs[1:]]
            if isinstance(x, np.ndarray):  # a view of a host value: on the host, not counted
                value = evaluate_naming_errors(node, [x, *shapes], store)
                value.setflags(write=False)
                run.put(node.id, value)
                return
            # the view's shape: the reference applied to a zero-stride stand-in of x
            like = [np.lib.stride_tricks.as_strided(np.zeros(1, x.dtype), tuple(x.shape),
                                                    (0,) * len(x.shape)), *shapes]
            shape = evaluate(node, like, store).shape
            run.put(node.id, x.reshape(shape) if shape else x.reshape(1).reshape(()),
                    run.base(vid))
        elif op in SHAPE_OPS:  # from the run-time shape, known here: no data moves
            x = run.values[node.inputs[0].node.id]
            run.put(node.id, evaluate(node, [_shape_only(x)], store))
        elif op == "no_op":
            run.put(node.id, None)
        else:
            self._host(node, run)

    def _host(self, node: Node, run: _Run) -> None:
        """The node through its NumPy reference, on the host (the counted fallback)."""
        refs = node.opdef.ref_inputs
        args = [None if i in refs else
                _shape_only(run.values[t.node.id]) if i in node.opdef.shape_inputs
                else run.host(t.node.id) for i, t in enumerate(node.inputs)]
        self.stats.host_ops[node.opdef.name] += 1
        if self.stats.host_ops[node.opdef.name] == 1:
            debug(2, f"cuda: {node.opdef.name} runs on the host (no device kernel yet)")
        value = evaluate_naming_errors(node, args, _HostState(self.store, run))
        if isinstance(value, np.ndarray) and value.flags.writeable:
            value.setflags(write=False)
        run.put(node.id, value)


def _contiguous(x: np.ndarray) -> np.ndarray:
    """x in C order (np.ascontiguousarray would make a 0-d array 1-d)."""
    return x if x.flags.c_contiguous else np.array(x, order="C")


def _shape_only(value: Any) -> np.ndarray:
    """A stand-in with the value's shape and dtype and no data (one element, zero strides)."""
    if isinstance(value, np.ndarray):
        return value
    shape = tuple(value.shape)
    return np.lib.stride_tricks.as_strided(np.zeros(1, value.dtype), shape, (0,) * len(shape))


class _HostState:
    """The state a host-run node's effect sees: variables read from the device (copied out),
    writes stored on the device; random streams as on the host."""

    def __init__(self, store: DeviceVariableStore, run: _Run) -> None:
        self.store = store
        self.run = run

    def read(self, var: Node) -> np.ndarray:
        value = self.store.read(var)
        self.store.stats.copies_out += 1
        out = value.copy_to_host()
        out.setflags(write=False)
        return out

    def write(self, var: Node, value: Any) -> None:
        self.store.write(var, np.asarray(value))

    def rng(self, node: Node) -> np.random.Generator:
        return self.store.rng(node)

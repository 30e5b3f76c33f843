"""The cuda device: runs a plan compiled for target "cuda" with its values on an NVIDIA GPU (or
Numba's CUDA simulator), and keeps the session's variables there between runs.

Where values live. A value is a device array or a host (NumPy) array, and moves only when a step
needs it on the other side: feeds stay on the host until a device step reads them (then copied
in once per run); a kernel's outputs stay on the device; only fetched values are copied out.
Variables (and so optimizer slots) are device arrays for the session's life (DeviceVariableStore).

Buffers and in-place updates: runtime.device_memory (the buffer pool, the variables' buffers).

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
from typing import Any

import numpy as np

from compiler.cache import debug
from compiler.codegen_cuda_random import RandomStates
from runtime.device_memory import BufferPool, DeviceVariableStore, Stats, contiguous
from runtime.executor import evaluate_naming_errors
from runtime.numerics import NumericsChecker
from runtime.reference import evaluate
from symgraph.graph import Node

# nodes that are views of their first input (same elements, same order), on either side
VIEW_OPS = frozenset({"reshape", "reshape_like", "expand_dims", "squeeze",
                      "placeholder_with_default"})
# nodes whose value is a function of their input's shape: computed on the host, no copy out
SHAPE_OPS = frozenset({"shape", "size"})


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
            host = contiguous(np.asarray(value))
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
                self._kernel(step, run, updates, reuse)
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
                reuse: bool = True) -> None:
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
            written = self._update_buffers(kernel, run, args, updates, reuse)
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
            # an output that is an input (check_numerics passes x through) views its buffer;
            # the kernel must say so, or the plan's in-place updates would not see the view
            alias = next((k for k, a in enumerate(args) if a is out), None)
            if alias is not None and alias not in getattr(kernel, "passes_through", ()):
                raise RuntimeError(f"{kernel.name} returned its input {alias} without "
                                   "declaring it in passes_through")
            run.put(vid, out, out if alias is None else run.base(kernel.inputs[alias]))

    def _update_buffers(self, kernel: Any, run: _Run, args: list[Any], updates: Sequence[Any],
                        reuse: bool) -> dict[int, Any]:
        """Puts, at each in-place update's input slots, the array its kernel overwrites (the
        variable's own buffer, or a copy of its value; DeviceVariableStore.buffer_for_update);
        returns the pool buffer each such output is, or views, by output position."""
        written = {}
        for update in updates:  # compiler.plan.Update
            slot = update.slots[0]
            old = run.base(kernel.inputs[slot])
            value = args[slot]
            buffer = self.store.buffer_for_update(update.var, value, reuse and update.reuse)
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
                    contiguous(evaluate(node, [], store)))
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

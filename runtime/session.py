"""The Session: runs fetches of a graph, holding that session's variable values between runs."""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import numpy as np

from compiler.memory import MemoryReport, check_fits, plan_memory
from compiler.pipeline import TARGETS, compile_plan
from compiler.plan import Plan
from runtime import executor, host_memory
from runtime.fetches import flatten, hand_over
from runtime.variables import VariableStore
from symgraph import debugging, session_context
from symgraph import dtypes as _dt
from symgraph.errors import InvalidArgumentError, OpError
from symgraph.graph import Graph, Node, Tensor, get_default_graph

DEVICES = TARGETS  # a device runs the plans compiled for the target of its name
DEFAULT_DEVICE = "cpu"
GROWTH_WARNING_RUNS = 20  # runs in a row after graph growth before the leak warning


class Session:
    """Runs parts of a graph (TF1's `tf.Session`).

    Args:
      target: unused; kept so that TF1's positional `Session('', graph)` works.
      graph: the graph to run (default: the default graph at creation).
      config: unused, accepted for TF1 compatibility.
      device: where plans run. "reference" computes op by op with NumPy, on the graph as written
        (the oracle); "cpu" runs the optimized graph; "cuda" runs it on an NVIDIA GPU (or
        Numba's CUDA simulator; see sg.cuda.is_available()). Default: $SYMGRAPH_DEVICE, else
        DEFAULT_DEVICE.
      check_numerics: check every value each run computes (and every feed) for NaN and Inf,
        and fail naming the first op that made one, with its inputs' ranges and the user's
        line. Default: on after sg.debugging.enable_check_numerics(), else off.
    """

    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None,
                 device: str | None = None, check_numerics: bool | None = None,
                 flush_denormals: bool | None = None) -> None:
        if device is None:
            device = os.environ.get("SYMGRAPH_DEVICE", DEFAULT_DEVICE)
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; available: {', '.join(DEVICES)}")
        self.graph = graph if graph is not None else get_default_graph()
        self.device = device
        host_memory.keep_freed_pages()  # runs reuse their big arrays' pages (see the module)
        # the cuda device keeps its buffer pool, variables and constants for the session's life
        self._device = _cuda_device() if device == "cuda" else None
        self._store = VariableStore() if self._device is None else self._device.store
        self._plans: dict[tuple, Plan] = {}
        self._fitting: set[tuple] = set()  # (plan key, feed shapes) known to fit in memory
        self._graph_size = -1  # nodes in the graph at the last run, and how many runs in a row
        self._growing_runs = 0  # found it bigger (ops created inside a training loop)
        self._lock = threading.RLock()
        self._closed = False
        self.check_numerics = (debugging.check_numerics_enabled() if check_numerics is None
                               else bool(check_numerics))
        # the cpu device runs with denormals flushed to zero, as TF1's kernels do (see
        # compiler/codegen_cpu_fpenv.py); SYMGRAPH_FLUSH_DENORMALS=0 or False here: as NumPy
        self.flush_denormals = (os.environ.get("SYMGRAPH_FLUSH_DENORMALS", "1") != "0"
                                if flush_denormals is None else bool(flush_denormals))

    # -- context --------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        session_context.push(self)
        self._graph_ctx = self.graph.as_default()
        self._graph_ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._graph_ctx.__exit__(*exc)
        session_context.pop(self)
        self.close()

    def as_default(self) -> Any:
        """A context in which `Tensor.eval()` and `Operation.run()` use this session."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            session_context.push(self)
            try:
                yield self
            finally:
                session_context.pop(self)

        return ctx()

    def close(self) -> None:
        self._closed = True

    # -- running --------------------------------------------------------------------------------
    def run(self, fetches: Any, feed_dict: dict | None = None, options: Any = None,
            run_metadata: Any = None) -> Any:
        """Computes `fetches` (a tensor, an operation, or any nesting of them in lists, tuples,
        dicts and namedtuples) and returns NumPy arrays in the same structure; operations give
        None. `feed_dict` maps placeholders (or any tensor) to values that replace them.
        With `options=sg.RunOptions(trace_level=sg.RunOptions.FULL_TRACE)` and
        `run_metadata=sg.RunMetadata()`, the run records each step's time and bytes there.
        Runs from several threads take turns; an optimizer's step updates the variables in
        place (runtime.variables), and every array returned is the caller's own.
        """
        if self._closed:
            raise RuntimeError("this Session is closed; create a new one")
        leaves, rebuild = flatten(fetches, lambda s: isinstance(s, (Tensor, Node, str)))
        targets = [self._fetch_node(f) for f in leaves]
        feeds = self._convert_feeds(feed_dict or {})
        nodes = list(dict.fromkeys(node for node, _ in targets))
        feed_ids = tuple(sorted(feeds))
        with self._lock:
            self._watch_graph_growth()
            plan = self._plan(nodes, feed_ids)
            program = plan.program
            if plan.unfed:
                unfed = [program.user_node(n) for n in plan.unfed]
                missing = "; ".join(n.output.describe() for n in unfed)
                raise InvalidArgumentError(
                    f"you must feed a value for placeholder(s) {missing}: the fetches need them",
                    unfed[0])
            values = {node.id: feeds[i] for node, i in zip(program.inputs, feed_ids)
                      if node is not None}
            self._check_memory(plan, feeds, feed_ids)
            try:
                observers = executor.observers_for(options, run_metadata, self.check_numerics,
                                                   self.device)
                if self._device is not None:
                    values = self._device.run(plan, values, observers)
                elif self.device == "cpu":
                    from compiler.codegen_cpu_fpenv import flushing_denormals

                    with flushing_denormals(self.flush_denormals):
                        values = executor.run_steps(plan, values, self._store, observers)
                else:
                    values = executor.run_steps(plan, values, self._store, observers)
            except OpError as e:
                if e.node is not None:
                    e.node = program.user_node(e.node)
                raise
            # read-only values may be (views of) variables' buffers, which the next run may
            # update in place: copied before another run can start, unless only this run holds
            # them (hand_over)
            by_fetch = {n.id: out.id for n, out in zip(nodes, program.outputs)}
            results = hand_over(values, [None if is_op else by_fetch[node.id]
                                         for node, is_op in targets])
        return rebuild(results)

    def plan_for(self, fetches: Any, feed_dict: dict | None = None) -> Plan:
        """The compiled plan that `run(fetches, feed_dict)` executes, without running it."""
        leaves, _ = flatten(fetches, lambda s: isinstance(s, (Tensor, Node, str)))
        nodes = list(dict.fromkeys(self._fetch_node(f)[0] for f in leaves))
        feed_ids = tuple(sorted(self._convert_feeds(feed_dict or {})))
        with self._lock:
            return self._plan(nodes, feed_ids)

    def _watch_graph_growth(self) -> None:
        """Warns once when the graph has grown before every one of many runs in a row: the
        classic TF1 leak of creating ops inside the training loop, which slows every step and
        recompiles every plan. Building a graph and running it in turns a few times is fine."""
        size = len(self.graph.nodes)
        self._growing_runs = self._growing_runs + 1 if 0 <= self._graph_size < size else 0
        self._graph_size = size
        if self._growing_runs == GROWTH_WARNING_RUNS:
            warnings.warn(
                f"the graph grew before each of the last {GROWTH_WARNING_RUNS} runs (now "
                f"{size} ops): are ops created inside the training loop? Each new op is kept "
                "forever and each new fetch compiles a new plan; create the ops once, before "
                "the loop, and feed the values that change (the last op was made at "
                f"{self.graph.nodes[-1].location})", RuntimeWarning, stacklevel=3)

    def memory_report(self, fetches: Any, feed_dict: dict | None = None) -> MemoryReport:
        """What `run(fetches, feed_dict)` would hold in memory at its peak, and where, computed
        from the shapes of the feeds without running anything. `print()` it for a summary."""
        plan = self.plan_for(fetches, feed_dict)
        feeds = self._convert_feeds(feed_dict or {})
        return plan_memory(plan, [feeds[i].shape if n is not None else None
                                  for n, i in zip(plan.program.inputs, sorted(feeds))])

    def _check_memory(self, plan: Plan, feeds: dict[int, np.ndarray],
                      feed_ids: tuple[int, ...]) -> None:
        """A clear MemoryError before a run that cannot fit; checked once per feed shapes."""
        key = (id(plan), tuple(feeds[i].shape for i in feed_ids))
        if key in self._fitting:
            return
        check_fits(plan_memory(plan, [feeds[i].shape if n is not None else None
                                      for n, i in zip(plan.program.inputs, feed_ids)]))
        if len(self._fitting) > 1024:  # shapes that change every run: keep the set bounded
            self._fitting.clear()
        self._fitting.add(key)

    def _plan(self, nodes: list[Node], feed_ids: tuple[int, ...]) -> Plan:
        """The cached plan for these fetches and feeds, compiled on first use."""
        key = (tuple(n.id for n in nodes), feed_ids)
        plan = self._plans.get(key)
        if plan is None:
            plan = compile_plan(self.graph, nodes, [self.graph.nodes[i] for i in feed_ids],
                                target=self.device)
            self._plans[key] = plan
        return plan

    def _fetch_node(self, fetch: Any) -> tuple[Node, bool]:
        """The node behind a fetch, and whether it was asked for as an operation (gives None)."""
        if isinstance(fetch, str):
            try:
                fetch = (self.graph.get_tensor_by_name(fetch) if ":" in fetch
                         else self.graph.get_operation_by_name(fetch))
            except KeyError as e:
                raise ValueError(f"cannot fetch {fetch!r}: {e.args[0]}") from None
        node = fetch.node if isinstance(fetch, Tensor) else fetch
        if node.graph is not self.graph:
            what = fetch.describe()
            raise ValueError(f"cannot fetch {what}: it belongs to another graph than this "
                             "session's")
        return node, isinstance(fetch, Node) or not node.opdef.has_output

    def _convert_feeds(self, feed_dict: dict) -> dict[int, np.ndarray]:
        feeds: dict[int, np.ndarray] = {}
        for key, value in feed_dict.items():
            if isinstance(key, str):
                try:
                    key = self.graph.get_tensor_by_name(key)
                except KeyError as e:
                    raise ValueError(f"cannot feed {key!r}: {e.args[0]}") from None
            if not isinstance(key, Tensor):
                raise TypeError(f"feed_dict keys must be tensors, got {type(key).__name__}")
            if key.graph is not self.graph:
                raise ValueError(f"cannot feed {key.describe()}: it belongs to another graph "
                                 "than this session's")
            if not self.graph.is_feedable(key):
                raise ValueError(f"cannot feed {key.describe()}: the graph marks it as not "
                                 "feedable (graph.prevent_feeding)")
            feeds[key.node.id] = convert_feed(key, value)
        return feeds

    def load_variable(self, var: Tensor, value: Any) -> None:
        """Sets a variable's value in this session directly (TF1's `Variable.load`)."""
        self._store.write(var.node, convert_feed(var, value))


def _cuda_device() -> Any:
    """The device of a new cuda session; a RuntimeError saying why where it cannot run."""
    from symgraph import cuda

    reason = cuda.unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"Session(device='cuda') cannot run here: {reason}")
    from runtime.device_cuda import CudaDevice

    return CudaDevice()


class InteractiveSession(Session):
    """A Session that makes itself the default on creation (TF1's `tf.InteractiveSession`), so
    `t.eval()` and `op.run()` work in a shell or notebook without a `with` block; `close()`
    removes it again."""

    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None,
                 device: str | None = None) -> None:
        super().__init__(target, graph, config, device)
        session_context.push(self)

    def close(self) -> None:
        if not self._closed:
            session_context.remove(self)
        super().close()


def convert_feed(tensor: Tensor, value: Any) -> np.ndarray:
    """A fed value converted to the tensor's dtype under TF1's rules, and checked for shape.

    The result is a read-only view, so a fetch that passes it through comes back as a copy and
    never aliases the caller's array.
    """
    if isinstance(value, (Tensor, Node)):
        raise TypeError(f"the value fed for {tensor.describe()} is a symbolic "
                        f"{type(value).__name__}; feed NumPy arrays, lists or scalars "
                        "(sess.run the tensor first to get its value)")
    try:
        arr = _dt.convert_array(value, tensor.dtype, f"feeding {tensor.describe()}")
    except TypeError as e:
        raise TypeError(str(e)) from None
    shape = tensor.shape
    if shape.rank is not None and (
            arr.ndim != shape.rank
            or any(d is not None and d != a for d, a in zip(shape, arr.shape))):
        raise ValueError(f"cannot feed a value of shape {arr.shape} for {tensor.describe()}, "
                         f"which has shape {shape}")
    arr = arr.view()
    arr.setflags(write=False)
    return arr

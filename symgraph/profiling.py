"""What a traced run records (TF1's RunOptions and RunMetadata), and views of it.

    md = sg.RunMetadata()
    sess.run(train_op, feed, options=sg.RunOptions(trace_level=sg.RunOptions.FULL_TRACE),
             run_metadata=md)
    md.summary()                      # the slowest kernels and the time per name scope
    md.to_chrome_trace("trace.json")  # open in chrome://tracing or https://ui.perfetto.dev
    sg.visualize(train_op, "profile.png", profile=md)

The runtime (runtime/profiler.py) fills a RunMetadata; these classes are plain data, so that
symgraph (and sg.visualize) can read them without importing the runtime.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from symgraph.files import write_atomically


class RunOptions:
    """Options for one Session.run (TF1's tf.RunOptions): trace_level FULL_TRACE (or any level
    above NO_TRACE) records each step's wall time and bytes into the run's RunMetadata."""

    NO_TRACE = 0
    SOFTWARE_TRACE = 1
    HARDWARE_TRACE = 2
    FULL_TRACE = 3

    def __init__(self, trace_level: int = NO_TRACE) -> None:
        self.trace_level = trace_level

    def __repr__(self) -> str:
        return f"RunOptions(trace_level={self.trace_level})"


@dataclass(frozen=True)
class StepStat:
    """One executed step of a plan: a fused kernel, or one op run through NumPy.

    Attributes:
      name: the kernel's name (fused_<n>_<hash8>) or the op's node name.
      kind: "kernel" or "op".
      ops: the op types the step computes, in order.
      nodes: the names of the user's graph nodes the step computes (what visualize colors).
      locations: the user's file:line of those nodes, without repeats.
      start_us, duration_us: wall time from the start of the run, in microseconds.
      bytes_read, bytes_written: sizes of the input values read and the output values written.
    """

    index: int
    name: str
    kind: str
    ops: tuple[str, ...]
    nodes: tuple[str, ...]
    locations: tuple[str, ...]
    start_us: float
    duration_us: float
    bytes_read: int
    bytes_written: int


@dataclass
class RunMetadata:
    """Filled by a traced Session.run (TF1's tf.RunMetadata); each traced run replaces it.

    Attributes:
      step_stats: one StepStat per executed step, in execution order.
      total_us: wall time of all the steps, including the executor's own work between them.
      device: the device the plan ran on.
    """

    step_stats: list[StepStat] = field(default_factory=list)
    total_us: float = 0.0
    device: str = ""

    def node_times(self) -> dict[str, float]:
        """Microseconds per user node name: a kernel's time is shared evenly by its nodes."""
        times: dict[str, float] = {}
        for s in self.step_stats:
            for name in s.nodes:
                times[name] = times.get(name, 0.0) + s.duration_us / len(s.nodes)
        return times

    def scope_times(self, depth: int = 1) -> dict[str, float]:
        """Microseconds per name scope, cut to `depth` levels ("(top level)" for unscoped)."""
        times: dict[str, float] = {}
        for name, us in self.node_times().items():
            parts = name.split("/")[:-1][:depth]
            key = "/".join(parts) if parts else "(top level)"
            times[key] = times.get(key, 0.0) + us
        return times

    def top_steps(self, n: int = 10) -> list[StepStat]:
        """The n slowest steps, slowest first."""
        return sorted(self.step_stats, key=lambda s: -s.duration_us)[:n]

    def summary(self, top: int = 10, depth: int = 2, print_fn: Callable | None = print) -> str:
        """Prints (and returns) the slowest steps with their ops and user lines, then the time
        per name scope (to `depth` levels), so a slow line of the model is easy to find."""
        steps = self.step_stats
        busy = sum(s.duration_us for s in steps)
        if not steps:
            text = ("no steps recorded: pass options=sg.RunOptions(trace_level="
                    "sg.RunOptions.FULL_TRACE) together with run_metadata to Session.run")
            if print_fn is not None:
                print_fn(text)
            return text
        moved = sum(s.bytes_read + s.bytes_written for s in steps)
        kernels = sum(s.kind == "kernel" for s in steps)
        lines = [f"run on {self.device or '?'}: {len(steps)} steps ({kernels} fused kernels), "
                 f"{_ms(self.total_us)} wall, {_ms(busy)} in steps, {_mb(moved)} moved",
                 "",
                 f"{'ms':>9} {'%':>5} {'MB in':>8} {'MB out':>8}  step  [ops]  user lines"]
        for s in self.top_steps(top):
            ops = _clip(" -> ".join(s.ops), 60)
            where = _clip(", ".join(s.locations), 60)
            lines.append(f"{s.duration_us / 1e3:9.3f} {_pct(s.duration_us, busy):>5} "
                         f"{s.bytes_read / 1e6:8.3f} {s.bytes_written / 1e6:8.3f}  "
                         f"{s.name}  [{ops}]  {where}")
        lines += ["", "time by name scope:"]
        for scope, us in _scope_rows(self, depth):
            indent = "  " * scope.count("/")
            lines.append(f"{us / 1e3:9.3f} {_pct(us, busy):>5}  {indent}{scope}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def to_chrome_trace(self, path: str | os.PathLike) -> str:
        """Writes the steps as Chrome trace JSON (chrome://tracing, ui.perfetto.dev); returns
        the path. Each step is a complete event ("ph": "X") with its ops, nodes and bytes."""
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": 0, "tid": 0,
             "args": {"name": f"symgraph ({self.device or 'run'})"}}]
        for s in self.step_stats:
            events.append({"name": s.name, "cat": s.kind, "ph": "X", "ts": s.start_us,
                           "dur": s.duration_us, "pid": 0, "tid": 0,
                           "args": {"ops": list(s.ops), "nodes": list(s.nodes),
                                    "user_lines": list(s.locations),
                                    "bytes_read": s.bytes_read,
                                    "bytes_written": s.bytes_written}})
        data = json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}, indent=1)
        write_atomically(path, data)
        return os.fspath(path)


def _scope_rows(md: RunMetadata, depth: int) -> list[tuple[str, float]]:
    """Scopes to `depth` levels as a tree: each level sorted by time, children under parents."""
    rows: list[tuple[str, float]] = []
    levels = [md.scope_times(d) for d in range(1, depth + 1)]

    def walk(prefix: str, level: int) -> None:
        if level >= depth:
            return
        children = [(k, v) for k, v in levels[level].items()
                    if (k.rsplit("/", 1)[0] if "/" in k else "") == prefix
                    and (level == 0 or k.count("/") == level)]
        for key, us in sorted(children, key=lambda kv: -kv[1]):
            rows.append((key, us))
            if key != "(top level)":
                walk(key, level + 1)

    walk("", 0)
    return rows


def _ms(us: float) -> str:
    return f"{us / 1e3:.3f} ms"


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."

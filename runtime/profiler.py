"""Per-step timing for traced runs: fills a symgraph.profiling.RunMetadata.

The executor calls a Tracer around each step only when a run asks for a trace, so an untraced
run pays nothing. During the run the tracer keeps raw numbers (clock readings, byte counts);
mapping steps back to the user's nodes and lines happens once, after the last step.
"""

from __future__ import annotations

import time
from typing import Any

from symgraph.graph import Node
from symgraph.profiling import RunOptions, StepStat


def wants_trace(options: Any, run_metadata: Any) -> bool:
    """TF1's rule: a run is traced when it has RunMetadata to fill and a trace level above
    NO_TRACE (any options object with a `trace_level` works)."""
    level = getattr(options, "trace_level", RunOptions.NO_TRACE)
    return run_metadata is not None and level is not None and level > RunOptions.NO_TRACE


def step_reads(step: Any) -> list[int]:
    """Node ids of the values a step reads (a variable named by an assignment is not read)."""
    if isinstance(step, Node):
        refs = step.opdef.ref_inputs
        return [t.node.id for i, t in enumerate(step.inputs) if i not in refs]
    return list(step.inputs)


def step_writes(step: Any) -> list[int]:
    """Node ids of the values a step produces."""
    return [step.id] if isinstance(step, Node) else list(step.outputs)


def _nbytes(values: dict[int, Any], ids: list[int]) -> int:
    return sum(getattr(values.get(i), "nbytes", 0) for i in ids)


class Tracer:
    """Records each step's wall time and bytes, then fills `metadata` when the run ends."""

    def __init__(self, metadata: Any, device: str = "") -> None:
        self.metadata = metadata
        self.device = device
        self.records: list[tuple[int, int, int, int, int]] = []
        self.start = 0

    def begin(self, plan: Any, values: dict[int, Any]) -> None:
        self.records = []
        self.start = time.perf_counter_ns()

    def after_step(self, plan: Any, index: int, step: Any, values: dict[int, Any], state: Any,
                   start: int, end: int) -> None:
        self.records.append((index, start, end, _nbytes(values, step_reads(step)),
                             _nbytes(values, step_writes(step))))

    def end(self, plan: Any, values: dict[int, Any]) -> None:
        total = time.perf_counter_ns() - self.start
        stats = [_step_stat(plan, plan.steps[i], i, (s - self.start) / 1e3, (e - s) / 1e3, r, w)
                 for i, s, e, r, w in self.records]
        self.metadata.step_stats = stats
        self.metadata.total_us = total / 1e3
        self.metadata.device = self.device

def _step_stat(plan: Any, step: Any, index: int, start_us: float, duration_us: float,
               bytes_read: int, bytes_written: int) -> StepStat:
    program = plan.program
    members = [step] if isinstance(step, Node) else list(step.members)
    users = [program.user_node(m) for m in members]
    locations = tuple(dict.fromkeys(u.location for u in users))
    return StepStat(index=index, name=step.name if not isinstance(step, Node) else users[0].name,
                    kind="op" if isinstance(step, Node) else "kernel",
                    ops=tuple(m.opdef.name for m in members),
                    nodes=tuple(dict.fromkeys(u.name for u in users)), locations=locations,
                    start_us=start_us, duration_us=duration_us, bytes_read=bytes_read,
                    bytes_written=bytes_written)

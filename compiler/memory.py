"""How much memory a Plan needs for given feed shapes, known before anything is allocated.

Static shapes with None dims say little about bytes; the feeds fill them in. The program's
nodes are inferred again, in a scratch graph, with the fed shapes, which gives every value's
size. Walking the steps with the plan's lifetimes (a value is held from the step that makes it
to the step after its last reader) gives the live bytes after each step and their peak.

The figure is an upper bound of what the executor holds: views (reshape, transpose) are counted
as copies, while an assignment's value and an optimizer's update written into its variable's
buffer (plan.Update) count as nothing new. A kernel's own allocations count while it runs: a
convolution's im2col columns (kept until the filter gradient that reuses them,
codegen_cpu_nn.share_patches), the product an epilogue feeds to its loop. Intermediate values
of a fused loop live in registers and are not values at all. Variables live in the session,
not in the plan: they are reported apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compiler.plan import Plan
from symgraph.graph import Graph, Node, Tensor
from symgraph.ops.state import ASSIGN, PLACEHOLDER, VARIABLE
from symgraph.registry import TensorType
from symgraph.shapes import TensorShape


@dataclass(frozen=True)
class MemoryReport:
    """Bytes of one run of a plan.

    Attributes:
      plan: the plan measured.
      peak_bytes: the most bytes held at once by feeds and computed values.
      peak_step: the index in `plan.steps` after which the peak is reached (-1: the feeds).
      live_after: live bytes at each step: what it reads, makes and allocates for itself,
        before its dead values are dropped.
      value_bytes: the size of each value, by node id of `plan.program.graph`.
      variable_bytes: the variables the plan reads (held by the session across runs).
      unknown: nodes whose size the shapes do not determine (not counted).
    """

    plan: Plan
    peak_bytes: int
    peak_step: int
    live_after: tuple[int, ...]
    value_bytes: dict[int, int]
    variable_bytes: int
    unknown: tuple[Node, ...]

    def largest(self, k: int = 5) -> list[tuple[Node, int]]:
        """The k biggest values, as (the user's node, bytes)."""
        plan = self.plan
        nodes = plan.program.graph.nodes
        biggest = sorted(self.value_bytes.items(), key=lambda kv: -kv[1])[:k]
        return [(plan.program.user_node(nodes[i]), size) for i, size in biggest]

    def __str__(self) -> str:
        """A few lines for people: the peak, where it is reached, and the biggest values."""
        lines = [f"peak {format_bytes(self.peak_bytes)} after step {self.peak_step} of "
                 f"{len(self.plan.steps)}; variables {format_bytes(self.variable_bytes)}"]
        for node, size in self.largest():
            lines.append(f"  {format_bytes(size):>10}  {node.describe()}")
        if self.unknown:
            lines.append(f"  (sizes unknown for {len(self.unknown)} values, not counted)")
        return "\n".join(lines)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop returns at GiB


def concrete_types(plan: Plan, feed_shapes: Sequence[tuple[int, ...] | None]
                   ) -> dict[int, TensorType]:
    """Every program node's type with the feeds' shapes filled in, by program node id.

    `feed_shapes` follows `plan.program.inputs` (None where a feed is not needed). A node
    whose inference fails for these shapes is left out: running it gives the user's error.
    """
    program = plan.program
    fed = {n.id: s for n, s in zip(program.inputs, feed_shapes)
           if n is not None and s is not None}
    scratch = Graph()
    mapping: dict[int, Tensor] = {}
    types: dict[int, TensorType] = {}
    for node in program.graph.nodes:
        if node.id in fed or (node.opdef is PLACEHOLDER and not node.inputs):
            shape = TensorShape(fed[node.id]) if node.id in fed else node.shape
            out = TensorType(node.dtype, shape)
        elif all(t.node.id in mapping for t in node.inputs):
            inputs = [mapping[t.node.id] for t in node.inputs]
            try:
                out = node.opdef.infer(inputs, node.attrs)
            except Exception:  # noqa: BLE001 - any refusal: the run itself will name the error
                continue
        else:
            continue
        types[node.id] = out
        if node.opdef.has_output:
            new = scratch.create_node(node.opdef, [mapping[t.node.id] for t in node.inputs],
                                      node.attrs, None, out, node.location)
            mapping[node.id] = new.output
    return types


def plan_memory(plan: Plan, feed_shapes: Sequence[tuple[int, ...] | None]) -> MemoryReport:
    """The memory a run of `plan` needs with feeds of these shapes (see the module doc)."""
    types = concrete_types(plan, feed_shapes)
    nodes = plan.program.graph.nodes
    sizes: dict[int, int] = {}
    unknown: list[Node] = []
    for node_id, t in types.items():
        count = t.shape.num_elements()
        if count is None:
            unknown.append(nodes[node_id])
        else:
            sizes[node_id] = count * t.dtype.np.itemsize
    variable_ids = {n.id for n in nodes if n.opdef is VARIABLE}
    fed_ids = {n.id for n in plan.program.inputs if n is not None}
    live = sum(sizes.get(i, 0) for i in fed_ids)
    peak, peak_step, live_after = live, -1, []
    held: dict[int, int] = {}  # columns handed from a convolution to its filter gradient
    in_place: set[int] = set()  # values that are variables' buffers, written in place
    for i, (step, free, updates) in enumerate(zip(plan.steps, plan.free_after, plan.updates)):
        made = (step.id,) if isinstance(step, Node) else step.outputs
        # an update in the variable's own buffer makes no new array (plan.Update), nor does an
        # assignment, whose value is the array it stores
        in_place |= {made[u.output] for u in updates if u.reuse}
        if isinstance(step, Node) and step.opdef is ASSIGN:
            in_place.add(step.id)
        live += sum(sizes.get(v, 0) for v in made if v not in variable_ids and v not in in_place)
        during, taken = 0, None
        if not isinstance(step, Node):
            during, kept, slot, takes = _temporaries(step, types, sizes)
            if kept:
                held[id(slot)] = kept
                live += kept
            taken = id(slot) if takes else None
        live_after.append(live + during)
        if live + during > peak:
            peak, peak_step = live + during, i
        live -= sum(sizes.get(v, 0) for v in free if v not in variable_ids and v not in in_place)
        live -= held.pop(taken, 0)
    values = {i: s for i, s in sizes.items() if i not in variable_ids}
    return MemoryReport(plan=plan, peak_bytes=peak, peak_step=peak_step,
                        live_after=tuple(live_after), value_bytes=values,
                        variable_bytes=sum(sizes.get(i, 0) for i in variable_ids),
                        unknown=tuple(unknown))


def _temporaries(step: Any, types: dict[int, TensorType], sizes: dict[int, int]
                 ) -> tuple[int, int, Any, bool]:
    """(bytes freed at the step's end, bytes kept for a later step, the hand-over that carries
    them, whether the step takes such bytes) of a compiled step: a convolution's own
    allocations (codegen_cpu_nn.temporaries) and, for an epilogue, its product."""
    from compiler.codegen_cpu_nn import temporaries  # a kernel exists: Numba is loaded

    def shape(node_id: int) -> tuple[int, ...] | None:
        t = types.get(node_id)
        dims = None if t is None or t.shape.rank is None else t.shape.as_list()
        return None if dims is None or None in dims else tuple(dims)

    producer = getattr(step, "producer", None)
    product = 0
    if producer is not None:  # an epilogue: the product lives while its loop runs
        # (unless the loop's output is the product's array: compiler.epilogue)
        product = 0 if getattr(step, "in_place", False) else sizes.get(step.members[0].id, 0)
        step = producer
    if isinstance(step, Node):
        return product, 0, None, False
    t = temporaries(step, shape)
    return product + t.during, t.kept, t.slot, t.takes


def available_bytes() -> int | None:
    """Memory the system can still give this process (MemAvailable + free swap), if known."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        return None


def check_fits(report: MemoryReport, available: int | None = None) -> None:
    """Raises MemoryError, naming the biggest values and their lines, when a run would need more
    memory than the system has: before anything is allocated, not halfway through a step."""
    available = available_bytes() if available is None else available
    if available is None or report.peak_bytes <= available:
        return
    biggest = "; ".join(f"{node.describe()}: {format_bytes(size)}"
                        for node, size in report.largest(3))
    raise MemoryError(f"this run needs {format_bytes(report.peak_bytes)} at its peak, more than "
                      f"the {format_bytes(available)} available; the biggest values: {biggest}. "
                      "Feed smaller batches or shapes.")

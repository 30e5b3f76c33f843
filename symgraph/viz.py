"""Pictures of a graph through Graphviz: sg.to_dot (DOT source) and sg.visualize (PNG/SVG/PDF).

    sg.visualize(loss, "mlp.png")                          # forward and what it reads
    sg.visualize(train_op, "train.svg", collapse_depth=2)  # name scopes two levels deep
    sg.visualize(train_op, "fused.png", compiled=True)     # fused kernels drawn as blue hulls
    sg.visualize(train_op, "hot.png", profile=run_metadata)  # nodes colored by time

Name scopes are clusters; scopes deeper than `collapse_depth` become one box each (with their
op count), and edges between them are merged, so a big training graph stays readable. Gradient
nodes (the "gradients" scope that sg.gradients builds) are drawn dashed orange. The DOT text is
written here, with every user string escaped; node ids are generated, never user names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgraph.dot import attrs as dot_attrs
from symgraph.dot import esc, heat_color, quote, render_dot
from symgraph.files import write_atomically
from symgraph.graph import Graph, Node, Tensor, get_default_graph
from symgraph.ops.state import CONSTANT, PLACEHOLDER, PLACEHOLDER_WITH_DEFAULT, VARIABLE
from symgraph.printing import _nodes_for
from symgraph.registry import OpKind

AUTO = "auto"
MAX_NODES = 60  # what collapse_depth="auto" aims for: boxes a person can read in one picture
FORMATS = ("png", "svg", "pdf")
_GRADIENT_SCOPE = re.compile(r"^gradients(_\d+)?$")
_STYLES = {  # kind -> node attributes
    "placeholder": {"shape": "invhouse", "fillcolor": "#cfe2f3", "color": "#3d85c6"},
    "variable": {"shape": "cylinder", "fillcolor": "#d9ead3", "color": "#38761d"},
    "constant": {"shape": "box", "fillcolor": "#eeeeee", "color": "#999999",
                 "fontcolor": "#555555", "fontsize": "8"},
    "state": {"shape": "hexagon", "fillcolor": "#fff2cc", "color": "#bf9000"},
    "op": {"shape": "box", "fillcolor": "#ffffff", "color": "#444444"},
    "scope": {"shape": "box3d", "fillcolor": "#e6e6f7", "color": "#674ea7"},
}
_GRADIENT = {"fillcolor": "#fce5cd", "color": "#b45f06", "style": "rounded,filled,dashed"}
_REMOVED = {"fillcolor": "#ffffff", "color": "#aaaaaa", "fontcolor": "#999999",
            "style": "rounded,filled,dotted"}
_LEGEND = ("blue house: placeholder   green cylinder: variable   gray: constant   "
           "white box: op   yellow hexagon: stateful op (assign, random)\\n"
           "dashed orange: gradient   3-d box: collapsed name scope (ops inside)   "
           "blue hull: fused kernel   dotted: removed by the compiler")


_HEAT_LEGEND = "fill: time in the traced run, white (none) to red (the slowest box)"


def to_dot(target: Any = None, *, plan: Any = None, compiled: bool = False,
           session: Any = None, feed_dict: dict | None = None,
           collapse_depth: int | None | str = AUTO, show_gradients: bool = True,
           profile: Any = None, rankdir: str = "TB", max_nodes: int = MAX_NODES,
           legend: bool = True, title: str | None = None) -> str:
    """The DOT source of a picture of `target`; needs no Graphviz installed.

    Args:
      target: a Graph (all its nodes), a tensor or operation, or a list/tuple/dict of them
        (those and everything they depend on). Default: the default graph, or the fetches of
        `plan` when one is given.
      plan: a compiled plan (`sess.plan_for(fetches, feed_dict)`): its fused kernels are drawn
        as hulls around the user's nodes they compute; nodes the compiler removed are dotted.
      compiled: compile `target` for the cpu device (with `session`, the default session, or
        a new one) and draw that plan. Placeholders count as fed unless `feed_dict` says which.
      collapse_depth: scopes nested deeper than this many levels are drawn as one box each
        (0: every top-level scope is one box; None: nothing collapses; "auto": the deepest
        level that keeps the picture within `max_nodes` boxes).
      show_gradients: False hides the gradient nodes (names under a "gradients" scope).
      profile: a RunMetadata from a traced run: nodes are colored by the time spent on them.
      rankdir: Graphviz's direction, "TB" (inputs on top) or "LR".
      legend, title: text under the picture.
    """
    graph, fetches = _target(target, plan)
    if compiled and plan is None:
        plan = _compile(graph, fetches, session, feed_dict)
    nodes = _nodes_for(fetches) if fetches is not None else list(graph.nodes)
    if not show_gradients:
        nodes = [n for n in nodes if not is_gradient(n)]
    view = _View(graph, nodes, plan, profile)
    depth = view.auto_depth(max_nodes) if collapse_depth == AUTO else collapse_depth
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ValueError(f"collapse_depth must be None, 'auto' or an int >= 0, got {depth!r}")
    notes = [title] if title else []
    if plan is not None and not view.kernels:
        unfed = ", ".join(plan.program.user_node(n).name for n in getattr(plan, "unfed", ()))
        notes.append("this plan has no fused kernels" +
                     (f" (compiled without feeds for {unfed})" if unfed else ""))
    return view.render(depth, rankdir, notes, legend)


def visualize(target: Any = None, path: str | os.PathLike = "graph.png", *, plan: Any = None,
              compiled: bool = False, session: Any = None, feed_dict: dict | None = None,
              collapse_depth: int | None | str = AUTO, show_gradients: bool = True,
              profile: Any = None, rankdir: str = "TB", max_nodes: int = MAX_NODES,
              legend: bool = True, title: str | None = None, dpi: int | None = None,
              timeout: float = 120.0) -> str:
    """Draws `target` with Graphviz to `path` (PNG, SVG or PDF by its extension; .dot/.gv
    writes the source) and returns the path. See `to_dot` for the other arguments.

    Raises:
      DotNotFoundError: Graphviz's `dot` program is not installed (the message says how to
        install it; `sg.to_dot` gives the source without it).
    """
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if fmt not in FORMATS + ("dot", "gv"):
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r}: use a .png, .svg, "
                         ".pdf, .dot or .gv file name")
    source = to_dot(target, plan=plan, compiled=compiled, session=session, feed_dict=feed_dict,
                    collapse_depth=collapse_depth, show_gradients=show_gradients,
                    profile=profile, rankdir=rankdir, max_nodes=max_nodes, legend=legend,
                    title=title)
    if fmt in ("dot", "gv"):
        write_atomically(path, source)
        return os.fspath(path)
    write_atomically(path, render_dot(source, fmt, dpi=dpi, timeout=timeout))
    return os.fspath(path)


def is_gradient(node: Node) -> bool:
    """A node sg.gradients made: its outermost name scope is "gradients" (or "gradients_N")."""
    head, sep, _ = node.name.partition("/")
    return bool(sep) and _GRADIENT_SCOPE.match(head) is not None


# ---- what to draw ------------------------------------------------------------------------------


def _target(target: Any, plan: Any) -> tuple[Graph, list[Node] | None]:
    """The graph and the fetched nodes (None: the whole graph)."""
    if target is None and plan is not None:
        users = [plan.program.user_node(n) for n in plan.program.outputs]
        return users[0].graph, users
    if target is None:
        target = get_default_graph()
    if isinstance(target, Graph):
        return target, None
    if isinstance(target, dict):
        target = list(target.values())
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    fetches = []
    for item in items:
        if isinstance(item, Tensor):
            fetches.append(item.node)
        elif isinstance(item, Node):
            fetches.append(item)
        else:
            raise TypeError(f"cannot draw a {type(item).__name__}: pass a Graph, a tensor, an "
                            "operation, or a list of them")
    if not fetches:
        raise ValueError("nothing to draw: the list of fetches is empty")
    graph = fetches[0].graph
    for n in fetches:
        if n.graph is not graph:
            raise ValueError(f"{n.describe()} belongs to another graph than {fetches[0].name!r}")
    return graph, fetches


def _compile(graph: Graph, fetches: list[Node] | None, session: Any,
             feed_dict: dict | None) -> Any:
    """The cpu plan for `fetches`, placeholders counted as fed unless feed_dict says which."""
    if fetches is None:
        raise ValueError("compiled=True draws the plan of some fetches: pass the tensors or ops "
                         "you run (the train op, the loss) as target, or plan=sess.plan_for(...)")
    # The public face binds the runtime's Session; symgraph's own modules never import runtime.
    import symgraph

    if session is None:
        try:
            session = symgraph.get_default_session()
        except ValueError:
            session = None
    if session is None or session.graph is not graph or session.device == "reference":
        session = symgraph.Session(graph=graph, device="cpu")
    if feed_dict is None:
        feed_dict = {n.output: np.zeros([1 if d is None else d for d in n.shape.dims or ()],
                                        n.dtype.np)
                     for n in _nodes_for(fetches) if n.opdef is PLACEHOLDER}
    return session.plan_for(fetches, feed_dict)


def _kind(node: Node) -> str:
    op = node.opdef
    if op is PLACEHOLDER or op is PLACEHOLDER_WITH_DEFAULT:
        return "placeholder"
    if op is VARIABLE:
        return "variable"
    if op is CONSTANT:
        return "constant"
    return "state" if op.kind is OpKind.STATE else "op"


def _shape_text(node: Node) -> str:
    if not node.opdef.has_output:
        return ""
    dims = node.shape.dims
    if dims is None:
        return "<unknown rank>"
    if not dims:
        return "scalar"
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _short_dtype(node: Node) -> str:
    name = node.dtype.name
    return re.sub(r"^(float|int|uint)(\d+)$", lambda m: m.group(1)[0] + m.group(2), name)


@dataclass
class _Cluster:
    """A name scope (or a kernel hull) and what is drawn directly inside it."""

    key: tuple
    label: str
    gradient: bool = False
    kernel: int | None = None
    children: dict[tuple, _Cluster] = field(default_factory=dict)
    units: list[str] = field(default_factory=list)


class _View:
    """The nodes to draw, their scopes and kernels; `render` lays them out at one depth."""

    def __init__(self, graph: Graph, nodes: list[Node], plan: Any, profile: Any) -> None:
        self.graph = graph
        self.nodes = nodes
        prefixes = {n.name.rsplit("/", 1)[0] for n in nodes if "/" in n.name}
        prefixes = {p for full in prefixes for p in _ancestors(full)}
        # TF's grouping: a node named like a scope ("dense/kernel", with "dense/kernel/Adam")
        # is drawn inside that scope
        self.scope = {n.id: tuple(n.name.split("/")) if n.name in prefixes
                      else tuple(n.name.split("/")[:-1]) for n in nodes}
        self.kernels: list[tuple[str, list[int]]] = []
        self.kernel_of: dict[int, int] = {}
        self.removed: set[int] = set()
        if plan is not None:
            self._map_plan(plan)
        self.times: dict[int, float] = {}
        self.kernel_times: dict[str, float] = {}
        if profile is not None:
            by_name = {n.name: n.id for n in nodes}
            for name, us in profile.node_times().items():
                if name in by_name:
                    self.times[by_name[name]] = us
            for s in profile.step_stats:
                if s.kind == "kernel":
                    self.kernel_times[s.name] = self.kernel_times.get(s.name, 0.0) + s.duration_us

    def _map_plan(self, plan: Any) -> None:
        program = plan.program
        visible = {n.id for n in self.nodes}
        kept = {program.user_node(n).id for n in program.graph.nodes
                if program.user_node(n).graph is self.graph}
        self.removed = visible - kept
        for kernel in plan.kernels:
            members = []
            for m in kernel.members:
                user = program.user_node(m)
                if user.graph is self.graph and user.id in visible \
                        and user.id not in self.kernel_of and user.id not in members:
                    members.append(user.id)
            if members:
                for i in members:
                    self.kernel_of[i] = len(self.kernels)
                self.kernels.append((kernel.name, members))

    # -- units: what each node is drawn as at a depth ---------------------------------------------
    def _kernel_scope(self, k: int) -> tuple:
        return _common_prefix([self.scope[i] for i in self.kernels[k][1]])

    def container(self, node: Node, depth: int | None) -> tuple[tuple, str]:
        """(the cluster a node is drawn in, its unit id): a node id, or a collapsed scope's."""
        k = self.kernel_of.get(node.id)
        if k is not None and (depth is None or len(self._kernel_scope(k)) <= depth):
            return ("kernel", k), f"n{node.id}"
        path = self.scope[node.id]
        if depth is not None and len(path) > depth:
            return path[:depth], "s:" + "/".join(path[:depth + 1])
        return path, f"n{node.id}"

    def auto_depth(self, max_nodes: int) -> int | None:
        deepest = max((len(p) for p in self.scope.values()), default=0)
        for depth in [None] + list(range(deepest - 1, -1, -1)):
            if len({self.container(n, depth)[1] for n in self.nodes}) <= max_nodes:
                return depth
        return 0

    # -- DOT ---------------------------------------------------------------------------------------
    def render(self, depth: int | None, rankdir: str, notes: list[str], legend: bool) -> str:
        self._ids: dict[str, str] = {}
        root = _Cluster((), "")
        unit_of: dict[int, str] = {}
        collapsed: dict[str, list[Node]] = {}
        for node in self.nodes:
            where, unit = self.container(node, depth)
            unit_of[node.id] = unit
            cluster = self._cluster(root, where)
            if unit.startswith("s:"):
                if unit not in collapsed:
                    cluster.units.append(unit)
                collapsed.setdefault(unit, []).append(node)
            else:
                cluster.units.append(unit)
        heat = self._heat(unit_of)
        lines = ["digraph symgraph {",
                 "  graph " + dot_attrs({"rankdir": rankdir, "fontname": "Helvetica",
                                      "fontsize": "10", "nodesep": "0.25", "ranksep": "0.4",
                                      "newrank": "true", "labelloc": "b", "labeljust": "l",
                                      "label": "\\n".join([esc(t) for t in notes]
                                                           + ([_LEGEND] if legend else [])
                                                           + ([_HEAT_LEGEND] if heat else [])),
                                      "tooltip": "symgraph graph"}, raw={"label"}),
                 "  node " + dot_attrs({"fontname": "Helvetica", "fontsize": "9",
                                     "style": "rounded,filled", "height": "0.3",
                                     "margin": "0.08,0.03"}),
                 "  edge " + dot_attrs({"fontname": "Helvetica", "fontsize": "8",
                                     "color": "#666666", "fontcolor": "#666666",
                                     "arrowsize": "0.6"})]
        by_id = {n.id: n for n in self.nodes}
        self._emit(root, lines, "  ", by_id, collapsed, heat)
        lines += self._edges(unit_of)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _cluster(self, root: _Cluster, where: tuple) -> _Cluster:
        if where and where[0] == "kernel":
            k = where[1]
            parent = self._cluster(root, self._kernel_scope(k))
            key = ("kernel", k)
            if key not in parent.children:
                name, members = self.kernels[k]
                us = self.kernel_times.get(name)
                label = f"{name} ({len(members)} ops)" + (f", {us / 1e3:.3g} ms" if us else "")
                parent.children[key] = _Cluster(key, label, kernel=k)
            return parent.children[key]
        cluster = root
        for i in range(len(where)):
            key = where[:i + 1]
            if key not in cluster.children:
                gradient = _GRADIENT_SCOPE.match(key[0]) is not None
                cluster.children[key] = _Cluster(key, key[-1], gradient=gradient)
            cluster = cluster.children[key]
        return cluster

    def _emit(self, cluster: _Cluster, lines: list[str], indent: str, by_id: dict[int, Node],
              collapsed: dict[str, list[Node]], heat: dict[str, float]) -> None:
        for unit in cluster.units:
            if unit.startswith("s:"):
                lines.append(indent + self._unit_id(unit) + " "
                             + self._scope_attrs(unit, collapsed[unit], heat))
            else:
                node = by_id[int(unit[1:])]
                lines.append(indent + unit + " " + self._node_attrs(node, cluster, heat))
        for child in cluster.children.values():
            cid = f"cluster_{len(lines)}"
            lines.append(f"{indent}subgraph {cid} {{")
            if child.kernel is not None:
                style = {"style": "rounded,filled,bold", "fillcolor": "#e8f1fb",
                         "color": "#1f5fa8", "fontcolor": "#1f5fa8", "penwidth": "2"}
            elif child.gradient:
                style = {"style": "rounded,dashed", "color": "#b45f06", "fontcolor": "#b45f06",
                         "bgcolor": "#fffaf4"}
            else:
                style = {"style": "rounded", "color": "#999999", "fontcolor": "#444444"}
            for k, v in {"label": child.label, "fontsize": "9", **style}.items():
                lines.append(f"{indent}  {k}={quote(v)}")
            self._emit(child, lines, indent + "  ", by_id, collapsed, heat)
            lines.append(f"{indent}}}")

    def _node_attrs(self, node: Node, cluster: _Cluster, heat: dict[str, float]) -> str:
        kind = _kind(node)
        attrs = dict(_STYLES[kind])
        scope = "/".join(self.scope[node.id])
        if cluster.kernel is not None:
            scope = "/".join(self._kernel_scope(cluster.kernel))
        rel = node.name[len(scope) + 1:] if scope and node.name.startswith(scope + "/") else ""
        name = rel or node.name.rsplit("/", 1)[-1]
        shape = _shape_text(node)
        detail = f"{shape} {_short_dtype(node)}" if shape else ""
        if kind == "constant" and node.attrs.get("value") is not None \
                and np.size(node.attrs["value"]) == 1:
            detail = f"= {np.asarray(node.attrs['value']).item():.6g}"
        op = node.opdef.name
        base = re.sub(r"_\d+$", "", name.rsplit("/", 1)[-1])
        second = detail if base == op else f"{op}  {detail}".strip()
        label_lines = [name, second]
        if is_gradient(node) and kind not in ("placeholder", "variable"):
            attrs.update(_GRADIENT)
        if node.id in self.removed:
            attrs.update(_REMOVED)
        us = self.times.get(node.id)
        if us:
            label_lines.append(f"{us / 1e3:.3g} ms")
        fill = heat.get(f"n{node.id}")
        if fill is not None:
            attrs["fillcolor"] = heat_color(fill)
        attrs["label"] = "\\n".join(esc(t) for t in label_lines if t)
        tip = [node.name, f"{op} {shape} {node.dtype.name}", f"created at {node.location}"]
        if node.id in self.kernel_of:
            tip.append(f"in kernel {self.kernels[self.kernel_of[node.id]][0]}")
        if node.id in self.removed:
            tip.append("removed by the compiler (folded, merged or simplified away)")
        attrs["tooltip"] = "\\n".join(esc(t) for t in tip)
        return dot_attrs(attrs, raw={"label", "tooltip"})

    def _scope_attrs(self, unit: str, members: list[Node], heat: dict[str, float]) -> str:
        path = unit[2:]
        attrs = dict(_STYLES["scope"])
        kernels = len({self.kernel_of[n.id] for n in members if n.id in self.kernel_of})
        count = _plural(len(members), "op") + (f", {_plural(kernels, 'kernel')}" if kernels
                                                else "")
        label_lines = [path.rsplit("/", 1)[-1], count]
        if _GRADIENT_SCOPE.match(path.split("/")[0]):
            attrs.update(_GRADIENT)
            attrs["style"] = "filled,dashed"
        us = sum(self.times.get(n.id, 0.0) for n in members)
        if us:
            label_lines.append(f"{us / 1e3:.3g} ms")
        if unit in heat:
            attrs["fillcolor"] = heat_color(heat[unit])
        attrs["label"] = "\\n".join(esc(t) for t in label_lines)
        attrs["tooltip"] = esc(f"{path}: {count} (collapse_depth hides them; raise it to see)")
        return dot_attrs(attrs, raw={"label", "tooltip"})

    def _unit_id(self, unit: str) -> str:
        """A DOT id: node ids are generated from node numbers, collapsed scopes numbered."""
        if not unit.startswith("s:"):
            return unit
        return self._ids.setdefault(unit, f"s{len(self._ids)}")

    def _heat(self, unit_of: dict[int, str]) -> dict[str, float]:
        """Each unit's share of the slowest unit's time, for coloring (empty: no profile)."""
        if not self.times:
            return {}
        totals: dict[str, float] = {}
        for node_id, us in self.times.items():
            if node_id in unit_of:
                totals[unit_of[node_id]] = totals.get(unit_of[node_id], 0.0) + us
        top = max(totals.values(), default=0.0) or 1.0
        return {unit: us / top for unit, us in totals.items()}

    def _edges(self, unit_of: dict[int, str]) -> list[str]:
        """One edge per (source, destination, data or control), labelled with the shapes."""
        data: dict[tuple[str, str], list[Node]] = {}
        control: set[tuple[str, str]] = set()
        for node in self.nodes:
            dst = unit_of[node.id]
            for t in node.inputs:
                src = unit_of.get(t.node.id)
                if src is not None and src != dst:
                    sources = data.setdefault((src, dst), [])
                    if t.node not in sources:
                        sources.append(t.node)
            for c in node.control_inputs:
                src = unit_of.get(c.id)
                if src is not None and src != dst:
                    control.add((src, dst))
        lines = []
        for (src, dst), sources in data.items():
            shapes = list(dict.fromkeys(_shape_text(n) for n in sources))
            label = shapes[0] if len(shapes) == 1 else f"{len(sources)} tensors"
            if len(sources) > 1 and len(shapes) == 1:
                label += f" x{len(sources)}"
            attrs = {"label": label} if label and _kind(sources[0]) != "constant" else {}
            lines.append(f"  {self._unit_id(src)} -> {self._unit_id(dst)} {dot_attrs(attrs)}")
        for src, dst in sorted(control - set(data)):
            lines.append(f"  {self._unit_id(src)} -> {self._unit_id(dst)} "
                         + dot_attrs({"style": "dashed", "color": "#aaaaaa", "arrowhead": "odot"}))
        return lines


# ---- DOT text ------------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _common_prefix(paths: Sequence[tuple]) -> tuple:
    first = paths[0]
    n = len(first)
    for p in paths[1:]:
        n = min(n, len(p))
        while n and p[:n] != first[:n]:
            n -= 1
    return first[:n]

"""`tf.summary` of TF1, for scalars and the graph: what TensorBoard showed, as plain files.

A summary is a dict {tag: tensor}; `sess.run` gives back {tag: value} (symgraph has no string
tensors for TF's serialized protos), which `FileWriter.add_summary` appends to
`<logdir>/scalars.csv` (wall_time, step, tag, value). `add_graph` draws the graph to
`<logdir>/graph.png` (its DOT source beside it as `graph.dot`). Files are written atomically,
on `flush()`, `close()` and every `flush_secs`, like TF's event files.
"""

from __future__ import annotations

import atexit
import csv
import io
import os
import shutil
import time
import weakref
from typing import Any

import numpy as np

import symgraph as _sg
from symgraph import viz
from symgraph.compat.v1._names import refuse_argument, unsupported
from symgraph.files import write_atomically
from symgraph.graph import Graph, Tensor, convert_to_tensor, get_default_graph

__all__ = ["FileWriter", "Summary", "merge", "merge_all", "scalar"]

SUMMARIES = "summaries"  # TF1's GraphKeys.SUMMARIES
SCALARS_FILE = "scalars.csv"
GRAPH_FILE = "graph.png"


class Summary(dict):
    """Tag -> tensor before `sess.run`, tag -> value after. TF1's `tf.Summary(value=[
    tf.Summary.Value(tag=..., simple_value=...)])` spelling builds one from Python numbers."""

    class Value:
        """One (tag, simple_value) entry of a hand-made Summary."""

        def __init__(self, tag: str = "", simple_value: float = 0.0, **unsupported_kinds: Any):
            for kind, value in unsupported_kinds.items():
                refuse_argument("tf.Summary.Value", kind, value)
            self.tag = tag
            self.simple_value = float(simple_value)

    def __init__(self, *args: Any, value: list | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for entry in value or ():
            self[entry.tag] = entry.simple_value


def scalar(name: str, tensor: Any, collections: list[str] | None = None,
           family: str | None = None) -> Summary:
    """A scalar summary of `tensor` (one value) under the tag `name` (prefixed by the name
    scope and made unique, as TF1 does), added to the 'summaries' collection."""
    t = convert_to_tensor(tensor)
    if t.shape.is_fully_defined() and t.shape.num_elements() != 1:
        raise ValueError(f"tf.summary.scalar({name!r}) needs a single value, got {t.describe()}")
    if t.dtype.is_bool:
        raise TypeError(f"tf.summary.scalar({name!r}) needs a number, got {t.describe()}")
    graph = t.graph
    prefix = f"{family}/{name}" if family else name
    with graph.as_default(), graph.name_scope(prefix) as scope:
        tag = scope.rstrip("/")
        value = _sg.reshape(t, [], name="value") if t.shape.rank != 0 else t
    summary = Summary({tag: value})
    for key in collections if collections is not None else [SUMMARIES]:
        graph.add_to_collection(key, summary)
    return summary


def merge(inputs: list, collections: list[str] | None = None,
          name: str | None = None) -> Summary:
    """One summary holding every tag of `inputs`."""
    merged = Summary()
    for s in inputs:
        if not isinstance(s, dict):
            what = s.describe() if isinstance(s, Tensor) else repr(s)
            raise TypeError(f"tf.summary.merge takes summaries (from tf.summary.scalar), got "
                            f"{what}")
        merged.update(s)
    for key in collections or ():
        get_default_graph().add_to_collection(key, merged)
    return merged


def merge_all(key: str = SUMMARIES, scope: str | None = None,
              name: str | None = None) -> Summary | None:
    """Every summary of the default graph's collection `key`; None when there is none (TF1)."""
    found = [s for s in get_default_graph().get_collection(key)
             if scope is None or any(tag.startswith(scope) for tag in s)]
    return merge(found) if found else None


class FileWriter:
    """Writes summaries and the graph under `logdir` (made if missing); see the module doc."""

    def __init__(self, logdir: str, graph: Graph | None = None, max_queue: int = 10,
                 flush_secs: float = 120, graph_def: Any = None,
                 filename_suffix: str | None = None, session: Any = None) -> None:
        if graph_def is not None:
            refuse_argument("tf.summary.FileWriter", "graph_def", "<GraphDef>")
        self._logdir = os.fspath(logdir)
        os.makedirs(self._logdir, exist_ok=True)
        self._flush_secs = float(flush_secs)
        self._rows: list[tuple[float, int | None, str, float]] = []
        self._dirty = False
        self._last_flush = time.time()
        self._closed = False
        self._read_existing()
        _open_writers.add(self)
        if graph is not None:
            self.add_graph(graph)

    def get_logdir(self) -> str:
        return self._logdir

    def _read_existing(self) -> None:
        """Appends to a CSV left by an earlier run in the same logdir, as TF appends events."""
        path = os.path.join(self._logdir, SCALARS_FILE)
        if not os.path.exists(path):
            return
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(row["step"]) if row["step"] else None
                self._rows.append((float(row["wall_time"]), step, row["tag"],
                                   float(row["value"])))

    def add_summary(self, summary: Any, global_step: Any = None) -> None:
        """Records every tag of `summary` (the value of a summary fetched with sess.run, or a
        hand-made tf.Summary) at `global_step`."""
        if not isinstance(summary, dict):
            raise TypeError("add_summary takes the value sess.run returns for a summary from "
                            f"tf.summary.scalar/merge_all (a dict of tag -> value), got "
                            f"{type(summary).__name__}")
        step = None if global_step is None else int(np.asarray(global_step))
        now = time.time()
        for tag, value in summary.items():
            if isinstance(value, Tensor):
                raise TypeError(f"add_summary got the symbolic {value.describe()} for tag "
                                f"{tag!r}: pass the result of sess.run(summary)")
            self._rows.append((now, step, str(tag), float(np.asarray(value))))
        self._dirty = True
        if now - self._last_flush >= self._flush_secs:
            self.flush()

    def add_graph(self, graph: Any, global_step: Any = None, graph_def: Any = None) -> None:
        """Draws `graph` (a Graph, or a Session's `sess.graph`) to <logdir>/graph.png."""
        if not isinstance(graph, Graph):
            raise TypeError(f"add_graph takes a graph (tf.get_default_graph() or sess.graph), "
                            f"got {type(graph).__name__}")
        write_graph_picture(graph, os.path.join(self._logdir, GRAPH_FILE))

    def add_run_metadata(self, run_metadata: Any, tag: str, global_step: Any = None) -> None:
        refuse_argument("tf.summary.FileWriter.add_run_metadata", "run_metadata", tag)

    def flush(self) -> None:
        """Writes <logdir>/scalars.csv with every value recorded so far (atomically)."""
        if self._dirty:
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerow(["wall_time", "step", "tag", "value"])
            for wall, step, tag, value in self._rows:
                w.writerow([f"{wall:.3f}", "" if step is None else step, tag, repr(value)])
            write_atomically(os.path.join(self._logdir, SCALARS_FILE), out.getvalue())
            self._dirty = False
        self._last_flush = time.time()

    def close(self) -> None:
        self.flush()
        self._closed = True
        _open_writers.discard(self)

    def reopen(self) -> None:
        self._closed = False
        _open_writers.add(self)

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_open_writers: weakref.WeakSet = weakref.WeakSet()


def _flush_at_exit() -> None:
    """TF's writers flush when the process ends; scripts often never call close()."""
    for writer in list(_open_writers):
        writer.flush()


atexit.register(_flush_at_exit)


# ---- the graph picture -------------------------------------------------------------------------


def write_graph_picture(graph: Graph, png_path: str) -> None:
    """Writes the graph's DOT source (sg.to_dot) beside `png_path` and, where Graphviz's `dot`
    is installed, the PNG itself; without `dot` only the .dot file is written, as TF's writer
    never failed for want of TensorBoard."""
    source = viz.to_dot(graph)
    write_atomically(os.path.splitext(png_path)[0] + ".dot", source)
    if shutil.which("dot") is not None:
        write_atomically(png_path, viz.render_dot(source, "png"))


__getattr__ = unsupported("tf.summary")

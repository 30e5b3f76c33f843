"""Traced runs: RunOptions(FULL_TRACE) + RunMetadata record each step's time and bytes, mapped
to the user's nodes and lines; summary, Chrome trace, and nothing recorded when not asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import symgraph as sg
from runtime import executor
from symgraph.profiling import StepStat

HERE = Path(__file__).name


def _model():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 4], name="x")
        with sg.name_scope("dense"):
            w = sg.Variable(np.ones((4, 3), np.float32), name="w")
            h = sg.nn.relu(sg.matmul(x, w) * 2.0 + 1.0)  # FUSED_LINE
        loss = sg.reduce_sum(h, name="loss")
    return g, x, loss


FUSED_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                  if line.endswith("# FUSED_LINE"))
FULL = sg.RunOptions(trace_level=sg.RunOptions.FULL_TRACE)


def _traced():
    g, x, loss = _model()
    md = sg.RunMetadata()
    with sg.Session(graph=g, device="cpu") as sess:
        sess.run(sg.variables_initializer(g.get_collection(sg.GraphKeys.GLOBAL_VARIABLES)))
        value = sess.run(loss, {x: np.ones((5, 4), np.float32)}, options=FULL, run_metadata=md)
        plan = sess.plan_for(loss, {x: np.ones((5, 4), np.float32)})
    return md, plan, value


def test_full_trace_records_each_step_mapped_to_nodes_and_lines():
    md, plan, value = _traced()
    assert value == 5 * 3 * (4 * 2 + 1)
    assert len(md.step_stats) == len(plan.steps) and md.device == "cpu"
    assert all(isinstance(s, StepStat) and s.duration_us >= 0 for s in md.step_stats)
    assert md.total_us >= sum(s.duration_us for s in md.step_stats) * 0.99
    starts = [s.start_us for s in md.step_stats]
    assert starts == sorted(starts)
    kernels = [s for s in md.step_stats if s.kind == "kernel"]
    assert [k.name for k in kernels] == [k.name for k in plan.kernels]
    fused = next(k for k in kernels if "relu" in k.ops)
    # the matmul opens the kernel's epilogue (compiler/epilogue.py): one step for the layer
    assert fused.ops == ("matmul", "multiply", "add", "relu", "reduce_sum")
    assert {"dense/matmul", "dense/multiply", "dense/add", "dense/relu", "loss"} <= set(
        fused.nodes)
    assert any(loc.endswith(f"{HERE}:{FUSED_LINE}") for loc in fused.locations)
    # bytes: x (5, 4), w (4, 3) and two float32 scalar constants read, the loss written
    assert fused.bytes_read == (5 * 4 + 4 * 3) * 4 + 2 * 4 and fused.bytes_written == 4
    assert not any(s.ops == ("matmul",) for s in md.step_stats)
    node_times = md.node_times()
    assert abs(sum(node_times.values()) - sum(s.duration_us for s in md.step_stats)) < 1e-6
    assert set(md.scope_times()) >= {"dense", "(top level)"}


def test_summary_and_chrome_trace(tmp_path):
    md, _, _ = _traced()
    text = md.summary(print_fn=None)
    assert "fused kernels" in text and "time by name scope:" in text
    assert "fused_" in text and f"{HERE}:{FUSED_LINE}" in text and "\n" in text
    path = md.to_chrome_trace(tmp_path / "trace.json")
    data = json.loads(Path(path).read_text())
    events = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(events) == len(md.step_stats)
    for e, s in zip(events, md.step_stats):
        assert {"name", "ph", "ts", "dur", "pid", "tid", "args"} <= set(e)
        assert e["name"] == s.name and e["dur"] == s.duration_us
        assert e["args"]["nodes"] == list(s.nodes)


def test_no_trace_without_options_or_metadata(monkeypatch):
    g, x, loss = _model()
    calls = []
    real = executor.run_steps
    monkeypatch.setattr(executor, "run_steps",
                        lambda plan, values, state, observers=(): calls.append(observers)
                        or real(plan, values, state, observers))
    md = sg.RunMetadata()
    feed = {x: np.ones((2, 4), np.float32)}
    with sg.Session(graph=g, device="cpu") as sess:
        sess.run(sg.variables_initializer(g.get_collection(sg.GraphKeys.GLOBAL_VARIABLES)))
        sess.run(loss, feed, run_metadata=md)  # no trace level: TF1 records no step stats
        sess.run(loss, feed, options=sg.RunOptions())
        sess.run(loss, feed, options=FULL, run_metadata=md)
    assert [len(o) for o in calls] == [0, 0, 0, 1]
    assert md.step_stats


def test_reference_device_steps_are_ops():
    g, x, loss = _model()
    md = sg.RunMetadata()
    with sg.Session(graph=g, device="reference") as sess:
        sess.run(sg.variables_initializer(g.get_collection(sg.GraphKeys.GLOBAL_VARIABLES)))
        sess.run(loss, {x: np.ones((2, 4), np.float32)}, options=FULL, run_metadata=md)
    assert md.step_stats and all(s.kind == "op" and len(s.nodes) == 1 for s in md.step_stats)
    assert "dense/relu" in md.node_times()

"""Memory planning: value sizes from the fed shapes, the peak over the plan's lifetimes, and a
clear MemoryError before a run that cannot fit."""

import numpy as np
import pytest

import symgraph as sg
from compiler.memory import check_fits, plan_memory


def _mlp(units: int = 16):
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 8], name="x")
        w1 = sg.Variable(np.ones((8, units), np.float32), name="w1")
        w2 = sg.Variable(np.ones((units, 3), np.float32), name="w2")
        h = sg.nn.relu(sg.matmul(x, w1, name="hidden"))
        y = sg.reduce_sum(sg.matmul(h, w2, name="logits"))
        init = sg.global_variables_initializer()
    return g, x, y, init


@pytest.mark.parametrize("device", ["reference", "cpu"])
def test_sizes_follow_the_fed_batch(device):
    g, x, y, init = _mlp()
    sess = sg.Session(graph=g, device=device)
    sess.run(init)
    reports = {b: sess.memory_report(y, {x: np.zeros((b, 8), np.float32)}) for b in (4, 64)}
    for b, report in reports.items():
        program = report.plan.program
        hidden = next(n for n in program.graph.nodes
                      if program.user_node(n).name == "hidden")
        assert report.value_bytes[hidden.id] == b * 16 * 4
        assert report.variable_bytes == (8 * 16 + 16 * 3) * 4
        assert report.peak_bytes >= b * 8 * 4 + b * 16 * 4  # the feed and the hidden layer
        assert report.live_after and max(report.live_after) == report.peak_bytes
    assert reports[64].peak_bytes > 10 * reports[4].peak_bytes // 2
    text = str(reports[64])
    assert "peak" in text and "hidden" in text


def test_values_are_dropped_after_their_last_reader():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float64, [None], name="x")
        a = sg.exp(x, name="a")  # each of a, b, c is dropped once the next one is made
        b = sg.square(sg.sin(a), name="b")
        c = sg.reduce_sum(sg.cos(b), name="c")
    sess = sg.Session(graph=g, device="reference")
    report = sess.memory_report(c, {x: np.zeros(1000)})
    # the feed, plus at most two vectors in flight: never all of a, sin, b, cos at once
    assert report.peak_bytes <= 3 * 8000 + 8
    assert report.peak_step >= 0


def test_a_run_that_cannot_fit_fails_before_allocating():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 1], name="x")
        outer = sg.matmul(x, x, transpose_b=True, name="outer")  # (n, n) from n floats
    sess = sg.Session(graph=g)
    with pytest.raises(MemoryError, match=r"'outer'.*test_memory.py"):
        sess.run(outer, {x: np.ones((2_000_000, 1), np.float32)})  # 16 TB
    assert sess.run(outer, {x: np.ones((3, 1), np.float32)}).shape == (3, 3)


def test_check_fits_names_the_biggest_values():
    g, x, y, init = _mlp(units=32)
    sess = sg.Session(graph=g, device="reference")
    plan = sess.plan_for(y, {x: np.zeros((2, 8), np.float32)})
    report = plan_memory(plan, [(100, 8)])
    check_fits(report, available=report.peak_bytes)
    with pytest.raises(MemoryError, match="hidden"):
        check_fits(report, available=report.peak_bytes - 1)

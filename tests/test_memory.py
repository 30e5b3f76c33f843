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


def test_convolution_temporaries_are_counted():
    """im2col columns count while the convolution runs, and stay counted until the filter
    gradient that reuses them (codegen_cpu_nn.share_patches); an epilogue's product counts."""
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 8, 8, 4], name="x")
        k = sg.Variable(np.ones((3, 3, 4, 8), np.float32), name="k")
        y = sg.nn.relu(sg.nn.conv2d(x, k, 1, "SAME", name="conv") + 1.0)
        loss = sg.reduce_sum(sg.square(y))
        scaled = sg.gradients(loss, [k])[0] * 2.0  # a step after the filter gradient
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    feed = {x: np.zeros((2, 8, 8, 4), np.float32)}
    cols, image, out = 2 * 8 * 8 * 9 * 4 * 4, 2 * 8 * 8 * 4 * 4, 2 * 8 * 8 * 8 * 4
    forward = sess.memory_report(y, feed)  # the convolution is the epilogue's product
    assert forward.peak_bytes >= image + cols + 2 * out
    train = sess.memory_report(scaled, feed)
    ops = [[m.opdef.name for m in getattr(s, "members", (s,))] for s in train.plan.steps]
    conv_at = next(i for i, names in enumerate(ops) if "conv2d" in names)
    grad_at = next(i for i, names in enumerate(ops) if "conv2d_filter_grad" in names)
    assert conv_at < grad_at
    assert all(train.live_after[i] >= cols + image for i in range(conv_at, grad_at + 1))
    assert train.live_after[-1] < cols  # freed once the filter gradient took them


def test_updates_in_the_variables_buffers_take_no_new_memory():
    """A momentum step on one 256x256 weight: its slot and the weight are updated in their own
    buffers (plan.Update) and each assignment keeps the array it is given, so the step's peak
    is the gradient (the epilogue's product) and little more, not three more weights."""
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 256], name="x")
        w = sg.Variable(np.ones((256, 256), np.float32), name="w")
        train = sg.train.MomentumOptimizer(0.1, 0.9).minimize(sg.reduce_sum(sg.square(x @ w)))
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    feed = {x: np.ones((2, 256), np.float32)}
    report = sess.memory_report(train, feed)
    weight = 256 * 256 * 4
    assert sum(u.reuse for step in report.plan.updates for u in step) == 2
    assert weight <= report.peak_bytes < weight + 16 * 1024
    assert report.variable_bytes == 2 * weight and report.live_after[-1] < 16

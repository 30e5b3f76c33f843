"""Memory planning: value sizes from the fed shapes, the peak over the plan's lifetimes, a
clear MemoryError before a run that cannot fit, and which updates may write the variable's own
buffer."""

from types import SimpleNamespace

import numpy as np
import pytest

import symgraph as sg
from compiler import codegen_cpu_nn, codegen_cpu_threads, codegen_cpu_tiles, schedule
from compiler.memory import check_fits, plan_memory
from compiler.schedule import in_place_updates
from symgraph.graph import Node


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


@pytest.mark.parametrize("tiled", [False, True])
def test_convolution_temporaries_are_counted(tiled):
    """im2col columns, or the register tiles' padded input, count while the convolution runs,
    and stay counted until the filter gradient that reuses them (codegen_cpu_nn.share_patches);
    an epilogue's product counts, once where its loop stores into it (in place)."""
    outputs = codegen_cpu_tiles.NARROW if tiled else 6  # 6: not whole vectors anywhere
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 8, 8, 4], name="x")
        k = sg.Variable(np.ones((3, 3, 4, outputs), np.float32), name="k")
        y = sg.nn.relu(sg.nn.conv2d(x, k, 1, "SAME", name="conv") + 1.0)
        loss = sg.reduce_sum(sg.square(y))
        scaled = sg.gradients(loss, [k])[0] * 2.0  # a step after the filter gradient
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    feed = {x: np.zeros((2, 8, 8, 4), np.float32)}
    image, out = 2 * 8 * 8 * 4 * 4, 2 * 8 * 8 * outputs * 4
    if tiled:  # the input padded to 10 x 10, and the values a tile may read past it
        kept = (2 * 10 * 10 * 4 + codegen_cpu_tiles.SLACK * (4 + 1)) * 4
    else:
        kept = 2 * 8 * 8 * 9 * 4 * 4
    forward = sess.memory_report(y, feed)  # the convolution is the epilogue's product
    (epilogue,) = [s for s in forward.plan.steps if getattr(s, "producer", None) is not None]
    assert epilogue.in_place  # relu(conv + 1) is stored into the product's blocks
    assert image + kept + out <= forward.peak_bytes < image + kept + 2 * out
    train = sess.memory_report(scaled, feed)
    ops = [[m.opdef.name for m in getattr(s, "members", (s,))] for s in train.plan.steps]
    conv_at = next(i for i, names in enumerate(ops) if "conv2d" in names)
    grad_at = next(i for i, names in enumerate(ops) if "conv2d_filter_grad" in names)
    assert conv_at < grad_at
    assert all(train.live_after[i] >= kept + image for i in range(conv_at, grad_at + 1))
    # at the end: the feed, the filter gradient and its double; the columns or padded input
    # were freed once the filter gradient took them
    assert train.live_after[-1] <= image + 2 * 3 * 3 * 4 * outputs * 4



def test_a_filter_gradient_split_by_images_counts_the_other_threads_sums(monkeypatch):
    """Split by images, a tiled filter gradient sums each other thread's images into a dw of
    its own while it runs (codegen_cpu_nn._filter_grad_parts)."""
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core: nothing runs in parts here")
    with sg.Graph().as_default() as g:
        x = sg.placeholder(sg.float32, [None, 8, 8, 4], name="x")
        k = sg.Variable(np.ones((3, 3, 4, 16), np.float32), name="k")
        loss = sg.reduce_sum(sg.square(sg.nn.conv2d(x, k, 1, "SAME")))
        grad = sg.gradients(loss, [k])[0]
    sess = sg.Session(graph=g, device="cpu")
    plan = sess.plan_for(grad, {x: np.zeros((2, 8, 8, 4), np.float32)})
    kernel = next(s for s in plan.steps
                  if "conv2d_filter_grad" in [m.opdef.name for m in getattr(s, "members", ())])
    node = kernel.members[0]
    concrete = {t.node.id: tuple(2 if d is None else d for d in t.shape.dims)
                for t in node.inputs}
    alone = codegen_cpu_nn.temporaries(kernel, concrete.get)
    monkeypatch.setattr(codegen_cpu_nn, "SPLIT_MIN", 0)
    split = codegen_cpu_nn.temporaries(kernel, concrete.get)
    assert split.during - alone.during == 3 * 3 * 4 * 16 * 4  # one more dw, float32

def test_every_value_a_step_makes_is_dropped_once():
    """plan.free_after: each value a step makes and no fetch keeps is dropped exactly once,
    after its last reader, or after the step itself when nothing reads it (an assignment's
    value, here: the Adam updates' assigns)."""
    g, x, y, init = _mlp()
    with g.as_default():
        train = sg.train.AdamOptimizer(0.1).minimize(y)
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    plan = sess.plan_for([y, train], {x: np.zeros((4, 8), np.float32)})
    kept = {out.id for out in plan.program.outputs}
    freed = [v for free in plan.free_after for v in free]
    assert len(freed) == len(set(freed))
    made = {v for step in plan.steps for v in
            ((step.id,) if isinstance(step, Node) and step.opdef.has_output else
             () if isinstance(step, Node) else step.outputs)}
    assert made - kept <= set(freed)
    read = {v for step in plan.steps for v in schedule.step_inputs(step)}
    unread = [i for i, s in enumerate(plan.steps) if isinstance(s, Node)
              and s.opdef.name == "assign" and s.id not in read and s.id not in kept]
    assert unread and all(plan.steps[i].id in plan.free_after[i] for i in unread)


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


def _checked_momentum():
    """w, check_numerics(w) and check_numerics(reshape(w)), created (so scheduled) before a
    momentum step that updates w and its slot in place."""
    g = sg.Graph()
    with g.as_default():
        x = sg.constant(np.arange(6, dtype=np.float32).reshape(2, 3) / 6)
        w = sg.Variable(np.ones((3, 2), np.float32), name="w")
        checked = sg.debugging.check_numerics(w, "w")
        flat = sg.debugging.check_numerics(sg.reshape(w, [-1]), "flat w")
        train = sg.train.MomentumOptimizer(0.1, 0.9).minimize(sg.reduce_sum(sg.square(x @ w)))
        init = sg.global_variables_initializer()
    return g, w, checked, flat, train, init


def _reuse(plan) -> dict[str, bool]:
    return {u.var.name: u.reuse for ups in plan.updates for u in ups}


def test_an_update_beside_a_fetched_check_of_its_variable_writes_a_copy():
    """check_numerics passes its input through (the cpu runs it by its reference, which returns
    the array itself): fetched beside the step, it must return w from before the step, so the
    plan updates w in a copy; the slot, and w in a plain step, stay in place."""
    g, w, checked, flat, train, init = _checked_momentum()
    cpu, ref = sg.Session(graph=g, device="cpu"), sg.Session(graph=g, device="reference")
    for sess in (cpu, ref):
        sess.run(init)
    assert _reuse(cpu.plan_for(train)) == {"w": True, "w/Momentum": True}
    for fetch, of_old in ((checked, lambda old: old), (flat, lambda old: old.reshape(-1))):
        assert _reuse(cpu.plan_for([fetch, train])) == {"w": False, "w/Momentum": True}
        for _ in range(2):
            old = cpu.run(w)
            got, _ = cpu.run([fetch, train])
            want, _ = ref.run([fetch, train])
            np.testing.assert_array_equal(got, of_old(old))
            np.testing.assert_allclose(got, want, rtol=1e-6)
        cpu.run(train)
        ref.run(train)
        np.testing.assert_allclose(cpu.run(w), ref.run(w), rtol=1e-6)


@pytest.mark.parametrize("passes_through", [(0,), ()])
def test_a_kernel_that_passes_its_input_through_views_it(passes_through):
    """A compiled step whose output may be its input (the cuda check_numerics declares it in
    `passes_through`) counts as a view of it: fetched, it keeps w's update out of w's buffer.
    Here the cpu plan's check_numerics node is swapped for such a kernel; one that declares
    nothing makes a new array, and w's update is in place again."""
    g, w, checked, _, train, init = _checked_momentum()
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    plan = sess.plan_for([checked, train])
    nodes = plan.program.graph.nodes
    steps = list(plan.steps)
    at = next(i for i, s in enumerate(steps)
              if isinstance(s, Node) and s.opdef.name == "check_numerics")
    steps[at] = SimpleNamespace(inputs=(steps[at].inputs[0].node.id,), outputs=(steps[at].id,),
                                passes_through=passes_through)
    pairs = [(u.var, nodes[step.outputs[u.output]])
             for step, ups in zip(steps, plan.updates) for u in ups]
    keep = {n.id for n in plan.program.outputs}
    updates = in_place_updates(steps, pairs, keep)
    reuse = {u.var.name: u.reuse for ups in updates for u in ups}
    assert reuse == {"w": not passes_through, "w/Momentum": True}

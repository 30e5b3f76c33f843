"""Convolution and pooling on the cpu device run in codegen_cpu_nn's kernels, forward and
backward, and agree with the reference device: the plan of a small CNN's training step has no
reference step for them, training it agrees step by step, max pooling's ties, -inf and NaN go
where the reference sends them, and the parallel loops compute what the serial ones do.
(tests/test_ops.py compares every conv/pool case of the op table; this is the whole-network
view.)"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from compiler import codegen_cpu_nn, codegen_cpu_threads
from runtime import executor
from symgraph.graph import apply
from symgraph.ops import nn as nn_ops

NN_OPS = set(codegen_cpu_nn.BUILDERS)
LR, MOMENTUM = 0.05, 0.9


def _cnn(dtype: sg.DType, seed: int = 0):
    """conv3x3(4)-relu-maxpool-conv2x2(3, dilated)-avgpool-dense(3), sparse softmax
    cross-entropy, momentum; the gradient with respect to the images too, and the gather op
    (max_pool2d's second derivative) on the first pool, so that all eight ops appear."""
    rng = np.random.default_rng(seed)
    np_dtype = dtype.np
    x = sg.placeholder(dtype, [None, 7, 7, 1], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    k1 = sg.Variable(rng.uniform(-0.5, 0.5, (3, 3, 1, 4)).astype(np_dtype), name="k1")
    k2 = sg.Variable(rng.uniform(-0.5, 0.5, (2, 2, 4, 3)).astype(np_dtype), name="k2")
    w = sg.Variable(rng.uniform(-0.5, 0.5, (12, 3)).astype(np_dtype), name="w")
    h1 = sg.nn.relu(sg.nn.conv2d(x, k1, 1, "SAME"))
    p1 = sg.nn.max_pool2d(h1, 2, 2, "SAME")  # 7 -> 4: padded after
    h2 = sg.nn.conv2d(p1, k2, 1, "SAME", dilations=2)
    p2 = sg.nn.avg_pool2d(h2, 3, 1, "VALID")  # (N, 2, 2, 3)
    logits = sg.reshape(p2, [-1, 12]) @ w
    loss = sg.reduce_mean(sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))
    dx, = sg.gradients(loss, [x])
    gather = apply(nn_ops.MAX_POOL_GATHER, h1, h1, ksize=(2, 2), strides=(2, 2),
                   padding="SAME")
    train = sg.train.MomentumOptimizer(LR, MOMENTUM).minimize(loss)
    feed = {x: rng.standard_normal((3, 7, 7, 1)).astype(np_dtype),
            y: rng.integers(0, 3, 3)}
    return loss, dx, gather, train, feed, [k1, k2, w]


def test_cnn_training_runs_in_kernels_and_matches_the_reference():
    """float32, as W3 trains (tests/test_ops.py covers each op in float64)."""
    dtype = sg.float32
    with sg.Graph().as_default() as graph:
        loss, dx, gather, train, feed, params = _cnn(dtype)
        init = sg.global_variables_initializer()
        sessions = {d: sg.Session(graph=graph, device=d) for d in ("reference", "cpu")}
        for s in sessions.values():
            s.run(init)
        cpu = sessions["cpu"]
        plan = cpu.plan_for([loss, dx, gather, train], feed)
        in_kernels = {m.opdef.name for k in plan.kernels for m in k.members}
        by_reference = {s.opdef.name for s in plan.steps if s not in plan.kernels}
        assert NN_OPS <= in_kernels, NN_OPS - in_kernels
        assert not NN_OPS & by_reference
        fallbacks = executor.fallbacks
        tol = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}
        for _ in range(3):  # each step reads the variables the last one wrote
            got = cpu.run([loss, dx, gather, train], feed)[:3]
            want = sessions["reference"].run([loss, dx, gather, train], feed)[:3]
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, **tol[dtype.name])
        for p in params:
            np.testing.assert_allclose(cpu.run(p), sessions["reference"].run(p),
                                       **tol[dtype.name])
        assert executor.fallbacks == fallbacks, "a conv/pool kernel refused its inputs"


@pytest.mark.parametrize("ksize,padding,stride", [(3, "SAME", 1), (2, "SAME", 1),
                                                   (2, "VALID", 1), (2, "SAME", 2),
                                                   (2, "VALID", 2)])
def test_max_pool_ties_infinities_and_nan_go_where_the_reference_sends_them(ksize, padding,
                                                                           stride):
    """Ties: the first tap in window order; a window of -inf that starts on padding: the
    padding's tap wins (its gradient is lost); a NaN: the first NaN. 2x2 windows inside the
    image take the loops' four-tap path (_max_of_four, and _scatter_four where windows never
    overlap); the others, and every window of 3x3, the general one."""
    x_val = np.array([[1, 1, 0], [1, -np.inf, 2], [np.nan, 2, 2]], np.float32)[None, :, :, None]
    x_val = np.concatenate([x_val, np.full_like(x_val, -np.inf)])
    attrs = {"ksize": (ksize, ksize), "strides": (stride, stride), "padding": padding}
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [None, 3, 3, 1])
        h = sg.placeholder(sg.float32, [None, 3, 3, 1])
        y = sg.nn.max_pool2d(x, **attrs)
        shape = (2, *y.shape[1:])
        g = sg.placeholder(sg.float32, [None, *y.shape[1:]])
        ops = [y, apply(nn_ops.MAX_POOL_GRAD, x, g, **attrs),
               apply(nn_ops.MAX_POOL_GATHER, x, h, **attrs)]
        feed = {x: x_val, h: np.arange(18, dtype=np.float32).reshape(2, 3, 3, 1) + 1,
                g: np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1}
        want = sg.Session(graph=graph, device="reference").run(ops, feed)
        cpu = sg.Session(graph=graph, device="cpu")
        got = cpu.run(ops, feed)
        in_kernels = {m.opdef.name for k in cpu.plan_for(ops, feed).kernels for m in k.members}
    assert in_kernels == {"max_pool2d", "max_pool2d_grad", "max_pool2d_gather"}
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("channels", [2, 8])  # im2col_shallow, and im2col by rows
def test_parallel_loops_match_the_reference(monkeypatch, channels):
    """The prange loops (for big work) on tiny work give the reference's values: im2col,
    col2im and max pooling's gradient, whose overlapping windows share an image."""
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core (or no OpenMP): the loops never run in parallel here")
    monkeypatch.setattr(codegen_cpu_nn, "PARALLEL_MIN", 0)
    loaded: list[bool] = []
    load = codegen_cpu_nn._load
    monkeypatch.setattr(codegen_cpu_nn, "_load", lambda parallel: (loaded.append(parallel),
                                                                   load(parallel))[1])
    rng = np.random.default_rng(2)
    attrs = {"strides": (1, 1), "dilations": (1, 1), "padding": "SAME"}
    pool = {"ksize": (3, 3), "strides": (1, 1), "padding": "SAME"}
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [3, 5, 4, channels])
        w = sg.placeholder(sg.float32, [3, 3, channels, 3])
        g = sg.placeholder(sg.float32, [3, 5, 4, 3])
        fetches = [apply(nn_ops.CONV2D_INPUT_GRAD, g, w, x, **attrs),
                   apply(nn_ops.CONV2D_FILTER_GRAD, x, g, w, **attrs),
                   apply(nn_ops.MAX_POOL_GRAD, g, g, **pool)]
        feed = {t: rng.standard_normal(t.shape).astype(np.float32) for t in (x, w, g)}
        want = sg.Session(graph=graph, device="reference").run(fetches, feed)
        got = sg.Session(graph=graph, device="cpu").run(fetches, feed)
    assert True in loaded, "the parallel loops did not run"
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [2, 8])
def test_convolutions_in_pieces_of_one_image_match_the_reference(monkeypatch, channels):
    """A deep input's patch columns are laid out and multiplied a piece of whole images at a
    time (PIECE_BYTES); with pieces of one image each, a batch of three runs three pieces, and
    the forward and both gradients keep the reference's values."""
    monkeypatch.setattr(codegen_cpu_nn, "PIECE_BYTES", 1)
    rng = np.random.default_rng(3)
    attrs = {"strides": (2, 1), "dilations": (1, 1), "padding": "SAME"}
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [3, 5, 4, channels])
        w = sg.placeholder(sg.float32, [3, 2, channels, 3])
        g = sg.placeholder(sg.float32, [3, 3, 4, 3])
        fetches = [sg.nn.conv2d(x, w, (2, 1), "SAME"),
                   apply(nn_ops.CONV2D_INPUT_GRAD, g, w, x, **attrs),
                   apply(nn_ops.CONV2D_FILTER_GRAD, x, g, w, **attrs)]
        feed = {t: rng.standard_normal(t.shape).astype(np.float32) for t in (x, w, g)}
        want = sg.Session(graph=graph, device="reference").run(fetches, feed)
        got = sg.Session(graph=graph, device="cpu").run(fetches, feed)
    assert codegen_cpu_nn._pieces(3, 1) == [(0, 1), (1, 2), (2, 3)]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_max_pool_gradients_take_the_forward_winners(monkeypatch):
    """codegen_cpu_nn.share_winners: in a training step the max pool hands its winning taps to
    the gradient of the same input, which scatters from them without reading the input again;
    the values stay the reference's (ties, -inf and NaN: see the test above, whose pool and
    gradient are paired the same way)."""
    used: list[str] = []
    real = codegen_cpu_nn.loops

    class Spy:
        def __init__(self, module):
            self.module = module

        def __getattr__(self, name):
            used.append(name)
            return getattr(self.module, name)

    monkeypatch.setattr(codegen_cpu_nn, "loops", lambda size: Spy(real(size)))
    with sg.Graph().as_default() as graph:
        loss, dx, gather, train, feed, params = _cnn(sg.float32)
        init = sg.global_variables_initializer()
        sessions = {d: sg.Session(graph=graph, device=d) for d in ("reference", "cpu")}
        for s in sessions.values():
            s.run(init)
        for _ in range(2):
            used.clear()
            got = sessions["cpu"].run([loss, dx, train], feed)[:2]
            want = sessions["reference"].run([loss, dx, train], feed)[:2]
            assert {"max_pool_winners", "max_pool_grad_winners"} <= set(used), used
            assert "max_pool_grad" not in used and "max_pool" not in used, used
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_filter_gradients_reuse_the_forward_im2col(monkeypatch):
    """codegen_cpu_nn.share_patches: in a training step each convolution's filter gradient
    takes the forward's im2col columns of the same input (one im2col per layer, not two), and
    the values stay the reference's."""
    calls: list[tuple] = []
    im2col = codegen_cpu_nn._Conv.im2col
    monkeypatch.setattr(codegen_cpu_nn._Conv, "im2col",
                        lambda self, x, *a: (calls.append(x.shape), im2col(self, x, *a))[1])
    with sg.Graph().as_default() as graph:
        loss, dx, gather, train, feed, params = _cnn(sg.float32)
        init = sg.global_variables_initializer()
        sessions = {d: sg.Session(graph=graph, device=d) for d in ("reference", "cpu")}
        for s in sessions.values():
            s.run(init)
        for _ in range(2):
            calls.clear()
            got = sessions["cpu"].run([loss, train], feed)[0]
            assert len(calls) == 2, calls  # the two convolutions' forwards only
            want = sessions["reference"].run([loss, train], feed)[0]
            np.testing.assert_allclose(got, want, rtol=1e-5)
        for p in params:
            np.testing.assert_allclose(sessions["cpu"].run(p), sessions["reference"].run(p),
                                       rtol=1e-4, atol=1e-5)
        calls.clear()
        sessions["cpu"].run(loss, feed)  # a forward-only plan: nothing to hand on
        assert len(calls) == 2

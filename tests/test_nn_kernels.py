"""Convolution and pooling on the cpu device run in codegen_cpu_nn's kernels, forward and
backward, and agree with the reference device: the plan of a small CNN's training step has no
reference step for them, training it agrees step by step, max pooling's ties, -inf and NaN go
where the reference sends them, and the parallel loops compute what the serial ones do.
(tests/test_ops.py compares every conv/pool case of the op table; this is the whole-network
view.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from compiler import codegen_cpu_nn, codegen_cpu_threads, codegen_cpu_tiles
from runtime import executor
from symgraph.graph import apply
from symgraph.ops import nn as nn_ops

NN_OPS = set(codegen_cpu_nn.BUILDERS)
REPO = Path(__file__).resolve().parents[1]
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


def _split_everything(monkeypatch, threshold: str) -> list[int]:
    """Sets codegen_cpu_nn's `threshold` to 0, so that all such work runs in parts on threads,
    and returns the list to which each split adds its total (skips on one core)."""
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core: nothing runs in parts here")
    monkeypatch.setattr(codegen_cpu_nn, threshold, 0)
    parts: list[int] = []
    run_in_parts = codegen_cpu_nn.run_in_parts
    monkeypatch.setattr(codegen_cpu_nn, "run_in_parts",
                        lambda fn, total: (parts.append(total), run_in_parts(fn, total))[1])
    return parts


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("ksize,padding,stride", [(3, "SAME", 1), (2, "SAME", 1),
                                                   (2, "VALID", 1), (2, "SAME", 2),
                                                   (2, "VALID", 2)])
def test_max_pool_ties_infinities_and_nan_go_where_the_reference_sends_them(
        monkeypatch, ksize, padding, stride, split):
    """Ties: the first tap in window order; a window of -inf that starts on padding: the
    padding's tap wins (its gradient is lost); a NaN: the first NaN. 2x2 windows inside the
    image take the loops' four-tap path (_max_of_four), and a pool whose every window is one
    (2x2, stride 2, VALID here) its own loops (max_pool_four, max_pool_grad_four: the last
    row and column, in no window, get 0); the others, and every window of 3x3, the general
    one. Split: the two images run on two threads (by_images), as big pools do."""
    parts = _split_everything(monkeypatch, "SPLIT_MIN") if split else []
    used: list[str] = []
    load = codegen_cpu_nn._load
    monkeypatch.setattr(codegen_cpu_nn, "_load", lambda parallel: _LoopSpy(load(parallel), used))
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
        alone = sg.Session(graph=graph, device="cpu").run(y, feed)  # no gradient: no winners
    assert in_kernels == {"max_pool2d", "max_pool2d_grad", "max_pool2d_gather"}
    if split:
        assert parts == [2, 2, 2, 2], parts
    for a, b in zip(got + [alone], want + [want[0]]):
        np.testing.assert_array_equal(a, b)
    four = (ksize, padding, stride) == (2, "VALID", 2)
    assert used.count("max_pool_four") == (2 if four else 0), used
    assert ("max_pool_grad_four" in used) == four and ("max_pool_winners" in used) != four


@pytest.mark.parametrize("channels", [2, 8])  # im2col_shallow, and im2col by rows
def test_parallel_loops_match_the_reference(monkeypatch, channels):
    """The prange loops (for big work) on tiny work give the reference's values: im2col and
    col2im (the pooling loops run in parts on threads instead: by_images)."""
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
    load = codegen_cpu_nn._load
    monkeypatch.setattr(codegen_cpu_nn, "_load", lambda parallel: _LoopSpy(load(parallel), used))
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


# ---- register-tiled convolutions (codegen_cpu_tiles) ------------------------------------------

TILED = [  # (batch, height, width, channels, kh, kw, outputs, strides, padding)
    (2, 14, 14, 32, 3, 3, 64, (1, 1), "SAME"),  # W3's second layer, smaller batch
    (3, 9, 17, 16, 3, 3, 48, (1, 1), "SAME"),  # wide and narrow tiles; rows left over
    (2, 8, 9, 20, 2, 2, 16, (1, 1), "SAME"),  # even window: padding after; a part of a tile
    (2, 10, 11, 8, 3, 2, 32, (2, 1), "SAME"),  # strided: the input gradient is im2col's
    (1, 11, 30, 16, 3, 3, 16, (2, 3), "VALID"),
    (2, 6, 6, 16, 5, 5, 16, (1, 1), "VALID"),
    (3, 12, 10, 1, 3, 3, 32, (1, 1), "SAME"),  # W3's first layer: one input channel
    (2, 9, 9, 3, 3, 3, 16, (2, 2), "SAME"),  # RGB-like, strided
]


def _tiled_case(batch, height, width, channels, kh, kw, outputs, strides, padding, seed=0):
    rng = np.random.default_rng(seed)
    attrs = {"strides": strides, "dilations": (1, 1), "padding": padding}
    x = sg.placeholder(sg.float32, [batch, height, width, channels])
    w = sg.placeholder(sg.float32, [kh, kw, channels, outputs])
    y = sg.nn.conv2d(x, w, strides, padding)
    g = sg.placeholder(sg.float32, [int(d) for d in y.shape])
    fetches = [y, apply(nn_ops.CONV2D_INPUT_GRAD, g, w, x, **attrs),
               apply(nn_ops.CONV2D_FILTER_GRAD, x, g, w, **attrs)]
    feed = {t: rng.standard_normal([int(d) for d in t.shape]).astype(np.float32)
            for t in (x, w, g)}
    return fetches, feed


class _LoopSpy:
    """Records which loops of codegen_cpu_nn's kernel module are called."""

    def __init__(self, module, used):
        self.module, self.used = module, used

    def __getattr__(self, name):
        self.used.append(name)
        return getattr(self.module, name)


@pytest.mark.parametrize("on_threads", [False, True])
@pytest.mark.parametrize("case", TILED, ids=lambda c: "x".join(map(str, c[:7])) + f"_{c[8]}")
def test_register_tiled_convolutions_match_the_reference(monkeypatch, case, on_threads):
    """float32 convolutions into whole vectors of outputs run in the register tiles (forward,
    filter gradient, and the input gradient at stride 1 into whole vectors of input
    channels), split over the thread budget for big work (the filter gradient by images, into
    a dw per thread, added: 3 images split 1 + 2), and give the reference's values."""
    parts = _split_everything(monkeypatch, "TILE_PARALLEL_MIN") if on_threads else []
    used: list[str] = []
    load = codegen_cpu_nn._load
    monkeypatch.setattr(codegen_cpu_nn, "_load", lambda parallel: _LoopSpy(load(parallel), used))
    with sg.Graph().as_default() as graph:
        fetches, feed = _tiled_case(*case)
        want = sg.Session(graph=graph, device="reference").run(fetches, feed)
        got = sg.Session(graph=graph, device="cpu").run(fetches, feed)
    # the input gradient is the forward's tiles at stride 1, into whole vectors of channels
    input_tiled = case[7] == (1, 1) and case[3] % codegen_cpu_tiles.NARROW == 0
    assert used.count("conv_tiles") == 1 + input_tiled, used
    # on threads, the filter gradient sums each thread's images apart (whole images, a dw each)
    by_images = on_threads and case[0] > 1
    assert used.count("conv_filter_grad_images") == by_images, used
    assert used.count("conv_filter_grad_tiles") == (not by_images), used
    assert ("col2im" in used) != input_tiled, used
    assert bool(parts) == on_threads
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4 * np.abs(b).max())


def test_convolutions_the_tiles_do_not_take_stay_im2col(monkeypatch):
    """float64, dilated, outputs not in whole vectors, a 1x1 window: im2col + GEMM."""
    used: list[str] = []
    load = codegen_cpu_nn._load
    monkeypatch.setattr(codegen_cpu_nn, "_load", lambda parallel: _LoopSpy(load(parallel), used))
    lanes = codegen_cpu_tiles.NARROW
    for dtype, channels, outputs, dilations, k in [
            (sg.float64, 16, lanes, 1, 3), (sg.float32, 16, lanes, 2, 3),
            (sg.float32, 16, lanes + 1, 1, 3), (sg.float32, 16, lanes, 1, 1)]:
        with sg.Graph().as_default() as graph:
            x = sg.placeholder(dtype, [1, 6, 6, channels])
            w = sg.constant(np.ones((k, k, channels, outputs), dtype.np))
            y = sg.nn.conv2d(x, w, 1, "SAME", dilations=dilations)
            feed = {x: np.ones((1, 6, 6, channels), dtype.np)}
            want = sg.Session(graph=graph, device="reference").run(y, feed)
            np.testing.assert_allclose(sg.Session(graph=graph, device="cpu").run(y, feed), want)
    assert "conv_tiles" not in used, used


def test_filter_gradients_reuse_the_forward_padded_input(monkeypatch):
    """share_patches for tiled layers: the forward hands its padded input to the filter
    gradient of the same input (one padding per layer and step), the plan counts it as kept,
    and training matches the reference."""
    padded: list[tuple] = []
    pad = codegen_cpu_nn._pad
    monkeypatch.setattr(codegen_cpu_nn, "_pad",
                        lambda x, *a: (padded.append(x.shape), pad(x, *a))[1])
    rng = np.random.default_rng(4)
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [2, 6, 6, 8])
        k = sg.Variable(rng.uniform(-0.3, 0.3, (3, 3, 8, 16)).astype(np.float32))
        k2 = sg.Variable(rng.uniform(-0.3, 0.3, (3, 3, 16, 16)).astype(np.float32))
        loss = sg.reduce_sum(sg.nn.conv2d(sg.nn.relu(sg.nn.conv2d(x, k, 1, "SAME")), k2, 1,
                                          "SAME") ** 2)
        train = sg.train.GradientDescentOptimizer(1e-4).minimize(loss)
        init = sg.global_variables_initializer()
        feed = {x: rng.standard_normal((2, 6, 6, 8)).astype(np.float32)}
        sessions = {d: sg.Session(graph=graph, device=d) for d in ("reference", "cpu")}
        for s in sessions.values():
            s.run(init)
        report = sessions["cpu"].memory_report([loss, train], feed)
        for _ in range(2):
            padded.clear()
            got = sessions["cpu"].run([loss, train], feed)[0]
            want = sessions["reference"].run([loss, train], feed)[0]
            np.testing.assert_allclose(got, want, rtol=1e-5)
            # two forwards; the second layer's input gradient pads its gradient
            assert padded == [(2, 6, 6, 8), (2, 6, 6, 16), (2, 6, 6, 16)], padded
        for v in (k, k2):
            np.testing.assert_allclose(sessions["cpu"].run(v), sessions["reference"].run(v),
                                       rtol=1e-4, atol=1e-6)
    assert report.peak_bytes > 0


_QUIET_PROBE = """
import os, numpy as np, symgraph
from compiler import codegen_cpu_threads as threads
a = np.ones((300, 300), np.float32)
a @ a  # the pool is up and spinning
found = threads._openblas() is not None
first, second = threads.quiet_blas_workers(), threads.quiet_blas_workers()
a @ a  # the pool starts again
print(found, first, second, os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


@pytest.mark.parametrize("user_setting", [None, "7"])
def test_openblas_spins_briefly_once_tiles_run_on_threads(user_setting):
    """codegen_cpu_threads.quiet_blas_workers: once per process, OpenBLAS's pool starts again
    with a 2^20-cycle spin; a user's own OPENBLAS_THREAD_TIMEOUT stands."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user_setting is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_setting
    out = subprocess.run([sys.executable, "-c", _QUIET_PROBE], env=env, capture_output=True,
                         text=True, check=True, cwd=REPO).stdout.split()
    if out[0] == "False":
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    if user_setting is None:
        assert out[1:] == ["True", "False", str(codegen_cpu_threads.BLAS_SPIN_EXPONENT)]
    else:
        assert out[1:] == ["False", "False", user_setting]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_tiles_on_threads_work_in_a_forked_child(monkeypatch):
    """run_in_parts makes its own threads in a child of fork(): the parent's pool has none
    there, and a convolution split over it would wait forever."""
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core: the tiles never run in parts here")
    monkeypatch.setattr(codegen_cpu_nn, "TILE_PARALLEL_MIN", 0)
    with sg.Graph().as_default() as graph:
        fetches, feed = _tiled_case(*TILED[0])
        cpu = sg.Session(graph=graph, device="cpu")
        want = cpu.run(fetches[0], feed)  # the pool exists now
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if the split convolution finishes and agrees
            code = 1
            try:
                code = 0 if np.array_equal(cpu.run(fetches[0], feed), want) else 2
            finally:
                os._exit(code)
        deadline, status = 60.0, None
        while deadline > 0:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
            deadline -= 0.1
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's convolution did not finish")
    assert os.waitstatus_to_exitcode(status) == 0


# ---- sparse cross-entropy rows ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [sg.float32, sg.float64])
def test_sparse_cross_entropy_rows_match_the_reference_on_infinities_and_nan(dtype):
    """The row loop: a row with -inf (its class costs inf), with +inf or NaN (NaN, as NumPy's),
    large values (no overflow: the maximum is taken out first), one class; an out-of-range
    label fails as on the reference device, naming the label."""
    inf, nan = np.inf, np.nan
    rows = np.array([[1, 2, 3], [-inf, 0, 1], [inf, 0, 1], [nan, 0, 1], [1000, 999, -1000],
                     [-inf, -inf, -inf]], dtype.np)
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(dtype, [None, 3])
        labels = sg.placeholder(sg.int32, [None])
        one = sg.placeholder(dtype, [None, 1])
        ops = [sg.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x),
               sg.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:2] * 0, logits=one)]
        feed = {x: rows, labels: np.array([2, 0, 1, 1, 0, 2], np.int32),
                one: np.array([[5], [-inf]], dtype.np)}
        with np.errstate(all="ignore"):
            want = sg.Session(graph=graph, device="reference").run(ops, feed)
        cpu = sg.Session(graph=graph, device="cpu")
        got = cpu.run(ops, feed)
        in_kernels = [m.opdef.name for k in cpu.plan_for(ops, feed).kernels for m in k.members]
        assert in_kernels.count("sparse_softmax_cross_entropy") == 2
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)
        feed[labels] = np.array([2, 0, 1, 3, 0, 2], np.int32)
        with pytest.raises(sg.errors.InvalidArgumentError, match="label 3 is outside"):
            cpu.run(ops[0], feed)



EPILOGUES = {  # name: (epilogue of the convolution's product y, whether it runs in y's blocks)
    "bias and relu": (lambda y, b, r: sg.nn.relu(y + b), True),
    "scalars only (a flat loop)": (lambda y, b, r: sg.tanh(y) * 0.5, True),
    "a second value of y's shape": (lambda y, b, r: sg.nn.relu(y + r), False),
    "a reduction": (lambda y, b, r: sg.reduce_sum(sg.nn.relu(y + b), axis=3), False),
}


@pytest.mark.parametrize("on_threads", [False, True])
@pytest.mark.parametrize("dtype,outputs", [(np.float32, codegen_cpu_tiles.WIDE),
                                           (np.float32, 6), (np.float64, 4)],
                         ids=["tiled", "im2col", "float64"])
@pytest.mark.parametrize("epilogue", list(EPILOGUES))
def test_a_convolution_runs_its_epilogue_in_its_own_blocks(monkeypatch, epilogue, dtype,
                                                           outputs, on_threads,
                                                           epilogue_blocks):
    """An elementwise loop that is the product's only reader, over exactly its shape, with
    only scalars and channel vectors besides, is stored into the product's array block by
    block as the convolution computes them (compiler.epilogue.in_place_products): each
    thread's output rows for the tiles, each piece of images for im2col. Otherwise the loop
    runs after the convolution, over the whole product. Values as the reference's, for a
    static batch (the flat loop) and a dynamic one."""
    if on_threads:
        _split_everything(monkeypatch, "TILE_PARALLEL_MIN")
        monkeypatch.setattr(codegen_cpu_nn, "PIECE_BYTES", 1)  # im2col: a piece per image
    blocks = epilogue_blocks
    make, in_place = EPILOGUES[epilogue]
    rng = np.random.default_rng(1)
    for batch in (None, 3):
        with sg.Graph().as_default() as graph:
            x = sg.placeholder(dtype, [batch, 6, 7, codegen_cpu_nn.SHALLOW])  # im2col's pieces
            k = sg.constant(rng.standard_normal((3, 3, codegen_cpu_nn.SHALLOW, outputs))
                            .astype(dtype))
            b = sg.constant(rng.standard_normal(outputs).astype(dtype))
            r = sg.placeholder(dtype, [batch, 6, 7, outputs])
            out = make(sg.nn.conv2d(x, k, 1, "SAME"), b, r)
        feed = {x: rng.standard_normal((3, 6, 7, codegen_cpu_nn.SHALLOW)).astype(dtype),
                r: rng.standard_normal((3, 6, 7, outputs)).astype(dtype)}
        cpu = sg.Session(graph=graph, device="cpu")
        (step,) = [s for s in cpu.plan_for(out, feed).steps if hasattr(s, "producer")]
        assert step.in_place == in_place
        blocks.clear()
        got = cpu.run(out, feed)
        want = sg.Session(graph=graph, device="reference").run(out, feed)
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-4 if dtype == np.float32 else 1e-12)  # 72 terms
        tiled = dtype == np.float32 and outputs % codegen_cpu_tiles.NARROW == 0
        count = (2 if tiled else 3) if on_threads else 1  # two threads' rows; three images
        assert len(blocks) == (count if in_place else 0), blocks
        if in_place:  # the blocks cover the product: 3 images of 6 rows
            assert sum(np.prod(shape[:-2]) for shape in blocks) * 7 * outputs == got.size

"""Models training on the cuda device against the reference: a model of slices and concats, an
MLP with dropout and a CNN (with the pooling ops' edge cases and an empty batch), no op on the
host.

Gated and set up by tests/cuda_common.py (imported below): run by tests/test_cuda.py
(simulator) and `make test-gpu` (GPU), never by a plain `pytest`.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_common import NN_OPS, _mlp

import symgraph as sg
from runtime import executor
from symgraph.graph import apply
from symgraph.ops import nn as nn_ops


def test_a_model_of_slices_concat_and_transposes_trains_on_the_device() -> None:
    """A model built from concat, slices (reversed, strided), transpose, pad, tile, stack and
    broadcast_to, with integer counts beside it: its loss, its gradients (concat_part,
    slice_grad, sum_tiles, ...) and two SGD steps agree with the reference, and no op of the
    forward or the backward pass runs on the host."""
    rng = np.random.default_rng(5)
    w0 = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [None, 4])
        w = sg.Variable(w0)
        a = sg.concat([x, x[:, ::-1]], 1)  # (n, 8)
        b = sg.transpose(a)[1:8:2]  # (4, n)
        c = sg.matmul(sg.transpose(b), w)  # (n, 3)
        d = sg.tile(sg.pad(c, [[0, 1], [1, 1]]), [2, 1])  # (2n + 2, 5)
        s = sg.stack([w, w * w], axis=-1)[:, ::-1, 0]  # (4, 3)
        loss = (sg.reduce_sum(sg.tanh(d)) + sg.reduce_sum(s * s)
                + sg.reduce_sum(sg.broadcast_to(w[0], [2, 3]) * c[:1]))
        counts = [sg.reduce_sum(sg.cast(d > 0, sg.int32), 1),
                  sg.reduce_max(sg.argmax(sg.transpose(d), 1))]
        grads = sg.gradients(loss, [x, w])
        train = sg.train.GradientDescentOptimizer(0.05).minimize(loss)
        feed = {x: rng.uniform(-1, 1, (3, 4)).astype(np.float32)}
        results = {}
        for device in ("reference", "cuda"):
            sess = sg.Session(device=device)
            sess.run(sg.global_variables_initializer())
            steps = [sess.run([loss, *grads, *counts, train], feed)[:-1] for _ in range(2)]
            results[device] = steps + [[sess.run(w)]]
        plan = sess.plan_for([loss, *grads, *counts, train], feed)
    host_ops = sess._device.stats.host_ops
    assert not host_ops, host_ops
    compiled = {m.opdef.name for k in plan.kernels for m in k.members}
    assert {"concat", "concat_part", "strided_slice", "slice_grad", "transpose", "pad", "tile",
            "sum_tiles", "stack", "broadcast_to"} <= compiled, compiled
    for got, want in zip(results["cuda"], results["reference"]):
        for g, v in zip(got, want):
            assert g.dtype == v.dtype
            np.testing.assert_allclose(g, v, rtol=1e-5, atol=1e-6)


def test_mlp_training_steps_match_reference() -> None:
    """Three Adam steps of a 6-5-3 MLP with dropout on the device, none of its ops on the host.
    The device draws its own numbers (initial weights, dropout masks): the reference starts
    from the device's initial weights and is fed the device's masks, and then the losses,
    accuracies and weights after each step agree."""
    with sg.Graph().as_default():
        model = _mlp(0.3)
        rng = np.random.default_rng(0)
        batches = [(rng.standard_normal((4, 6)).astype(np.float32), rng.integers(0, 3, 4))
                   for _ in range(3)]
        fetches = [model["train"], model["loss"], model["accuracy"], *model["masks"]]
        sess = sg.Session(device="cuda")
        sess.run(sg.global_variables_initializer())
        initial = {v: sess.run(v) for v in sg.global_variables()}
        sess._device.stats.host_ops.clear()
        got = [sess.run(fetches, {model["x"]: x, model["y"]: y, model["training"]: True})[1:]
               for x, y in batches]
        host_ops = dict(sess._device.stats.host_ops)
        weights = {v.name: sess.run(v) for v in sg.global_variables()}
        steps = sess.run(model["step"])  # assign_add on the device
        ref = sg.Session(device="reference")
        ref.run(sg.global_variables_initializer())
        for v, value in initial.items():
            v.load(value, ref)
        want = [ref.run(fetches[:3], {model["x"]: x, model["y"]: y, model["training"]: True,
                                      **dict(zip(model["masks"], masks))})[1:]
                for (x, y), (_, _, *masks) in zip(batches, got)]
        want_weights = {v.name: ref.run(v) for v in sg.global_variables()}
    assert not host_ops, host_ops
    for mask in got[0][2:]:  # inverted dropout: 0 or 1 / (1 - rate)
        assert set(np.unique(mask)) <= {0.0, np.float32(1 / np.float32(0.7))}
    np.testing.assert_allclose([g[:2] for g in got], want, rtol=1e-5, atol=1e-6)
    for name in want_weights:
        np.testing.assert_allclose(weights[name], want_weights[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert steps == 3


def _cnn() -> tuple[list, dict, list]:
    """conv3x3(2)-relu-maxpool-conv2x2(2, dilated)-avgpool-dense(3), sparse cross-entropy,
    momentum; the gradient with respect to the images and max_pool2d_gather (the pool's second
    derivative) too, so that all eight convolution and pooling ops run."""
    rng = np.random.default_rng(1)
    x = sg.placeholder(sg.float32, [None, 6, 6, 1])
    y = sg.placeholder(sg.int64, [None])
    k1 = sg.Variable(rng.uniform(-0.5, 0.5, (3, 3, 1, 2)).astype(np.float32))
    k2 = sg.Variable(rng.uniform(-0.5, 0.5, (2, 2, 2, 2)).astype(np.float32))
    w = sg.Variable(rng.uniform(-0.5, 0.5, (8, 3)).astype(np.float32))
    h1 = sg.nn.relu(sg.nn.conv2d(x, k1, 1, "SAME"))
    p1 = sg.nn.max_pool2d(h1, 3, 2, "SAME")  # 6 -> 3, overlapping windows
    h2 = sg.nn.conv2d(p1, k2, 1, "SAME", dilations=2)
    p2 = sg.nn.avg_pool2d(h2, 2, 1, "VALID")  # (N, 2, 2, 2)
    logits = sg.reshape(p2, [-1, 8]) @ w
    loss = sg.reduce_mean(sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))
    (dx,) = sg.gradients(loss, [x])
    gather = apply(nn_ops.MAX_POOL_GATHER, h1, h1, ksize=(3, 3), strides=(2, 2),
                   padding="SAME")
    train = sg.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
    feed = {x: rng.standard_normal((2, 6, 6, 1)).astype(np.float32), y: np.array([0, 2])}
    return [loss, dx, gather, train], feed, [k1, k2, w]


def test_cnn_training_steps_match_reference() -> None:
    """Three momentum steps of a small CNN on the device agree with the reference (loss, the
    images' gradient, the gather, the weights after them), and no convolution or pooling op
    runs on the host or falls back."""
    with sg.Graph().as_default():
        fetches, feed, params = _cnn()
        results, sessions = {}, {}
        fallbacks = executor.fallbacks
        for device in ("reference", "cuda"):
            sess = sessions[device] = sg.Session(device=device)
            sess.run(sg.global_variables_initializer())
            steps = [sess.run(fetches, feed)[:3] for _ in range(3)]
            results[device] = (steps, [sess.run(v) for v in params])
        plan = sessions["cuda"].plan_for(fetches, feed)
    assert executor.fallbacks == fallbacks, "a kernel refused its inputs"
    for got, want in zip(results["cuda"][0], results["reference"][0]):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    for got, want in zip(results["cuda"][1], results["reference"][1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert NN_OPS <= {m.opdef.name for k in plan.kernels for m in k.members}
    host_ops = sessions["cuda"]._device.stats.host_ops
    assert not NN_OPS & set(host_ops), host_ops


@pytest.mark.parametrize("ksize,padding", [(3, "SAME"), (2, "VALID")])
def test_max_pool_ties_infinities_and_nan_go_where_the_reference_sends_them(
        ksize: int, padding: str) -> None:
    """Ties: the first tap in window order; a window of -inf that starts on padding: the
    padding's tap wins (its gradient is lost); a NaN: the first NaN. Forward, gradient and
    gather on the device equal the reference exactly."""
    x_val = np.array([[1, 1, 0], [1, -np.inf, 2], [np.nan, 2, 2]], np.float32)[None, :, :, None]
    x_val = np.concatenate([x_val, np.full_like(x_val, -np.inf)])
    attrs = {"ksize": (ksize, ksize), "strides": (1, 1), "padding": padding}
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
        sess = sg.Session(graph=graph, device="cuda")
        got = sess.run(ops, feed)
    assert not sess._device.stats.host_ops
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_convolution_of_an_empty_batch() -> None:
    """Batch 0: empty outputs, and a filter gradient of zeros (no rows to sum), on the device."""
    rng = np.random.default_rng(4)
    attrs = {"strides": (1, 1), "dilations": (1, 1), "padding": "SAME"}
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [None, 3, 3, 2])
        w = sg.constant(rng.standard_normal((2, 2, 2, 3)).astype(np.float32))
        y = sg.nn.conv2d(x, w, **attrs)
        g = sg.placeholder(sg.float32, [None, 3, 3, 3])
        ops = [y, apply(nn_ops.CONV2D_INPUT_GRAD, g, w, x, **attrs),
               apply(nn_ops.CONV2D_FILTER_GRAD, x, g, w, **attrs),
               sg.nn.avg_pool2d(x, 2, 1, "SAME")]
        feed = {x: np.zeros((0, 3, 3, 2), np.float32), g: np.zeros((0, 3, 3, 3), np.float32)}
        want = sg.Session(graph=graph, device="reference").run(ops, feed)
        sess = sg.Session(graph=graph, device="cuda")
        got = sess.run(ops, feed)
    assert not NN_OPS & set(sess._device.stats.host_ops)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)

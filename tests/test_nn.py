"""Behaviour of sg.nn and sg.losses beyond the generic op table: TF1's conventions, stability,
training versus inference, and the numbers the seed lectures report."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgraph as sg
from symgraph import nn


@pytest.fixture(autouse=True)
def fresh_graph():
    sg.reset_default_graph()
    yield


def run(fetches, feeds=None):
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        return sess.run(fetches, feeds)


def conv_direct(x: np.ndarray, w: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """Convolution by its definition, one output element at a time (TF's SAME padding rule)."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    if padding == "SAME":
        oh, ow = -(-h // stride), -(-wd // stride)
        ph = max((oh - 1) * stride + kh - h, 0)
        pw = max((ow - 1) * stride + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, o))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                patch = x[b, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
                out[b, i, j] = np.tensordot(patch, w, axes=3)
    return out


@pytest.mark.parametrize("stride,padding", [(1, "SAME"), (2, "SAME"), (1, "VALID"), (2, "VALID")])
def test_conv2d_matches_the_definition(stride, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 3))
    w = rng.normal(size=(3, 2, 3, 4))
    out = run(nn.conv2d(sg.constant(x), sg.constant(w), stride, padding))
    np.testing.assert_allclose(out, conv_direct(x, w, stride, padding), rtol=1e-12, atol=1e-12)


def test_conv2d_accepts_tf1_strides_and_names_bad_channels():
    x = sg.placeholder(sg.float32, [None, 8, 8, 3], name="images")
    w = sg.Variable(np.zeros((3, 3, 3, 5), np.float32), name="kernel")
    y = nn.conv2d(x, w, strides=[1, 2, 2, 1], padding="SAME")
    assert y.shape == (None, 4, 4, 5)
    bad = sg.Variable(np.zeros((3, 3, 2, 5), np.float32), name="bad_kernel")
    with pytest.raises(ValueError, match="images.*bad_kernel|bad_kernel.*images"):
        nn.conv2d(x, bad, 1, "SAME")


def test_pooling_shapes_and_values():
    x = np.arange(2 * 5 * 5 * 1, dtype=np.float64).reshape(2, 5, 5, 1)
    t = sg.constant(x)
    mp = nn.max_pool2d(t, 2, 2, "SAME")
    ap = nn.avg_pool2d(t, 2, 2, "SAME")
    assert mp.shape == (2, 3, 3, 1) and nn.max_pool(t, [1, 2, 2, 1], [1, 2, 2, 1], "VALID").shape \
        == (2, 2, 2, 1)
    m, a = run([mp, ap])
    assert m[0, 0, 0, 0] == 6 and m[0, 2, 2, 0] == 24  # the last window holds one real element
    assert a[0, 0, 0, 0] == (0 + 1 + 5 + 6) / 4
    assert a[0, 2, 2, 0] == 24  # padding is not counted in the average
    assert a[0, 0, 2, 0] == (4 + 9) / 2


def test_max_pool_gradient_goes_to_first_maximum_on_ties():
    x = sg.constant(np.ones((1, 2, 2, 1)))
    (g,) = sg.gradients(sg.reduce_sum(nn.max_pool2d(x, 2, 2, "VALID")), [x])
    np.testing.assert_array_equal(run(g)[0, :, :, 0], [[1, 0], [0, 0]])


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = sg.constant([[1000.0, 0.0, -1000.0]], dtype=sg.float32)
    labels = sg.constant([[0.0, 1.0, 0.0]])
    loss = nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    (g,) = sg.gradients(loss, [logits])
    value, grad = run([loss, g])
    assert value[0] == pytest.approx(1000.0)
    np.testing.assert_allclose(grad, [[1, -1, 0]], atol=1e-6)


def test_sparse_cross_entropy_rejects_labels_out_of_range():
    logits = sg.constant(np.zeros((2, 3)))
    labels = sg.placeholder(sg.int32, [None], name="labels")
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    assert run(loss, {labels: [0, 2]}) == pytest.approx([math.log(3)] * 2)
    with pytest.raises(sg.errors.InvalidArgumentError, match="label 3 is outside"):
        run(loss, {labels: [0, 3]})


def test_sigmoid_cross_entropy_matches_the_definition_without_overflow():
    x = np.array([-800.0, -2.0, 0.0, 3.0, 800.0])
    z = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    got = run(nn.sigmoid_cross_entropy_with_logits(labels=sg.constant(z), logits=sg.constant(x)))
    p = 1 / (1 + np.exp(-x[1:4]))
    expected = -z[1:4] * np.log(p) - (1 - z[1:4]) * np.log(1 - p)
    np.testing.assert_allclose(got[1:4], expected, rtol=1e-12)
    assert got[0] == 0 and got[4] == 0 and np.all(np.isfinite(got))


def test_losses_take_means_and_collect():
    pred = sg.constant([[1.0, 2.0], [3.0, 5.0]])
    mse = sg.losses.mean_squared_error(sg.constant([[1.0, 1.0], [1.0, 1.0]]), pred)
    logits = sg.constant([[2.0, 0.0], [0.0, 2.0]])
    sparse = sg.losses.sparse_softmax_cross_entropy(sg.constant([0, 0]), logits)
    dense = sg.losses.softmax_cross_entropy(sg.constant([[1.0, 0.0], [1.0, 0.0]]), logits)
    m, s, d = run([mse, sparse, dense])
    assert m == pytest.approx((0 + 1 + 4 + 16) / 4)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))) / 2
    assert s == pytest.approx(expected) and d == pytest.approx(expected)
    assert sg.get_collection(sg.GraphKeys.LOSSES) == [mse, sparse, dense]


def test_l2_loss_and_bias_add():
    t = sg.constant([[1.0, 2.0], [3.0, 4.0]])
    b = sg.constant([10.0, 20.0])
    loss, out = run([nn.l2_loss(t), nn.bias_add(t, b)])
    assert loss == pytest.approx(15.0)
    np.testing.assert_array_equal(out, [[11, 22], [13, 24]])
    with pytest.raises(ValueError, match="bias_add"):
        nn.bias_add(t, sg.constant([1.0, 2.0, 3.0]))


def test_moments_and_batch_normalization():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(50, 4))
    mean, var = nn.moments(sg.constant(x), [0])
    y = nn.batch_normalization(sg.constant(x), mean, var, offset=sg.constant(1.0, sg.float64),
                               scale=sg.constant(2.0, sg.float64), variance_epsilon=1e-8)
    m, v, out = run([mean, var, y])
    np.testing.assert_allclose(m, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(v, x.var(0), rtol=1e-12)
    np.testing.assert_allclose(out.mean(0), 1.0, atol=1e-9)
    np.testing.assert_allclose(out.std(0), 2.0, rtol=1e-6)


def test_batchnorm_gradient_matches_the_step_by_step_backward_pass():
    """The seeds' staged batch-norm backward pass (cs231n's computational-graph derivation)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    dout = rng.normal(size=(6, 4))
    eps = 1e-5
    # forward, in stages
    n = x.shape[0]
    mu = x.mean(0)
    xmu = x - mu
    var = (xmu ** 2).mean(0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1 / sqrtvar
    xhat = xmu * ivar
    # backward, stage by stage
    dbeta = dout.sum(0)
    dgamma = (dout * xhat).sum(0)
    dxhat = dout * gamma
    divar = (dxhat * xmu).sum(0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -divar / sqrtvar ** 2
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(x) / n * dvar
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -dx1.sum(0)
    dx = dx1 + np.ones_like(x) / n * dmu

    tx, tg, tb = sg.constant(x), sg.constant(gamma), sg.constant(beta)
    mean, variance = nn.moments(tx, [0])
    y = nn.batch_normalization(tx, mean, variance, tb, tg, eps)
    grads = sg.gradients(y, [tx, tg, tb], grad_ys=sg.constant(dout))
    gx, gg, gb = run(grads)
    np.testing.assert_allclose(gx, dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gg, dgamma, rtol=1e-12)
    np.testing.assert_allclose(gb, dbeta, rtol=1e-12)


def _seed_net(reg: float):
    """The seeds' two-layer check net: N, D, H1, H2, C = 2, 15, 20, 30, 10, ReLU, scale 0.05."""
    rng = np.random.default_rng(231)
    n, d, h1, h2, c = 2, 15, 20, 30, 10
    shapes = [(d, h1), (h1,), (h1, h2), (h2,), (h2, c), (c,)]
    params = [sg.Variable(0.05 * rng.normal(size=s), name=f"p{i}") for i, s in enumerate(shapes)]
    w1, b1, w2, b2, w3, b3 = params
    x = sg.constant(rng.normal(size=(n, d)))
    y = sg.constant(rng.integers(c, size=n))
    hidden = nn.relu(nn.relu(x @ w1 + b1) @ w2 + b2)
    loss = sg.reduce_mean(nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=hidden @ w3
                                                                      + b3))
    weights = [w1, w2, w3]
    if reg:
        loss = loss + 0.5 * reg * sg.add_n([sg.reduce_sum(w * w) for w in weights])
    return loss, params


def test_seed_net_initial_losses():
    loss, _ = _seed_net(0.0)
    assert run(loss) == pytest.approx(math.log(10), abs=0.05)
    sg.reset_default_graph()
    loss, params = _seed_net(3.14)
    weight_sq = sum(float(np.sum(v ** 2)) for v in run(params[0::2]))
    assert weight_sq == pytest.approx(3.0, rel=0.15)  # 0.05^2 * (15*20 + 20*30 + 30*10) = 3
    assert run(loss) == pytest.approx(math.log(10) + 0.5 * 3.14 * weight_sq, abs=0.05)


@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_seed_net_gradients_match_central_differences(reg):
    loss, params = _seed_net(reg)
    grads = sg.gradients(loss, params)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        analytic = sess.run(grads)
        values = sess.run(params)
        for p, v, a in zip(params, values, analytic):
            num = np.zeros_like(v)
            for i in np.ndindex(v.shape):
                for sign in (1, -1):
                    w = v.copy()
                    w[i] += sign * 1e-6
                    num[i] += sign * sess.run(loss, {p: w}) / 2e-6
            rel = np.max(np.abs(a - num)) / max(np.max(np.abs(a)), np.max(np.abs(num)))
            assert rel < 1e-6, (p.name, rel)

"""sg.layers: TF1's variable names and shapes, reuse, initializers and regularizers, training
versus inference through one graph (dropout, batch norm and its update ops), and a small
network trained end to end."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from symgraph import layers


@pytest.fixture(autouse=True)
def fresh_graph():
    sg.reset_default_graph()
    yield


def run(fetches, feeds=None):
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        return sess.run(fetches, feeds)


def names(variables) -> list[str]:
    return [v.var_name for v in variables]


# ---- variable names and shapes -------------------------------------------------------------------


def test_dense_names_its_variables_like_tf1():
    x = sg.placeholder(sg.float32, [None, 4])
    h = layers.dense(x, 3)
    y = layers.dense(h, 2)
    assert h.shape == (None, 3) and y.shape == (None, 2)
    assert names(sg.global_variables()) == ["dense/kernel", "dense/bias",
                                            "dense_1/kernel", "dense_1/bias"]
    assert [tuple(v.shape) for v in sg.global_variables()] == [(4, 3), (3,), (3, 2), (2,)]
    assert names(sg.trainable_variables()) == names(sg.global_variables())


def test_name_and_variable_scope_prefix_the_names_but_name_scope_does_not():
    x = sg.placeholder(sg.float32, [None, 4])
    with sg.variable_scope("model"):
        layers.dense(x, 3)
        layers.dense(x, 3, name="logits")
        layers.dense(x, 3)
    with sg.name_scope("block"):  # name scopes name ops, never variables (TF1)
        layers.dense(x, 2)
        layers.dense(x, 2)
    assert names(sg.global_variables()) == [
        "model/dense/kernel", "model/dense/bias", "model/logits/kernel", "model/logits/bias",
        "model/dense_1/kernel", "model/dense_1/bias",
        "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]


def test_reuse_shares_the_variables():
    x = sg.placeholder(sg.float32, [None, 4])
    y1 = layers.dense(x, 3, name="fc")
    before = sg.global_variables()
    y2 = layers.dense(x, 3, name="fc", reuse=True)
    after = sg.global_variables()
    assert len(after) == len(before) and all(a is b for a, b in zip(before, after))
    xv = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    a, b = run([y1, y2], {x: xv})
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="already exists"):
        layers.dense(x, 3, name="fc")
    with pytest.raises(ValueError, match="does not exist"):
        layers.dense(x, 3, name="other", reuse=True)


def test_reentering_a_scope_with_reuse_shares_every_unnamed_layer_in_order():
    """TF1's tower idiom: layer names count per entry of the scope, so a second tower built in
    `variable_scope("net", reuse=True)` maps dense -> net/dense, dense_1 -> net/dense_1."""
    x = sg.placeholder(sg.float32, [None, 4])

    def net(inputs):
        h = layers.dense(inputs, 4, activation=sg.nn.relu)
        return layers.dense(h, 4)  # same shape as the first: a wrong match would not fail

    with sg.variable_scope("net"):
        y1 = net(x)
    created = sg.global_variables()
    with sg.variable_scope("net", reuse=True):
        y2 = net(x)
    with sg.variable_scope("net", reuse=sg.AUTO_REUSE):
        y3 = net(x)
    assert names(created) == ["net/dense/kernel", "net/dense/bias",
                              "net/dense_1/kernel", "net/dense_1/bias"]
    assert len(sg.global_variables()) == 4
    xv = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    a, b, c = run([y1, y2, y3], {x: xv})
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def conv_valid(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """VALID cross-correlation by its definition (NHWC, HWIO)."""
    kh, kw = w.shape[:2]
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j] = np.tensordot(patch, w, axes=3)
    return out


@pytest.mark.parametrize("padding,strides,expected", [
    ("same", 1, (7, 6)), ("same", 2, (4, 3)), ("valid", 1, (5, 5)), ("valid", (2, 1), (3, 5)),
    ("SAME", [3, 3], (3, 2)),
])
def test_conv2d_kernel_and_output_shapes(padding, strides, expected):
    x = sg.placeholder(sg.float32, [None, 7, 6, 3])
    y = layers.conv2d(x, filters=5, kernel_size=(3, 2), strides=strides, padding=padding)
    kernel, bias = sg.global_variables()
    assert (kernel.var_name, bias.var_name) == ("conv2d/kernel", "conv2d/bias")
    assert kernel.shape == (3, 2, 3, 5) and bias.shape == (5,)
    assert y.shape == (None, *expected, 5)
    out = run(y, {x: np.ones((2, 7, 6, 3), np.float32)})
    assert out.shape == (2, *expected, 5)


def test_conv2d_computes_the_convolution_plus_bias_then_the_activation():
    rng = np.random.default_rng(2)
    xv = rng.normal(size=(2, 6, 5, 2))
    x = sg.constant(xv)
    y = layers.conv2d(x, 3, 3, strides=2, activation=sg.nn.relu,
                      bias_initializer=sg.constant_initializer(0.25))
    layers.conv2d(x, 3, 3)
    assert names(sg.global_variables())[2:] == ["conv2d_1/kernel", "conv2d_1/bias"]
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        out, w = sess.run([y, sg.global_variables()[0]])
    # sums of 18 products of size ~1, in another order than conv_valid's: an output near 0
    # (the weights are drawn anew each run) may differ by ~1e-16 in absolute terms
    np.testing.assert_allclose(out, np.maximum(conv_valid(xv, w, 2) + 0.25, 0), rtol=1e-12,
                               atol=1e-13)


def test_pooling_shapes_and_values():
    xv = np.random.default_rng(3).normal(size=(2, 6, 4, 3)).astype(np.float32)
    x = sg.placeholder(sg.float32, [None, 6, 4, 3])
    mp = layers.max_pooling2d(x, 2, 2)
    ap = layers.average_pooling2d(x, pool_size=(2, 2), strides=(2, 2), padding="valid")
    same = layers.max_pooling2d(x, pool_size=3, strides=2, padding="same")
    valid = layers.average_pooling2d(x, pool_size=3, strides=1)
    assert mp.shape == (None, 3, 2, 3) and ap.shape == (None, 3, 2, 3)
    assert same.shape == (None, 3, 2, 3) and valid.shape == (None, 4, 2, 3)
    m, a, s, v = run([mp, ap, same, valid], {x: xv})
    blocks = xv.reshape(2, 3, 2, 2, 2, 3)
    np.testing.assert_allclose(m, blocks.max(axis=(2, 4)), rtol=1e-6)
    np.testing.assert_allclose(a, blocks.mean(axis=(2, 4)), rtol=1e-5, atol=1e-6)
    assert s.shape == (2, 3, 2, 3) and v.shape == (2, 4, 2, 3)
    assert sg.global_variables() == []


def test_flatten_keeps_the_batch_and_multiplies_the_rest():
    x = sg.placeholder(sg.float32, [None, 5, 4, 3])
    y = layers.flatten(x)
    assert y.shape == (None, 60)
    xv = np.arange(2 * 60, dtype=np.float32).reshape(2, 5, 4, 3)
    np.testing.assert_array_equal(run(y, {x: xv}), xv.reshape(2, 60))
    assert layers.flatten(sg.constant(np.zeros((3, 2, 2)))).shape == (3, 4)
    with pytest.raises(ValueError, match="known non-batch"):
        layers.flatten(sg.placeholder(sg.float32, [None, None, 3]))


def test_initializers_use_bias_and_activation():
    xv = np.random.default_rng(4).normal(size=(6, 3)).astype(np.float32)
    kv = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
    x = sg.constant(xv)
    y = layers.dense(x, 2, activation=sg.nn.relu, kernel_initializer=sg.constant_initializer(kv),
                     bias_initializer=sg.constant_initializer(-0.1))
    z = layers.dense(x, 2, use_bias=False, kernel_initializer=sg.ones_initializer())
    assert names(sg.global_variables()) == ["dense/kernel", "dense/bias", "dense_1/kernel"]
    out, zout, k = run([y, z, sg.global_variables()[0]])
    np.testing.assert_array_equal(k, kv)
    np.testing.assert_allclose(out, np.maximum(xv @ kv - 0.1, 0), rtol=1e-6, atol=1e-6)
    assert (out == 0).any() and (out > 0).any()
    np.testing.assert_allclose(zout, xv.sum(1, keepdims=True).repeat(2, 1), rtol=1e-5)


def test_default_initializers_are_glorot_uniform_and_zeros():
    layers.dense(sg.placeholder(sg.float32, [None, 300]), 200)
    k, b = run(sg.global_variables())
    limit = np.sqrt(6 / (300 + 200))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    assert abs(k.std() - limit / np.sqrt(3)) < 0.01 * limit
    np.testing.assert_array_equal(b, np.zeros(200, np.float32))


def test_regularizers_land_in_the_collection_and_sum_into_the_regularization_loss():
    x = sg.placeholder(sg.float32, [None, 4])
    h = layers.dense(x, 3, kernel_regularizer=sg.regularizers.l2_regularizer(0.1))
    layers.conv2d(sg.placeholder(sg.float32, [None, 5, 5, 2]), 2, 3,
                  kernel_regularizer=sg.regularizers.l1_regularizer(0.01),
                  bias_regularizer=sg.regularizers.l2_regularizer(1.0),
                  bias_initializer=sg.constant_initializer(0.5))
    layers.dense(h, 2)  # no regularizer: no term
    terms = sg.get_collection(sg.GraphKeys.REGULARIZATION_LOSSES)
    assert len(terms) == 3 and terms == sg.losses.get_regularization_losses()
    total = sg.losses.get_regularization_loss()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        k1, k2, b2, t = sess.run([sg.global_variables()[0], sg.global_variables()[2],
                                  sg.global_variables()[3], total])
    expected = 0.1 * np.sum(k1 ** 2) / 2 + 0.01 * np.abs(k2).sum() + np.sum(b2 ** 2) / 2
    np.testing.assert_allclose(t, expected, rtol=1e-5)


def test_trainable_false_keeps_variables_out_of_the_trainable_collection():
    x = sg.placeholder(sg.float32, [None, 4])
    h = layers.dense(x, 3, trainable=False)
    layers.batch_normalization(h, trainable=False, name="frozen_bn")
    layers.batch_normalization(h)
    assert len(sg.global_variables()) == 10
    assert names(sg.trainable_variables()) == ["batch_normalization/gamma",
                                               "batch_normalization/beta"]


# ---- training versus inference through one graph -------------------------------------------------


def test_dropout_is_the_identity_in_inference_and_inverted_dropout_in_training():
    training = sg.placeholder_with_default(False, [])
    xv = np.ones((200, 500), np.float32)
    x = sg.placeholder(sg.float32, [None, 500])
    rate = 0.3
    y = layers.dropout(x, rate=rate, training=training, seed=5)
    assert y.shape == (None, 500)
    with sg.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: xv}), xv)
        first = sess.run(y, {x: xv, training: True})
        second = sess.run(y, {x: xv, training: True})
    zeros = first == 0
    assert abs(zeros.mean() - rate) < 0.01
    np.testing.assert_allclose(first[~zeros], 1 / (1 - rate), rtol=1e-6)
    assert abs(first.mean() - 1.0) < 0.01  # the mean is kept
    assert not np.array_equal(first, second)  # a fresh mask every run
    assert layers.dropout(x, 0.5) is x  # TF1's layers.dropout defaults to training=False


def test_dropout_keeps_the_mean_of_a_general_input():
    xv = np.random.default_rng(6).normal(2.0, 1.0, size=(400, 250))
    y = layers.dropout(sg.constant(xv), rate=0.5, training=True)
    out = run(y)
    assert abs((out == 0).mean() - 0.5) < 0.01
    assert abs(out.mean() - xv.mean()) < 0.03
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2 * xv[kept], rtol=1e-12)


def bn_reference(x, mean, var, gamma, beta, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_batch_norm_in_training_uses_batch_statistics_and_updates_by_momentum():
    rng = np.random.default_rng(7)
    feats = 3
    loc, scale = np.array([5.0, -2.0, 0.5]), np.array([3.0, 0.5, 1.0])
    x1 = (loc + scale * rng.normal(size=(64, feats))).astype(np.float32)
    x2 = (loc + 2 * scale * rng.normal(size=(64, feats))).astype(np.float32)
    gamma, beta, eps, momentum = np.array([2.0, 1.0, 0.5]), np.array([1.0, -1.0, 3.0]), 1e-3, 0.9
    training = sg.placeholder_with_default(False, [])
    x = sg.placeholder(sg.float32, [None, feats])
    y = layers.batch_normalization(x, momentum=momentum, epsilon=eps, training=training,
                                   gamma_initializer=sg.constant_initializer(gamma),
                                   beta_initializer=sg.constant_initializer(beta))
    update_ops = sg.get_collection(sg.GraphKeys.UPDATE_OPS)
    assert len(update_ops) == 2
    g, b, moving_mean, moving_var = sg.global_variables()
    assert names([moving_mean, moving_var]) == ["batch_normalization/moving_mean",
                                                "batch_normalization/moving_variance"]
    assert not moving_mean.trainable and not moving_var.trainable
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        out = sess.run(y, {x: x1, training: True})
        # batch statistics: per-feature mean beta, std gamma (up to epsilon)
        np.testing.assert_allclose(out, bn_reference(x1, x1.mean(0), x1.var(0), gamma, beta, eps),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out.mean(0), beta, atol=1e-4)
        var1 = x1.var(0, dtype=np.float64)
        np.testing.assert_allclose(out.std(0), gamma * np.sqrt(var1 / (var1 + eps)), rtol=1e-4)
        # the update ops move the moving statistics by momentum, with the biased variance
        mm, mv = np.zeros(feats), np.ones(feats)
        for batch in (x1, x2):
            sess.run(update_ops, {x: batch, training: True})
            mm = momentum * mm + (1 - momentum) * batch.mean(0, dtype=np.float64)
            mv = momentum * mv + (1 - momentum) * batch.var(0, dtype=np.float64)
            got_mm, got_mv = sess.run([moving_mean, moving_var])
            np.testing.assert_allclose(got_mm, mm, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got_mv, mv, rtol=1e-5)
        # inference: the moving statistics, and update ops that change nothing
        np.testing.assert_allclose(sess.run(y, {x: x2}),
                                   bn_reference(x2, got_mm, got_mv, gamma, beta, eps),
                                   rtol=1e-5, atol=1e-5)
        sess.run(update_ops, {x: x2})
        sess.run(update_ops, {x: x2, training: False})
        np.testing.assert_array_equal(sess.run(moving_mean), got_mm)
        np.testing.assert_array_equal(sess.run(moving_var), got_mv)


def test_batch_norm_with_python_bools():
    xv = np.random.default_rng(8).normal(3.0, 2.0, size=(32, 2))
    x = sg.constant(xv)
    infer = layers.batch_normalization(x)  # training=False: moving statistics 0 and 1
    assert sg.get_collection(sg.GraphKeys.UPDATE_OPS) == []
    train = layers.batch_normalization(x, training=True, center=False, scale=False)
    assert names(sg.global_variables())[4:] == ["batch_normalization_1/moving_mean",
                                                "batch_normalization_1/moving_variance"]
    assert len(sg.get_collection(sg.GraphKeys.UPDATE_OPS)) == 2
    a, b = run([infer, train])
    np.testing.assert_allclose(a, xv / np.sqrt(1 + 1e-3), rtol=1e-12)
    np.testing.assert_allclose(b, bn_reference(xv, xv.mean(0), xv.var(0), 1, 0, 1e-3),
                               rtol=1e-10, atol=1e-12)


def test_update_ops_under_control_dependencies_update_the_statistics_each_step():
    rng = np.random.default_rng(9)
    xv = rng.normal(1.5, 2.0, size=(50, 4)).astype(np.float32)
    yv = (xv @ rng.normal(size=(4, 1))).astype(np.float32)
    training = sg.placeholder_with_default(False, [])
    x = sg.placeholder(sg.float32, [None, 4])
    target = sg.placeholder(sg.float32, [None, 1])
    h = layers.batch_normalization(x, momentum=0.8, training=training)
    pred = layers.dense(h, 1)
    loss = sg.losses.mean_squared_error(target, pred)
    with sg.control_dependencies(sg.get_collection(sg.GraphKeys.UPDATE_OPS)):
        train_op = sg.train.GradientDescentOptimizer(0.05).minimize(loss)
    moving_mean, moving_var = sg.global_variables()[2:4]
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        losses = []
        for step in range(1, 6):
            _, lv = sess.run([train_op, loss], {x: xv, target: yv, training: True})
            losses.append(lv)
            # the batch statistics of x are fixed, so moving = (1 - m^k) * stat + m^k * start
            decay = 0.8 ** step
            np.testing.assert_allclose(sess.run(moving_mean), (1 - decay) * xv.mean(0),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(sess.run(moving_var), (1 - decay) * xv.var(0) + decay,
                                       rtol=1e-5)
        assert losses[-1] < losses[0]
        # inference steps of the loss alone leave the statistics alone
        before = sess.run(moving_mean)
        sess.run(loss, {x: xv, target: yv})
        np.testing.assert_array_equal(sess.run(moving_mean), before)


def test_batch_norm_axis_1_on_nchw_input():
    rng = np.random.default_rng(10)
    xv = (rng.normal(size=(4, 3, 5, 6)) * np.array([1.0, 2.0, 3.0])[:, None, None]
          + np.array([0.0, 5.0, -5.0])[:, None, None])
    training = sg.placeholder_with_default(False, [])
    x = sg.placeholder(sg.float64, [None, 3, 5, 6])
    y = layers.batch_normalization(x, axis=1, momentum=0.5, training=training)
    gamma, beta, moving_mean, moving_var = sg.global_variables()
    assert all(v.shape == (3,) for v in (gamma, beta, moving_mean, moving_var))
    axes = (0, 2, 3)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        out = sess.run(y, {x: xv, training: True})
        m, v = xv.mean(axes, keepdims=True), xv.var(axes, keepdims=True)
        np.testing.assert_allclose(out, (xv - m) / np.sqrt(v + 1e-3), rtol=1e-10, atol=1e-12)
        sess.run(sg.get_collection(sg.GraphKeys.UPDATE_OPS), {x: xv, training: True})
        mm, mv = sess.run([moving_mean, moving_var])
        np.testing.assert_allclose(mm, 0.5 * xv.mean(axes), rtol=1e-12)
        np.testing.assert_allclose(mv, 0.5 + 0.5 * xv.var(axes), rtol=1e-12)
        infer = sess.run(y, {x: xv})
    shaped = (1, 3, 1, 1)
    np.testing.assert_allclose(infer, (xv - mm.reshape(shaped)) / np.sqrt(mv.reshape(shaped)
                                                                          + 1e-3), rtol=1e-10)


def test_batch_norm_on_nhwc_conv_output_normalizes_per_channel():
    rng = np.random.default_rng(11)
    x = sg.constant(rng.normal(size=(3, 6, 6, 2)))
    conv = layers.conv2d(x, 4, 3, padding="same",
                         bias_initializer=sg.constant_initializer([1.0, -2.0, 3.0, 0.0]))
    y = layers.batch_normalization(conv, training=True, epsilon=1e-8,
                                   beta_initializer=sg.constant_initializer(0.5))
    assert names(sg.global_variables())[2:] == [
        "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert sg.global_variables()[4].shape == (4,)
    c, out = run([conv, y])
    np.testing.assert_allclose(out.mean((0, 1, 2)), 0.5, atol=1e-10)
    np.testing.assert_allclose(out.std((0, 1, 2)), 1.0, rtol=1e-6)
    expected = (c - c.mean((0, 1, 2))) / np.sqrt(c.var((0, 1, 2)) + 1e-8) + 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-10)


def test_batch_norm_layer_gradient_matches_the_step_by_step_backward_pass():
    """Through the layer and its training placeholder: the seeds' staged backward pass."""
    rng = np.random.default_rng(12)
    xv, dout = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    gv, bv, eps = rng.normal(size=4), rng.normal(size=4), 1e-5
    training = sg.placeholder_with_default(False, [])
    x = sg.constant(xv)
    y = layers.batch_normalization(x, epsilon=eps, training=training,
                                   gamma_initializer=sg.constant_initializer(gv),
                                   beta_initializer=sg.constant_initializer(bv))
    gamma, beta = sg.trainable_variables()
    grads = sg.gradients(y, [x, gamma, beta], grad_ys=sg.constant(dout))
    gx, gg, gb = run(grads, {training: True})
    n = xv.shape[0]
    xhat = (xv - xv.mean(0)) / np.sqrt(xv.var(0) + eps)
    dxhat = dout * gv
    dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (n * np.sqrt(xv.var(0)
                                                                                  + eps))
    np.testing.assert_allclose(gx, dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gg, (dout * xhat).sum(0), rtol=1e-10)
    np.testing.assert_allclose(gb, dout.sum(0), rtol=1e-12)
    # inference: a fixed affine map of x, through the moving statistics (0 and 1)
    gx_infer = run(grads[0], {training: False})
    np.testing.assert_allclose(gx_infer, dout * gv / np.sqrt(1 + eps), rtol=1e-12)


# ---- seeds and end-to-end training ---------------------------------------------------------------


def _seeded_model(seed: int):
    graph = sg.Graph()
    with graph.as_default():
        sg.set_random_seed(seed)
        x = sg.constant(np.ones((20, 30), np.float32))
        h = layers.dense(x, 16, kernel_initializer=sg.initializers.he_normal())
        y = layers.dropout(h, rate=0.5, training=True)
        with sg.Session(graph=graph) as sess:
            sess.run(sg.global_variables_initializer())
            return sess.run([sg.global_variables()[0], y, y])


def test_set_random_seed_reproduces_initial_weights_and_dropout_masks():
    k1, first1, second1 = _seeded_model(1234)
    k2, first2, second2 = _seeded_model(1234)
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_array_equal(first1, first2)
    np.testing.assert_array_equal(second1, second2)
    assert (first1 == 0).any()
    k3, first3, _ = _seeded_model(99)
    assert not np.array_equal(k1, k3) and not np.array_equal(first1 == 0, first3 == 0)


def _blobs(rng, n_per_class: int):
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    x = np.concatenate([c + rng.normal(size=(n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    return x.astype(np.float32), y.astype(np.int32)


def test_mlp_with_batch_norm_and_dropout_learns_blobs_with_adam():
    rng = np.random.default_rng(13)
    x_train, y_train = _blobs(rng, 100)
    x_test, y_test = _blobs(rng, 50)
    sg.set_random_seed(0)
    training = sg.placeholder_with_default(False, [])
    x = sg.placeholder(sg.float32, [None, 2])
    labels = sg.placeholder(sg.int32, [None])
    h = layers.dense(x, 32, use_bias=False)
    h = sg.nn.relu(layers.batch_normalization(h, momentum=0.9, training=training))
    h = layers.dropout(h, rate=0.2, training=training)
    logits = layers.dense(h, 3)
    loss = sg.losses.sparse_softmax_cross_entropy(labels, logits)
    accuracy = sg.reduce_mean(sg.cast(sg.equal(sg.cast(sg.argmax(logits, 1), sg.int32), labels),
                                      sg.float32))
    with sg.control_dependencies(sg.get_collection(sg.GraphKeys.UPDATE_OPS)):
        train_op = sg.train.AdamOptimizer(0.05).minimize(loss)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        initial = sess.run(loss, {x: x_train, labels: y_train})
        for _ in range(60):
            idx = rng.choice(len(x_train), 64, replace=False)
            sess.run(train_op, {x: x_train[idx], labels: y_train[idx], training: True})
        final, acc = sess.run([loss, accuracy], {x: x_test, labels: y_test})
    assert final < 0.3 * initial
    assert acc >= 0.95


def test_gradients_of_a_batch_norm_dense_net_match_central_differences():
    rng = np.random.default_rng(14)
    training = sg.placeholder_with_default(False, [])
    x = sg.constant(rng.normal(size=(8, 3)))
    labels = sg.constant(rng.integers(3, size=8))
    init = sg.initializers.random_normal(stddev=0.7, seed=1)
    h = layers.dense(x, 5, use_bias=False, kernel_initializer=init)  # a bias would cancel in bn
    h = layers.batch_normalization(h, training=training, epsilon=1e-5,
                                   gamma_initializer=sg.random_uniform_initializer(0.5, 1.5, 2),
                                   beta_initializer=init)
    h = layers.dropout(sg.nn.tanh(h), rate=0.5)  # dropout off: inference default
    logits = layers.dense(h, 3, kernel_initializer=init, bias_initializer=init)
    loss = sg.losses.sparse_softmax_cross_entropy(labels, logits)
    params = sg.trainable_variables()
    assert names(params) == ["dense/kernel", "batch_normalization/gamma",
                             "batch_normalization/beta", "dense_1/kernel", "dense_1/bias"]
    assert all(p.dtype == sg.float64 for p in params)
    grads = sg.gradients(loss, params)
    feed = {training: True}
    delta = 1e-6
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        symbolic = sess.run(grads, feed)
        for p, g in zip(params, symbolic):
            value = sess.run(p)
            numeric = np.zeros_like(value)
            for i in np.ndindex(value.shape):
                shifted = value.copy()
                shifted[i] += delta
                p.load(shifted, sess)
                up = sess.run(loss, feed)
                shifted[i] -= 2 * delta
                p.load(shifted, sess)
                down = sess.run(loss, feed)
                numeric[i] = (up - down) / (2 * delta)
            p.load(value, sess)
            rel = np.abs(g - numeric) / np.maximum(np.abs(g) + np.abs(numeric), 1e-8)
            assert rel.max() < 1e-6, (p.var_name, rel.max())

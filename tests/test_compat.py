"""symgraph.compat.v1 maps TF1's names, argument spellings and semantics onto symgraph."""

from __future__ import annotations

import csv
import os
import sys

import numpy as np
import pytest

import symgraph as sg
import symgraph.compat.v1 as tf
from symgraph.compat.v1.examples.tutorials.mnist import input_data


@pytest.fixture(autouse=True)
def fresh_graph():
    sg.reset_default_graph()
    yield
    sg.reset_default_graph()


def run(fetches, feed_dict=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feed_dict)


# ---- the namespace -------------------------------------------------------------------------------


def test_compat_v1_is_the_module_itself_and_eager_switches_are_no_ops():
    assert tf.compat.v1 is tf
    tf.compat.v1.disable_eager_execution()
    tf.disable_v2_behavior()
    assert not tf.executing_eagerly()
    from symgraph.compat.v1 import nn, train  # submodules import as TF's do

    assert nn.relu is tf.nn.relu and train.Saver is tf.train.Saver


@pytest.mark.parametrize("name", ["tf.contrib", "tf.nn.ctc_loss", "tf.train.FtrlOptimizer",
                                  "tf.summary.histogram", "tf.layers.Dense", "tf.io.decode_csv",
                                  "tf.losses.huber_loss", "tf.random.shuffle"])
def test_unsupported_names_raise_an_error_that_names_them(name):
    module = tf
    *path, last = name.split(".")[1:]
    for part in path:
        module = getattr(module, part)
    with pytest.raises(AttributeError, match=f"{name.replace('.', '[.]')} is not supported"):
        getattr(module, last)
    assert not hasattr(module, last)


def test_unsupported_arguments_are_refused_by_name():
    with pytest.raises(tf.UnsupportedError, match="constraint"):
        tf.Variable(1.0, constraint=lambda v: v)
    with pytest.raises(tf.UnsupportedError, match="noise_shape"):
        tf.nn.dropout(tf.ones([2, 2]), 0.5, noise_shape=[2, 1])


# ---- argument spellings and dtype strings ------------------------------------------------------


def test_placeholder_dtype_strings_and_shapes():
    assert tf.placeholder("float").dtype == tf.float32
    assert tf.placeholder("float").shape.rank is None  # None: unknown rank
    assert tf.placeholder("double", 3).shape.as_list() == [3]  # an int is one dimension
    assert tf.placeholder(tf.int32, shape=(100)).get_shape().as_list() == [100]
    assert tf.placeholder(tf.uint8, (None, 784)).get_shape().as_list() == [None, 784]
    assert tf.placeholder(tf.bool, [2, 3]).dtype == tf.bool


def test_reduce_spellings():
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    out = run([tf.reduce_sum(x, reduction_indices=[1]), tf.reduce_sum(input_tensor=x, axis=0),
               tf.reduce_mean(x, reduction_indices=1, keep_dims=True), tf.reduce_max(x),
               tf.reduce_sum(x, 1, True)])
    np.testing.assert_allclose(out[0], [3, 7])
    np.testing.assert_allclose(out[1], [4, 6])
    np.testing.assert_allclose(out[2], [[1.5], [3.5]])
    assert out[3] == 4 and out[4].shape == (2, 1)
    with pytest.raises(ValueError, match="not both"):
        tf.reduce_sum(x, axis=0, reduction_indices=0)


def test_argmax_third_positional_argument_is_the_name_and_dimension_is_axis():
    x = tf.constant([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    a, b = tf.argmax(x, 1, "best"), tf.argmax(x, dimension=0)
    assert a.op.name == "best" and a.dtype == tf.int64
    out_a, out_b = run([a, b])
    np.testing.assert_array_equal(out_a, [1, 0])
    np.testing.assert_array_equal(out_b, [1, 0, 0])


def test_cast_to_float_string_and_equal():
    correct = tf.equal(tf.constant([1, 2, 3]), tf.constant([1, 0, 3]))
    acc = tf.reduce_mean(tf.cast(correct, "float"))
    assert acc.dtype == tf.float32 and run(acc) == pytest.approx(2 / 3)


def test_constant_fills_a_short_list_with_its_last_element_as_tf1_does():
    np.testing.assert_array_equal(run(tf.constant([1, 2], shape=[2, 2])), [[1, 2], [2, 2]])
    np.testing.assert_array_equal(run(tf.constant(0.1, shape=[3])), np.float32([0.1] * 3))
    with pytest.raises(TypeError, match="too many elements"):
        tf.constant([1, 2, 3], shape=[2])


def test_zeros_ones_accept_an_int_shape_and_random_normal_a_tensor_stddev():
    assert tf.zeros(3).shape.as_list() == [3] and tf.ones((2, 2), tf.int32).dtype == tf.int32
    tf.set_random_seed(1)
    draw = tf.random_normal([20000], 1.0, tf.sqrt(4.0))
    values = run(draw)
    assert abs(values.mean() - 1) < 0.05 and abs(values.std() - 2) < 0.05
    t = run(tf.random.truncated_normal([20000], stddev=0.1))
    assert np.abs(t).max() <= 0.2 + 1e-6


def test_variable_takes_tf1_positional_order_and_numbers():
    v = tf.Variable(0, name="global_step", trainable=False)
    w = tf.Variable(np.ones(3), False)  # second positional argument: trainable
    x = tf.Variable(2.5)
    assert v.dtype == tf.int32 and w.dtype == tf.float64 and x.dtype == tf.float32
    assert tf.trainable_variables() == [x]
    assert set(tf.global_variables()) == {v, w, x}
    assert isinstance(tf.get_variable("k", [2]), tf.Variable)
    assert isinstance(x, tf.Variable) and not isinstance(tf.constant(1.0), tf.Variable)


def test_variable_scope_reuse_and_name_scope():
    with tf.variable_scope("layer"):
        w = tf.get_variable("w", [2], initializer=tf.zeros_initializer())
    with tf.variable_scope("layer", reuse=True):
        assert tf.get_variable("w", [2]) is w
    with tf.name_scope("hidden1"):
        b = tf.Variable(tf.zeros([2]), name="biases")
    assert w.op.name == "layer/w" and b.op.name == "hidden1/biases"


def test_div_is_python2_division():
    assert run(tf.div(7, 2)) == 3 and run(tf.div(7.0, 2.0)) == 3.5


# ---- nn ------------------------------------------------------------------------------------------


def test_dropout_second_positional_argument_is_keep_prob():
    x = tf.ones([100, 100])
    kept = run(tf.nn.dropout(x, 0.25))
    assert set(np.unique(kept)) <= {0.0, 4.0}  # kept values scaled by 1 / keep_prob
    assert 0.2 < (kept > 0).mean() < 0.3
    by_rate = run(tf.nn.dropout(x, rate=0.25))
    assert set(np.unique(by_rate)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.7 < (by_rate > 0).mean() < 0.8


def test_dropout_with_a_keep_prob_placeholder():
    x = tf.placeholder(tf.float32, [None, 50])
    keep_prob = tf.placeholder(tf.float32)  # unknown rank, fed a scalar
    y = tf.nn.dropout(x, keep_prob)
    assert y.shape.as_list() == [None, 50]
    ones = np.ones((40, 50), np.float32)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: ones, keep_prob: 1.0}), ones)
        half = sess.run(y, {x: ones, keep_prob: 0.5})
        again = sess.run(y, {x: ones, keep_prob: 0.5})
    assert set(np.unique(half)) <= {0.0, 2.0} and 0.4 < (half > 0).mean() < 0.6
    assert not np.array_equal(half, again)  # a new mask every run
    dx, = tf.gradients(tf.reduce_sum(y), [x])
    with tf.Session() as sess:
        mask_grad = sess.run(dx, {x: ones, keep_prob: 1.0})
    np.testing.assert_array_equal(mask_grad, ones)


def test_softmax_cross_entropy_v1_stops_gradients_into_labels_and_v2_does_not():
    labels = tf.constant([[0.2, 0.8]])
    logits = tf.constant([[1.0, 2.0]])
    v1 = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    v2 = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
    assert tf.gradients(v1, [labels]) == [None]
    assert tf.gradients(v2, [labels])[0] is not None
    np.testing.assert_allclose(*run([v1, v2]), rtol=1e-6)
    with pytest.raises(ValueError, match="named arguments"):
        tf.nn.softmax_cross_entropy_with_logits(labels, logits)


def test_in_top_k_follows_tf1_ties_range_and_nonfinite_rules():
    predictions = tf.constant([[0.1, 0.9, 0.9, 0.0], [0.5, 0.2, 0.1, 0.2],
                               [0.1, 0.2, 0.3, 0.4], [np.nan, 1.0, 0.0, 0.0]])
    targets = tf.constant([2, 1, 7, 1])
    top1 = run(tf.nn.in_top_k(predictions, targets, 1))
    top2 = run(tf.nn.in_top_k(predictions, targets, 2))
    np.testing.assert_array_equal(top1, [True, False, False, False])
    np.testing.assert_array_equal(top2, [True, True, False, False])  # ties at 2nd place: in


def test_conv2d_max_pool_bias_add_in_tf1_spelling():
    x = tf.placeholder(tf.float32, [None, 4, 4, 1])
    w = tf.ones([2, 2, 1, 3])
    y = tf.nn.max_pool(tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, 1, 1, 1],
                                                   padding="SAME"), tf.zeros([3])),
                       ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    assert y.get_shape().as_list() == [None, 2, 2, 3]
    out = run(y, {x: np.ones((1, 4, 4, 1))})
    assert out.shape == (1, 2, 2, 3) and out.max() == 4


# ---- training ------------------------------------------------------------------------------------


def test_global_step_is_incremented_by_each_minimize_run():
    w = tf.Variable(1.0)
    step = tf.Variable(0, name="global_step", trainable=False)
    train = tf.train.GradientDescentOptimizer(0.1).minimize(tf.square(w), global_step=step)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(train)
        assert sess.run(step) == 3 and sess.run(w) == pytest.approx(0.8 ** 3)


def test_two_minimize_ops_with_var_lists_in_one_run():
    a, b = tf.Variable(1.0), tf.Variable(2.0)
    loss_a, loss_b = tf.square(a * b), tf.square(a + b)
    train_a = tf.train.GradientDescentOptimizer(0.1).minimize(loss_a, var_list=[a])
    train_b = tf.train.GradientDescentOptimizer(0.1).minimize(loss_b, var_list=[b])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _, _, la, lb = sess.run([train_a, train_b, loss_a, loss_b])
        # both updates read the values from before the run, and each touches only its var_list
        assert (la, lb) == (4.0, 9.0)
        assert sess.run(a) == pytest.approx(1 - 0.1 * 2 * 1 * 2 * 2)
        assert sess.run(b) == pytest.approx(2 - 0.1 * 2 * 3)


@pytest.mark.parametrize("make", [
    lambda: tf.train.MomentumOptimizer(0.1, 0.9),
    lambda: tf.train.RMSPropOptimizer(0.01),
    lambda: tf.train.AdagradOptimizer(0.1),
    lambda: tf.train.AdamOptimizer(0.1),
])
def test_optimizers_reduce_a_quadratic(make):
    w = tf.Variable([3.0, -2.0])
    loss = tf.reduce_sum(tf.square(w))
    train = make().minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run(loss)
        for _ in range(20):
            sess.run(train)
        assert sess.run(loss) < before


def test_saver_round_trip_into_a_new_session(tmp_path):
    w = tf.Variable(tf.random_normal([3, 2]), name="w")
    step = tf.Variable(7, name="global_step", trainable=False)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        saved = sess.run(w)
        path = saver.save(sess, str(tmp_path / "model.ckpt"))
        stepped = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=step)
    assert path == str(tmp_path / "model.ckpt") and stepped == path + "-7"
    assert tf.train.latest_checkpoint(str(tmp_path)) == stepped
    with tf.Session() as sess:
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), saved)


# ---- sessions ------------------------------------------------------------------------------------


def test_session_is_the_default_inside_with_and_eval_and_run_use_it():
    x = tf.placeholder(tf.float32, [2])
    v = tf.Variable([1.0, 2.0])
    inc = tf.assign_add(v, x)
    with tf.Session() as sess:
        assert tf.get_default_session() is sess
        tf.global_variables_initializer().run()
        inc.op.run(feed_dict={x: [1.0, 1.0]})
        np.testing.assert_array_equal(v.eval(), [2.0, 3.0])
        np.testing.assert_array_equal((x * 2).eval(feed_dict={x: [1.0, 2.0]}), [2.0, 4.0])


def test_interactive_session_installs_itself_until_closed():
    c = tf.constant([1.0, 2.0]) * 2
    sess = tf.InteractiveSession()
    try:
        assert tf.get_default_session() is sess
        np.testing.assert_array_equal(c.eval(), [2.0, 4.0])
    finally:
        sess.close()
    with pytest.raises(ValueError, match="no default session"):
        c.eval()


def test_graph_as_default_and_session_of_that_graph():
    g = tf.Graph()
    with g.as_default():
        assert tf.get_default_graph() is g
        c = tf.constant(3.0)
        with tf.Session() as sess:
            assert sess.graph is g and sess.run(c) == 3.0
    assert tf.get_default_graph() is not g


# ---- summaries, app, gfile -----------------------------------------------------------------------


def test_summaries_go_to_a_csv_and_the_graph_to_a_picture(tmp_path):
    assert tf.summary.merge_all() is None
    x = tf.placeholder(tf.float32)
    with tf.name_scope("train"):
        tf.summary.scalar("loss", x * 2)
    tf.summary.scalar("rate", tf.constant(0.5))
    merged = tf.summary.merge_all()
    writer = tf.summary.FileWriter(str(tmp_path / "logs"), tf.get_default_graph())
    with tf.Session() as sess:
        for step in range(3):
            writer.add_summary(sess.run(merged, {x: float(step)}), step)
    writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag="acc", simple_value=0.9)]), 3)
    writer.close()
    with open(tmp_path / "logs" / "scalars.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["tag"], float(r["value"])) for r in rows[:2]] == [
        ("0", "train/loss", 0.0), ("0", "rate", 0.5)]
    assert rows[-1]["tag"] == "acc" and len(rows) == 7
    assert (tmp_path / "logs" / "graph.dot").read_text().startswith("digraph")
    if (tmp_path / "logs" / "graph.png").exists():
        assert (tmp_path / "logs" / "graph.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="single value"):
        tf.summary.scalar("bad", tf.ones([3]))


def test_app_run_parses_flags_and_exits_with_mains_result(monkeypatch):
    tf.app.flags.DEFINE_integer("compat_test_steps", 5, "steps")
    seen = []

    def main(argv):
        seen.append((argv, tf.app.flags.FLAGS.compat_test_steps))
        return 3

    with pytest.raises(SystemExit) as exit_info:
        tf.app.run(main=main, argv=["prog", "--compat_test_steps=9", "--other", "x"])
    assert exit_info.value.code == 3 and seen == [(["prog", "--other", "x"], 9)]
    monkeypatch.setattr(sys, "argv", ["prog"])
    with pytest.raises(SystemExit):
        tf.app.run(main=lambda argv: None)


def test_gfile_helpers(tmp_path):
    d = str(tmp_path / "a" / "b")
    assert not tf.io.gfile.exists(d)
    tf.io.gfile.makedirs(d)
    tf.gfile.MakeDirs(d)  # existing is fine
    assert tf.gfile.Exists(d) and tf.io.gfile.isdir(d)
    tf.io.gfile.rmtree(str(tmp_path / "a"))
    assert not os.path.exists(tmp_path / "a")


# ---- the MNIST reader ----------------------------------------------------------------------------


def test_read_data_sets_split_dtypes_and_shapes():
    mnist = input_data.read_data_sets("MNIST_data/", one_hot=True)
    assert (mnist.train.num_examples, mnist.validation.num_examples,
            mnist.test.num_examples) == (55000, 5000, 10000)
    assert mnist.train.images.shape == (55000, 784) and mnist.train.images.dtype == np.float32
    assert mnist.train.images.max() == 1.0 and mnist.train.images.min() == 0.0
    assert mnist.train.labels.shape == (55000, 10) and (mnist.train.labels.sum(1) == 1).all()
    raw = input_data.read_data_sets("MNIST_data/", dtype=tf.uint8, reshape=False)
    assert raw.test.images.shape == (10000, 28, 28, 1) and raw.test.images.dtype == np.uint8
    assert raw.train.labels.dtype == np.uint8 and raw.train.labels.shape == (55000,)
    # the validation set is the FIRST 5000 training images (TF's split), train the rest
    (_, labels), _ = sg.datasets.mnist.load_raw()
    np.testing.assert_array_equal(raw.validation.labels, labels[:5000])
    np.testing.assert_array_equal(raw.train.labels[:10], labels[5000:5010])
    assert not os.path.exists("MNIST_data")  # nothing downloaded or created


def test_next_batch_shuffles_per_epoch_and_carries_the_remainder():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    data = input_data.DataSet(images, np.arange(10), dtype=tf.uint8, seed=0)
    seen = [data.next_batch(4)[1] for _ in range(2)]
    last, = data.next_batch(4)[1:]  # 2 left of epoch 1, then 2 of epoch 2
    assert data.epochs_completed == 1
    first_epoch = np.concatenate(seen + [last[:2]])
    assert sorted(first_epoch) == list(range(10))  # every example once in the epoch
    assert len(set(last[2:]) | set(data.next_batch(8)[1])) == 10
    ordered = input_data.DataSet(images, np.arange(10), dtype=tf.uint8)
    np.testing.assert_array_equal(ordered.next_batch(3, shuffle=False)[1], [0, 1, 2])
    fake = input_data.read_data_sets("", fake_data=True, one_hot=True)
    xs, ys = fake.train.next_batch(2, fake_data=True)
    assert len(xs[0]) == 784 and ys[0][0] == 1


def test_flags_parse_types_and_booleans_and_leave_unknown_arguments():
    flags = tf.app.flags
    flags.DEFINE_string("compat_test_dir", "/tmp/x", "a directory")
    flags.DEFINE_float("compat_test_rate", 0.5, "a rate")
    flags.DEFINE_boolean("compat_test_fake", False, "fake data")
    flags.DEFINE_bool("compat_test_shuffle", True, "shuffle")
    rest = flags.FLAGS(["prog", "--compat_test_dir", "/data", "--compat_test_rate=0.1",
                        "--compat_test_fake", "--nocompat_test_shuffle", "--unknown=3", "pos"])
    assert rest == ["prog", "--unknown=3", "pos"]
    FLAGS = flags.FLAGS  # noqa: N806 - TF1's spelling
    assert (FLAGS.compat_test_dir, FLAGS.compat_test_rate) == ("/data", 0.1)
    assert FLAGS.compat_test_fake is True and FLAGS.compat_test_shuffle is False
    with pytest.raises(AttributeError, match="no flag --compat_test_missing"):
        FLAGS.compat_test_missing  # noqa: B018


def test_placement_and_configuration_are_accepted():
    with tf.device("/cpu:0"):
        c = tf.constant(2.0) * 3
    config = tf.ConfigProto(allow_soft_placement=True,
                            gpu_options=tf.GPUOptions(allow_growth=True))
    with tf.Session(config=config) as sess:
        assert sess.run(c) == 6.0
    with pytest.raises(tf.UnsupportedError, match="shape"):
        tf.Variable(1.0, shape=[None])

"""Random ops: distributions, new values per run, TF1's seed rule, tensor parameters."""

import numpy as np
import pytest

import symgraph as sg
from symgraph.ops import random as rnd
from symgraph.registry import NOT_DIFFERENTIABLE


@pytest.fixture(autouse=True)
def graph():
    g = sg.Graph()
    with g.as_default():
        yield g


def run(fetches, feed=None):
    with sg.Session() as sess:
        return sess.run(fetches, feed)


@pytest.mark.parametrize("dtype", [sg.float32, sg.float64])
def test_random_normal_moments_and_dtype(dtype):
    x = run(sg.random_normal([20000], mean=2.0, stddev=3.0, dtype=dtype, seed=1))
    assert x.dtype == dtype.np and x.shape == (20000,)
    assert abs(x.mean() - 2.0) < 0.1
    assert abs(x.std() - 3.0) < 0.1


def test_truncated_normal_stays_within_two_stddev():
    x = run(sg.truncated_normal([20000], mean=1.0, stddev=0.5, seed=2))
    assert np.all(np.abs(x - 1.0) <= 1.0)
    # the std of a unit normal truncated to [-2, 2] is 0.8796
    assert abs(x.std() - 0.5 * 0.8796) < 0.01
    assert np.abs(x - 1.0).max() > 0.95  # the tails up to 2 stddev are there


def test_random_uniform_float_and_int():
    x = run(sg.random_uniform([20000], minval=-2.0, maxval=3.0, seed=3))
    assert x.dtype == np.float32
    assert x.min() >= -2.0 and x.max() < 3.0
    assert abs(x.mean() - 0.5) < 0.05
    k = run(sg.random_uniform([2000], minval=3, maxval=7, dtype=sg.int64, seed=4))
    assert k.dtype == np.int64
    assert set(np.unique(k)) == {3, 4, 5, 6}
    u = run(sg.random_uniform([100], seed=5))  # default [0, 1)
    assert u.min() >= 0.0 and u.max() < 1.0


def test_each_run_draws_new_values():
    x = sg.random_normal([8], seed=7)
    with sg.Session() as sess:
        a, b = sess.run(x), sess.run(x)
    assert not np.array_equal(a, b)


def test_one_run_gives_one_value_to_every_consumer():
    x = sg.random_normal([8])
    a, b, d = run([x, x * 1.0, x - x])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(d, np.zeros(8, np.float32))


def test_op_seed_replays_in_a_new_session():
    x = sg.random_uniform([5], seed=11)
    with sg.Session() as sess:
        first = [sess.run(x), sess.run(x)]
    with sg.Session() as sess:
        second = [sess.run(x), sess.run(x)]
    np.testing.assert_array_equal(first, second)


def build_and_draw(graph_seed, op_seed, extra_ops=0):
    g = sg.Graph()
    with g.as_default():
        if graph_seed is not None:
            sg.set_random_seed(graph_seed)
        for _ in range(extra_ops):
            sg.constant(0.0)
        x = sg.random_normal([4], seed=op_seed)
        with sg.Session(graph=g) as sess:
            return sess.run(x)


def test_graph_seed_makes_rebuilt_graphs_reproducible():
    a = build_and_draw(42, None)
    b = build_and_draw(42, None)
    np.testing.assert_array_equal(a, b)
    # the op seed is derived from the node's position: another position, other values
    assert not np.array_equal(a, build_and_draw(42, None, extra_ops=1))
    assert not np.array_equal(a, build_and_draw(43, None))


def test_op_seed_alone_uses_the_default_graph_seed():
    a = build_and_draw(None, 5)
    np.testing.assert_array_equal(a, build_and_draw(None, 5, extra_ops=3))
    np.testing.assert_array_equal(a, build_and_draw(rnd.DEFAULT_GRAPH_SEED, 5))
    assert not np.array_equal(a, build_and_draw(None, 6))


def test_no_seed_is_nondeterministic():
    assert not np.array_equal(build_and_draw(None, None), build_and_draw(None, None))


def test_seed_rule(graph):
    assert rnd.get_seed(None) is None
    assert rnd.get_seed(3) == (rnd.DEFAULT_GRAPH_SEED, 3)
    sg.set_random_seed(9)
    assert graph.seed == 9
    assert rnd.get_seed(3) == (9, 3)
    assert rnd.op_seed(graph, 3) == (9, 3)  # the form dropout uses
    assert rnd.get_seed(None) == (9, graph.version)
    x = sg.random_normal([2])
    assert x.op.attrs["seed"] == (9, x.op.id)
    sg.set_random_seed(None)
    assert rnd.get_seed(None) is None


def test_aliases():
    assert sg.random.normal is sg.random_normal
    assert sg.random.uniform is sg.random_uniform
    assert sg.random.truncated_normal is sg.truncated_normal
    assert sg.random.set_seed is sg.set_random_seed


def test_tensor_parameters_and_their_gradients():
    mean = sg.placeholder(sg.float64, [])
    stddev = sg.placeholder(sg.float64, [])
    x = sg.random_normal([4000], mean=mean, stddev=stddev, dtype=sg.float64, seed=1)
    dmean, dstd = sg.gradients(sg.reduce_sum(x), [mean, stddev])
    with sg.Session() as sess:
        v, gm = sess.run([x, dmean], {mean: 5.0, stddev: 0.1})
    assert abs(v.mean() - 5.0) < 0.01 and abs(v.std() - 0.1) < 0.01
    assert gm == 4000.0  # d/dmean sum(z * s + mean) = n
    lo = sg.constant(1.0)
    u = run(sg.random_uniform([1000], minval=lo, maxval=sg.constant(1.5), seed=2))
    assert u.min() >= 1.0 and u.max() < 1.5


def test_random_ops_are_declared_not_differentiable():
    for name in ("random_normal", "truncated_normal", "random_uniform"):
        assert sg.REGISTRY[name].grad is NOT_DIFFERENTIABLE
    w = sg.Variable(1.0)
    z = sg.random_normal([])
    (dw,) = sg.gradients(w * z, [w])  # the draw is a constant to autodiff
    with sg.Session() as sess:
        sess.run(w.initializer)
        zv, dwv = sess.run([z, dw])
    assert dwv == zv


def test_bad_arguments():
    with pytest.raises(ValueError, match="fully known"):
        sg.random_normal([None, 3])
    with pytest.raises(TypeError, match="static shape"):
        sg.random_normal(sg.constant([2, 3]))
    with pytest.raises(ValueError, match="needs maxval"):
        sg.random_uniform([3], dtype=sg.int32)
    with pytest.raises(ValueError, match="minval < maxval"):
        sg.random_uniform([3], minval=2.0, maxval=1.0)
    with pytest.raises(TypeError, match="floating"):
        sg.random_normal([3], dtype=sg.int32)


def test_float16_draws():
    x = run(sg.truncated_normal([100], dtype=sg.float16, seed=1))
    assert x.dtype == np.float16 and np.all(np.abs(x) <= 2.0)

"""Initializers: fans, empirical variances on large shapes, constants, seeds, TF1 aliases."""

import math

import numpy as np
import pytest

import symgraph as sg
from symgraph import initializers as init


@pytest.fixture(autouse=True)
def graph():
    g = sg.Graph()
    with g.as_default():
        yield g


def value(initializer, shape, dtype=sg.float32):
    t = initializer(shape, dtype=dtype)
    assert isinstance(t, sg.Tensor)
    assert t.shape == list(shape) and t.dtype == dtype
    with sg.Session() as sess:
        return sess.run(t)


def test_fans_dense_and_conv():
    assert init.compute_fans([]) == (1, 1)
    assert init.compute_fans([7]) == (7, 7)
    assert init.compute_fans([20, 30]) == (20, 30)
    assert init.compute_fans([3, 5, 16, 32]) == (3 * 5 * 16, 3 * 5 * 32)  # HWIO


DENSE = (200, 300)
CONV = (3, 3, 40, 60)  # fan_in 360, fan_out 540


@pytest.mark.parametrize("factory, shape, variance", [
    (lambda: init.glorot_uniform(seed=1), DENSE, 2.0 / 500),
    (lambda: init.glorot_normal(seed=2), DENSE, 2.0 / 500),
    (lambda: init.he_normal(seed=3), DENSE, 2.0 / 200),
    (lambda: init.he_uniform(seed=4), DENSE, 2.0 / 200),
    (lambda: init.glorot_uniform(seed=5), CONV, 2.0 / (360 + 540)),
    (lambda: init.he_normal(seed=6), CONV, 2.0 / 360),
    (lambda: init.variance_scaling(3.0, "fan_out", "uniform", seed=7), CONV, 3.0 / 540),
    (lambda: init.variance_scaling(1.0, "fan_in", "untruncated_normal", seed=8), DENSE, 1 / 200),
    (lambda: init.variance_scaling(1.0, "fan_avg", "normal", seed=9), DENSE, 1 / 250),
    (lambda: init.lecun_normal(seed=10), DENSE, 1.0 / 200),
])
def test_empirical_variance(factory, shape, variance):
    x = value(factory(), shape)
    assert abs(x.mean()) < 0.05 * math.sqrt(variance)
    assert x.var() == pytest.approx(variance, rel=0.03)


def test_uniform_limits_and_truncation():
    limit = math.sqrt(6.0 / (200 + 300))
    x = value(init.glorot_uniform(seed=1), DENSE)
    assert np.abs(x).max() <= limit and np.abs(x).max() > 0.99 * limit
    # truncated: no value beyond 2 stddev of the untruncated normal it was drawn from
    stddev = math.sqrt(2.0 / 200) / 0.87962566103423978
    y = value(init.he_normal(seed=2), DENSE)
    assert np.abs(y).max() <= 2 * stddev * (1 + 1e-6)


def test_plain_distributions():
    x = value(init.random_normal(mean=1.0, stddev=0.5, seed=1), [100, 100])
    assert x.mean() == pytest.approx(1.0, abs=0.02) and x.std() == pytest.approx(0.5, rel=0.03)
    y = value(init.truncated_normal(stddev=2.0, seed=2), [100, 100])
    assert np.abs(y).max() <= 4.0 and y.std() == pytest.approx(2 * 0.8796, rel=0.03)
    u = value(init.random_uniform(-1.0, 3.0, seed=3), [100, 100])
    assert u.min() >= -1.0 and u.max() < 3.0 and u.mean() == pytest.approx(1.0, abs=0.05)
    k = value(init.random_uniform(0, 5, seed=4), [50], dtype=sg.int32)
    assert k.min() >= 0 and k.max() <= 4


def test_constants():
    np.testing.assert_array_equal(value(init.zeros(), [2, 3]), np.zeros((2, 3)))
    np.testing.assert_array_equal(value(init.ones(), [4], sg.float64), np.ones(4))
    np.testing.assert_array_equal(value(init.zeros(), [2], sg.bool), [False, False])
    np.testing.assert_array_equal(value(init.constant(2.5), [2, 2]), np.full((2, 2), 2.5))
    np.testing.assert_array_equal(value(init.constant([1, 2, 3, 4]), [2, 2]),
                                  [[1, 2], [3, 4]])
    np.testing.assert_array_equal(value(init.constant(7, dtype=sg.int64), [3], sg.int64),
                                  [7, 7, 7])
    with pytest.raises(ValueError, match="cannot fill shape"):
        init.constant([1, 2, 3])([2, 2])


def test_dtype_comes_from_the_call_or_the_factory():
    t = init.he_normal()([3, 4], dtype=sg.float64)
    assert t.dtype == sg.float64
    assert init.ones(dtype=sg.float64)([2]).dtype == sg.float64
    assert init.ones()([2]).dtype == sg.float32
    with pytest.raises(TypeError, match="floating"):
        init.glorot_uniform()([2, 2], dtype=sg.int32)


def draw_in_new_graph(factory, graph_seed=None):
    g = sg.Graph()
    with g.as_default():
        if graph_seed is not None:
            sg.set_random_seed(graph_seed)
        t = factory()([30, 20])
        with sg.Session(graph=g) as sess:
            return sess.run(t)


def test_seeds_make_initial_values_reproducible():
    a = draw_in_new_graph(lambda: init.he_normal(seed=1))
    np.testing.assert_array_equal(a, draw_in_new_graph(lambda: init.he_normal(seed=1)))
    assert not np.array_equal(a, draw_in_new_graph(lambda: init.he_normal(seed=2)))
    b = draw_in_new_graph(init.glorot_uniform, graph_seed=3)
    np.testing.assert_array_equal(b, draw_in_new_graph(init.glorot_uniform, graph_seed=3))
    assert not np.array_equal(draw_in_new_graph(init.glorot_uniform),
                              draw_in_new_graph(init.glorot_uniform))


def test_variables_from_initializers_reinitialize_the_same_with_a_seed():
    w = sg.Variable(lambda: init.glorot_normal(seed=4)([5, 5]), name="w")
    with sg.Session() as sess:
        sess.run(w.initializer)
        first = sess.run(w)
    with sg.Session() as sess:
        sess.run(w.initializer)
        np.testing.assert_array_equal(first, sess.run(w))


def test_bad_configuration():
    with pytest.raises(ValueError, match="mode"):
        init.variance_scaling(mode="fan_sum")
    with pytest.raises(ValueError, match="distribution"):
        init.variance_scaling(distribution="cauchy")
    with pytest.raises(ValueError, match="positive"):
        init.variance_scaling(scale=0.0)


def test_tf1_names():
    assert sg.initializers is init
    assert sg.zeros_initializer is init.zeros
    assert sg.glorot_uniform_initializer is init.glorot_uniform
    assert sg.variance_scaling_initializer is init.variance_scaling
    assert isinstance(init.get("he_uniform"), init.VarianceScaling)
    assert init.get("he_uniform").distribution == "uniform"
    assert "GlorotUniform" in repr(init.glorot_uniform(seed=1))

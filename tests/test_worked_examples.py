"""The worked examples of the issue, end to end: build, differentiate, run, compare by hand."""

import numpy as np
import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def fresh_default_graph():
    sg.reset_default_graph()
    yield
    sg.reset_default_graph()


def test_f_equals_x_plus_y_times_z():
    """f = (x + y) z at (-2, 5, -4): f = -12, df/dx = df/dy = z = -4, df/dz = x + y = 3."""
    x = sg.placeholder(sg.float64, [], name="x")
    y = sg.placeholder(sg.float64, [], name="y")
    z = sg.placeholder(sg.float64, [], name="z")
    f = (x + y) * z
    grads = sg.gradients(f, [x, y, z])
    with sg.Session() as sess:
        value, (dx, dy, dz) = sess.run([f, grads], {x: -2.0, y: 5.0, z: -4.0})
    assert value == -12.0
    assert (dx, dy, dz) == (-4.0, -4.0, 3.0)


def test_reduce_sum_of_x_times_y_plus_z():
    """c = sum(x*y + z): dc/dx = y, dc/dy = x, dc/dz = ones (the TF1 tutorial snippet)."""
    rng = np.random.default_rng(0)
    xv, yv, zv = (rng.standard_normal((3, 4)) for _ in range(3))
    x = sg.placeholder(sg.float64, [3, 4])
    y = sg.placeholder(sg.float64, [3, 4])
    z = sg.placeholder(sg.float64, [3, 4])
    c = sg.reduce_sum(x * y + z)
    grads = sg.gradients(c, [x, y, z])
    assert [g.shape for g in grads] == [(3, 4)] * 3
    with sg.Session() as sess:
        cv, (gx, gy, gz) = sess.run([c, grads], {x: xv, y: yv, z: zv})
    np.testing.assert_allclose(cv, np.sum(xv * yv + zv))
    np.testing.assert_allclose(gx, yv)
    np.testing.assert_allclose(gy, xv)
    np.testing.assert_array_equal(gz, np.ones((3, 4)))


def test_fan_out_x_times_x_plus_x():
    """y = x*x + x uses x three times; the contributions add up to dy/dx = 2x + 1."""
    x = sg.placeholder(sg.float32, [5])
    y = x * x + x
    dx, = sg.gradients(y, x)
    xv = np.array([-2.0, -0.5, 0.0, 1.0, 3.0], np.float32)
    with sg.Session() as sess:
        np.testing.assert_allclose(sess.run(dx, {x: xv}), 2 * xv + 1)


def test_third_derivative_of_x_cubed():
    """Gradients are graphs, so they differentiate again: 3x^2, 6x, then 6."""
    x = sg.placeholder(sg.float64, [4])
    y = x ** 3
    d1, = sg.gradients(y, x)
    d2, = sg.gradients(d1, x)
    d3, = sg.gradients(d2, x)
    xv = np.array([-1.5, 0.5, 1.0, 2.0])
    with sg.Session() as sess:
        v1, v2, v3 = sess.run([d1, d2, d3], {x: xv})
    np.testing.assert_allclose(v1, 3 * xv ** 2)
    np.testing.assert_allclose(v2, 6 * xv)
    np.testing.assert_allclose(v3, np.full(4, 6.0))

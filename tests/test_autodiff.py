"""The gradient driver (compiler/autodiff.py): fan-out, unbroadcasting, stops, None for paths
that carry no gradient, grad_ys, several ys, and the nodes it adds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import symgraph as sg
from symgraph.registry import REGISTRY


@pytest.fixture(autouse=True)
def _fresh_graph() -> Iterator[sg.Graph]:
    """Each test builds in its own default graph."""
    with sg.Graph().as_default() as graph:
        yield graph


def _run(fetches: Any, feed: dict | None = None) -> Any:
    return sg.Session().run(fetches, feed)


def test_worked_example_sum_times_z():
    """f = (x + y) * z at x=-2, y=5, z=-4 is -12 with gradients (-4, -4, 3)."""
    x, y, z = (sg.constant(v, dtype=sg.float64) for v in (-2.0, 5.0, -4.0))
    f = (x + y) * z
    grads = sg.gradients(f, [x, y, z])
    assert _run([f] + grads) == [-12.0, -4.0, -4.0, 3.0]


def test_worked_example_reduce_sum_of_products():
    """c = reduce_sum(x*y + z) on (3, 4) arrays has gradients (y, x, ones)."""
    rng = np.random.default_rng(0)
    xv, yv, zv = (rng.standard_normal((3, 4)) for _ in range(3))
    x, y, z = (sg.constant(v) for v in (xv, yv, zv))
    gx, gy, gz = _run(sg.gradients(sg.reduce_sum(x * y + z), [x, y, z]))
    np.testing.assert_array_equal(gx, yv)
    np.testing.assert_array_equal(gy, xv)
    np.testing.assert_array_equal(gz, np.ones((3, 4)))


def test_fan_out_accumulates():
    """x feeds two consumers: y = x*x + x gives 2x + 1."""
    x = sg.placeholder(sg.float64, [None])
    (g,) = sg.gradients(x * x + x, [x])
    xv = np.array([-1.5, 0.0, 2.0])
    np.testing.assert_allclose(_run(g, {x: xv}), 2 * xv + 1)


def test_third_derivative_of_cube():
    """d^3/dx^3 x**3 = 6: gradient rules are differentiable again, twice."""
    x = sg.placeholder(sg.float64, [])
    y = x ** 3
    (d1,) = sg.gradients(y, x)
    (d2,) = sg.gradients(d1, x)
    (d3,) = sg.gradients(d2, x)
    assert _run([d1, d2, d3], {x: 1.5}) == pytest.approx([3 * 1.5**2, 6 * 1.5, 6.0])


@pytest.mark.parametrize("batch", [5, 1])
def test_unbroadcast_bias_to_its_shape(batch):
    """x (None, 10) + b (10,): b's gradient has shape (10,) at run time, whatever the batch."""
    x = sg.placeholder(sg.float64, [None, 10])
    b = sg.constant(np.zeros(10))
    gx, gb = sg.gradients(sg.reduce_sum(x + b), [x, b])
    assert gb.shape == (10,)
    vx, vb = _run([gx, gb], {x: np.ones((batch, 10))})
    np.testing.assert_array_equal(vx, np.ones((batch, 10)))
    np.testing.assert_array_equal(vb, np.full(10, float(batch)))


@pytest.mark.parametrize("n", [5, 1])
def test_unbroadcast_unknown_dim_uses_run_time_sum_to(n):
    """x (None,) + y (5,): x may be 1 (stretched) or 5 (not); only run time tells."""
    x = sg.placeholder(sg.float64, [None])
    y = sg.constant(np.arange(5.0))
    (gx,) = sg.gradients(sg.reduce_sum(x + y), [x])
    assert gx.op.type == "sum_to"
    np.testing.assert_array_equal(_run(gx, {x: np.zeros(n)}), np.full(n, 5.0 / n))


def test_stop_gradient_blocks_its_path_only():
    """y = stop_gradient(x*x) + x: only the direct path counts."""
    x = sg.placeholder(sg.float64, [2])
    (g,) = sg.gradients(sg.stop_gradient(x * x) + x, [x])
    np.testing.assert_array_equal(_run(g, {x: [3.0, -1.0]}), [1.0, 1.0])
    assert sg.gradients(sg.stop_gradient(x * 2), [x]) == [None]


def test_stop_gradients_argument_treats_tensors_as_constants():
    """TF1's example: a = 0, b = 2a; d(a + b) wrt [a, b] with both stopped is [1, 1]."""
    a = sg.placeholder(sg.float64, [])
    b = 2 * a
    ga, gb = sg.gradients(a + b, [a, b], stop_gradients=[a, b])
    assert _run([ga, gb], {a: 0.0}) == [1.0, 1.0]
    # without the stop, b passes its gradient on to a
    ga, gb = sg.gradients(a + b, [a, b])
    assert _run([ga, gb], {a: 0.0}) == [3.0, 1.0]
    # a stopped intermediate: h = x*x is a constant, so d(h + x)/dx = 1
    x = sg.placeholder(sg.float64, [])
    h = x * x
    (gx,) = sg.gradients(h + x, [x], stop_gradients=[h])
    assert _run(gx, {x: 3.0}) == 1.0


def test_integer_and_bool_paths_give_none():
    """A path through integers or bools carries no gradient, explicitly None."""
    x = sg.placeholder(sg.float64, [3])
    through_int = sg.cast(sg.cast(x, sg.int32), sg.float64)
    assert sg.gradients(sg.reduce_sum(through_int), [x]) == [None]
    through_bool = sg.where(x > 0, sg.ones_like(x), sg.zeros_like(x))
    assert sg.gradients(sg.reduce_sum(through_bool), [x]) == [None]
    i = sg.placeholder(sg.int32, [3])
    assert sg.gradients(sg.reduce_sum(sg.cast(i, sg.float64) * x), [i]) == [None]
    # the float path beside an integer one still counts
    (g,) = sg.gradients(sg.reduce_sum(through_int + x), [x])
    np.testing.assert_array_equal(_run(g, {x: [0.5, 1.5, 2.5]}), np.ones(3))


def test_gradient_with_respect_to_an_intermediate_tensor():
    """h = 3x, y = h*h: dy/dh = 2h, with h's own value."""
    x = sg.placeholder(sg.float64, [2])
    h = x * 3
    (gh,) = sg.gradients(h * h, [h])
    np.testing.assert_array_equal(_run(gh, {x: [1.0, -2.0]}), [6.0, -12.0])


def test_grad_ys_weights_the_seed():
    """grad_ys replaces the ones that start the backward pass."""
    x = sg.placeholder(sg.float64, [3])
    w = np.array([1.0, -2.0, 0.5])
    (g,) = sg.gradients(x * x, [x], grad_ys=[w])
    xv = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(_run(g, {x: xv}), 2 * xv * w)


def test_list_of_ys_is_summed():
    """gradients([x*x, 3x], x) is the gradient of their sum: 2x + 3."""
    x = sg.placeholder(sg.float64, [2])
    (g,) = sg.gradients([x * x, 3 * x], x)
    np.testing.assert_array_equal(_run(g, {x: [1.0, -1.0]}), [5.0, 1.0])


def test_xs_that_do_not_reach_ys_give_none():
    """An unconnected tensor, and one computed from y, have no gradient."""
    x = sg.placeholder(sg.float64, [2])
    other = sg.placeholder(sg.float64, [2])
    y = sg.reduce_sum(x * 2)
    downstream = y * 3
    gx, go, gd = sg.gradients(y, [x, other, downstream])
    assert go is None and gd is None
    np.testing.assert_array_equal(_run(gx, {x: [0.0, 1.0]}), [2.0, 2.0])


def test_gradient_nodes_are_registered_ops_under_gradients_scope():
    """Gradients are ordinary graph nodes: registered ops, named under "gradients/"."""
    graph = sg.get_default_graph()
    x = sg.placeholder(sg.float64, [None, 3])
    w = sg.constant(np.ones((3, 2)))
    y = sg.reduce_mean(sg.tanh(x @ w) * sg.exp(x[:, :2]))
    before = len(graph.get_operations())
    sg.gradients(y, [x, w])
    added = graph.get_operations()[before:]
    assert added
    for node in added:
        assert REGISTRY[node.type] is node.opdef
        assert node.name.startswith("gradients/"), node.name
    before = len(graph.get_operations())
    sg.gradients(y, [x], name="second")
    assert all(n.name.startswith("second/") for n in graph.get_operations()[before:])


def test_gradient_errors_name_the_problem():
    """Integer ys and ill-fitting grad_ys are refused at build time."""
    x = sg.placeholder(sg.float64, [3])
    with pytest.raises(TypeError, match="floating ys"):
        sg.gradients(sg.cast(x, sg.int32), [x])
    with pytest.raises(ValueError, match="grad_ys has 2 entries for 1 ys"):
        sg.gradients(x * 2, [x], grad_ys=[np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="does not fit"):
        sg.gradients(x * 2, [x], grad_ys=[np.ones(4)])

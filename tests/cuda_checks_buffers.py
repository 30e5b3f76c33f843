"""The cuda device's buffers: the pool (buffers reused within a run, never while a view, fetch
or variable needs them; nothing allocated after the first run) and variables kept on the device.

Gated and set up by tests/cuda_common.py (imported below): run by tests/test_cuda.py
(simulator) and `make test-gpu` (GPU), never by a plain `pytest`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cuda_common import TOLERANCE, _ints, _mlp

import symgraph as sg


def test_buffer_pool_allocates_nothing_after_the_first_run() -> None:
    """A training step's second and later runs take every buffer from the pool."""
    with sg.Graph().as_default():
        model = _mlp(0.3)
        sess = sg.Session(device="cuda")
        sess.run(sg.global_variables_initializer())
        feed = {model["x"]: np.ones((4, 6), np.float32), model["y"]: np.array([0, 1, 2, 0])}
        sess.run([model["train"], model["loss"]], feed)
        stats = sess._device.stats
        first = stats.allocations
        for _ in range(3):
            sess.run([model["train"], model["loss"]], feed)
        assert first > 0 and stats.allocations == first


def test_variables_stay_on_the_device() -> None:
    """Updating variables copies nothing in or out after the first run (constants are copied
    once per plan); a fetch copies out only what it fetches."""
    with sg.Graph().as_default():
        v = sg.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
        w = sg.Variable(np.ones(3, np.float32))
        update = sg.group(v.assign(v * 0.5 + w), w.assign(w * 2.0))
        sess = sg.Session(device="cuda")
        sess.run(sg.global_variables_initializer())
        sess.run(update)
        stats = sess._device.stats
        before = (stats.copies_in, stats.copies_out, stats.allocations)
        for _ in range(3):
            sess.run(update)
        assert (stats.copies_in, stats.copies_out, stats.allocations) == before
        on_device = [sess._store.read(var.node) for var in (v, w)]
        assert all(hasattr(a, "copy_to_host") and not isinstance(a, np.ndarray)
                   for a in on_device)
        got = sess.run(v)
        assert stats.copies_out == before[1] + 1
    want = np.arange(6, dtype=np.float32).reshape(2, 3)
    ws = 1.0
    for _ in range(4):
        want, ws = want * 0.5 + ws, ws * 2.0
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _int_chain(y: sg.Tensor, n: int) -> sg.Tensor:
    """n rounds of ((y * 2 + 1) * 3 - y): integer ops, a kernel each (fusion takes floats), every
    value of y's shape."""
    for _ in range(n):
        y = (y * 2 + 1) * 3 - y
    return y


def _values_made(plan: Any) -> int:
    return sum(len(k.outputs) for k in plan.kernels)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_buffers_are_reused_within_a_run() -> None:
    """A chain of 40 same-shaped kernels holds a few buffers at once, not 40: a value's buffer
    goes back to the pool after its last reader has run, and a later step is lent it. Later
    runs allocate nothing."""
    value = _ints((4, 3), np.int32, -99, 99)
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.int32, [4, 3])
        y = _int_chain(x, 10)
        want = sg.Session(graph=graph, device="reference").run(y, {x: value})
        sess = sg.Session(graph=graph, device="cuda")
        got = sess.run(y, {x: value})
        plan = sess.plan_for(y, {x: value})
        stats = sess._device.stats
        first = stats.allocations
        again = [sess.run(y, {x: value}) for _ in range(2)]
    np.testing.assert_array_equal(got, want)
    for a in again:
        np.testing.assert_array_equal(a, want)
    assert _values_made(plan) >= 40, _values_made(plan)
    assert first <= 4, first  # the feed copied in, y, and two intermediates
    assert stats.allocations == first


def test_a_buffer_outlives_its_value_while_a_view_of_it_is_read() -> None:
    """a's last reader is a reshape; the reshape, an expand_dims of it and check_numerics (which
    passes its input through) view a's buffer and are read only after six matmuls of a's shape:
    the buffer stays out of the pool until the last view is read."""
    rng = np.random.default_rng(6)
    feed_value = rng.uniform(-1, 1, (4, 4)).astype(np.float32)
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [4, 4])
        w = sg.constant(rng.uniform(-1, 1, (4, 4)).astype(np.float32))
        u = sg.constant(rng.uniform(-0.5, 0.5, (4, 4)).astype(np.float32))
        a = x @ w
        r = sg.reshape(a, [2, 8])
        c = sg.debugging.check_numerics(sg.expand_dims(r, 0), "c")
        h = x
        for _ in range(6):  # (4, 4) buffers, each dropped after the next matmul
            h = h @ u
        y = sg.reshape(sg.squeeze(c, [0]), [4, 4]) - h
        want = sg.Session(graph=graph, device="reference").run(y, {x: feed_value})
        sess = sg.Session(graph=graph, device="cuda")
        got = sess.run(y, {x: feed_value})
        plan = sess.plan_for(y, {x: feed_value})
    assert not sess._device.stats.host_ops, sess._device.stats.host_ops
    assert sess._device.stats.allocations < _values_made(plan)  # buffers were lent again
    np.testing.assert_allclose(got, want, **TOLERANCE["float32"])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_fetched_values_and_variables_keep_their_buffers() -> None:
    """Same-shaped kernels run before and after an assignment and could be lent any buffer let
    go too early: w's, read through a view that is dropped at once; v's old one, fetched from
    before the run's assignment; v's new one, whose value no later step reads; an early fetched
    value's. Two runs agree with the reference, and so do the variables after them."""
    v0 = _ints((4, 3), np.int32, -50, 50)
    w0 = _ints((4, 3), np.int32, -50, 50, seed=2)
    feed_value = _ints((4, 3), np.int32, -50, 50, seed=1)
    with sg.Graph().as_default() as graph:
        v, w = sg.Variable(v0), sg.Variable(w0)
        x = sg.placeholder(sg.int32, [4, 3])
        early = x * 5 + 1
        t = sg.reshape(sg.reshape(w, [3, 4]) * 3, [4, 3])  # a view of w's buffer
        mid = _int_chain(early + t + v, 3)
        update = sg.group(v.assign(mid))
        late = _int_chain(mid * 7, 3)  # after the assignment lets v's old buffer go
        fetches = [v, early, late, update]
        results = {}
        for device in ("reference", "cuda"):
            sess = sg.Session(graph=graph, device=device)
            sess.run(sg.global_variables_initializer())
            runs = [sess.run(fetches, {x: feed_value})[:-1] for _ in range(2)]
            results[device] = (runs, sess.run([v, w]))
    np.testing.assert_array_equal(results["reference"][0][0][0], v0)
    for got, want in zip(results["cuda"][0], results["reference"][0]):
        for g, r in zip(got, want):
            np.testing.assert_array_equal(g, r)
    for g, r in zip(results["cuda"][1], results["reference"][1]):
        np.testing.assert_array_equal(g, r)

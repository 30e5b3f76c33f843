"""In-place updates on the cuda device: an optimizer's step writes each variable's own device
buffer, and a copy where the old value is still read.

Gated and set up by tests/cuda_common.py (imported below): run by tests/test_cuda.py
(simulator) and `make test-gpu` (GPU), never by a plain `pytest`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cuda_common import _vals

import symgraph as sg

UPDATE_OPTIMIZERS = {"adam": lambda: sg.train.AdamOptimizer(0.1),
                     "momentum": lambda: sg.train.MomentumOptimizer(0.1, 0.9)}


def _address(buf: Any) -> int:
    """Where a device array's memory starts (a GPU pointer; the simulator's NumPy array)."""
    pointer = getattr(buf, "device_ctypes_pointer", None)
    return pointer.value if pointer is not None else buf.__array_interface__["data"][0]


def _regression() -> tuple[sg.Tensor, dict, list[sg.Variable]]:
    """A 3-2 linear layer and a squared error: w (3, 2) and b (2,)."""
    rng = np.random.default_rng(11)
    x = sg.placeholder(sg.float32, [None, 3])
    t = sg.placeholder(sg.float32, [None, 2])
    w = sg.Variable(rng.uniform(-1, 1, (3, 2)).astype(np.float32), name="w")
    b = sg.Variable(np.array([0.5, -0.5], np.float32), name="b")
    loss = sg.reduce_mean(sg.square(x @ w + b - t))
    feed = {x: rng.standard_normal((4, 3)).astype(np.float32),
            t: rng.standard_normal((4, 2)).astype(np.float32)}
    return loss, feed, [w, b]


def _both(fetches: Any, feed: dict | None, sessions: dict, runs: int = 1) -> dict:
    """`runs` runs of `fetches` in each session: device -> list of results."""
    return {d: [s.run(fetches, feed) for _ in range(runs)] for d, s in sessions.items()}


def _assert_same(got: Any, want: Any) -> None:
    for g, w in zip(got, want):
        if g is not None or w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(UPDATE_OPTIMIZERS))
def test_optimizer_updates_write_each_variables_own_buffer(name: str) -> None:
    """Every Adam or Momentum step writes each weight and slot into the device buffer it read
    it from (plan.updates, all in the variable's own buffer): after the first run the store
    keeps the same buffers (no hand-over, no copy on the device) and the pool allocates
    nothing; five steps agree with the reference (losses, weights and slots)."""
    with sg.Graph().as_default():
        loss, feed, params = _regression()
        train = UPDATE_OPTIMIZERS[name]().minimize(loss)
        state = [v for v in sg.global_variables() if v.shape.rank]  # weights and slots
        assert len(state) == len(params) * (3 if name == "adam" else 2)
        sessions = {d: sg.Session(device=d) for d in ("reference", "cuda")}
        for sess in sessions.values():
            sess.run(sg.global_variables_initializer())
        device = sessions["cuda"]._device
        store, stats = device.store, device.stats
        plan = sessions["cuda"].plan_for([loss, train], feed)
        assert sorted(u.var.name for ups in plan.updates for u in ups if u.reuse) == sorted(
            v.node.name for v in state)
        losses = {d: [s.run([loss, train], feed)[0]] for d, s in sessions.items()}
        bases = [store.base(v.node) for v in state]
        addresses = [_address(b) for b in bases]
        allocations = stats.allocations
        for _ in range(4):
            for d, s in sessions.items():
                losses[d].append(s.run([loss, train], feed)[0])
            assert all(store.base(v.node) is b for v, b in zip(state, bases))
        assert [_address(store.base(v.node)) for v in state] == addresses
        assert all(store.held[id(b)] == 1 for b in bases)
        assert stats.allocations == allocations and stats.copies_on_device == 0
        got, want = (sessions[d].run(state) for d in ("cuda", "reference"))
    np.testing.assert_allclose(losses["cuda"], losses["reference"], rtol=1e-5, atol=1e-6)
    _assert_same(got, want)


def test_an_update_fused_with_reductions_over_two_axis_sets_reads_the_old_value() -> None:
    """v's update shares its group with a column sum and a row max of a value of v: one block
    reduction kernel per axis set, and only the last writes v, so both reduce the old v (a
    thread reads each element before it writes it)."""
    v0 = _vals((3, 4)) / np.float32(4)
    with sg.Graph().as_default():
        v = sg.Variable(v0)
        t = v * 2.0
        reductions = [sg.reduce_sum(t, 0), sg.reduce_max(t, 1)]
        step = v.assign(t - 1.0)
        sessions = {d: sg.Session(device=d) for d in ("reference", "cuda")}
        for sess in sessions.values():
            sess.run(v.initializer)
        fetches = [*reductions, sg.group(step)]
        plan = sessions["cuda"].plan_for(fetches)
        (kernel,) = [k for k, ups in zip(plan.steps, plan.updates) if ups]
        assert kernel.ir.writes and len({r.axes for r in kernel.ir.reductions}) == 2
        assert all(u.reuse for ups in plan.updates for u in ups)
        results = _both(fetches, None, sessions, runs=3)
        after = {d: s.run(v) for d, s in sessions.items()}
    for got, want in zip(results["cuda"], results["reference"]):
        _assert_same(got, want)
    np.testing.assert_allclose(after["cuda"], after["reference"], rtol=1e-6)


def test_an_old_value_read_in_the_run_of_its_update_stays_the_old_value() -> None:
    """Momentum's update of w beside readers of w's old value writes a copy (the not-safe
    path), as the plan says: a fetch of w, a reduction of w scheduled after the update (a
    later reader), check_numerics(w) and check_numerics(reshape(w)) fetched (scheduled before
    the update: kernels that pass w's buffer, or a view of it, through, and declare it), and
    a read_value of u between u's update kernel and its assign. Each returns the value from
    before the run, three runs in a row, as the reference does."""
    with sg.Graph().as_default():
        loss, feed, (w, _) = _regression()
        checked = sg.debugging.check_numerics(w, "w")
        flat = sg.debugging.check_numerics(sg.reshape(w, [-1]), "flat w")
        train = sg.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
        later = sg.reduce_sum(w, 1)  # created, so scheduled, after the update
        u = sg.Variable(np.array([1.0, -2.0, 4.0], np.float32), name="u")
        new = u * 0.5 + 1.0
        read = u.read_value()  # scheduled after new's kernel, before the assign
        step = sg.group(u.assign(new))
        sessions = {d: sg.Session(device=d) for d in ("reference", "cuda")}
        for sess in sessions.values():
            sess.run(sg.global_variables_initializer())
        stats = sessions["cuda"]._device.stats
        plan = sessions["cuda"].plan_for([checked, flat, train], feed)
        through = [i for i, k in enumerate(plan.steps) if getattr(k, "passes_through", ())]
        update = next(i for i, ups in enumerate(plan.updates)
                      if any(u.var.name == w.node.name for u in ups))
        assert len(through) == 2 and max(through) < update  # device steps, before w's update
        cases = [([w, train], False, 0, lambda old: old),
                 ([train, later], False, 1, lambda old: old.sum(1)),
                 ([checked, train], False, 0, lambda old: old),
                 ([flat, train], False, 0, lambda old: old.reshape(-1)),
                 ([read, step], False, 0, lambda old: old)]
        for fetches, reuse, index, of_old in cases:
            plan = sessions["cuda"].plan_for(fetches, feed)
            var = u if fetches[1] is step else w
            updates = {up.var.name: up.reuse for ups in plan.updates for up in ups}
            assert updates[var.node.name] is reuse
            copies = stats.copies_on_device
            old = sessions["cuda"].run(var)
            results = _both(fetches, feed, sessions, runs=3)
            assert stats.copies_on_device == copies + 3  # w's update, into a copy each run
            np.testing.assert_allclose(results["cuda"][0][index], of_old(old), rtol=1e-6)
            for got, want in zip(results["cuda"], results["reference"]):
                _assert_same(got, want)
            _assert_same(*(sessions[d].run(sg.global_variables()) for d in ("cuda", "reference")))


def test_variables_assigned_from_each_other_keep_their_own_values() -> None:
    """v2.assign(v1) makes v2 hold v1's device buffer (no copy): v1's next in-place update
    writes a copy instead, then v1's new buffer again; alone, in one run with the update, and
    after a swap (v1 <- v2, v2 <- v1). v1, v2 and the slot follow the reference throughout."""
    rng = np.random.default_rng(12)
    with sg.Graph().as_default():
        v1 = sg.Variable(rng.uniform(-1, 1, (2, 3)).astype(np.float32), name="v1")
        v2 = sg.Variable(rng.uniform(-1, 1, (2, 3)).astype(np.float32), name="v2")
        copy = v2.assign(v1)  # created first: in a run with the update, it runs before it
        swap = sg.group(v1.assign(v2), v2.assign(v1))
        x = sg.constant(rng.uniform(-1, 1, (3, 2)).astype(np.float32))
        loss = sg.reduce_sum(sg.square(v1 @ x + 1.0))
        train = sg.train.MomentumOptimizer(0.05, 0.9).minimize(loss, var_list=[v1])
        sessions = {d: sg.Session(device=d) for d in ("reference", "cuda")}
        for sess in sessions.values():
            sess.run(sg.global_variables_initializer())
        store = sessions["cuda"]._device.store
        for fetches in (train, copy, train, train, sg.group(copy, train), train, swap, train,
                        train):
            _both(fetches, None, sessions)
            _assert_same(*(sessions[d].run(sg.global_variables())
                           for d in ("cuda", "reference")))
        assert store.base(v1.node) is not store.base(v2.node)


def test_a_checked_run_that_makes_nan_leaves_the_variable_as_it_was() -> None:
    """With check_numerics, updates write copies: the step that makes a NaN fails before its
    assignment, and the variable keeps the value from before it."""
    with sg.Graph().as_default():
        w = sg.Variable(np.array([1.0, 0.5], np.float32), name="w")
        step = w.assign(sg.sqrt(w) * 0.0 + w - 1.0)  # NaN once w < 0
        sess = sg.Session(device="cuda", check_numerics=True)
        sess.run(w.initializer)
        assert [u.reuse for ups in sess.plan_for(step).updates for u in ups] == [True]
        sess.run(step)
        with pytest.raises(sg.errors.InvalidArgumentError, match="NaN"):
            sess.run(step)
        np.testing.assert_array_equal(sess.run(w), [0.0, -0.5])

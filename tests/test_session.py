"""Session.run: fetch structures, feeds, pruning, variable state, conversions and lifetime."""

import collections
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def fresh_default_graph():
    sg.reset_default_graph()
    yield
    sg.reset_default_graph()


Pair = collections.namedtuple("Pair", "first second")


# ---- fetch structures -------------------------------------------------------------------------


def test_fetch_single_tensor_operation_and_initializer():
    x = sg.constant([1.0, 2.0], name="x")
    v = sg.Variable(3.0)
    with sg.Session() as sess:
        out = sess.run(x)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_array_equal(out, [1.0, 2.0])
        assert sess.run(v.initializer) is None
        assert sess.run(sg.global_variables_initializer()) is None
        assert sess.run(v.assign(4.0).op) is None
        assert sess.run(sg.no_op()) is None
        assert sess.run(v) == 4.0


def test_fetch_nested_structures_keep_their_shape():
    a = sg.constant(1.0, name="a")
    b = sg.constant([2, 3], name="b")
    op = sg.no_op(name="noop")
    fetches = {"list": [a, (b, op)], "pair": Pair(a, {"inner": b}), "empty": []}
    with sg.Session() as sess:
        out = sess.run(fetches)
    assert set(out) == {"list", "pair", "empty"}
    assert isinstance(out["list"], list) and isinstance(out["list"][1], tuple)
    assert out["list"][0] == 1.0 and out["list"][1][1] is None
    np.testing.assert_array_equal(out["list"][1][0], [2, 3])
    assert isinstance(out["pair"], Pair) and out["pair"].first == 1.0
    np.testing.assert_array_equal(out["pair"].second["inner"], [2, 3])
    assert out["empty"] == []


def test_fetch_by_name():
    x = sg.constant(5.0, name="x")
    init = sg.no_op(name="init_all")
    with sg.Session() as sess:
        assert sess.run("x:0") == 5.0
        assert sess.run(["x:0", "init_all"]) == [5.0, None]
        with pytest.raises(ValueError, match="'nope:0'"):
            sess.run("nope:0")
    assert init.name == "init_all" and x.name == "x:0"


def test_fetch_of_an_unsupported_type_is_refused():
    with sg.Session() as sess, pytest.raises(TypeError, match="cannot fetch a int"):
        sess.run([1])


# ---- feeds ------------------------------------------------------------------------------------


def test_feed_placeholders_by_tensor_and_by_name():
    x = sg.placeholder(sg.float32, [None, 2], name="x")
    y = x * 2.0
    with sg.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: [[1, 2]]}), [[2, 4]])
        np.testing.assert_array_equal(sess.run(y, {"x:0": [[3, 4], [5, 6]]}), [[6, 8], [10, 12]])


def test_feeding_an_intermediate_tensor_overrides_it_and_skips_its_inputs():
    x = sg.placeholder(sg.float32, [2], name="x")
    h = sg.exp(x)
    y = h + 1.0
    with sg.Session() as sess:
        # x is unfed: feeding h makes x unnecessary
        np.testing.assert_array_equal(sess.run(y, {h: [1.0, 2.0]}), [2.0, 3.0])
        np.testing.assert_allclose(sess.run(y, {x: [0.0, 0.0]}), [2.0, 2.0])
        # a fed constant or variable is overridden too
        c = sg.constant(10.0)
        assert sess.run(c * 2.0, {c: 1.5}) == 3.0
        v = sg.Variable(1.0)
        assert sess.run(v + 1.0, {v: 5.0}) == 6.0  # no initializer needed


def test_only_the_needed_subgraph_runs():
    x = sg.placeholder(sg.float32, [], name="x")
    unused = sg.placeholder(sg.float32, [], name="unused")
    v = sg.Variable(0.0)
    _ = unused * 2.0 + v  # an unfed placeholder and an uninitialized variable on another branch
    with sg.Session() as sess:
        assert sess.run(x + 1.0, {x: 1.0}) == 2.0


def test_ops_added_after_the_session_was_created_can_be_run():
    x = sg.placeholder(sg.float32, [3])
    v = sg.Variable([1.0, 2.0, 3.0])
    sess = sg.Session()
    sess.run(sg.global_variables_initializer())
    total = sg.reduce_sum(v * x)  # built after the session and after a run
    assert sess.run(total, {x: [1.0, 1.0, 1.0]}) == 6.0
    sess.close()


# ---- variables are the session's state --------------------------------------------------------


def test_variables_persist_across_runs_and_are_separate_per_session():
    v = sg.Variable(0, name="counter")
    inc = v.assign_add(1)
    s1, s2 = sg.Session(), sg.Session()
    s1.run(v.initializer)
    s2.run(v.initializer)
    for _ in range(3):
        s1.run(inc)
    s2.run(inc)
    assert s1.run(v) == 3 and s2.run(v) == 1
    s3 = sg.Session()
    with pytest.raises(sg.errors.FailedPreconditionError):
        s3.run(v)
    for s in (s1, s2, s3):
        s.close()


def test_fetched_values_never_alias_variable_storage():
    v = sg.Variable(np.zeros(3))
    with sg.Session() as sess:
        sess.run(v.initializer)
        for fetch in (v, sg.identity(v), v[:], sg.reshape(v, [3, 1]), v.assign_add(np.ones(3))):
            out = sess.run(fetch)
            before = sess.run(v)
            out[...] = 99.0  # fetched arrays are the caller's to change
            np.testing.assert_array_equal(sess.run(v), before)


def test_values_fed_or_loaded_into_a_variable_are_copied():
    """The caller's array stays the caller's: changing it later leaves the variable alone."""
    v = sg.Variable(np.zeros(2))
    p = sg.placeholder(sg.float64, [2])
    with sg.Session() as sess:
        fed = np.array([3.0, 4.0])
        sess.run(v.assign(p), {p: fed})
        fed[:] = -1.0
        np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])
        loaded = np.array([5.0, 6.0])
        v.load(loaded, sess)
        loaded[:] = -1.0
        np.testing.assert_array_equal(sess.run(v), [5.0, 6.0])


def test_fetching_a_fed_value_gives_a_copy():
    p = sg.placeholder(sg.float32, [2])
    fed = np.array([1.0, 2.0], np.float32)
    with sg.Session() as sess:
        out, same = sess.run([p, sg.reshape(p, [2, 1])], {p: fed})
    out[:] = 7.0
    same[:] = 8.0
    np.testing.assert_array_equal(fed, [1.0, 2.0])


def _read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def test_a_value_only_the_run_holds_is_handed_over_without_a_copy():
    """runtime.fetches.hand_over: a run's new array is returned itself (made writable); one that
    anything else holds, or whose memory anything else holds, is copied."""
    from runtime.fetches import hand_over

    alone, held, viewed, twice = (_read_only(np.arange(4.0)) for _ in range(4))
    root = _read_only(np.arange(6.0))
    view_alone = root.reshape(2, 3)  # a view whose base nothing else holds
    shared_root = _read_only(np.arange(6.0))
    view_shared = shared_root.reshape(3, 2)
    others = [held, viewed[1:]]  # someone else's reference, and a view of another
    values = {1: alone, 2: held, 3: viewed, 4: twice, 5: view_alone, 6: view_shared}
    ids = [1, 2, 3, 4, 4, 5, 6, None, 7]
    expected = [v.copy() for v in (alone, held, viewed, twice, twice, view_alone, view_shared)]
    before = id(alone), id(view_alone)
    del alone, view_alone, root  # now only `values` holds these
    got = hand_over(values, ids)
    assert got[7] is None and got[8] is None
    for out, want in zip(got, expected):
        np.testing.assert_array_equal(out, want)
        assert out.flags.writeable
    assert (id(got[0]), id(got[5])) == before  # the arrays themselves (alive while copied)
    assert got[1] is not held and not np.shares_memory(got[1], held)
    assert not np.shares_memory(got[2], others[1])
    assert got[3] is not got[4] and not np.shares_memory(got[3], got[4])
    assert not np.shares_memory(got[6], shared_root)
    assert not held.flags.writeable and not shared_root.flags.writeable


def test_kernel_results_that_share_memory_are_copied():
    """Two arrays a Numba function returns over one allocation: neither is handed over, so
    writing one never changes the other (Numba's own count of the allocation says so)."""
    from numba import njit

    from runtime.fetches import hand_over

    @njit
    def two_views(n):
        a = np.arange(n) * 1.0
        return a, a[::2]

    values = dict(zip((1, 2), two_views(6)))  # held by `values` alone
    for value in values.values():
        value.setflags(write=False)
    del value
    got = hand_over(values, [1, 2])
    got[0][...] = -1.0
    np.testing.assert_array_equal(got[1], [0.0, 2.0, 4.0])


def test_fetched_kernel_results_are_the_callers_own():
    """A fused kernel's result comes back without a copy, writable; fetched twice, it comes
    back as two arrays; later runs change neither."""
    x = sg.placeholder(sg.float32, [None])
    y = sg.tanh(x) * 2.0 + 1.0
    feed = {x: np.linspace(-1, 1, 8, dtype=np.float32)}
    with sg.Session(device="cpu") as sess:
        out = sess.run(y, feed)
        assert out.flags.writeable
        assert out.base is not None and out.base.__class__.__name__ == "_MemInfo"  # no copy
        first, second = sess.run([y, y], feed)
        kept = first.copy()
        first[...] = 0.0
        np.testing.assert_array_equal(second, kept)
        sess.run(y, {x: np.zeros(8, np.float32)})
        np.testing.assert_array_equal(second, kept)


def test_reads_in_a_run_see_the_value_from_before_its_writes():
    v = sg.Variable(10)
    with sg.Session() as sess:
        sess.run(v.initializer)
        old, new = sess.run([v, v.assign_add(1)])
        assert (old, new) == (10, 11)
        assert sess.run(v) == 11


def test_read_value_under_a_control_dependency_sees_the_write():
    v = sg.Variable(10)
    inc = v.assign_add(5)
    with sg.control_dependencies([inc]):
        after = v.read_value()
    with sg.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(after) == 15
        assert sess.run([v, after]) == [15, 20]


def test_control_dependencies_and_group_run_their_ops():
    a = sg.Variable(0)
    b = sg.Variable(0)
    x = sg.placeholder(sg.int32, [])
    with sg.control_dependencies([a.assign_add(1)]):
        y = sg.identity(x)
    both = sg.group(a.assign_add(10), b.assign_add(100))
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        assert sess.run(y, {x: 7}) == 7
        assert sess.run(both) is None
        assert sess.run([a, b]) == [11, 100]
        with sg.control_dependencies(None):
            plain = sg.identity(x)
        sess.run(plain, {x: 0})  # no control input: a is unchanged
        assert sess.run(a) == 11


# ---- in-place updates (cpu: an optimizer's step writes the variable's own buffer) -------------


def _stepper(shape=(4,)):
    """w, and an update that a cpu kernel computes in place: w <- w * 0.5 + 1."""
    w = sg.Variable(np.arange(np.prod(shape), dtype=np.float32).reshape(shape), name="w")
    return w, w.assign(w * 0.5 + 1.0)


def _updates(sess, fetches):
    return {u.var.name: u.reuse for ups in sess.plan_for(fetches).updates for u in ups}


def test_a_variable_fetched_with_its_update_comes_back_as_it_was():
    w, step = _stepper()
    with sg.Session(device="cpu") as sess:
        sess.run(w.initializer)
        assert _updates(sess, step) == {"w": True}
        assert _updates(sess, [w, step]) == {"w": False}  # written into a copy instead
        sess.run(step)
        before = sess.run(w)
        old, new = sess.run([w, step])
        np.testing.assert_array_equal(old, before)
        np.testing.assert_array_equal(new, before * 0.5 + 1)
        np.testing.assert_array_equal(sess.run(w), new)
        sess.run(step)  # in place again
        np.testing.assert_array_equal(sess.run(w), new * 0.5 + 1)


def test_fetched_values_never_change_in_later_runs():
    """A fetch of the variable, of its update's value, or of a view of it, is the caller's:
    the buffer it came from is overwritten by the next steps, the fetched array is not."""
    w, step = _stepper((2, 3))
    with sg.Session(device="cpu") as sess:
        sess.run(w.initializer)
        sess.run(step)
        fetched = [sess.run(w), sess.run(step), sess.run(sg.reshape(w, [3, 2])),
                   sess.run(sg.transpose(w))]
        kept = [f.copy() for f in fetched]
        for _ in range(3):
            sess.run(step)
        for f, k in zip(fetched, kept):
            np.testing.assert_array_equal(f, k)
        assert not np.array_equal(sess.run(w), kept[0])


def test_a_view_of_the_old_value_read_after_the_update_sees_the_old_value():
    """transpose(w), run by NumPy, is a view of w's array: a reader after the update makes it
    write a copy, so the reader sees the value from before the run's assignments."""
    w = sg.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    wt = sg.transpose(w)
    step = w.assign(w * 2.0)
    later = sg.reduce_sum(wt * 1.0, axis=1)  # created (so scheduled) after the update
    with sg.Session(device="cpu") as sess:
        sess.run(w.initializer)
        assert _updates(sess, [step, later]) == {"w": False}
        sess.run(step)
        before = sess.run(w)
        _, got = sess.run([step, later])
        np.testing.assert_array_equal(got, before.sum(axis=0))
        np.testing.assert_array_equal(sess.run(w), before * 2)


def test_a_variable_assigned_another_keeps_its_own_copy():
    w, step = _stepper()
    v = sg.Variable(np.zeros(4, np.float32), name="v")
    copy = v.assign(w)
    with sg.Session(device="cpu") as sess:
        sess.run(sg.global_variables_initializer())
        sess.run(step)  # w now lives in a buffer of its own, updated in place
        sess.run(copy)
        kept = sess.run(v)
        np.testing.assert_array_equal(kept, sess.run(w))
        for _ in range(3):
            sess.run(step)
        np.testing.assert_array_equal(sess.run(v), kept)
        assert not np.array_equal(sess.run(w), kept)


def test_loaded_and_restored_arrays_are_never_written(tmp_path):
    w, step = _stepper()
    with sg.Session(device="cpu") as sess:
        sess.run(w.initializer)
        frozen = np.full(4, 3.0, np.float32)
        frozen.setflags(write=False)  # kept without a copy: updates must copy it first
        w.load(frozen, sess)
        for _ in range(2):
            sess.run(step)
        np.testing.assert_array_equal(frozen, np.full(4, 3.0))
        saver = sg.train.Saver([w])
        path = saver.save(sess, str(tmp_path / "ckpt"))
        saved = sess.run(w)
        sess.run(step)
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), saved)
        sess.run(step)
        np.testing.assert_array_equal(sess.run(w), saved * 0.5 + 1)


def test_a_checked_run_that_makes_nan_leaves_the_variable_as_it_was():
    w = sg.Variable(np.array([1.0, 0.5], np.float32), name="w")
    step = w.assign(sg.sqrt(w) * 0.0 + w - 1.0)  # NaN once w < 0
    with sg.Session(device="cpu", check_numerics=True) as sess:
        sess.run(w.initializer)
        sess.run(step)  # [0, -0.5], in a buffer of the session's own
        with pytest.raises(sg.errors.InvalidArgumentError, match="NaN"):
            sess.run(step)
        np.testing.assert_array_equal(sess.run(w), [0.0, -0.5])


def test_runs_from_two_threads_on_one_session():
    """Runs take turns (racy values are allowed, as TF1's use_locking=False; crashes and
    fetched arrays that change are not)."""
    import threading

    w, step = _stepper((64,))
    with sg.Session(device="cpu") as sess:
        sess.run(w.initializer)
        fetched, errors = [], []

        def train():
            try:
                for _ in range(200):
                    sess.run(step)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        def watch():
            try:
                for _ in range(200):
                    value = sess.run(w)
                    fetched.append((value, value.copy()))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=f) for f in (train, watch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for value, kept in fetched:
            np.testing.assert_array_equal(value, kept)
        # w * 0.5 + 1 converges to 2: every fetched value is some step's whole value
        np.testing.assert_allclose(sess.run(w), 2.0, rtol=1e-6)


# ---- fed-value conversion rules (TF1's: no value may change kind) -----------------------------


@pytest.mark.parametrize("dtype, value, expected", [
    (sg.float32, np.array([0.1, 0.2]), np.array([0.1, 0.2], np.float32)),
    (sg.float32, [1, 2], np.array([1.0, 2.0], np.float32)),
    (sg.float64, 1.5, np.float64(1.5)),
    (sg.int32, np.array([0, 255], np.uint8), np.array([0, 255], np.int32)),
    (sg.int32, [3, 4], np.array([3, 4], np.int32)),
    (sg.int64, np.int32(7), np.int64(7)),
    (sg.int8, [-128, 127], np.array([-128, 127], np.int8)),
    (sg.bool, [True, False], np.array([True, False])),
])
def test_fed_values_are_converted_when_no_value_changes_kind(dtype, value, expected):
    p = sg.placeholder(dtype)
    with sg.Session() as sess:
        out = sess.run(p, {p: value})
    assert out.dtype == dtype.np
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype, value, words", [
    (sg.int32, 1.5, "float64 data to int32"),
    (sg.int32, np.array([1.0, 2.0], np.float32), "float32 data to int32"),
    (sg.int8, 300, "overflow int8"),
    (sg.int32, [1, 2 ** 40], "overflow int32"),
    (sg.uint8, -1, "overflow uint8"),
    (sg.float32, True, "bool data to float32"),
    (sg.int32, np.array([True]), "bool data to int32"),
    (sg.bool, 1, "to bool"),
])
def test_fed_values_that_would_change_kind_or_overflow_are_refused(dtype, value, words):
    p = sg.placeholder(dtype, name="p")
    with sg.Session() as sess, pytest.raises(TypeError, match=words):
        sess.run(p, {p: value})


# ---- lifetime and default sessions ------------------------------------------------------------


def test_context_manager_closes_and_closed_sessions_refuse_to_run():
    x = sg.constant(1.0)
    with sg.Session() as sess:
        assert sg.get_default_session() is sess
        assert sess.run(x) == 1.0
    with pytest.raises(RuntimeError, match="closed"):
        sess.run(x)
    other = sg.Session()
    other.close()
    with pytest.raises(RuntimeError, match="closed"):
        other.run(x)


def test_eval_and_operation_run_use_the_default_session():
    x = sg.placeholder(sg.float32, [])
    v = sg.Variable(1.0)
    inc = v.assign_add(1.0)
    with pytest.raises(ValueError, match="no default session"):
        x.eval({x: 1.0})
    with sg.Session():
        v.initializer.run()
        inc.op.run()
        assert v.eval() == 2.0
        assert (x * 3.0).eval({x: 2.0}) == 6.0
    sess = sg.Session()
    with sess.as_default():
        v.initializer.run()
        assert v.eval() == 1.0
    assert v.eval(session=sess) == 1.0
    sess.close()


def test_session_on_an_explicit_graph():
    g = sg.Graph()
    with g.as_default():
        c = sg.constant(2.0)
    with sg.Session(graph=g) as sess:
        assert sg.get_default_graph() is g  # a session's `with` makes its graph the default
        assert sess.run(c * c) == 4.0


_GLIBC_LINUX = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
_HEAP_PROBE = """
import numpy as np, symgraph as sg
sg.Session()
a = np.empty(64 << 20, np.uint8)  # above glibc's default mmap threshold (at most 32 MiB)
heap = [l.split()[0] for l in open('/proc/self/maps') if l.rstrip().endswith('[heap]')]
inside = any(int(lo, 16) <= a.ctypes.data < int(hi, 16)
             for lo, hi in (r.split('-') for r in heap))
print('heap' if inside else 'mapped')
"""


@pytest.mark.skipif(not _GLIBC_LINUX, reason="the allocator setting exists on glibc only")
@pytest.mark.parametrize("setting, where", [("", "heap"), ("default", "mapped")])
def test_big_arrays_come_from_the_heap_once_a_session_exists(setting, where):
    # runtime/host_memory.py: a plan's big arrays are reused from the heap run after run
    # instead of being mapped (and page-faulted) anew; SYMGRAPH_HOST_MALLOC=default opts out
    env = {**os.environ, "SYMGRAPH_HOST_MALLOC": setting}
    out = subprocess.run([sys.executable, "-c", _HEAP_PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == where

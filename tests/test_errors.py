"""One test per error message: each must name the tensor, its shape and dtype, and the user's line.

A user reading an error should be able to go straight to the line of their script that made the
tensor at fault, so every message is checked for that file:line, not only for its class.
"""

import os
import sys

import numpy as np
import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def fresh_default_graph():
    sg.reset_default_graph()
    yield
    sg.reset_default_graph()


def line_below() -> str:
    """'test_errors.py:N' for the line after the caller's: where the next tensor is made."""
    frame = sys._getframe(1)
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno + 1}"


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} missing from: {message}"


def test_missing_feed_lists_every_placeholder_still_needed():
    at_x = line_below()
    x = sg.placeholder(sg.float32, [None, 3], name="x")
    at_labels = line_below()
    labels = sg.placeholder(sg.int32, [None], name="labels")
    fed = sg.placeholder(sg.float32, [], name="scale")
    loss = sg.reduce_sum(x) * fed + sg.cast(sg.reduce_sum(labels), sg.float32)
    with sg.Session() as sess, pytest.raises(sg.errors.InvalidArgumentError) as info:
        sess.run(loss, {fed: 1.0})
    msg = str(info.value)
    assert_names(msg, "must feed", "'x:0'", "(None, 3)", "float32", at_x,
                 "'labels:0'", "(None,)", "int32", at_labels)
    assert "scale" not in msg  # fed, so not listed
    assert info.value.op is x.op


def test_fed_value_with_the_wrong_shape():
    at = line_below()
    x = sg.placeholder(sg.float32, [None, 3], name="x")
    with sg.Session() as sess, pytest.raises(ValueError) as info:
        sess.run(x * 2.0, {x: np.zeros((4, 2))})
    assert_names(str(info.value), "'x:0'", "(None, 3)", "float32", at, "(4, 2)")


def test_fed_value_with_the_wrong_rank():
    at = line_below()
    x = sg.placeholder(sg.int64, [2], name="x")
    with sg.Session() as sess, pytest.raises(ValueError) as info:
        sess.run(x, {x: 5})
    assert_names(str(info.value), "'x:0'", "(2,)", "int64", at, "shape ()")


def test_fed_value_with_a_dtype_that_cannot_be_converted():
    at = line_below()
    labels = sg.placeholder(sg.int32, [None], name="labels")
    with sg.Session() as sess, pytest.raises(TypeError) as info:
        sess.run(labels, {labels: np.array([0.0, 1.5])})
    assert_names(str(info.value), "'labels:0'", "(None,)", "int32", at, "float64")


def test_fed_value_that_overflows():
    at = line_below()
    small = sg.placeholder(sg.int8, [2], name="small")
    with sg.Session() as sess, pytest.raises(TypeError) as info:
        sess.run(small, {small: [1, 1000]})
    assert_names(str(info.value), "'small:0'", "(2,)", "int8", at, "overflow", "1000")


def test_fed_value_that_is_a_ragged_list():
    at = line_below()
    x = sg.placeholder(sg.float32, [None, None], name="x")
    with sg.Session() as sess, pytest.raises(ValueError) as info:
        sess.run(x, {x: [[1.0, 2.0], [3.0]]})
    assert_names(str(info.value), "'x:0'", "(None, None)", "float32", at)


def test_fed_value_that_is_a_symbolic_tensor():
    at = line_below()
    x = sg.placeholder(sg.float32, [2], name="x")
    with sg.Session() as sess, pytest.raises(TypeError) as info:
        sess.run(x, {x: sg.constant([1.0, 2.0])})
    assert_names(str(info.value), "'x:0'", "(2,)", "float32", at, "symbolic")


def test_uninitialized_variable_names_it_and_its_initializer():
    at = line_below()
    w = sg.Variable(np.zeros((2, 3), np.float32), name="w")
    with sg.Session() as sess, pytest.raises(sg.errors.FailedPreconditionError) as info:
        sess.run(w * 2.0)
    assert_names(str(info.value), "uninitialized", "'w:0'", "(2, 3)", "float32", at,
                 "global_variables_initializer", "'w/Assign'")
    assert info.value.op is w.op


def test_fetch_from_another_graph():
    other = sg.Graph()
    with other.as_default():
        at = line_below()
        stranger = sg.constant([1.0, 2.0], name="stranger")
    with sg.Session() as sess, pytest.raises(ValueError) as info:
        sess.run(stranger)
    assert_names(str(info.value), "'stranger:0'", "(2,)", "float32", at, "another graph")


def test_feed_of_a_tensor_the_graph_marks_not_feedable():
    x = sg.placeholder(sg.float32, [], name="x")
    at = line_below()
    guarded = sg.square(x, name="guarded")
    sg.get_default_graph().prevent_feeding(guarded)
    assert not sg.get_default_graph().is_feedable(guarded)
    assert sg.get_default_graph().is_feedable(x)
    with sg.Session() as sess, pytest.raises(ValueError) as info:
        sess.run(guarded + 1.0, {guarded: 3.0})
    assert_names(str(info.value), "'guarded:0'", at, "not feedable")


def test_feed_of_a_tensor_from_another_graph():
    x = sg.placeholder(sg.float32, [], name="x")
    other = sg.Graph()
    with other.as_default():
        at = line_below()
        stranger = sg.placeholder(sg.float64, [3], name="stranger")
    with sg.Session() as sess, pytest.raises(ValueError) as info:
        sess.run(x, {x: 1.0, stranger: np.zeros(3)})
    assert_names(str(info.value), "'stranger:0'", "(3,)", "float64", at, "another graph")


def test_op_inputs_from_two_graphs_are_refused_at_build_time():
    at = line_below()
    a = sg.constant(1.0, name="a")
    with sg.Graph().as_default():
        b = sg.constant(2.0, name="b")
    with pytest.raises(ValueError) as info:
        sg.add(a, b)
    assert_names(str(info.value), "'a:0'", "'b:0'", "float32", at, "different graphs")


def test_build_time_shape_error_names_the_op_and_the_line_that_built_it():
    a = sg.placeholder(sg.float32, [2, 3], name="a")
    b = sg.placeholder(sg.float32, [2, 3], name="b")
    with pytest.raises(ValueError) as info:
        at = line_below()
        sg.matmul(a, b)
    assert_names(str(info.value), "matmul at ", at + ":", "'a:0'", "'b:0'", "(2, 3)")


def test_integer_division_by_zero_at_run_time_names_the_op():
    x = sg.placeholder(sg.int32, [None], name="x")
    at = line_below()
    q = x // sg.constant(0, name="zero")
    with sg.Session() as sess, pytest.raises(sg.errors.InvalidArgumentError) as info:
        sess.run(q, {x: [4, 5]})
    assert info.value.op is q.op
    assert_names(str(info.value), "'floordiv'", at, "x:0 (2,) int32", "division by zero")


def test_reshape_fed_the_wrong_size_through_a_none_dim_names_the_op():
    x = sg.placeholder(sg.float32, [None], name="x")
    at = line_below()
    r = sg.reshape(x, [2, -1], name="pairs")
    assert r.shape == [2, None]
    with sg.Session() as sess:
        np.testing.assert_array_equal(sess.run(r, {x: [1, 2, 3, 4]}), [[1, 2], [3, 4]])
        with pytest.raises(sg.errors.InvalidArgumentError) as info:
            sess.run(r, {x: [1.0, 2.0, 3.0]})
    assert info.value.op is r.op
    assert_names(str(info.value), "'pairs'", "reshape", at, "x:0 (3,) float32")


def test_runtime_shape_mismatch_between_none_dims_names_the_op():
    a = sg.placeholder(sg.float32, [None, None], name="a")
    b = sg.placeholder(sg.float32, [None, None], name="b")
    at = line_below()
    c = a @ b
    with sg.Session() as sess, pytest.raises(sg.errors.InvalidArgumentError) as info:
        sess.run(c, {a: np.ones((2, 3)), b: np.ones((2, 3))})
    assert_names(str(info.value), "'matmul'", at, "a:0 (2, 3) float32", "b:0 (2, 3) float32")


def test_slicing_an_unknown_rank_value_fed_with_too_few_axes_names_the_op():
    # found by tests/test_api_fuzz.py: memory planning re-inferred the slice for the fed rank
    # and raised IndexError before the run could name the op
    x = sg.placeholder(sg.float32, None, name="x")
    at = line_below()
    y = x[::1]
    with sg.Session() as sess, pytest.raises(sg.errors.InvalidArgumentError) as info:
        sess.run(y, {x: np.float32(2.0)})
    assert_names(str(info.value), "strided_slice", at)

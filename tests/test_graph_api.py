"""The graph-building API: graphs, names, sources, variables, tensor properties and operators.

Everything here is checked at build time (static shapes, dtypes, names); where a value matters the
graph is run and compared with NumPy.
"""

import os
import sys

import numpy as np
import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def fresh_default_graph():
    """Each test builds in a new default graph, so names and collections start empty."""
    sg.reset_default_graph()
    yield
    sg.reset_default_graph()


def run(fetches, feed_dict=None):
    with sg.Session() as sess:
        return sess.run(fetches, feed_dict)


# ---- graphs and the default graph --------------------------------------------------------------


def test_as_default_routes_new_nodes_and_restores_the_outer_default():
    outer = sg.get_default_graph()
    g = sg.Graph()
    with g.as_default() as entered:
        assert entered is g and sg.get_default_graph() is g
        x = sg.constant(1.0)
    assert sg.get_default_graph() is outer
    assert x.graph is g and g.get_operations() == [x.op] and outer.get_operations() == []


def test_reset_default_graph_gives_an_empty_graph_and_is_refused_inside_as_default():
    old = sg.get_default_graph()
    sg.constant(1.0)
    sg.reset_default_graph()
    new = sg.get_default_graph()
    assert new is not old and new.get_operations() == []
    with sg.Graph().as_default(), pytest.raises(RuntimeError, match="as_default"):
        sg.reset_default_graph()


def test_graph_lookup_by_name():
    x = sg.constant(1.0, name="x")
    g = sg.get_default_graph()
    assert g.get_tensor_by_name("x:0") is x
    assert g.get_operation_by_name("x") is x.op
    with pytest.raises(KeyError, match="'y'"):
        g.get_operation_by_name("y")


# ---- names and name scopes (TF1 semantics) ----------------------------------------------------


def test_default_names_are_the_op_type_made_unique():
    a, b, c = sg.constant(1.0), sg.constant(2.0), sg.constant(3.0, name="c")
    assert [a.name, b.name, c.name] == ["constant:0", "constant_1:0", "c:0"]
    assert (a + b).name == "add:0" and (a + b).name == "add_1:0"


def test_explicit_name_colliding_with_a_generated_one_is_uniquified():
    """TF1 marks 'a_1' as used when it makes 'a' unique, so a later explicit 'a_1' moves on."""
    assert sg.constant(1.0, name="a").name == "a:0"
    assert sg.constant(1.0, name="a").name == "a_1:0"
    assert sg.constant(1.0, name="a_1").name == "a_1_1:0"
    assert sg.constant(1.0, name="A").name == "A_2:0"  # names are unique ignoring case, as in TF1


def test_name_scope_prefixes_and_nests():
    with sg.name_scope("layer") as scope:
        assert scope == "layer/"
        w = sg.constant(1.0, name="w")
        with sg.name_scope("inner") as inner:
            assert inner == "layer/inner/"
            y = w * 2.0
    assert w.name == "layer/w:0"
    assert y.name == "layer/inner/multiply:0"
    assert sg.constant(0.0, name="w").name == "w:0"


def test_name_scope_reused_gets_a_new_suffix_and_trailing_slash_reenters():
    with sg.name_scope("s"):
        a = sg.constant(1.0, name="x")
    with sg.name_scope("s") as second:
        b = sg.constant(1.0, name="x")
    with sg.name_scope("s/") as again:
        c = sg.constant(1.0, name="x")
    assert second == "s_1/" and again == "s/"
    assert [a.name, b.name, c.name] == ["s/x:0", "s_1/x:0", "s/x_1:0"]
    # the scope name is used, so a node named like it is made unique
    assert sg.constant(1.0, name="s").name == "s_2:0"


def test_name_scope_none_resets_to_the_top_level():
    with sg.name_scope("outer"):
        with sg.name_scope(None) as top:
            x = sg.constant(1.0, name="x")
        with sg.name_scope("outer/") as absolute:
            y = sg.constant(1.0, name="y")
    assert top == "" and x.name == "x:0"
    assert absolute == "outer/" and y.name == "outer/y:0"


def test_invalid_names_are_refused():
    with pytest.raises(ValueError, match="not a valid node name"):
        sg.constant(1.0, name="has space")
    with pytest.raises(ValueError, match="not a valid node name"):
        with sg.name_scope("bad name!"):
            pass


# ---- dtypes -----------------------------------------------------------------------------------


def test_dtypes_compare_with_numpy_types_and_names_but_never_with_none():
    assert sg.float32 == np.float32 and sg.float32 == "float32" and sg.float32 == "float"
    assert sg.as_dtype(np.dtype("int64")) is sg.int64 and sg.as_dtype(bool) is sg.bool
    assert sg.float64 != None  # noqa: E711 - np.dtype(None) would be float64
    with pytest.raises(TypeError, match="None"):
        sg.placeholder(None)
    with pytest.raises(TypeError, match="cannot interpret"):
        sg.as_dtype("complex64")


# ---- placeholders -----------------------------------------------------------------------------


def test_placeholder_shapes_none_dims_and_unknown_rank():
    x = sg.placeholder(sg.float32, [None, 3], name="x")
    assert x.shape == [None, 3] and x.shape == (None, 3) and x.shape != (2, 3)
    assert x.shape.rank == 2 and not x.shape.is_fully_defined()
    assert x.dtype == sg.float32 and x.name == "x:0"
    u = sg.placeholder(sg.int64)
    assert u.shape.rank is None and u.shape == sg.TensorShape(None)
    assert u.dtype == sg.int64
    np.testing.assert_array_equal(run(u * 2, {u: [[1], [2]]}), [[2], [4]])


def test_placeholder_with_default_uses_the_default_unless_fed():
    p = sg.placeholder_with_default(sg.constant([1.0, 2.0]), [None])
    assert p.shape == [None] and p.dtype == sg.float32
    with sg.Session() as sess:
        np.testing.assert_array_equal(sess.run(p * 2.0), [2.0, 4.0])
        np.testing.assert_array_equal(sess.run(p * 2.0, {p: [5.0, 6.0, 7.0]}), [10.0, 12.0, 14.0])
    with pytest.raises(ValueError, match="does not fit"):
        sg.placeholder_with_default(sg.constant([1.0, 2.0]), [3])


# ---- constants --------------------------------------------------------------------------------


@pytest.mark.parametrize("value, dtype", [
    (1.5, sg.float32), ([1.0, 2.0], sg.float32), (3, sg.int32), ([[1, 2]], sg.int32),
    (True, sg.bool), (np.float64(2.0), sg.float64), (np.zeros(2), sg.float64),
    (np.zeros(2, np.float32), sg.float32), (np.arange(3, dtype=np.int64), sg.int64),
])
def test_constant_default_dtypes_follow_tf1(value, dtype):
    """Python floats become float32 and ints int32; NumPy data keeps its own dtype."""
    c = sg.constant(value)
    assert c.dtype == dtype
    assert c.shape == np.shape(value)


def test_constant_with_dtype_and_shape_fills_or_reshapes():
    np.testing.assert_array_equal(run(sg.constant(7, dtype=sg.float64, shape=[2, 2])),
                                  np.full((2, 2), 7.0))
    r = sg.constant([1, 2, 3, 4, 5, 6], shape=(2, 3))
    assert r.shape == (2, 3) and r.dtype == sg.int32
    np.testing.assert_array_equal(run(r), [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="3 values.*cannot fill shape"):
        sg.constant([1, 2, 3], shape=[2, 2])
    with pytest.raises(TypeError, match="float"):
        sg.constant(1.5, dtype=sg.int32)


def test_constant_is_not_affected_by_later_changes_to_the_source_array():
    a = np.array([1.0, 2.0])
    c = sg.constant(a)
    a[0] = 100.0
    np.testing.assert_array_equal(run(c), [1.0, 2.0])


# ---- variables --------------------------------------------------------------------------------


def test_variable_properties_and_collections():
    with sg.name_scope("layer"):
        w = sg.Variable(np.ones((2, 3), np.float32), name="w")
    step = sg.Variable(0, trainable=False, name="step")
    assert w.name == "layer/w:0" and w.shape == (2, 3) and w.dtype == sg.float32
    assert w.trainable and not step.trainable and step.dtype == sg.int32
    assert w.initializer.name == "layer/w/Assign" and w.initializer.type == "assign"
    assert w.initial_value.shape == (2, 3)
    assert sg.global_variables() == [w, step]
    assert sg.trainable_variables() == [w]
    assert sg.get_collection(sg.GraphKeys.GLOBAL_VARIABLES, scope="layer") == [w]


def test_variable_with_explicit_collections_and_dtype():
    v = sg.Variable([1, 2], dtype=sg.float64, collections=["mine"], name="v")
    assert v.dtype == sg.float64
    assert sg.get_collection("mine") == [v]
    assert sg.global_variables() == [] and sg.trainable_variables() == [v]


def test_variable_assignments_and_initializers():
    v = sg.Variable([1.0, 2.0], name="v")
    w = sg.Variable(5, name="w")
    with sg.Session() as sess:
        assert sess.run(sg.variables_initializer([v])) is None
        np.testing.assert_array_equal(sess.run(v.assign([3.0, 4.0])), [3.0, 4.0])
        np.testing.assert_array_equal(sess.run(v.assign_add([1.0, 1.0])), [4.0, 5.0])
        np.testing.assert_array_equal(sess.run(v.assign_sub([0.5, 0.5])), [3.5, 4.5])
        np.testing.assert_array_equal(sess.run(v), [3.5, 4.5])
        with pytest.raises(sg.errors.FailedPreconditionError):
            sess.run(w)
        sess.run(sg.global_variables_initializer())
        assert sess.run(w) == 5
        np.testing.assert_array_equal(sess.run(v), [1.0, 2.0])  # re-initialized as well


def test_variable_assign_checks_shape_and_dtype_at_build_time():
    v = sg.Variable(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="shapes differ"):
        v.assign(np.zeros(4, np.float32))
    with pytest.raises(TypeError):
        v.assign(sg.constant(np.zeros(3)))  # float64 tensor into a float32 variable
    with pytest.raises(TypeError, match="float"):
        sg.Variable(3).assign(1.5)


# ---- tensor properties ------------------------------------------------------------------------


def test_tensor_properties():
    x = sg.placeholder(sg.float32, [None, 4], name="x")
    y = sg.reduce_sum(x, axis=1)
    assert y.shape == [None] and y.get_shape() == (None,)
    assert y.dtype == sg.float32 and y.dtype.name == "float32"
    assert x.name == "x:0" and x.op.name == "x" and x.op.type == "placeholder"
    assert y.op.inputs == (x,) and y.op.outputs == [y]
    assert y.graph is sg.get_default_graph() is x.op.graph


def test_equality_is_identity_so_tensors_are_dict_keys():
    a, b = sg.constant(1.0), sg.constant(1.0)
    assert (a == a) is True and (a == b) is False and (a != b) is True
    feeds = {a: 1, b: 2}
    assert feeds[a] == 1 and feeds[b] == 2
    with pytest.raises(TypeError, match="Python bool"):
        bool(a < b)


# ---- operators --------------------------------------------------------------------------------

XV = np.array([[1.5, -2.0, 3.0], [4.0, 0.5, -6.0]], np.float32)
YV = np.array([[2.0, 3.0, -1.5], [-0.5, 2.0, 4.0]], np.float32)

BINARY = [
    ("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b),
    ("/", lambda a, b: a / b), ("//", lambda a, b: a // b), ("%", lambda a, b: a % b),
    ("<", lambda a, b: a < b), ("<=", lambda a, b: a <= b), (">", lambda a, b: a > b),
    (">=", lambda a, b: a >= b),
]


@pytest.mark.parametrize("sym, fn", BINARY, ids=[s for s, _ in BINARY])
def test_binary_operators_match_numpy(sym, fn):
    x, y = sg.constant(XV), sg.constant(YV)
    out = fn(x, y)
    expected = fn(XV, YV)
    assert out.dtype == sg.as_dtype(expected.dtype) and out.shape == expected.shape
    np.testing.assert_allclose(run(out), expected, rtol=1e-6)
    # a Python scalar on either side adopts the tensor's dtype
    for mixed, want in ((fn(x, 2.0), fn(XV, np.float32(2.0))),
                        (fn(2.0, x), fn(np.float32(2.0), XV))):
        assert mixed.dtype == sg.as_dtype(want.dtype)
        np.testing.assert_allclose(run(mixed), want, rtol=1e-6)


def test_power_matmul_and_unary_operators():
    x = sg.constant(np.abs(XV))
    np.testing.assert_allclose(run(x ** 2.0), np.abs(XV) ** 2, rtol=1e-6)
    np.testing.assert_allclose(run(2.0 ** x), 2.0 ** np.abs(XV), rtol=1e-6)
    m = sg.constant(XV) @ sg.constant(YV.T)
    assert m.shape == (2, 2)
    np.testing.assert_allclose(run(m), XV @ YV.T, rtol=1e-6)
    np.testing.assert_allclose(run(YV @ sg.constant(XV.T)), YV @ XV.T, rtol=1e-6)
    np.testing.assert_array_equal(run(-sg.constant(XV)), -XV)
    np.testing.assert_array_equal(run(abs(sg.constant(XV))), np.abs(XV))


def test_numpy_array_on_the_left_defers_to_the_tensor():
    out = np.ones((2, 3), np.float32) + sg.constant(XV)
    assert isinstance(out, sg.Tensor)
    np.testing.assert_allclose(run(out), XV + 1)


def test_comparisons_give_bool_tensors_with_broadcasting():
    x = sg.placeholder(sg.float32, [None, 3])
    c = x < sg.constant([0.0, 1.0, 2.0])
    assert c.dtype == sg.bool and c.shape == [None, 3]
    np.testing.assert_array_equal(run(c, {x: XV}), XV < [0.0, 1.0, 2.0])


@pytest.mark.parametrize("a, b, out", [
    ([None, 1], [3], [None, 3]), ([], [2, 3], [2, 3]), ([None], [None], [None]),
    ([4, None], [1, 5], [4, 5]), ([2, 1, 3], [4, 1], [2, 4, 3]),
])
def test_static_broadcasting_follows_numpy_with_none_dims(a, b, out):
    x, y = sg.placeholder(sg.float32, a), sg.placeholder(sg.float32, b)
    assert (x + y).shape == out and (y * x).shape == out


def test_integer_true_division_gives_float64_and_floor_ops_stay_integer():
    a = sg.constant([7, -7, 9])
    b = sg.constant([2, 2, 4])
    assert (a / b).dtype == sg.float64 and (a // b).dtype == sg.int32 and (a % b).dtype == sg.int32
    np.testing.assert_array_equal(run(a / b), [3.5, -3.5, 2.25])
    np.testing.assert_array_equal(run(a // b), [3, -4, 2])
    np.testing.assert_array_equal(run(a % b), [1, 1, 1])
    assert (a + 1).dtype == sg.int32
    small = sg.constant([1, 2], dtype=sg.int8)
    assert (small / small).dtype == sg.float32  # TF1's truediv: 8- and 16-bit ints to float32


def test_mixed_dtypes_are_an_error_never_widened():
    f32 = sg.placeholder(sg.float32, [2], name="f32")
    f64 = sg.placeholder(sg.float64, [2], name="f64")
    with pytest.raises(TypeError, match=r"'f32:0'.*float32.*'f64:0'.*float64"):
        f32 * f64
    assert (f64 + 0.5).dtype == sg.float64 and (0.5 + f64).dtype == sg.float64
    with pytest.raises(TypeError, match="int32"):
        sg.constant([1, 2]) * 0.5  # 0.5 cannot become an int32 without changing its value


# ---- indexing ---------------------------------------------------------------------------------

ARR = np.arange(24.0).reshape(2, 3, 4)
KEYS = [
    1, -1, np.int64(0), slice(None, None, 2), (slice(1, None), slice(None, None, 2)),
    (slice(None, None, -1), slice(2, 0, -1)), (slice(-1, None, -2), -1, slice(None, -1)),
    (Ellipsis, 1), (0, Ellipsis), (None, 0, slice(1, None)), (0, Ellipsis, sg.newaxis),
    (None, Ellipsis, None), (1, 2, 3), (-2, -3, -4), slice(5, 10), (Ellipsis,),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_getitem_matches_numpy_in_static_shape_and_value(key):
    t = sg.constant(ARR)
    out = t[key]
    assert out.shape == ARR[key].shape
    np.testing.assert_array_equal(run(out), ARR[key])


def test_getitem_on_none_dims_and_out_of_range():
    x = sg.placeholder(sg.float32, [None, 3])
    assert x[:, 1].shape == [None] and x[0].shape == [3] and x[::2, None].shape == [None, 1, 3]
    with pytest.raises(ValueError, match="out of range"):
        x[:, 3]
    with pytest.raises(ValueError, match="too many indices"):
        x[0, 0, 0]


# ---- static inference errors name both tensors and their shapes -------------------------------


def test_matmul_inner_dimension_mismatch_names_both_operands():
    a = sg.placeholder(sg.float32, [2, 3], name="a")
    b = sg.placeholder(sg.float32, [4, 5], name="b")
    with pytest.raises(ValueError, match=r"'a:0' \(shape \(2, 3\).*'b:0' \(shape \(4, 5\)"):
        a @ b


def test_non_broadcastable_operands_name_both():
    a = sg.placeholder(sg.float32, [2, 3], name="a")
    b = sg.placeholder(sg.float32, [None, 4], name="b")
    with pytest.raises(ValueError, match=r"broadcast.*'a:0' \(shape \(2, 3\).*'b:0' "
                                         r"\(shape \(None, 4\)"):
        a + b


def test_reshape_to_the_wrong_size_names_the_tensor_and_sizes():
    a = sg.placeholder(sg.float32, [2, 3], name="a")
    with pytest.raises(ValueError, match=r"'a:0' \(shape \(2, 3\).*6 elements.*\[4\]"):
        sg.reshape(a, [4])
    assert sg.reshape(a, [3, -1]).shape == (3, 2)


# ---- every node records the user's file:line --------------------------------------------------


def _assert_here(node, line):
    path, _, lineno = node.location.rpartition(":")
    assert os.path.samefile(path, __file__), node.location
    assert int(lineno) == line, node.location


def test_nodes_record_the_creating_line_in_this_file():
    here = sys._getframe().f_lineno
    x = sg.placeholder(sg.float32, [2])  # here + 1
    y = x * 2.0 + 1.0  # here + 2: the operators and the scalar constants they make
    v = sg.Variable([1.0, 2.0])  # here + 3: the variable and its initializer
    _assert_here(x.op, here + 1)
    _assert_here(y.op, here + 2)
    _assert_here(y.op.inputs[0].op, here + 2)
    _assert_here(y.op.inputs[1].op, here + 2)
    _assert_here(v.op, here + 3)
    _assert_here(v.initializer, here + 3)
    assert f"test_graph_api.py:{here + 1}" in repr(x.op.describe())

"""get_variable and variable_scope: names, reuse rules, defaults, regularizers."""

import math

import numpy as np
import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def graph():
    g = sg.Graph()
    with g.as_default():
        yield g


def values(*tensors):
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        return sess.run(list(tensors))


def test_full_names_and_collections():
    with sg.variable_scope("net"):
        with sg.variable_scope("layer1"):
            w = sg.get_variable("w", [3, 4])
        b = sg.get_variable("b", [4], initializer=sg.zeros_initializer(), trainable=False)
    assert w.var_name == "net/layer1/w" and w.name == "net/layer1/w:0"
    assert b.var_name == "net/b"
    assert w.shape == [3, 4] and w.dtype == sg.float32
    assert sg.trainable_variables() == [w]
    assert sg.global_variables() == [w, b]
    with sg.name_scope("ignored"):  # name scopes do not prefix get_variable's names (TF1)
        c = sg.get_variable("c", [2], collections=["mine"])
    assert c.var_name == "c"
    assert sg.get_collection("mine") == [c] and c not in sg.global_variables()


def test_ops_inside_a_variable_scope_get_its_name_scope():
    with sg.variable_scope("block"):
        y = sg.constant(1.0) + 2.0
    assert y.op.name.startswith("block/")


def test_existing_name_without_reuse_is_an_error_naming_it():
    with sg.variable_scope("s"):
        sg.get_variable("w", [2])
    with pytest.raises(ValueError, match=r"variable s/w already exists.*reuse=True"):
        with sg.variable_scope("s"):
            sg.get_variable("w", [2])


def test_reuse_true_returns_the_same_variable_and_requires_it():
    with sg.variable_scope("s"):
        w = sg.get_variable("w", [2, 3])
    with sg.variable_scope("s", reuse=True):
        assert sg.get_variable("w", [2, 3]) is w
        assert sg.get_variable("w") is w  # shape may be left out
        with pytest.raises(ValueError, match="variable s/v does not exist"):
            sg.get_variable("v", [2])
        with pytest.raises(ValueError, match=r"share variable s/w.*\(3, 2\)"):
            sg.get_variable("w", [3, 2])
        with pytest.raises(ValueError, match="dtype"):
            sg.get_variable("w", [2, 3], dtype=sg.float64)


def test_auto_reuse_makes_or_finds():
    def layer():
        with sg.variable_scope("shared", reuse=sg.AUTO_REUSE):
            return sg.get_variable("k", [2])

    assert layer() is layer()
    assert len(sg.global_variables()) == 1


def test_reuse_is_inherited_and_cannot_be_switched_off():
    with sg.variable_scope("a"):
        with sg.variable_scope("b"):
            w = sg.get_variable("w", [1])
    with sg.variable_scope("a", reuse=True) as scope:
        assert scope.reuse is True
        with sg.variable_scope("b", reuse=False) as inner:
            assert inner.reuse is True
            assert sg.get_variable("w", [1]) is w


def test_scope_object_reentry_and_reuse_variables():
    with sg.variable_scope("model") as scope:
        w = sg.get_variable("w", [2])
    with sg.variable_scope(scope, reuse=True):
        assert sg.get_variable("w") is w
    with sg.variable_scope("model2") as s2:
        v = sg.get_variable("v", [2])
        s2.reuse_variables()
        assert sg.get_variable("v") is v
    assert sg.get_variable_scope().name == ""


def test_default_name_is_made_unique():
    names = []
    for _ in range(3):
        with sg.variable_scope(None, default_name="dense") as scope:
            names.append(scope.name)
            sg.get_variable("kernel", [1])
    assert names == ["dense", "dense_1", "dense_2"]
    assert [v.var_name for v in sg.global_variables()] == [
        "dense/kernel", "dense_1/kernel", "dense_2/kernel"]


def test_default_initializer_is_glorot_uniform_and_zeros_for_ints():
    w = sg.get_variable("w", [60, 40])
    n = sg.get_variable("n", [3], dtype=sg.int32)
    wv, nv = values(w, n)
    limit = math.sqrt(6.0 / (60 + 40))
    assert np.abs(wv).max() <= limit and np.abs(wv).max() > 0.9 * limit
    np.testing.assert_array_equal(nv, [0, 0, 0])


def test_scope_defaults_are_inherited_and_overridable():
    with sg.variable_scope("s", initializer=sg.constant_initializer(3.0)):
        a = sg.get_variable("a", [2])
        with sg.variable_scope("inner"):
            b = sg.get_variable("b", [2])
            c = sg.get_variable("c", [2], initializer=sg.ones_initializer())
    av, bv, cv = values(a, b, c)
    np.testing.assert_array_equal(av, [3, 3])
    np.testing.assert_array_equal(bv, [3, 3])
    np.testing.assert_array_equal(cv, [1, 1])


def test_initializer_may_be_a_value_or_a_tensor():
    a = sg.get_variable("a", initializer=sg.constant([[1.0, 2.0]]))
    b = sg.get_variable("b", [2, 2], initializer=5.0)
    c = sg.get_variable("c", [4], dtype=sg.float64, initializer=np.arange(4.0))
    av, bv, cv = values(a, b, c)
    assert a.shape == [1, 2]
    np.testing.assert_array_equal(av, [[1, 2]])
    np.testing.assert_array_equal(bv, np.full((2, 2), 5.0))
    np.testing.assert_array_equal(cv, np.arange(4.0))
    with pytest.raises(ValueError, match=r"shape of a new variable \(d\)"):
        sg.get_variable("d")


def test_regularizers_go_to_the_collection():
    w = sg.get_variable("w", [2, 2], initializer=sg.constant_initializer([1.0, -2.0, 3.0, 0.5]),
                        regularizer=sg.regularizers.l2_regularizer(0.1))
    with sg.variable_scope("s", regularizer=sg.regularizers.l1(0.5)):
        v = sg.get_variable("v", [3], initializer=sg.constant_initializer([1.0, -2.0, 3.0]))
        sg.get_variable("z", [3], regularizer=sg.regularizers.l2(0.0))  # scale 0: no penalty
    losses = sg.get_collection(sg.GraphKeys.REGULARIZATION_LOSSES)
    assert len(losses) == 2
    assert losses[0].op.name.startswith("w/Regularizer/")
    l2, l1 = values(*losses)
    assert l2 == pytest.approx(0.1 * (1 + 4 + 9 + 0.25) / 2)  # TF1: scale * sum(w^2) / 2
    assert l1 == pytest.approx(0.5 * 6)
    assert w.var_name == "w" and v.var_name == "s/v"
    with sg.variable_scope("s", reuse=True):
        sg.get_variable("v")
    assert len(sg.get_collection(sg.GraphKeys.REGULARIZATION_LOSSES)) == 2  # not re-added


def test_regularizer_arguments_are_checked():
    with pytest.raises(ValueError, match=">= 0"):
        sg.regularizers.l2_regularizer(-1.0)
    with pytest.raises(TypeError, match="Python number"):
        sg.regularizers.l1_regularizer("0.1")


def test_bad_reuse_value():
    with pytest.raises(ValueError, match="reuse must be"):
        with sg.variable_scope("s", reuse="yes"):
            pass


def test_a_clashing_op_name_is_reported():
    sg.constant(1.0, name="w")
    with pytest.raises(ValueError, match="already has an operation"):
        sg.get_variable("w", [1])

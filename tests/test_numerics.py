"""check_numerics: the op, and Session(check_numerics=True) finding the first NaN/Inf, even
inside a fused kernel, naming the user's op, its inputs' ranges and its line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from symgraph.errors import InvalidArgumentError

BAD = np.array([[1, -1, 2], [0, 1, 1]], np.float32)  # log(2x): NaN at -1, -Inf at 0


def _model():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 3], name="x")
        with sg.name_scope("layer"):
            a = x * 2.0
            b = sg.log(a)  # LOG_LINE
            d = sg.sqrt(sg.exp(b) + 1.0) * 3.0
    return g, x, b, d


LOG_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                if line.endswith("# LOG_LINE"))


@pytest.mark.parametrize("device", ["cpu", "reference"])
def test_session_check_numerics_names_the_first_bad_op_even_when_fused(device):
    g, x, _, d = _model()
    with sg.Session(graph=g, device=device, check_numerics=True) as sess:
        if device == "cpu":  # the premise: log is one op of a larger fused kernel
            plan = sess.plan_for(d, {x: BAD})
            members = [[m.opdef.name for m in k.members] for k in plan.kernels]
            assert any("log" in ms and len(ms) > 2 for ms in members), members
        ok = sess.run(d, {x: np.ones((2, 3), np.float32)})
        np.testing.assert_allclose(ok, 3 * np.sqrt(3), rtol=1e-6)
        with pytest.raises(InvalidArgumentError) as info:
            sess.run(d, {x: BAD})
    text = str(info.value)
    assert info.value.node.name == "layer/log" and info.value.node.graph is g
    assert "'layer/log' (log, created at" in text and f"test_numerics.py:{LOG_LINE}" in text
    assert "1 NaN, 1 Inf of 6" in text
    assert "'layer/multiply:0'" in text and "finite range [-2, 4]" in text  # the input's range
    assert ("inside fused kernel fused_" in text) == (device == "cpu")


def test_without_the_option_nan_propagates_silently():
    g, x, _, d = _model()
    with sg.Session(graph=g, device="cpu") as sess:
        out = sess.run(d, {x: BAD})
    assert np.isnan(out).sum() == 1


def test_a_fed_nan_is_reported_as_the_feed():
    g, x, _, d = _model()
    fed = np.array([[1, np.nan, 2]], np.float32)
    with sg.Session(graph=g, device="cpu", check_numerics=True) as sess:
        with pytest.raises(InvalidArgumentError, match=r"the value fed for 'x:0'.*1 NaN"):
            sess.run(d, {x: fed})


def test_enable_check_numerics_sets_the_default_for_new_sessions():
    g, x, _, d = _model()
    sg.debugging.enable_check_numerics()
    try:
        sess = sg.Session(graph=g, device="cpu")
    finally:
        sg.debugging.disable_check_numerics()
    assert sess.check_numerics and not sg.Session(graph=g).check_numerics
    with pytest.raises(InvalidArgumentError, match="layer/log"):
        sess.run(d, {x: BAD})


def test_check_numerics_op_passes_values_through_and_fails_naming_the_tensor():
    g, x, b, _ = _model()
    with g.as_default():
        checked = sg.debugging.check_numerics(b, "log went bad")
        y = checked * 1.0
        (grad,) = sg.gradients(sg.reduce_sum(y), [x])
    assert checked.op.type == "check_numerics" and checked.shape.as_list() == [None, 3]
    with sg.Session(graph=g, device="cpu") as sess:
        value, gv = sess.run([y, grad], {x: np.full((1, 3), 2, np.float32)})
        np.testing.assert_allclose(value, np.log(4.0), rtol=1e-6)
        np.testing.assert_allclose(gv, 0.5, rtol=1e-6)  # identity gradient: d log(2x)/dx = 1/x
        with pytest.raises(InvalidArgumentError) as info:
            sess.run(y, {x: BAD})
    text = str(info.value)
    assert text.startswith("'CheckNumerics' (check_numerics, created at")
    assert "log went bad: 'layer/log:0'" in text and "1 NaN, 1 Inf" in text
    assert info.value.node.name == "CheckNumerics"


def test_check_numerics_refuses_integer_tensors():
    with sg.Graph().as_default():
        with pytest.raises(TypeError, match="floating"):
            sg.debugging.check_numerics(sg.constant([1, 2]), "ints")

"""The public API fuzzed with hypothesis: arguments of any kind (names, shapes, axes, dtypes,
values) give a result or a documented error (ValueError, TypeError, or one of the run-time
OpErrors, which subclass them or Exception with TF1's names), never another exception, an
interpreter crash or a Numba internal error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph.errors import OpError

DOCUMENTED = (ValueError, TypeError, OpError)

def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` four times in five, so that most cases get as far as running."""
    return st.integers(0, 4).flatmap(lambda k: odd if k == 4 else usual)


VALID_DTYPES = [sg.float32, sg.float64, sg.int32, sg.int64, "float", "float32", "double"]
ODD_DTYPES = [sg.bool, sg.uint8, "no_such_type", None, 3, np.float32, np.int16]
dtypes = mostly(st.sampled_from(VALID_DTYPES), st.sampled_from(ODD_DTYPES))
names = mostly(st.none(), st.one_of(st.text(max_size=12), st.sampled_from(
    ['a"b{c}<d>', "x/y", "../z", "a b", "", "1", ".x", "é", "ok"])))
small_ints = st.integers(-4, 4)
axes = mostly(st.one_of(st.none(), small_ints, st.lists(small_ints, max_size=3)),
              st.one_of(st.tuples(small_ints, small_ints), st.sampled_from([1.5, "0", [None]])))
dims = mostly(st.one_of(st.none(), st.integers(1, 3)), st.integers(-2, 4))
shapes = mostly(st.lists(dims, max_size=3), st.one_of(
    st.none(), st.integers(-1, 4), st.sampled_from(["3", [1.5], [[2]], ()])))


def _apply(kind: str, x: Any, y: Any, arg: Any, name: Any) -> Any:
    ops = {
        "reduce_sum": lambda: sg.reduce_sum(x, axis=arg, name=name),
        "reduce_max": lambda: sg.reduce_max(x, axis=arg, keepdims=True, name=name),
        "reduce_mean": lambda: sg.reduce_mean(x, arg, name=name),
        "argmax": lambda: sg.argmax(x, axis=arg, name=name),
        "reshape": lambda: sg.reshape(x, arg, name=name),
        "transpose": lambda: sg.transpose(x, arg, name=name),
        "expand_dims": lambda: sg.expand_dims(x, arg, name=name),
        "squeeze": lambda: sg.squeeze(x, arg, name=name),
        "concat": lambda: sg.concat([x, y], arg, name=name),
        "stack": lambda: sg.stack([x, y], arg, name=name),
        "tile": lambda: sg.tile(x, arg, name=name),
        "one_hot": lambda: sg.one_hot(x, arg, name=name),
        "cast": lambda: sg.cast(x, arg, name=name),
        "add": lambda: sg.add(x, y, name=name),
        "matmul": lambda: sg.matmul(x, y, name=name),
        "slice": lambda: x[arg] if isinstance(arg, (int, tuple)) else x[::arg or 1],
        "softmax": lambda: sg.nn.softmax(x, axis=arg if isinstance(arg, int) else -1,
                                         name=name),
        "dense": lambda: sg.layers.dense(x, arg if isinstance(arg, int) else 3, name=None),
    }
    return ops[kind]()


def _fed_shape(draw, shape: Any) -> list[int]:
    """Mostly a shape that fits the static one (None dims filled in), sometimes any."""
    if isinstance(shape, list) and all(d is None or (isinstance(d, int) and d >= 0)
                                       for d in shape) and draw(st.integers(0, 3)):
        return [d if d is not None else draw(st.integers(0, 3)) for d in shape]
    return draw(st.lists(st.integers(0, 3), max_size=4))


@st.composite
def cases(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    other_shape = shape if draw(st.booleans()) else draw(shapes)
    kind = draw(st.sampled_from(["reduce_sum", "reduce_max", "reduce_mean", "argmax",
                                 "reshape", "transpose", "expand_dims", "squeeze", "concat",
                                 "stack", "tile", "one_hot", "cast", "add", "matmul", "slice",
                                 "softmax", "dense"]))
    if kind in ("reshape", "tile", "transpose"):
        arg = draw(shapes)
    elif kind == "cast":
        arg = draw(dtypes)
    else:
        arg = draw(axes)
    fed = [_fed_shape(draw, shape), _fed_shape(draw, other_shape)]
    return dtype, shape, other_shape, kind, arg, draw(names), fed, draw(st.booleans())


def _check(case) -> None:
    dtype, shape, other_shape, kind, arg, name, fed, cpu = case
    g = sg.Graph()
    with g.as_default():
        try:
            x = sg.placeholder(dtype, shape, name=name)
            y = sg.placeholder(dtype, other_shape)
            out = _apply(kind, x, y, arg, name)
            init = sg.global_variables_initializer()
        except DOCUMENTED:
            return
        sess = sg.Session(graph=g, device="cpu" if cpu else "reference")
        try:
            sess.run(init)
            feed = {x: np.ones(fed[0], x.dtype.np), y: np.ones(fed[1], y.dtype.np)}
            sess.run(out, feed)
        except DOCUMENTED:
            return


@pytest.mark.parametrize("examples", [pytest.param(400, id="400"),
                                      pytest.param(4000, id="4000", marks=pytest.mark.slow)])
def test_public_api_arguments_fail_only_with_documented_errors(examples):
    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def run(case):
        _check(case)

    run()

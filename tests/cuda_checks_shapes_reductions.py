"""The cuda device's data movement (shape ops and their gradients) and reductions against the
reference: edge cases over every dtype (empty, negative steps, unknown rank, integer
overflow), rows split over blocks, and several axis sets in one group.

Gated and set up by tests/cuda_common.py (imported below): run by tests/test_cuda.py
(simulator) and `make test-gpu` (GPU), never by a plain `pytest`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cuda_common import TOLERANCE, _ints, _vals

import symgraph as sg
from compiler import codegen_cuda_reduce
from compiler.codegen_cuda import LaunchConfig
from runtime import executor
from symgraph.graph import apply
from symgraph.ops import reduce as red
from symgraph.ops import shape_ops as so
from symgraph.registry import OpKind

_BIG32 = 2**30 + 12345  # a few of these overflow an int32 sum
# (id, build(*placeholders), input values, how the placeholders' shapes are given: "static",
# "dims" (every dim None) or "rank" (unknown rank))
MOVE_CASES = [
    ("transpose-int64", lambda x: sg.transpose(x, [2, 0, 1]), [_vals((2, 3, 4), np.int64)],
     "static"),
    ("transpose-bool-dims", sg.transpose, [_vals((2, 3), bool)], "dims"),
    ("transpose-uint8-ones", lambda x: sg.transpose(x, [3, 1, 0, 2]),
     [_vals((1, 3, 1, 2), np.uint8)], "static"),
    ("transpose-empty", sg.transpose, [_vals((0, 3))], "dims"),
    ("transpose-0d", sg.transpose, [np.float64(2.5)], "static"),
    ("slice-negative-steps", lambda x: x[::-1, ::-2], [_vals((4, 5), np.int32)], "static"),
    ("slice-empty", lambda x: x[3:1], [_vals((4, 5), np.int8)], "dims"),
    ("slice-past-the-end", lambda x: x[:, 7:], [_vals((4, 5))], "dims"),
    ("slice-newaxis-index", lambda x: x[None, -1, 1:4:2], [_vals((3, 5), bool)], "static"),
    ("slice-negative-bounds", lambda x: x[-3:-1, ::3], [_vals((4, 7), np.int16)], "dims"),
    ("slice-ellipsis-unknown-rank", lambda x: x[..., ::-1], [_vals((2, 3, 2), np.uint8)],
     "rank"),
    ("slice-grad-negative-steps",
     lambda g, like: apply(so.SLICE_GRAD, g, like,
                           spec=so.normalize_index(like, (slice(4, 0, -2), 1))),
     [_vals((2,), np.int32), _vals((5, 4), np.int32)], "dims"),
    ("concat-int64-empty-part", lambda a, b, c: sg.concat([a, b, c], -1),
     [_vals((2, 1), np.int64), _vals((2, 0), np.int64), _vals((2, 3), np.int64)], "dims"),
    ("concat-bool-axis0", lambda a, b: sg.concat([a, b], 0),
     [_vals((1, 3), bool), _vals((2, 3), bool, seed=1)], "static"),
    ("concat-part", lambda g, a, b, c: apply(so.CONCAT_PART, g, a, b, c, axis=1, index=2),
     [_vals((2, 6), np.int32), _vals((2, 1)), _vals((2, 3)), _vals((2, 2))], "dims"),
    ("stack-int16-last", lambda a, b: sg.stack([a, b], -1),
     [_vals((2, 3), np.int16), _ints((2, 3), np.int16, -9, 9)], "static"),
    ("stack-bool-middle", lambda a, b, c: sg.stack([a, b, c], 1),
     [_vals((2, 2), bool), _vals((2, 2), bool, 1), _vals((2, 2), bool, 2)], "dims"),
    ("stack-scalars", lambda a, b: sg.stack([a, b]), [np.int8(3), np.int8(-4)], "static"),
    ("tile-int32", lambda x: sg.tile(x, [2, 1, 3]), [_vals((2, 3, 1), np.int32)], "dims"),
    ("tile-bool", lambda x: sg.tile(x, [3, 2]), [_vals((1, 2), bool)], "static"),
    ("tile-zero", lambda x: sg.tile(x, [0, 2]), [_vals((2, 2))], "static"),
    ("broadcast-to-int64", lambda x: sg.broadcast_to(x, [2, 3, 4]), [_vals((3, 1), np.int64)],
     "static"),
    ("broadcast-to-bool-0d", lambda x: sg.broadcast_to(x, [2, 2]), [np.bool_(True)], "static"),
    ("broadcast-to-uint8", lambda x: sg.broadcast_to(x, [2, 3]), [_vals((3,), np.uint8)],
     "dims"),
    ("pad-int8", lambda x: sg.pad(x, [[1, 0], [2, 1]], constant_values=-3),
     [_vals((2, 3), np.int8)], "dims"),
    ("pad-bool", lambda x: sg.pad(x, [[0, 2]], constant_values=True), [_vals((3,), bool)],
     "static"),
    ("pad-none", lambda x: sg.pad(x, [[0, 0], [0, 0]]), [_vals((2, 2), np.float64)], "static"),
    ("sum-tiles-int32", lambda g: apply(so.SUM_TILES, g, multiples=(2, 3)),
     [_ints((4, 6), np.int32, -_BIG32, _BIG32)], "dims"),
    ("sum-tiles-float32", lambda g: apply(so.SUM_TILES, g, multiples=(1, 2)),
     [_vals((3, 4))], "static"),
    ("check-numerics", lambda x: sg.debugging.check_numerics(x, "x"), [_vals((2, 3))], "dims"),
    ("reduce-sum-int32-overflow", lambda x: sg.reduce_sum(x, 0),
     [_ints((3, 4), np.int32, _BIG32, 2**31 - 1)], "static"),
    ("reduce-sum-int8-keepdims", lambda x: sg.reduce_sum(x, -1, keepdims=True),
     [_ints((3, 4), np.int8, -128, 127)], "dims"),
    ("reduce-sum-uint8-none", sg.reduce_sum, [_ints((3, 4), np.uint8, 0, 255)], "static"),
    ("reduce-sum-int64-unknown-rank", lambda x: sg.reduce_sum(x, keepdims=True),
     [_ints((2, 3), np.int64, -2**62, 2**62)], "rank"),
    ("reduce-prod-int64-overflow", lambda x: sg.reduce_prod(x, 1),
     [_ints((2, 5), np.int64, 2**19, 2**21)], "static"),
    ("reduce-prod-uint8", lambda x: sg.reduce_prod(x, [0, 2]),
     [_ints((2, 3, 2), np.uint8, 0, 255)], "static"),
    ("reduce-max-int16-axes-0-2", lambda x: sg.reduce_max(x, [0, 2], keepdims=True),
     [_ints((2, 3, 4), np.int16, -999, 999)], "dims"),
    ("reduce-min-int32-none", sg.reduce_min, [_ints((3, 4), np.int32, -99, 99)], "dims"),
    ("reduce-max-int32-empty-axis", lambda x: sg.reduce_max(x, 1),
     [np.zeros((3, 0), np.int32)], "dims"),
    ("reduce-min-int8-empty", sg.reduce_min, [np.zeros((0, 2), np.int8)], "dims"),
    ("reduce-mean-int32-truncates", lambda x: sg.reduce_mean(x, 1),
     [_ints((3, 4), np.int32, -9, 9)], "static"),
    ("reduce-mean-int64-large", lambda x: sg.reduce_mean(x, -2),
     [_ints((3, 2), np.int64, 2**40, 2**41)], "dims"),
    ("reduce-sum-float32-unknown-rank", sg.reduce_sum, [_vals((2, 3, 2))], "rank"),
    ("reduce-max-float64-nan-unknown-rank", sg.reduce_max,
     [np.array([[1.0, np.nan], [3.0, -np.inf]])], "rank"),
    ("reduce-mean-float32-empty", lambda x: sg.reduce_mean(x, keepdims=True),
     [np.zeros((0, 3), np.float32)], "rank"),
    ("sum-to-int32", lambda g, x: apply(red.SUM_TO, g, x),
     [_ints((2, 3, 4), np.int32, -_BIG32, _BIG32), _vals((3, 1), np.int32)], "dims"),
    ("sum-to-float32", lambda g, x: apply(red.SUM_TO, g, x), [_vals((3, 4)), _vals((1, 4))],
     "static"),
]


def _static(shape: tuple, given: str) -> list | None:
    return None if given == "rank" else [None] * len(shape) if given == "dims" else list(shape)


# the simulator computes integer kernels with NumPy scalars, which warn where they wrap
@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("build,values,given", [pytest.param(*c[1:], id=c[0])
                                                for c in MOVE_CASES])
def test_data_movement_and_reductions_match_reference(build: Any, values: list,
                                                      given: str) -> None:
    """Transposes, slices (negative steps, empty, past the end, unknown rank), their gradient,
    concat, stack, tile, broadcast_to, pad, and integer reductions (wrapping as NumPy does,
    the identities over no elements, means truncated toward zero) and reductions whose axes
    are known only at run time, in device kernels: the reference's values, bit for bit (float
    reductions: to rounding), with nothing on the host."""
    with sg.Graph().as_default() as graph:
        xs = [sg.placeholder(sg.as_dtype(np.asarray(v).dtype), _static(np.shape(v), given))
              for v in values]
        y = build(*xs)
        feeds = dict(zip(xs, values))
        want = sg.Session(graph=graph, device="reference").run(y, feeds)
        sess = sg.Session(graph=graph, device="cuda")
        fallbacks = executor.fallbacks
        got = sess.run(y, feeds)
        plan = sess.plan_for(y, feeds)
    assert executor.fallbacks == fallbacks, "a kernel refused its inputs"
    assert not sess._device.stats.host_ops, sess._device.stats.host_ops
    assert y.node.opdef.name in [m.opdef.name for k in plan.kernels for m in k.members]
    assert got.dtype == want.dtype and got.shape == want.shape, (got, want)
    if y.dtype.is_floating and y.node.opdef.kind is OpKind.REDUCTION:
        np.testing.assert_allclose(got, want, **TOLERANCE[y.dtype.name])
    else:
        np.testing.assert_array_equal(got, want)


SPLIT_REDUCTIONS = [sg.reduce_sum, sg.reduce_mean, sg.reduce_max, sg.reduce_min, sg.reduce_prod]


# the simulator computes integer kernels with NumPy scalars, which warn where they wrap
@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("axis", [None, 1], ids=["full", "rows"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=["float32", "int32"])
def test_row_reductions_split_over_blocks_match_reference(dtype: type, axis: int | None
                                                          ) -> None:
    """One row of 39 or three of 13, with a launch config that wants 12 blocks: each row is cut
    into slices on several blocks (the grid of 2 striding over them), and a second launch
    combines the partials and finishes once (the mean divides once; integer sums and products
    wrap as NumPy's). The reference's values: integers exactly, floats to rounding."""
    rng = np.random.default_rng(8)
    if np.dtype(dtype).kind == "f":  # near 1 in size: the product neither under- nor overflows
        value = (rng.uniform(0.8, 1.25, (3, 13)) * rng.choice([-1, 1], (3, 13))).astype(dtype)
    else:  # odd: a product wraps without reaching 0; the sums wrap too
        value = (rng.integers(-2**30, 2**30 - 1, (3, 13)) * 2 + 1).astype(dtype)
    config = LaunchConfig(threads=4, max_blocks=2, target_blocks=12)
    rows, length = (1, value.size) if axis is None else (3, 13)
    nsplit = codegen_cuda_reduce.slices(rows, length, config)
    assert nsplit > 1
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.as_dtype(dtype), [None, None])
        with sg.control_dependencies([sg.no_op()]):  # floats too reduce here, not fused
            ys = [reduce(x, axis) for reduce in SPLIT_REDUCTIONS]
        want = sg.Session(graph=graph, device="reference").run(ys, {x: value})
        sess = sg.Session(graph=graph, device="cuda")
        plan = sess.plan_for(ys, {x: value})
        for kernel in plan.kernels:
            assert kernel.name.startswith("cuda_reduce_"), kernel.name
            kernel.config = config
        got = sess.run(ys, {x: value})
    assert len(plan.kernels) == len(SPLIT_REDUCTIONS)
    assert not sess._device.stats.host_ops, sess._device.stats.host_ops
    # the partials' scratch buffer went back to the pool: the reductions did split
    assert ((rows * nsplit,), np.dtype(dtype).str) in sess._device.pool._free
    for reduce, g, w in zip(SPLIT_REDUCTIONS, got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, reduce.__name__
        if np.dtype(dtype).kind == "f":
            np.testing.assert_allclose(g, w, **TOLERANCE["float32"], err_msg=reduce.__name__)
        else:
            np.testing.assert_array_equal(g, w, err_msg=reduce.__name__)


def test_a_row_is_split_only_while_rows_leave_blocks_idle() -> None:
    """On a GPU's launch config: one row of a million elements over 1024 blocks; as many rows
    as blocks, one block each; no slice under a block's worth of elements."""
    gpu = LaunchConfig(threads=256, max_blocks=4096, target_blocks=1024)
    assert codegen_cuda_reduce.slices(1, 10**6, gpu) == 1024
    assert codegen_cuda_reduce.slices(8, 10**6, gpu) == 128
    assert codegen_cuda_reduce.slices(1024, 10**6, gpu) == 1
    assert codegen_cuda_reduce.slices(1, 1000, gpu) == 4
    assert codegen_cuda_reduce.slices(1, 0, gpu) == codegen_cuda_reduce.slices(0, 9, gpu) == 1


def test_reductions_of_several_axis_sets_share_one_group() -> None:
    """A group reducing over different axes (a kernel per axis set) with an elementwise output,
    on shapes that split a reduction over several blocks."""
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [None, 9])
        e = sg.exp(x * 0.5)
        outs = [e, sg.reduce_sum(e, 0), sg.reduce_max(e, 1, keepdims=True), sg.reduce_mean(e)]
        feed = {x: np.random.default_rng(2).standard_normal((7, 9)).astype(np.float32)}
        want = sg.Session(device="reference").run(outs, feed)
        sess = sg.Session(device="cuda")
        got = sess.run(outs, feed)
        assert len(sess.plan_for(outs, feed).kernels) == 1
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-6)

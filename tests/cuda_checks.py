"""The cuda device against the reference: the op table, an MLP and a CNN training step, the
buffer pool, variables kept on the device.

Not collected by a plain `pytest` (the name does not match test_*.py): tests/test_cuda.py runs
this file in a subprocess with NUMBA_ENABLE_CUDASIM=1 (which must be set before numba is first
imported, and the rest of the suite imports numba normally), and `make test-gpu` runs it on a
real GPU. Shapes are tiny: the simulator costs ~0.1 ms per simulated thread.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
import zlib
from typing import Any

import numpy as np
import pytest
from op_cases import CASES, OpCase

import symgraph as sg
from compiler import codegen_cuda_ops, codegen_cuda_reduce, fusion
from compiler.codegen_cuda import LaunchConfig
from compiler.codegen_cuda_nn import BUILDERS
from runtime import executor
from symgraph.graph import apply
from symgraph.ops import nn as nn_ops
from symgraph.ops import random as random_ops
from symgraph.ops import reduce as red
from symgraph.ops import shape_ops as so
from symgraph.registry import OpKind

if not os.environ.get("SYMGRAPH_CUDA_TESTS"):
    pytest.skip("run by tests/test_cuda.py (simulator) or `make test-gpu`, which set "
                "SYMGRAPH_CUDA_TESTS", allow_module_level=True)
if not sg.cuda.is_available():
    pytest.fail(f"SYMGRAPH_CUDA_TESTS is set, but {sg.cuda.unavailable_reason()}", pytrace=False)


def _simulator_shared_arrays_made_atomic() -> None:
    """The simulator runs a block's threads as Python threads, and its cuda.shared.array looks
    the array up by call site and creates it if missing: two threads that interleave there get
    two arrays, and one reads the other's unwritten garbage (NaN results now and then, more
    often the shorter the GIL switch interval). The same lookup, under a lock."""
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()
    unlocked = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):  # noqa: ANN001 - the simulator's signature
        if shape == 0 or alignment is not None:  # dynamic shared memory: no lookup to race
            return unlocked(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # the kernel's line
        with lock:
            found = self._allocations.get(caller)
            if found is None:
                found = self._allocations[caller] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _simulator_shared_arrays_made_atomic()
    # the simulator's block manager busy-waits on the threads at syncthreads: a short GIL
    # switch interval hands them the GIL sooner (~5x faster here)
    sys.setswitchinterval(2e-5)
# float32 on the device: math.exp etc. are libdevice (GPU) or NumPy (simulator), and reductions
# combine in a tree rather than in order: a few ulp from the reference
TOLERANCE = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-11, atol=1e-12)}
# kernels the cuda plan must hold for these ops (the rest may run on the host, counted)
NN_OPS = set(BUILDERS)  # convolution and pooling, forward and backward
DEVICE_OPS = {"matmul", "softmax", "log_softmax", "softmax_cross_entropy",
              "sparse_softmax_cross_entropy"} | NN_OPS
# kernels for every dtype: index ops (codegen_cuda_index), data movement (codegen_cuda_shape),
# reductions (fused, or codegen_cuda_reduce's: integers, axes known at run time)
INDEX_OPS = {"argmax", "argmin", "one_hot", "in_top_k"}
MOVE_OPS = set(codegen_cuda_ops.MOVE_OPS)
REDUCTIONS = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "sum_to",
              "sum_tiles"}
# over integers, x // 0, x % 0 and negative powers follow NumPy's rules on the host
INTEGER_HOST_OPS = {"floordiv", "mod", "pow"}
# computed from the run-time shape on the host: neither a kernel nor a host op
SHAPE_OPS = {"shape", "size"}


def _on_device(case: OpCase, y: sg.Tensor) -> bool:
    """Whether the case's op must run in a device kernel."""
    node = y.node
    if case.op in DEVICE_OPS:
        return y.dtype.is_floating
    if case.op in INDEX_OPS | MOVE_OPS | REDUCTIONS or fusion.is_elementwise(node):
        return True
    return (node.opdef.name == case.op and node.opdef.kind is OpKind.ELEMENTWISE
            and case.op not in INTEGER_HOST_OPS)


def _rng(*parts: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(parts).encode()))


def _feeds(case: OpCase, dtype: sg.DType) -> tuple[list[sg.Tensor], list[np.ndarray]]:
    rng = _rng(case.id, dtype.name)
    tensors, values = [], []
    for arg in case.args:
        dt = arg.dtype or dtype
        tensors.append(sg.placeholder(dt, arg.static))
        values.append(np.asarray(arg.gen(rng, arg.shape, np.dtype(dt.np)), dt.np))
    return tensors, values


FORWARD = [pytest.param(c, dt, id=f"{c.id}-{dt.name}") for c in CASES for dt in c.dtypes]


@pytest.mark.parametrize("case,dtype", FORWARD)
def test_op_table_matches_reference(case: OpCase, dtype: sg.DType) -> None:
    """Every op of the table on the cuda device computes what the reference computes; an
    elementwise op (integer ones too, but for integer division and powers) runs in a generated
    device kernel; matmul, softmax, cross-entropy, convolution, pooling, the index ops, the
    data-movement ops and every reduction in their kernels; shape and size are read off the
    shapes, reshapes are views. Nothing but integer division and powers runs on the host."""
    with sg.Graph().as_default() as graph:
        tensors, values = _feeds(case, dtype)
        y = case.build(*tensors)
        feeds = dict(zip(tensors, values))
        expected = sg.Session(graph=graph, device="reference").run(y, feeds)
        sess = sg.Session(graph=graph, device="cuda")
        fallbacks = executor.fallbacks
        result = sess.run(y, feeds)
        plan = sess.plan_for(y, feeds)
    assert executor.fallbacks == fallbacks, "a kernel refused its inputs"
    assert result.dtype == expected.dtype and result.shape == expected.shape
    if y.dtype.is_floating:
        np.testing.assert_allclose(result, expected, **TOLERANCE[y.dtype.name])
    else:
        np.testing.assert_array_equal(result, expected)
    compiled = [m.opdef.name for k in plan.kernels for m in k.members]
    if _on_device(case, y):
        assert case.op in compiled or case.op not in [
            n.opdef.name for n in plan.program.graph.nodes], compiled
    if _on_device(case, y) or case.op in SHAPE_OPS:
        assert case.op not in sess._device.stats.host_ops, sess._device.stats.host_ops
    assert set(sess._device.stats.host_ops) <= INTEGER_HOST_OPS, sess._device.stats.host_ops


def _ints(shape: tuple, dtype: type, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, shape, endpoint=True).astype(dtype)


def _vals(shape: tuple, dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    """Distinct values of `shape`: a copy that lands anywhere else shows."""
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    if np.dtype(dtype) == np.bool_:
        return np.random.default_rng(seed).integers(0, 2, shape).astype(bool)
    return (x - x.size // 2).astype(dtype)


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


def test_check_numerics_on_the_device_fails_as_the_reference_does() -> None:
    """A NaN stops the run with the reference's error (the device scan refuses, the reference
    names the op and counts the NaN); finite values pass through unchanged."""
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [None])
        y = sg.debugging.check_numerics(x * 2.0, "doubled")
        sess = sg.Session(device="cuda")
        np.testing.assert_array_equal(sess.run(y, {x: [1.0, 2.0]}), [2.0, 4.0])
        with pytest.raises(sg.errors.InvalidArgumentError, match="doubled.*1 NaN"):
            sess.run(y, {x: [1.0, np.nan]})


def test_a_model_of_slices_concat_and_transposes_trains_on_the_device() -> None:
    """A model built from concat, slices (reversed, strided), transpose, pad, tile, stack and
    broadcast_to, with integer counts beside it: its loss, its gradients (concat_part,
    slice_grad, sum_tiles, ...) and two SGD steps agree with the reference, and no op of the
    forward or the backward pass runs on the host."""
    rng = np.random.default_rng(5)
    w0 = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [None, 4])
        w = sg.Variable(w0)
        a = sg.concat([x, x[:, ::-1]], 1)  # (n, 8)
        b = sg.transpose(a)[1:8:2]  # (4, n)
        c = sg.matmul(sg.transpose(b), w)  # (n, 3)
        d = sg.tile(sg.pad(c, [[0, 1], [1, 1]]), [2, 1])  # (2n + 2, 5)
        s = sg.stack([w, w * w], axis=-1)[:, ::-1, 0]  # (4, 3)
        loss = (sg.reduce_sum(sg.tanh(d)) + sg.reduce_sum(s * s)
                + sg.reduce_sum(sg.broadcast_to(w[0], [2, 3]) * c[:1]))
        counts = [sg.reduce_sum(sg.cast(d > 0, sg.int32), 1),
                  sg.reduce_max(sg.argmax(sg.transpose(d), 1))]
        grads = sg.gradients(loss, [x, w])
        train = sg.train.GradientDescentOptimizer(0.05).minimize(loss)
        feed = {x: rng.uniform(-1, 1, (3, 4)).astype(np.float32)}
        results = {}
        for device in ("reference", "cuda"):
            sess = sg.Session(device=device)
            sess.run(sg.global_variables_initializer())
            steps = [sess.run([loss, *grads, *counts, train], feed)[:-1] for _ in range(2)]
            results[device] = steps + [[sess.run(w)]]
        plan = sess.plan_for([loss, *grads, *counts, train], feed)
    host_ops = sess._device.stats.host_ops
    assert not host_ops, host_ops
    compiled = {m.opdef.name for k in plan.kernels for m in k.members}
    assert {"concat", "concat_part", "strided_slice", "slice_grad", "transpose", "pad", "tile",
            "sum_tiles", "stack", "broadcast_to"} <= compiled, compiled
    for got, want in zip(results["cuda"], results["reference"]):
        for g, v in zip(got, want):
            assert g.dtype == v.dtype
            np.testing.assert_allclose(g, v, rtol=1e-5, atol=1e-6)


def _mlp(dropout: float) -> dict:
    """examples/mnist_mlp.py's graph, tiny: dense-relu-dropout (a bool `training` switch),
    sparse cross-entropy, accuracy by argmax/equal/cast, Adam on a cosine-decayed rate."""
    sg.set_random_seed(7)
    x = sg.placeholder(sg.float32, [None, 6], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    training = sg.placeholder_with_default(False, [], name="training")
    h = sg.layers.dense(x, 5, activation=sg.nn.relu)
    h = sg.layers.dropout(h, dropout, training=training) if dropout else h
    logits = sg.layers.dense(h, 3)
    loss = sg.losses.sparse_softmax_cross_entropy(y, logits)
    accuracy = sg.reduce_mean(sg.cast(sg.equal(sg.argmax(logits, 1), y), sg.float32))
    step = sg.train.get_or_create_global_step()
    rate = sg.train.cosine_decay(0.05, step, 10)
    train = sg.train.AdamOptimizer(rate).minimize(loss, global_step=step)
    masks = [n.output for n in sg.get_default_graph().nodes if n.opdef.name == "dropout_mask"]
    return {"x": x, "y": y, "training": training, "loss": loss, "accuracy": accuracy,
            "train": train, "masks": masks, "step": step}


def test_mlp_training_steps_match_reference() -> None:
    """Three Adam steps of a 6-5-3 MLP with dropout on the device, none of its ops on the host.
    The device draws its own numbers (initial weights, dropout masks): the reference starts
    from the device's initial weights and is fed the device's masks, and then the losses,
    accuracies and weights after each step agree."""
    with sg.Graph().as_default():
        model = _mlp(0.3)
        rng = np.random.default_rng(0)
        batches = [(rng.standard_normal((4, 6)).astype(np.float32), rng.integers(0, 3, 4))
                   for _ in range(3)]
        fetches = [model["train"], model["loss"], model["accuracy"], *model["masks"]]
        sess = sg.Session(device="cuda")
        sess.run(sg.global_variables_initializer())
        initial = {v: sess.run(v) for v in sg.global_variables()}
        sess._device.stats.host_ops.clear()
        got = [sess.run(fetches, {model["x"]: x, model["y"]: y, model["training"]: True})[1:]
               for x, y in batches]
        host_ops = dict(sess._device.stats.host_ops)
        weights = {v.name: sess.run(v) for v in sg.global_variables()}
        steps = sess.run(model["step"])  # assign_add on the device
        ref = sg.Session(device="reference")
        ref.run(sg.global_variables_initializer())
        for v, value in initial.items():
            v.load(value, ref)
        want = [ref.run(fetches[:3], {model["x"]: x, model["y"]: y, model["training"]: True,
                                      **dict(zip(model["masks"], masks))})[1:]
                for (x, y), (_, _, *masks) in zip(batches, got)]
        want_weights = {v.name: ref.run(v) for v in sg.global_variables()}
    assert not host_ops, host_ops
    for mask in got[0][2:]:  # inverted dropout: 0 or 1 / (1 - rate)
        assert set(np.unique(mask)) <= {0.0, np.float32(1 / np.float32(0.7))}
    np.testing.assert_allclose([g[:2] for g in got], want, rtol=1e-5, atol=1e-6)
    for name in want_weights:
        np.testing.assert_allclose(weights[name], want_weights[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert steps == 3


def _random_ops(n: int) -> tuple[list[sg.Tensor], sg.Tensor]:
    """Every random op, and dropout, drawing about n values each (seeded graph)."""
    sg.set_random_seed(3)
    x = sg.placeholder(sg.float32, [None, 10])
    return [sg.random_uniform([n], -1.0, 3.0), sg.random_normal([n], 1.0, 2.0, dtype=sg.float64),
            sg.truncated_normal([n], 0.5, 1.0), sg.random_uniform([n], 0, 7, dtype=sg.int32),
            random_ops.random_uniform_like(x), sg.nn.dropout(x, 0.25)], x


def test_random_ops_draw_on_the_device_from_their_distributions() -> None:
    """~1000 draws of each random op on the device (its own numbers: TF1 too draws differently
    on a GPU): uniform in [min, max) with the uniform's mean and variance, normal's mean and
    variance, truncated normal within 2 stddev (variance 0.774 stddev^2), integers covering
    [min, max), dropout keeping about 1 - rate scaled by 1 / (1 - rate). Tolerances: ~5
    standard errors."""
    with sg.Graph().as_default():
        ops, x = _random_ops(1000)
        sess = sg.Session(device="cuda")
        uniform, normal, truncated, ints, like, dropped = sess.run(
            ops, {x: np.ones((100, 10), np.float32)})
    assert not sess._device.stats.host_ops, sess._device.stats.host_ops
    assert uniform.dtype == np.float32 and normal.dtype == np.float64
    assert -1 <= uniform.min() and uniform.max() < 3
    assert abs(uniform.mean() - 1) < 0.2 and abs(uniform.var() - 16 / 12) < 0.2
    assert abs(normal.mean() - 1) < 0.35 and abs(normal.var() - 4) < 0.9
    assert np.all(np.abs(truncated - 0.5) <= 2) and abs(truncated.mean() - 0.5) < 0.15
    assert abs(truncated.var() - 0.774) < 0.15
    assert ints.dtype == np.int32 and set(np.unique(ints)) == set(range(7))
    assert 0 <= like.min() and like.max() < 1 and abs(like.mean() - 0.5) < 0.1
    scale = np.float32(1) / np.float32(0.75)
    assert set(np.unique(dropped)) <= {0, scale} and abs((dropped > 0).mean() - 0.75) < 0.07


def test_seeded_random_ops_replay_in_a_new_session_and_change_every_run() -> None:
    """A seeded graph draws the same numbers in a new cuda session (its states start from the
    seed again); two runs of one session draw different numbers (the states advance)."""
    with sg.Graph().as_default():
        ops, x = _random_ops(8)
        feed = {x: np.ones((3, 10), np.float32)}
        sess = sg.Session(device="cuda")
        first, second = sess.run(ops, feed), sess.run(ops, feed)
        again = sg.Session(device="cuda").run(ops, feed)
    for a, b, c in zip(first, second, again):
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, b)


def _cnn() -> tuple[list, dict, list]:
    """conv3x3(2)-relu-maxpool-conv2x2(2, dilated)-avgpool-dense(3), sparse cross-entropy,
    momentum; the gradient with respect to the images and max_pool2d_gather (the pool's second
    derivative) too, so that all eight convolution and pooling ops run."""
    rng = np.random.default_rng(1)
    x = sg.placeholder(sg.float32, [None, 6, 6, 1])
    y = sg.placeholder(sg.int64, [None])
    k1 = sg.Variable(rng.uniform(-0.5, 0.5, (3, 3, 1, 2)).astype(np.float32))
    k2 = sg.Variable(rng.uniform(-0.5, 0.5, (2, 2, 2, 2)).astype(np.float32))
    w = sg.Variable(rng.uniform(-0.5, 0.5, (8, 3)).astype(np.float32))
    h1 = sg.nn.relu(sg.nn.conv2d(x, k1, 1, "SAME"))
    p1 = sg.nn.max_pool2d(h1, 3, 2, "SAME")  # 6 -> 3, overlapping windows
    h2 = sg.nn.conv2d(p1, k2, 1, "SAME", dilations=2)
    p2 = sg.nn.avg_pool2d(h2, 2, 1, "VALID")  # (N, 2, 2, 2)
    logits = sg.reshape(p2, [-1, 8]) @ w
    loss = sg.reduce_mean(sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))
    (dx,) = sg.gradients(loss, [x])
    gather = apply(nn_ops.MAX_POOL_GATHER, h1, h1, ksize=(3, 3), strides=(2, 2),
                   padding="SAME")
    train = sg.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
    feed = {x: rng.standard_normal((2, 6, 6, 1)).astype(np.float32), y: np.array([0, 2])}
    return [loss, dx, gather, train], feed, [k1, k2, w]


def test_cnn_training_steps_match_reference() -> None:
    """Three momentum steps of a small CNN on the device agree with the reference (loss, the
    images' gradient, the gather, the weights after them), and no convolution or pooling op
    runs on the host or falls back."""
    with sg.Graph().as_default():
        fetches, feed, params = _cnn()
        results, sessions = {}, {}
        fallbacks = executor.fallbacks
        for device in ("reference", "cuda"):
            sess = sessions[device] = sg.Session(device=device)
            sess.run(sg.global_variables_initializer())
            steps = [sess.run(fetches, feed)[:3] for _ in range(3)]
            results[device] = (steps, [sess.run(v) for v in params])
        plan = sessions["cuda"].plan_for(fetches, feed)
    assert executor.fallbacks == fallbacks, "a kernel refused its inputs"
    for got, want in zip(results["cuda"][0], results["reference"][0]):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    for got, want in zip(results["cuda"][1], results["reference"][1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert NN_OPS <= {m.opdef.name for k in plan.kernels for m in k.members}
    host_ops = sessions["cuda"]._device.stats.host_ops
    assert not NN_OPS & set(host_ops), host_ops


@pytest.mark.parametrize("ksize,padding", [(3, "SAME"), (2, "VALID")])
def test_max_pool_ties_infinities_and_nan_go_where_the_reference_sends_them(
        ksize: int, padding: str) -> None:
    """Ties: the first tap in window order; a window of -inf that starts on padding: the
    padding's tap wins (its gradient is lost); a NaN: the first NaN. Forward, gradient and
    gather on the device equal the reference exactly."""
    x_val = np.array([[1, 1, 0], [1, -np.inf, 2], [np.nan, 2, 2]], np.float32)[None, :, :, None]
    x_val = np.concatenate([x_val, np.full_like(x_val, -np.inf)])
    attrs = {"ksize": (ksize, ksize), "strides": (1, 1), "padding": padding}
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [None, 3, 3, 1])
        h = sg.placeholder(sg.float32, [None, 3, 3, 1])
        y = sg.nn.max_pool2d(x, **attrs)
        shape = (2, *y.shape[1:])
        g = sg.placeholder(sg.float32, [None, *y.shape[1:]])
        ops = [y, apply(nn_ops.MAX_POOL_GRAD, x, g, **attrs),
               apply(nn_ops.MAX_POOL_GATHER, x, h, **attrs)]
        feed = {x: x_val, h: np.arange(18, dtype=np.float32).reshape(2, 3, 3, 1) + 1,
                g: np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1}
        want = sg.Session(graph=graph, device="reference").run(ops, feed)
        sess = sg.Session(graph=graph, device="cuda")
        got = sess.run(ops, feed)
    assert not sess._device.stats.host_ops
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_convolution_of_an_empty_batch() -> None:
    """Batch 0: empty outputs, and a filter gradient of zeros (no rows to sum), on the device."""
    rng = np.random.default_rng(4)
    attrs = {"strides": (1, 1), "dilations": (1, 1), "padding": "SAME"}
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [None, 3, 3, 2])
        w = sg.constant(rng.standard_normal((2, 2, 2, 3)).astype(np.float32))
        y = sg.nn.conv2d(x, w, **attrs)
        g = sg.placeholder(sg.float32, [None, 3, 3, 3])
        ops = [y, apply(nn_ops.CONV2D_INPUT_GRAD, g, w, x, **attrs),
               apply(nn_ops.CONV2D_FILTER_GRAD, x, g, w, **attrs),
               sg.nn.avg_pool2d(x, 2, 1, "SAME")]
        feed = {x: np.zeros((0, 3, 3, 2), np.float32), g: np.zeros((0, 3, 3, 3), np.float32)}
        want = sg.Session(graph=graph, device="reference").run(ops, feed)
        sess = sg.Session(graph=graph, device="cuda")
        got = sess.run(ops, feed)
    assert not NN_OPS & set(sess._device.stats.host_ops)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


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


# ---- in-place updates: an optimizer's step writes each variable's own device buffer ------------

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


def test_float32_kernels_keep_float32() -> None:
    """Generated CUDA source casts every value to its dtype, and the numbers of the templates
    (sigmoid's 1, relu's 0) are float32 constants: no float64 anywhere."""
    from compiler.codegen_cuda import render_ir

    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [4])
        y = sg.reduce_mean(sg.sigmoid(x) + sg.nn.relu(x), keepdims=True)
        plan = sg.Session(device="cuda").plan_for(y, {x: np.zeros(4, np.float32)})
    (kernel,) = plan.kernels
    source = render_ir(kernel.ir)
    assert "float64" not in source and "_f64" not in source
    assert "maximum_f32(" in source and "K0 = np.float32(" in source


def test_generated_source_holds_no_user_strings() -> None:
    """Names and scopes never reach the CUDA source (it is built from templates only)."""
    from compiler.codegen_cuda import render_ir

    hostile = "evil.import_os"
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [2], name="injection")
        with sg.name_scope("scope_with_quotes"):
            y = sg.reduce_sum(sg.tanh(x * 3.0, name="tanh_DROP_TABLE"), name=hostile)
        sess = sg.Session(device="cuda")
        np.testing.assert_allclose(sess.run(y, {x: [0.1, 0.2]}), np.tanh([0.3, 0.6]).sum(),
                                   rtol=1e-6)
        (kernel,) = sess.plan_for(y, {x: [0.1, 0.2]}).kernels
    source = render_ir(kernel.ir)
    for word in ("evil", "injection", "scope_with_quotes", "DROP_TABLE", hostile):
        assert word not in source

"""The cuda device's op table against the reference (which ops run in device kernels, which
on the host), check_numerics' error, and the generated CUDA source (float32 kept float32, no
user strings).

Gated and set up by tests/cuda_common.py (imported below): run by tests/test_cuda.py
(simulator) and `make test-gpu` (GPU), never by a plain `pytest`.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from cuda_common import NN_OPS, TOLERANCE
from op_cases import CASES, OpCase

import symgraph as sg
from compiler import codegen_cuda_ops, fusion
from runtime import executor
from symgraph.registry import OpKind

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

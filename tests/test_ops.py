"""Every registered op, from the one table in op_cases.py: forward values against NumPy, first and
second derivatives against central differences, and ops without gradients giving None.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from agreement import assert_agrees
from op_cases import CASES, OpCase, carries_gradient, carries_no_gradient, gradient_dtype

import symgraph as sg
from compiler import fusion
from runtime import executor

TOLERANCE = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}
MAX_REL_ERROR = 1e-6


def _rng(*parts: str) -> np.random.Generator:
    """A generator seeded by the test's name: adding a case does not change the others' values."""
    return np.random.default_rng(zlib.crc32("/".join(parts).encode()))


def _inputs(case: OpCase, dtype: sg.DType) -> tuple[list[sg.Tensor], list[np.ndarray]]:
    """One placeholder per input (static shape from the spec) and the values to feed it."""
    rng = _rng(case.id, dtype.name)
    tensors, values = [], []
    for arg in case.args:
        dt = arg.dtype or dtype
        tensors.append(sg.placeholder(dt, arg.static))
        values.append(np.asarray(arg.gen(rng, arg.shape, np.dtype(dt.np)), dt.np))
    return tensors, values


def _build(case: OpCase, tensors: list[sg.Tensor]) -> sg.Tensor:
    y = case.build(*tensors)
    assert y.op.type == case.op, f"the case builds {y.op.type!r}, not {case.op!r}"
    return y


def _max_rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(np.max(np.abs(analytic), initial=0), np.max(np.abs(numeric), initial=0), 1e-8)
    return float(np.max(np.abs(analytic - numeric), initial=0) / scale)


def _central_difference(f: Callable[[list[np.ndarray]], float], values: list[np.ndarray],
                        i: int, eps: float) -> np.ndarray:
    """d f / d values[i], element by element: (f(x + eps) - f(x - eps)) / (2 eps)."""
    out = np.zeros_like(values[i])
    for idx in np.ndindex(values[i].shape):
        shifted = list(values)
        for sign in (1, -1):
            x = values[i].copy()
            x[idx] += sign * eps
            shifted[i] = x
            out[idx] += sign * f(shifted)
    return out / (2 * eps)


def _ids(cases: Sequence[OpCase]) -> list[str]:
    return [c.id for c in cases]


FORWARD = [pytest.param(c, dt, id=f"{c.id}-{dt.name}") for c in CASES for dt in c.dtypes]
GRADIENT = [c for c in CASES if carries_gradient(c)]
SECOND_ORDER = [pytest.param(c, id=c.id, marks=[pytest.mark.skip(reason=c.second_order_skip)]
                             if c.second_order_skip else []) for c in GRADIENT]
NO_GRADIENT = [c for c in CASES if carries_no_gradient(c)]


def test_every_case_has_a_gradient_verdict() -> None:
    """Each case is gradient-checked, checked to give None, or skipped with a reason."""
    for c in CASES:
        verdicts = [carries_gradient(c), carries_no_gradient(c), c.grad_skip is not None]
        assert sum(verdicts) == 1, (c.id, verdicts)


@pytest.mark.parametrize("case,dtype", FORWARD)
def test_forward_matches_numpy(case: OpCase, dtype: sg.DType) -> None:
    """The session computes what the NumPy expression says, with the static dtype and shape."""
    with sg.Graph().as_default() as graph:
        tensors, values = _inputs(case, dtype)
        y = _build(case, tensors)
        result = sg.Session(graph=graph).run(y, dict(zip(tensors, values)))
    expected = np.asarray(case.expect(*values))
    assert y.dtype == (case.out_dtype or dtype)
    assert result.dtype == y.dtype.np
    assert y.shape.is_compatible_with(result.shape), (y.shape, result.shape)
    assert result.shape == expected.shape
    if y.dtype.is_floating:
        np.testing.assert_allclose(result, expected, **TOLERANCE[y.dtype.name])
    else:
        np.testing.assert_array_equal(result, expected.astype(result.dtype))


COMPILED_TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6),
                      "float64": dict(rtol=1e-10, atol=1e-12)}


@pytest.mark.parametrize("case,dtype", FORWARD)
def test_compiled_forward_matches_reference(case: OpCase, dtype: sg.DType) -> None:
    """device "cpu" (optimized graph, generated kernels) computes what "reference" computes,
    and an op that codegen can compile really runs in a kernel (no silent fallback)."""
    with sg.Graph().as_default() as graph:
        tensors, values = _inputs(case, dtype)
        y = _build(case, tensors)
        feeds = dict(zip(tensors, values))
        expected = sg.Session(graph=graph, device="reference").run(y, feeds)
        cpu = sg.Session(graph=graph, device="cpu")
        fallbacks = executor.fallbacks
        result = cpu.run(y, feeds)
        plan = cpu.plan_for(y, feeds)
    assert executor.fallbacks == fallbacks, "a kernel refused its inputs"
    assert result.dtype == expected.dtype and result.shape == expected.shape
    if y.dtype.is_floating:
        np.testing.assert_allclose(result, expected, **COMPILED_TOLERANCE[y.dtype.name])
    else:
        np.testing.assert_array_equal(result, expected)
    compiled = [m.opdef.name for k in plan.kernels for m in k.members]
    if fusion.is_elementwise(y.node) and case.op not in compiled:
        # the node may have been simplified away (x * 1); otherwise it must be in a kernel
        assert case.op not in [n.opdef.name for n in plan.program.graph.nodes], compiled


def _loss_and_inputs(case: OpCase, graph: sg.Graph, rng: np.random.Generator,
                     device: str | None = None
                     ) -> tuple[sg.Tensor, list[sg.Tensor], list[np.ndarray], sg.Session]:
    """L = reduce_sum(op(inputs) * R) in float64, with R fixed and of the output's shape."""
    tensors, values = _inputs(case, sg.float64)
    y = _build(case, tensors)
    sess = sg.Session(graph=graph, device=device)
    out = sess.run(y, dict(zip(tensors, values)))
    r = sg.constant(rng.standard_normal(out.shape), dtype=sg.float64)
    return sg.reduce_sum(y * r), tensors, values, sess


def _wrt(case: OpCase, tensors: list[sg.Tensor]) -> list[int]:
    return [i for i, (a, t) in enumerate(zip(case.args, tensors))
            if a.wrt and t.dtype.is_floating]


@pytest.mark.parametrize("case", GRADIENT, ids=_ids(GRADIENT))
def test_gradient_matches_central_differences(case: OpCase) -> None:
    """sg.gradients of sum(op(x) * R) equals central differences, shaped like each input."""
    with sg.Graph().as_default() as graph:
        loss, tensors, values, sess = _loss_and_inputs(case, graph, _rng(case.id, "R"))
        grads = sg.gradients(loss, tensors)
        feed = dict(zip(tensors, values))
        wrt = _wrt(case, tensors)
        for i, (arg, g) in enumerate(zip(case.args, grads)):
            if not arg.wrt:
                assert g is None, f"input {i} gives only a shape, yet has a gradient"
        assert any(grads[i] is not None for i in wrt)
        analytic = sess.run([grads[i] for i in wrt], feed)

        def f(vals: list[np.ndarray]) -> float:
            return float(sess.run(loss, dict(zip(tensors, vals))))

        for i, a in zip(wrt, analytic):
            assert grads[i] is not None, f"no gradient for input {i}"
            assert a.shape == values[i].shape, f"gradient {i} has shape {a.shape}"
            numeric = _central_difference(f, values, i, case.eps)
            assert _max_rel_error(a, numeric) < MAX_REL_ERROR, (i, a, numeric)


def _compiled_gradients(case: OpCase, dtype: sg.DType, values: list[np.ndarray] | None,
                        devices: Sequence[str]) -> list[list[np.ndarray]]:
    """The gradients of sum(op(inputs) * R) in `dtype` on each device (inputs: `values`, cast
    to dtype, or the case's own), for the inputs that carry one."""
    with sg.Graph().as_default() as graph:
        tensors, own = _inputs(case, dtype)
        if values is not None:
            own = [v.astype(t.dtype.np) for v, t in zip(values, tensors)]
        y = _build(case, tensors)
        r = _rng(case.id, "R").standard_normal(y.shape.as_list() if y.shape.is_fully_defined()
                                               else case.expect(*own).shape)
        loss = sg.reduce_sum(y * sg.constant(r, dtype=y.dtype))
        wrt = _wrt(case, tensors)
        grads = [g for g in sg.gradients(loss, [tensors[i] for i in wrt]) if g is not None]
        feeds = dict(zip(tensors, own))
        return [sg.Session(graph=graph, device=d).run(grads, feeds) for d in devices], own


GRADIENT_DTYPES = [pytest.param(c, dt, id=f"{c.id}-{dt.name}") for c in GRADIENT
                   for dt in c.dtypes if dt in (sg.float32, sg.float64)]


@pytest.mark.parametrize("case,dtype", GRADIENT_DTYPES)
def test_compiled_gradient_matches_reference(case: OpCase, dtype: sg.DType) -> None:
    """device "cpu" computes the gradients "reference" computes, in float32 and float64 (the
    compiled kernels of the gradient graph; central differences check the math above), within
    tests/agreement.py's tolerances."""
    (want, got), values = _compiled_gradients(case, dtype, None, ("reference", "cpu"))
    exact = want
    if dtype == sg.float32:
        (exact,), _ = _compiled_gradients(case, sg.float64, values, ("reference",))
    assert_agrees(got, want, exact, dtype.name, "gradient")


@pytest.mark.parametrize("case", SECOND_ORDER)
def test_second_derivative_matches_central_differences(case: OpCase) -> None:
    """The gradient of sum(grad * V) equals central differences of it: gradient rules are
    themselves differentiable (and give None only where the first gradient is constant).

    On the reference device: this checks the gradient rules' math; the second-order graphs
    are the biggest of the table, and compiling each for "cpu" cost CI more than a minute
    (compiled gradients are checked by the first-order test and tests/test_differential.py)."""
    rng = _rng(case.id, "V")
    with sg.Graph().as_default() as graph:
        loss, tensors, values, sess = _loss_and_inputs(case, graph, _rng(case.id, "R"),
                                                       device="reference")
        wrt = _wrt(case, tensors)
        xs = [tensors[i] for i in wrt]
        grads = sg.gradients(loss, xs)
        terms = [sg.reduce_sum(g * sg.constant(rng.standard_normal(values[i].shape),
                                                dtype=sg.float64))
                 for i, g in zip(wrt, grads) if g is not None]
        second_loss = sg.add_n(terms)
        second = sg.gradients(second_loss, xs)
        feed = dict(zip(tensors, values))
        analytic = sess.run([g for g in second if g is not None], feed)

        def f(vals: list[np.ndarray]) -> float:
            return float(sess.run(second_loss, dict(zip(tensors, vals))))

        it = iter(analytic)
        for i, g in zip(wrt, second):
            a = np.zeros_like(values[i]) if g is None else next(it)
            assert a.shape == values[i].shape
            numeric = _central_difference(f, values, i, case.eps)
            assert _max_rel_error(a, numeric) < MAX_REL_ERROR, (i, a, numeric)


@pytest.mark.parametrize("case", NO_GRADIENT, ids=_ids(NO_GRADIENT))
def test_no_gradient_is_none(case: OpCase) -> None:
    """Ops marked NOT_DIFFERENTIABLE, and integer or bool results, give None gradients."""
    with sg.Graph().as_default():
        tensors, _ = _inputs(case, gradient_dtype(case))
        y = _build(case, tensors)
        loss = sg.reduce_sum(y if y.dtype.is_floating else sg.cast(y, sg.float64))
        assert sg.gradients(loss, tensors) == [None] * len(tensors)


def test_op_without_gradient_rule_raises_naming_it() -> None:
    """assign has no gradient rule (OpDef.grad is None): an error, never a silent zero."""
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float64, [3])
        v = sg.Variable(np.zeros(3))
        written = v.assign(x * 2)
        with pytest.raises(LookupError, match="'assign'"):
            sg.gradients(written, x)

"""The op table: every registered op with a NumPy function, as cases that tests/test_ops.py runs.

A case names the op under test, builds it from placeholders, and says with an independent NumPy
expression what it must compute. Input shapes are written as strings so that test ids read well:
"2x3" is a (2, 3) input, "" a 0-d one, "3?x1" a placeholder of static shape (None, 1) fed a (3, 1)
value, and a leading "*" a placeholder of unknown rank. tests/test_registry.py fails when a
registered op is neither in this table nor in EXCLUDED.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import symgraph as sg
from symgraph.graph import apply
from symgraph.ops import nn as nn_ops
from symgraph.ops import reduce as red
from symgraph.ops import shape_ops as so
from symgraph.registry import NOT_DIFFERENTIABLE, REGISTRY

# gen(rng, shape, numpy dtype) -> the values fed to one input
Gen = Callable[[np.random.Generator, tuple, np.dtype], np.ndarray]

FLOATS = (sg.float32, sg.float64)
NUMERIC = FLOATS + (sg.int32,)
BOOL = (sg.bool,)

# Ops with no data inputs, or that read and write session state: tested in the runtime tests.
EXCLUDED = {
    "constant": "a source: no inputs to vary (runtime tests feed and fetch constants)",
    "placeholder": "a source: every case here feeds placeholders",
    "variable": "session state: runtime variable tests",
    "assign": "session state: runtime variable tests (test_ops checks it has no gradient)",
    "assign_add": "session state: runtime variable tests",
    "assign_sub": "session state: runtime variable tests",
    "read_variable": "session state: runtime variable tests",
    "no_op": "control only: no value",
}


# ---- value generators -----------------------------------------------------------------------


def uniform(lo: float = -2.0, hi: float = 2.0) -> Gen:
    """Floats in [lo, hi); integers in [ceil(lo), floor(hi)]; random bools for bool inputs."""

    def gen(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
        if dtype.kind == "b":
            return rng.random(shape) < 0.5
        if dtype.kind in "iu":
            return rng.integers(math.ceil(lo), math.floor(hi) + 1, shape).astype(dtype)
        return rng.uniform(lo, hi, shape).astype(dtype)

    return gen


def magnitude(lo: float, hi: float) -> Gen:
    """Values with |v| in [lo, hi] and a random sign: away from 0 (divisors, abs, sign)."""
    inner = uniform(lo, hi)

    def gen(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
        sign = np.where(rng.random(shape) < 0.5, -1, 1)
        return (sign * inner(rng, shape, dtype)).astype(dtype)

    return gen


def small_ints(lo: int = -2, hi: int = 2) -> Gen:
    """Whole numbers in any dtype, so that comparisons see ties."""
    inner = uniform(lo, hi)

    def gen(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
        if dtype.kind == "b":
            return rng.random(shape) < 0.5
        return inner(rng, shape, np.dtype(np.int64)).astype(dtype)

    return gen


def on_grid(lo: float = -2.0, hi: float = 2.0) -> Gen:
    """Multiples of 2^-20: exact in float32 and after a step of 2^-20 (for cast round trips)."""

    def gen(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
        return (np.round(rng.uniform(lo, hi, shape) * 2**20) / 2**20).astype(dtype)

    return gen


def with_zeros(inner: Gen, where: Sequence[tuple]) -> Gen:
    """`inner`'s values with exact zeros at the given indices (reduce_prod's special cases)."""

    def gen(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
        out = inner(rng, shape, dtype)
        for idx in where:
            out[idx] = 0
        return out

    return gen


# ---- the case type ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One input of a case: its shape spec ("3?x1"), its values, a fixed dtype if any."""

    spec: str
    gen: Gen = uniform()
    dtype: sg.DType | None = None  # None: the dtype the case runs in
    wrt: bool = True  # False: only the input's shape matters (its gradient must be None)

    @property
    def shape(self) -> tuple[int, ...]:
        """The run-time shape of the fed value."""
        return tuple(int(d.rstrip("?")) for d in self._dims())

    @property
    def static(self) -> tuple | None:
        """The placeholder's static shape: None dims where marked "?", None for "*"."""
        if self.spec.startswith("*"):
            return None
        return tuple(None if d.endswith("?") else int(d) for d in self._dims())

    def _dims(self) -> list[str]:
        return [d for d in self.spec.lstrip("*").split("x") if d]


@dataclass(frozen=True)
class OpCase:
    """One op on inputs of given shapes, and the NumPy expression of what it must compute."""

    op: str  # registry name of the op the build function must produce
    build: Callable[..., sg.Tensor]  # input tensors -> output of `op`
    expect: Callable[..., Any]  # input arrays -> the expected output
    args: tuple[Arg, ...]
    dtypes: tuple[sg.DType, ...] = FLOATS  # the dtypes of inputs without a fixed dtype
    out_dtype: sg.DType | None = None  # None: the case's dtype
    label: str = ""  # tells apart cases whose shapes match
    grad_skip: str | None = None  # why the gradient checks do not apply to this case
    second_order_skip: str | None = None  # why a second derivative does not exist here
    eps: float = 1e-6  # central-difference step

    @property
    def id(self) -> str:
        shapes = ",".join(a.spec or "s" for a in self.args)
        return f"{self.op}[{shapes}{'|' + self.label if self.label else ''}]"


def gradient_dtype(case: OpCase) -> sg.DType:
    """The dtype gradient checks run a case in: float64 where the case takes it."""
    return sg.float64 if sg.float64 in case.dtypes else case.dtypes[0]


def carries_gradient(case: OpCase) -> bool:
    """A differentiable op from float64 inputs to a floating result."""
    out = case.out_dtype or sg.float64
    return (callable(REGISTRY[case.op].grad) and gradient_dtype(case) == sg.float64
            and out.is_floating and case.grad_skip is None)


def carries_no_gradient(case: OpCase) -> bool:
    """A NOT_DIFFERENTIABLE op, or a path through integers or bools (in or out)."""
    dtype = gradient_dtype(case)
    return (REGISTRY[case.op].grad is NOT_DIFFERENTIABLE or not dtype.is_floating
            or not (case.out_dtype or dtype).is_floating)


def _cond(spec: str) -> Arg:
    return Arg(spec, dtype=sg.bool)


def _arg(a: Arg | str, gen: Gen | None = None) -> Arg:
    if isinstance(a, Arg):
        return a
    return Arg(a) if gen is None else Arg(a, gen)


def case(op: str, build: Callable[..., sg.Tensor], expect: Callable[..., Any],
         *args: Arg | str, **kw: Any) -> OpCase:
    return OpCase(op, build, expect, tuple(_arg(a) for a in args), **kw)


def family(op: str, build: Callable[..., sg.Tensor], expect: Callable[..., Any],
           layouts: Sequence[Sequence[Arg | str]], gens: Sequence[Gen] = (),
           **kw: Any) -> list[OpCase]:
    """One case per layout of input shapes; gens[i] makes input i (default: uniform)."""
    out = []
    for layout in layouts:
        args = tuple(_arg(spec, gens[i] if i < len(gens) else None)
                     for i, spec in enumerate(layout))
        out.append(OpCase(op, build, expect, args, **kw))
    return out


# Broadcasting layouts: equal shapes, both sides stretched, 0-d on either side, and unknown dims
# whose gradient must be summed by the run-time sum_to op.
BINARY = [("2x3", "2x3"), ("3x1", "4"), ("", "2x3"), ("2x3", ""), ("", ""), ("3?x1", "4?")]
UNARY = [("2x3",), ("",), ("2?x3",)]
COMPARE = [("2x3", "2x3"), ("3x1", "4"), ("", "2x3"), ("2?x3", "3")]

# ---- expected values (independent NumPy expressions) ---------------------------------------


def _floordiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.floor(x / y).astype(np.result_type(x, y))


def _mod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x - np.floor(x / y) * y).astype(np.result_type(x, y))


def _sign(x: np.ndarray) -> np.ndarray:
    return ((x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)).astype(x.dtype)


def _select(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x * c + y * ~c


def _matmul(ta: bool = False, tb: bool = False) -> Callable[..., np.ndarray]:
    def expect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = np.swapaxes(a, -1, -2) if ta else a
        b = np.swapaxes(b, -1, -2) if tb else b
        return np.einsum("...ij,...jk->...ik", a, b)

    return expect


def _tile(x: np.ndarray, multiples: tuple) -> np.ndarray:
    # out[i, j] = x[i mod rows, j mod cols]
    index = np.ix_(*[np.arange(d * k) % d for d, k in zip(x.shape, multiples)])
    return x[index]


def _sum_tiles(g: np.ndarray, multiples: tuple) -> np.ndarray:
    rows, cols = g.shape[0] // multiples[0], g.shape[1] // multiples[1]
    out = np.zeros((rows, cols), g.dtype)
    for i in range(multiples[0]):
        for j in range(multiples[1]):
            out += g[i * rows:(i + 1) * rows, j * cols:(j + 1) * cols]
    return out


def _pad(x: np.ndarray) -> np.ndarray:
    out = np.full((x.shape[0] + 1, x.shape[1] + 3), 2, x.dtype)
    out[1:, 2:-1] = x
    return out


def _in_top_k(p: np.ndarray, t: np.ndarray, k: int = 2) -> np.ndarray:
    """Row by row: the target is valid and fewer than k scores beat it."""
    out = [0 <= c < p.shape[1] and int((row > row[c]).sum()) < k for row, c in zip(p, t)]
    return np.array(out, dtype=bool)


def _one_hot(idx: np.ndarray, depth: int, on: float = 1.0, off: float = 0.0) -> np.ndarray:
    valid = (idx >= 0) & (idx < depth)
    rows = np.eye(depth + 1)[np.where(valid, idx, depth)][..., :depth]  # out of range: all off
    return np.where(rows == 1, on, off).astype(np.float32)


def _slice_grad(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    out = np.zeros(like.shape, g.dtype)
    out[1:3, ::2] = g
    return out


def _trunc_mean(x: np.ndarray, **kw: Any) -> np.ndarray:
    # integer means truncate toward zero, as in TF1
    m = np.mean(x.astype(np.float64), **kw)
    return np.trunc(m).astype(x.dtype) if x.dtype.kind in "iu" else m.astype(x.dtype)


def _reductions(op: str, fn: Callable[..., sg.Tensor], expect: Callable[..., np.ndarray],
                gen: Gen) -> list[OpCase]:
    """A reduction over all axes, one axis, a list with keepdims, 0-d and unknown shapes."""
    layouts: list[tuple[str, dict]] = [
        ("3x4", {}), ("3x4", {"axis": 1}), ("3x4", {"axis": [0], "keepdims": True}),
        ("2x3x4", {"axis": [0, 2]}), ("", {}), ("2?x4", {"axis": 0}),
        ("2?x4", {"axis": -1, "keepdims": True}), ("*2x3", {}),
    ]
    return [
        OpCase(op, lambda x, kw=kw: fn(x, **kw),
               lambda x, kw=kw: expect(x, axis=_np_axis(kw.get("axis")),
                                       keepdims=kw.get("keepdims", False)),
               (Arg(spec, gen),), dtypes=NUMERIC,
               label=",".join(f"{k}={v}" for k, v in kw.items()))
        for spec, kw in layouts
    ]


def _np_axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis



# ---- neural-network expectations: direct loops over output positions ------------------------


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _window_geometry(size: int, k: int, stride: int, dilation: int, padding: str
                     ) -> tuple[int, int]:
    """TF's output length along one spatial axis, and the padding before the input."""
    span = (k - 1) * dilation + 1
    if padding == "VALID":
        return (size - span) // stride + 1, 0
    out = -(-size // stride)  # ceil(size / stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def _windows(hw: tuple, ksize: Sequence[int], strides: Sequence[int],
             dilations: Sequence[int], padding: str) -> tuple[int, int, dict]:
    """(oh, ow, {(i, j): [(a, b, r, s), ...]}): for output (i, j), each tap (a, b) of the window
    in row-major order with the input position (r, s) it reads; taps on padding are left out."""
    (oh, top), (ow, left) = (_window_geometry(hw[d], ksize[d], strides[d], dilations[d], padding)
                             for d in (0, 1))
    taps = {}
    for i in range(oh):
        for j in range(ow):
            taps[i, j] = [(a, b, r, s) for a in range(ksize[0]) for b in range(ksize[1])
                          for r, s in [(i * strides[0] + a * dilations[0] - top,
                                        j * strides[1] + b * dilations[1] - left)]
                          if 0 <= r < hw[0] and 0 <= s < hw[1]]
    return oh, ow, taps


def _conv_windows(x_shape: tuple, w_shape: tuple, attrs: dict) -> tuple[int, int, dict]:
    return _windows(x_shape[1:3], w_shape[:2], attrs["strides"], attrs["dilations"],
                    attrs["padding"])


def _conv2d(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    # y[n, i, j, o] = sum over taps (a, b) and channels c of x[n, r, s, c] w[a, b, c, o]
    oh, ow, taps = _conv_windows(x.shape, w.shape, attrs)
    y = np.zeros((x.shape[0], oh, ow, w.shape[3]), x.dtype)
    for (i, j), window in taps.items():
        for a, b, r, s in window:
            y[:, i, j] += x[:, r, s] @ w[a, b]
    return y


def _conv2d_input_grad(g: np.ndarray, w: np.ndarray, like: np.ndarray, attrs: dict
                       ) -> np.ndarray:
    # d/dx sum(conv2d(x, w) * g): each output's g flows back through the taps that made it
    _, _, taps = _conv_windows(like.shape, w.shape, attrs)
    dx = np.zeros(like.shape, g.dtype)
    for (i, j), window in taps.items():
        for a, b, r, s in window:
            dx[:, r, s] += g[:, i, j] @ w[a, b].T
    return dx


def _conv2d_filter_grad(x: np.ndarray, g: np.ndarray, like: np.ndarray, attrs: dict
                        ) -> np.ndarray:
    # d/dw sum(conv2d(x, w) * g)[a, b, c, o] = sum over n, i, j of x[n, r, s, c] g[n, i, j, o]
    _, _, taps = _conv_windows(x.shape, like.shape, attrs)
    dw = np.zeros(like.shape, g.dtype)
    for (i, j), window in taps.items():
        for a, b, r, s in window:
            dw[a, b] += x[:, r, s].T @ g[:, i, j]
    return dw


def _pool_windows(x_shape: tuple, attrs: dict) -> tuple[int, int, dict]:
    oh, ow, taps = _windows(x_shape[1:3], attrs["ksize"], attrs["strides"], (1, 1),
                            attrs["padding"])
    return oh, ow, {ij: [(r, s) for _, _, r, s in window] for ij, window in taps.items()}


def _first_max(x: np.ndarray, window: list) -> np.ndarray:
    """(N, C): the index in `window` of the first maximum of x there (np.argmax: the first)."""
    return np.argmax(np.stack([x[:, r, s] for r, s in window]), axis=0)


def _max_pool2d(x: np.ndarray, attrs: dict) -> np.ndarray:
    oh, ow, taps = _pool_windows(x.shape, attrs)
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for (i, j), window in taps.items():
        y[:, i, j] = np.max(np.stack([x[:, r, s] for r, s in window]), axis=0)
    return y


def _max_pool2d_grad(x: np.ndarray, g: np.ndarray, attrs: dict) -> np.ndarray:
    # each g[n, i, j, c] goes to the first maximum of its window
    _, _, taps = _pool_windows(x.shape, attrs)
    dx = np.zeros(x.shape, g.dtype)
    for (i, j), window in taps.items():
        best = _first_max(x, window)
        for t, (r, s) in enumerate(window):
            dx[:, r, s] += np.where(best == t, g[:, i, j], 0)
    return dx


def _max_pool2d_gather(x: np.ndarray, h: np.ndarray, attrs: dict) -> np.ndarray:
    # y[n, i, j, c] = h at the first maximum of x's window
    oh, ow, taps = _pool_windows(x.shape, attrs)
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]), h.dtype)
    for (i, j), window in taps.items():
        best = _first_max(x, window)
        for t, (r, s) in enumerate(window):
            y[:, i, j] += np.where(best == t, h[:, r, s], 0)
    return y


def _avg_pool2d(x: np.ndarray, attrs: dict) -> np.ndarray:
    # the mean of the real elements of each window: padding is not counted
    oh, ow, taps = _pool_windows(x.shape, attrs)
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for (i, j), window in taps.items():
        y[:, i, j] = sum(x[:, r, s] for r, s in window) / x.dtype.type(len(window))
    return y


def _avg_pool2d_grad(g: np.ndarray, like: np.ndarray, attrs: dict) -> np.ndarray:
    _, _, taps = _pool_windows(like.shape, attrs)
    dx = np.zeros(like.shape, g.dtype)
    for (i, j), window in taps.items():
        for r, s in window:
            dx[:, r, s] += g[:, i, j] / g.dtype.type(len(window))
    return dx


def _out_spec(x_spec: str, oh: int, ow: int, channels: int) -> str:
    """The spec of an NHWC result: the input's batch entry ("2?" stays unknown), new H, W, C."""
    return f"{x_spec.split('x')[0]}x{oh}x{ow}x{channels}"


def _label(attrs: dict) -> str:
    return ",".join(f"{k[0]}{v[0]}{v[1]}" if isinstance(v, tuple) else v
                    for k, v in attrs.items())


def _conv_cases(x_spec: str, w_spec: str, strides: tuple = (1, 1), padding: str = "SAME",
                dilations: tuple = (1, 1)) -> list[OpCase]:
    """conv2d and its two gradient ops, the `like` inputs giving only a shape."""
    a = {"strides": strides, "padding": padding, "dilations": dilations}
    x_shape, w_shape = Arg(x_spec).shape, Arg(w_spec).shape
    oh, ow, _ = _conv_windows(x_shape, w_shape, a)
    g_spec = _out_spec(x_spec, oh, ow, w_shape[3])
    small = uniform(-1, 1)  # sums of 27 products stay well inside float32's tolerance
    return [
        case("conv2d", lambda x, w: sg.nn.conv2d(x, w, **a), lambda x, w: _conv2d(x, w, a),
             Arg(x_spec, small), Arg(w_spec, small), label=_label(a)),
        case("conv2d_input_grad", lambda g, w, like: apply(nn_ops.CONV2D_INPUT_GRAD, g, w, like,
                                                           **a),
             lambda g, w, like: _conv2d_input_grad(g, w, like, a), Arg(g_spec, small),
             Arg(w_spec, small), Arg(x_spec, wrt=False), label=_label(a)),
        case("conv2d_filter_grad", lambda x, g, like: apply(nn_ops.CONV2D_FILTER_GRAD, x, g, like,
                                                            **a),
             lambda x, g, like: _conv2d_filter_grad(x, g, like, a), Arg(x_spec, small),
             Arg(g_spec, small), Arg(w_spec, wrt=False), label=_label(a)),
    ]


# max pooling's winners are piecewise constant in x: its derivatives in x beyond the first are
# zero almost everywhere, and the gradient graph says so with None (the x of max_pool2d_grad and
# max_pool2d_gather is wrt=False: its gradient must be None). Continuous random values: no ties.
def _pool_cases(x_spec: str, ksize: tuple, strides: tuple, padding: str) -> list[OpCase]:
    """max_pool2d, avg_pool2d and their gradient ops on one geometry."""
    a = {"ksize": ksize, "strides": strides, "padding": padding}
    x_shape = Arg(x_spec).shape
    oh, ow, _ = _pool_windows(x_shape, a)
    g_spec = _out_spec(x_spec, oh, ow, x_shape[3])
    return [
        case("max_pool2d", lambda x: sg.nn.max_pool2d(x, **a), lambda x: _max_pool2d(x, a),
             x_spec, label=_label(a)),
        case("max_pool2d_grad", lambda x, g: apply(nn_ops.MAX_POOL_GRAD, x, g, **a),
             lambda x, g: _max_pool2d_grad(x, g, a), Arg(x_spec, wrt=False), g_spec,
             label=_label(a)),
        case("max_pool2d_gather", lambda x, h: apply(nn_ops.MAX_POOL_GATHER, x, h, **a),
             lambda x, h: _max_pool2d_gather(x, h, a), Arg(x_spec, wrt=False), x_spec,
             label=_label(a)),
        case("avg_pool2d", lambda x: sg.nn.avg_pool2d(x, **a), lambda x: _avg_pool2d(x, a),
             x_spec, label=_label(a)),
        case("avg_pool2d_grad", lambda g, like: apply(nn_ops.AVG_POOL_GRAD, g, like, **a),
             lambda g, like: _avg_pool2d_grad(g, like, a), g_spec, Arg(x_spec, wrt=False),
             label=_label(a)),
    ]


POSITIVE = uniform(0.5, 2.0)
AWAY_FROM_ZERO = magnitude(0.5, 2.0)
PROD_VALUES = magnitude(0.5, 1.5)

# ---- the table --------------------------------------------------------------------------------

CASES: list[OpCase] = [
    # -- elementwise binary
    *family("add", lambda x, y: x + y, lambda x, y: x + y, BINARY, dtypes=NUMERIC),
    *family("subtract", lambda x, y: x - y, lambda x, y: x - y, BINARY, dtypes=NUMERIC),
    *family("multiply", lambda x, y: x * y, lambda x, y: x * y, BINARY, dtypes=NUMERIC),
    *family("divide", lambda x, y: x / y, lambda x, y: x * (1 / y), BINARY,
            gens=(uniform(), AWAY_FROM_ZERO)),
    *family("floordiv", lambda x, y: x // y, _floordiv, BINARY,
            gens=(uniform(-5, 5), magnitude(0.5, 2.5)), dtypes=NUMERIC),
    # mod: x/y is a random real, far (relative to eps) from the integers where mod jumps
    *family("mod", lambda x, y: x % y, _mod, BINARY,
            gens=(uniform(-5, 5), magnitude(0.5, 2.5)), dtypes=NUMERIC),
    *family("pow", lambda x, y: x ** y, lambda x, y: np.exp(y * np.log(x)), BINARY,
            gens=(POSITIVE, uniform(-2, 2))),
    case("pow", sg.pow, lambda x, y: x ** y, Arg("2x3", uniform(0, 3)), Arg("3", uniform(0, 3)),
         dtypes=(sg.int32,)),
    *family("maximum", sg.maximum, lambda x, y: np.where(x >= y, x, y), BINARY, dtypes=NUMERIC),
    *family("minimum", sg.minimum, lambda x, y: np.where(x <= y, x, y), BINARY, dtypes=NUMERIC),
    # -- comparisons and logic: bool results, no gradient
    *family("equal", sg.equal, lambda x, y: x == y, COMPARE, gens=(small_ints(), small_ints()),
            dtypes=NUMERIC + BOOL, out_dtype=sg.bool),
    *family("not_equal", sg.not_equal, lambda x, y: x != y, COMPARE,
            gens=(small_ints(), small_ints()), dtypes=NUMERIC + BOOL, out_dtype=sg.bool),
    *family("less", lambda x, y: x < y, lambda x, y: x < y, COMPARE,
            gens=(small_ints(), small_ints()), dtypes=NUMERIC, out_dtype=sg.bool),
    *family("less_equal", lambda x, y: x <= y, lambda x, y: x <= y, COMPARE,
            gens=(small_ints(), small_ints()), dtypes=NUMERIC, out_dtype=sg.bool),
    *family("greater", lambda x, y: x > y, lambda x, y: x > y, COMPARE,
            gens=(small_ints(), small_ints()), dtypes=NUMERIC, out_dtype=sg.bool),
    *family("greater_equal", lambda x, y: x >= y, lambda x, y: x >= y, COMPARE,
            gens=(small_ints(), small_ints()), dtypes=NUMERIC, out_dtype=sg.bool),
    *family("logical_and", lambda x, y: x & y, lambda x, y: x * y > 0, COMPARE, dtypes=BOOL),
    *family("logical_or", lambda x, y: x | y, lambda x, y: x + y > 0, COMPARE, dtypes=BOOL),
    *family("logical_not", lambda x: ~x, lambda x: x == 0, UNARY, dtypes=BOOL),
    # -- elementwise unary
    *family("negative", lambda x: -x, lambda x: 0 - x, UNARY, dtypes=NUMERIC),
    *family("square", sg.square, lambda x: x * x, UNARY, dtypes=NUMERIC),
    *family("sqrt", sg.sqrt, lambda x: x ** 0.5, UNARY, gens=(POSITIVE,)),
    *family("rsqrt", sg.rsqrt, lambda x: x ** -0.5, UNARY, gens=(POSITIVE,)),
    *family("reciprocal", sg.reciprocal, lambda x: 1 / x, UNARY, gens=(AWAY_FROM_ZERO,)),
    *family("exp", sg.exp, lambda x: np.e ** x, UNARY),
    *family("log", sg.log, np.log, UNARY, gens=(POSITIVE,)),
    *family("log1p", sg.log1p, lambda x: np.log(1 + x.astype(np.float64)).astype(x.dtype),
            UNARY, gens=(uniform(-0.5, 2),)),
    case("log1p", sg.log1p, lambda x: x - x * x / 2 + x ** 3 / 3, Arg("4", magnitude(1e-9, 1e-8)),
         label="tiny"),
    *family("expm1", sg.expm1, lambda x: (np.exp(x.astype(np.float64)) - 1).astype(x.dtype),
            UNARY),
    case("expm1", sg.expm1, lambda x: x + x * x / 2 + x ** 3 / 6, Arg("4", magnitude(1e-9, 1e-8)),
         label="tiny"),
    *family("abs", abs, lambda x: np.where(x < 0, -x, x), UNARY, gens=(magnitude(0.2, 2),),
            dtypes=NUMERIC),
    *family("sign", sg.sign, _sign, UNARY, gens=(magnitude(0.2, 2),), dtypes=NUMERIC),
    case("sign", sg.sign, _sign, Arg("5", small_ints()), dtypes=NUMERIC, label="zeros",
         grad_skip="sign has a kink at the zeros this case holds"),
    *family("sin", sg.sin, np.sin, UNARY, gens=(uniform(-3, 3),)),
    *family("cos", sg.cos, np.cos, UNARY, gens=(uniform(-3, 3),)),
    *family("tanh", sg.tanh, lambda x: 1 - 2 / (np.exp(2 * x) + 1), UNARY),
    *family("sigmoid", sg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), UNARY,
            gens=(uniform(-4, 4),)),
    case("sigmoid", sg.sigmoid,
         lambda x: (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype),
         Arg("6", magnitude(20, 80)), label="saturated",
         grad_skip="the slope, below 1e-8, is under central differences' resolution"),
    *family("identity", sg.identity, lambda x: x, UNARY, dtypes=NUMERIC + BOOL),
    *family("stop_gradient", sg.stop_gradient, lambda x: x, UNARY, dtypes=NUMERIC),
    *family("check_numerics", lambda x: sg.debugging.check_numerics(x, "x"), lambda x: x, UNARY),
    # -- where, cast, add_n
    *family("where", sg.where, _select,
            [(_cond("2x3"), "2x3", "2x3"), (_cond("2x1"), "3", ""), (_cond(""), "2x3", "2x1"),
             (_cond("2?x1"), "3", "3")], dtypes=NUMERIC),
    case("cast", lambda x: sg.cast(x, sg.float64), lambda x: x.astype(np.float64), "2x3",
         dtypes=(sg.float32,), out_dtype=sg.float64, label="f64",
         grad_skip="steps of 1e-6 are below float32's resolution; the round-trip case checks it"),
    case("cast", lambda x: sg.cast(x, sg.float32), lambda x: x.astype(np.float32), "2x3",
         dtypes=(sg.float64,), out_dtype=sg.float32, label="f32",
         grad_skip="float32 rounding hides the slope; the round-trip case checks it"),
    # float64 -> float32 -> float64 is exact on the 2^-20 grid, steps included
    case("cast", lambda x: sg.cast(sg.cast(x, sg.float32), sg.float64), lambda x: x,
         Arg("2x3", on_grid()), dtypes=(sg.float64,), label="roundtrip", eps=2.0**-20),
    case("cast", lambda x: sg.cast(x, sg.int32), lambda x: np.trunc(x).astype(np.int32),
         Arg("2x3", uniform(-3, 3)), out_dtype=sg.int32, label="i32"),
    case("cast", lambda x: sg.cast(x, sg.float64), lambda x: x.astype(np.float64),
         Arg("2?x3", uniform(-3, 3)), dtypes=(sg.int32,), out_dtype=sg.float64, label="f64"),
    case("cast", lambda x: sg.cast(x, sg.float32), lambda x: x.astype(np.float32), "4",
         dtypes=BOOL, out_dtype=sg.float32, label="f32"),
    case("cast", lambda x: sg.cast(x, sg.bool), lambda x: x != 0, Arg("5", small_ints()),
         out_dtype=sg.bool, label="bool"),
    *family("add_n", lambda x, y, z: sg.add_n([x, y, z]), lambda x, y, z: x + y + z,
            [("2x3", "2x3", "2x3"), ("2x3", "3", ""), ("2?x1", "3", "")], dtypes=NUMERIC),
    *family("placeholder_with_default", lambda x: sg.placeholder_with_default(x, [None, 3]),
            lambda x: x, [("2x3",), ("2?x3",)], dtypes=NUMERIC),
    # -- matmul
    case("matmul", sg.matmul, _matmul(), "2x3", "3x4", dtypes=NUMERIC),
    case("matmul", lambda a, b: sg.matmul(a, b, transpose_a=True), _matmul(ta=True),
         "3x2", "3x4", label="ta"),
    case("matmul", lambda a, b: sg.matmul(a, b, transpose_b=True), _matmul(tb=True),
         "2x3", "4x3", label="tb"),
    case("matmul", lambda a, b: sg.matmul(a, b, transpose_a=True, transpose_b=True),
         _matmul(True, True), "3x2", "4x3", label="ta,tb"),
    case("matmul", sg.matmul, _matmul(), "2x2x3", "3x4"),
    case("matmul", sg.matmul, _matmul(), "2x1x2x3", "3x3x2"),
    case("matmul", lambda a, b: sg.matmul(a, b, transpose_b=True), _matmul(tb=True),
         "2x1x2x3", "3x4x3", label="tb"),
    case("matmul", sg.matmul, _matmul(), "2?x3", "3x4?"),
    # the batch dims broadcast only at run time: a's 1 against b's 2
    case("matmul", sg.matmul, _matmul(), "1?x2x3", "2?x3x2"),
    # -- shape ops
    case("reshape", lambda x: sg.reshape(x, [3, 2]), lambda x: x.reshape(3, 2), "2x3",
         dtypes=NUMERIC + BOOL),
    case("reshape", lambda x: sg.reshape(x, [-1]), lambda x: x.ravel(), "2?x3"),
    case("reshape", lambda x: sg.reshape(x, [1, 1]), lambda x: x[None, None], ""),
    case("reshape", lambda x: sg.reshape(x, []), lambda x: x[0, 0], "1x1"),
    case("reshape_like", sg.reshape_like, lambda x, like: x.reshape(like.shape),
         "2x3", Arg("3?x2", wrt=False), dtypes=NUMERIC),
    case("transpose", lambda x: sg.transpose(x, [2, 0, 1]), lambda x: np.einsum("ijk->kij", x),
         "2x3x4", dtypes=NUMERIC),
    case("transpose", sg.transpose, lambda x: np.einsum("ij->ji", x), "2?x3"),
    case("expand_dims", lambda x: sg.expand_dims(x, 1), lambda x: x[:, None], "2x3",
         dtypes=NUMERIC),
    case("expand_dims", lambda x: sg.expand_dims(x, -1), lambda x: x[..., None], "2?x3"),
    case("expand_dims", lambda x: sg.expand_dims(x, 0), lambda x: x[None], ""),
    case("squeeze", lambda x: sg.squeeze(x, 1), lambda x: x[:, 0], "2x1x3", dtypes=NUMERIC),
    case("squeeze", sg.squeeze, lambda x: x[0, :, 0], "1x3?x1"),
    case("squeeze", sg.squeeze, lambda x: x[0], "1"),
    case("concat", lambda a, b, c: sg.concat([a, b, c], 1), lambda a, b, c: np.block([a, b, c]),
         "2x1", "2x3", "2x2", dtypes=NUMERIC),
    case("concat", lambda a, b: sg.concat([a, b], 0), lambda a, b: np.vstack([a, b]),
         "1?x3", "2x3?"),
    case("concat_part",
         lambda g, a, b, c: apply(so.CONCAT_PART, g, a, b, c, axis=1, index=1),
         lambda g, a, b, c: g[:, 1:4], "2x6", Arg("2x1", wrt=False), Arg("2?x3?", wrt=False),
         Arg("2x2", wrt=False), dtypes=NUMERIC),
    case("stack", lambda a, b, c: sg.stack([a, b, c]), lambda a, b, c: np.array([a, b, c]),
         "2x3", "2x3", "2x3", dtypes=NUMERIC),
    case("stack", lambda a, b: sg.stack([a, b], axis=-1),
         lambda a, b: np.concatenate([a[..., None], b[..., None]], -1), "2?x3", "2x3?"),
    case("stack", lambda a, b: sg.stack([a, b]), lambda a, b: np.array([a, b]), "", ""),
    case("tile", lambda x: sg.tile(x, [2, 1]), lambda x: _tile(x, (2, 1)), "2x3",
         dtypes=NUMERIC),
    case("tile", lambda x: sg.tile(x, [2, 3]), lambda x: _tile(x, (2, 3)), "1?x2"),
    case("sum_tiles", lambda g: apply(so.SUM_TILES, g, multiples=(2, 3)),
         lambda g: _sum_tiles(g, (2, 3)), "4x6", dtypes=NUMERIC),
    case("sum_tiles", lambda g: apply(so.SUM_TILES, g, multiples=(1, 2)),
         lambda g: _sum_tiles(g, (1, 2)), "2?x4"),
    case("broadcast_to", lambda x: sg.broadcast_to(x, [2, 3, 4]),
         lambda x: x * np.ones((2, 3, 4), x.dtype), "3x1", dtypes=NUMERIC),
    case("broadcast_to", lambda x: sg.broadcast_to(x, [2, 2]),
         lambda x: x * np.ones((2, 2), x.dtype), ""),
    case("broadcast_to", lambda x: sg.broadcast_to(x, [2, 3]),
         lambda x: x * np.ones((2, 3), x.dtype), "3?"),
    case("broadcast_like", sg.broadcast_like, lambda x, like: x * np.ones_like(like),
         "3x1", Arg("2x1x4", wrt=False), dtypes=NUMERIC),
    case("broadcast_like", sg.broadcast_like, lambda x, like: x * np.ones_like(like),
         "4", Arg("3?x1", wrt=False)),
    case("broadcast_like", sg.broadcast_like, lambda x, like: x * np.ones_like(like),
         "1?x4", Arg("3x1", wrt=False)),
    case("pad", lambda x: sg.pad(x, [[1, 0], [2, 1]], constant_values=2), _pad, "2x3",
         dtypes=NUMERIC),
    case("pad", lambda x: sg.pad(x, [[1, 0], [2, 1]], constant_values=2), _pad, "2?x3"),
    case("strided_slice", lambda x: x[1:3, ::2], lambda x: x[1:3, ::2], "4x5",
         dtypes=NUMERIC + BOOL, label="1:3,::2"),
    case("strided_slice", lambda x: x[::-1, 1], lambda x: x[::-1, 1], "4x5", label="::-1,1"),
    case("strided_slice", lambda x: x[None, ..., 2], lambda x: x[None, ..., 2], "2x3x4"),
    case("strided_slice", lambda x: x[-1], lambda x: x[-1], "4?x5", label="-1"),
    case("strided_slice", lambda x: x[..., 5:0:-2], lambda x: x[..., 5:0:-2], "2x6"),
    case("strided_slice", lambda x: x[1:, 2], lambda x: x[1:, 2], "4?x5", label="1:,2"),
    case("slice_grad",
         lambda g, like: apply(so.SLICE_GRAD, g, like,
                               spec=so.normalize_index(like, (slice(1, 3), slice(None, None, 2)))),
         _slice_grad, "2x3", Arg("4?x5", wrt=False), dtypes=NUMERIC),
    case("fill_like", lambda x: so.fill_like(x, 3), lambda x: np.zeros_like(x) + 3, "2?x3",
         dtypes=NUMERIC),
    case("shape", sg.shape, lambda x: np.array(x.shape, np.int32), "2?x3x1",
         out_dtype=sg.int32),
    case("size", sg.size, lambda x: np.array(x.size, np.int32), "2?x3", out_dtype=sg.int32),
    # -- reductions
    *_reductions("reduce_sum", sg.reduce_sum, np.sum, uniform()),
    *_reductions("reduce_mean", sg.reduce_mean, _trunc_mean, uniform(-5, 5)),
    *_reductions("reduce_max", sg.reduce_max, np.max, uniform(-5, 5)),
    *_reductions("reduce_min", sg.reduce_min, np.min, uniform(-5, 5)),
    *_reductions("reduce_prod", sg.reduce_prod, np.prod, PROD_VALUES),
    # exact zeros: rows with one, two, none and three of them (each a special case of the
    # gradient and of its gradient)
    case("reduce_prod", lambda x: sg.reduce_prod(x, 1), lambda x: np.prod(x, axis=1),
         Arg("4x4", with_zeros(PROD_VALUES, [(0, 1), (1, 0), (1, 2), (3, 0), (3, 1), (3, 3)])),
         label="zeros"),
    case("sum_to", lambda g, x: apply(red.SUM_TO, g, x),
         lambda g, x: g.sum(axis=0).sum(axis=1, keepdims=True), "2x3x4", Arg("3x1", wrt=False),
         dtypes=NUMERIC),
    case("sum_to", lambda g, x: apply(red.SUM_TO, g, x), lambda g, x: g.sum(axis=0),
         "3?x4", Arg("4?", wrt=False)),
    case("sum_to", lambda g, x: apply(red.SUM_TO, g, x), lambda g, x: g, "3x4",
         Arg("3?x4", wrt=False), label="same"),
    # -- index ops: integer results, no gradient
    case("argmax", lambda x: sg.argmax(x, 1), lambda x: np.argmax(x, axis=1), "3x4",
         dtypes=NUMERIC, out_dtype=sg.int64),
    case("argmax", lambda x: sg.argmax(x, output_type=sg.int32),
         lambda x: np.argmax(x, axis=0).astype(np.int32), "3?x4", out_dtype=sg.int32),
    case("argmin", lambda x: sg.argmin(x, 1), lambda x: np.argmin(x, axis=1), "3x4",
         dtypes=NUMERIC, out_dtype=sg.int64),
    case("argmin", lambda x: sg.argmin(x, 0, output_type=sg.int32),
         lambda x: np.argmin(x, axis=0).astype(np.int32), "3?x4", out_dtype=sg.int32),
    # whole-number scores tie often (ties at the k-th place all count as in, as in TF1);
    # targets -1 and 5 are out of range for 5 classes: never in the top k
    case("in_top_k", lambda p, t: sg.nn.in_top_k(p, t, 2), _in_top_k,
         Arg("6x5", small_ints()), Arg("6", uniform(-1, 5), dtype=sg.int32), out_dtype=sg.bool),
    case("in_top_k", lambda p, t: sg.nn.in_top_k(p, t, 1), lambda p, t: _in_top_k(p, t, 1),
         Arg("3?x4"), Arg("3?", uniform(0, 3), dtype=sg.int64), out_dtype=sg.bool,
         label="k1"),
    # indices -1 and 3 are out of range for depth 3: all-off rows
    case("one_hot", lambda i: sg.one_hot(i, 3), lambda i: _one_hot(i, 3),
         Arg("2x4", uniform(-1, 3)), dtypes=(sg.int32, sg.int64), out_dtype=sg.float32),
    case("one_hot", lambda i: sg.one_hot(i, 3, on_value=5.0, off_value=-1.0, axis=0),
         lambda i: np.moveaxis(_one_hot(i, 3, 5.0, -1.0), -1, 0), Arg("4?", uniform(-1, 3)),
         dtypes=(sg.int32,), out_dtype=sg.float32, label="axis0"),
    # -- activations (second derivatives of relu, relu6 and leaky_relu are zero almost
    # everywhere: their gradient graphs give None, which the second-order test reads as 0)
    *family("relu", sg.nn.relu, lambda x: np.where(x > 0, x, 0), UNARY,
            gens=(magnitude(0.2, 2),)),
    *family("relu6", sg.nn.relu6, lambda x: np.where(x < 6, np.where(x > 0, x, 0), 6), UNARY,
            gens=(magnitude(0.2, 8),)),
    *family("leaky_relu", lambda x: sg.nn.leaky_relu(x, 0.3), lambda x: np.where(x > 0, x, 0.3 * x),
            UNARY, gens=(magnitude(0.2, 2),)),
    *family("elu", sg.nn.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1), UNARY,
            gens=(magnitude(0.2, 2),)),
    *family("selu", sg.nn.selu,
            lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
            UNARY, gens=(magnitude(0.2, 2),)),
    *family("softplus", sg.nn.softplus, lambda x: np.log(1 + np.exp(x)), UNARY,
            gens=(uniform(-4, 4),)),
    # |x| of 100 to 200: log(1 + e^x) overflows float32 unless computed as the op's docs say
    case("softplus", sg.nn.softplus, lambda x: np.where(x > 0, x, 0),
         Arg("4", magnitude(100, 200)), label="saturated"),
    *family("softsign", sg.nn.softsign, lambda x: x / (1 + np.abs(x)), UNARY,
            gens=(magnitude(0.2, 2),)),
    # -- softmax and cross-entropies
    case("softmax", sg.nn.softmax, _softmax, "2?x3"),
    case("softmax", lambda x: sg.nn.softmax(x, 0), lambda x: _softmax(x, 0), "3x4", label="0"),
    case("softmax", lambda x: sg.nn.softmax(x, 1), lambda x: _softmax(x, 1), "2x3x2", label="1"),
    case("log_softmax", sg.nn.log_softmax, lambda x: np.log(_softmax(x)), "2?x3"),
    case("log_softmax", lambda x: sg.nn.log_softmax(x, 0), lambda x: np.log(_softmax(x, 0)),
         "3x4", label="0"),
    # logits near 1000: e^x overflows unless the maximum is taken out first
    case("log_softmax", sg.nn.log_softmax, lambda x: np.log(_softmax(x)),
         Arg("2x3", uniform(998, 1000)), label="large"),
    case("softmax_cross_entropy",
         lambda y, z: sg.nn.softmax_cross_entropy_with_logits(labels=y, logits=z),
         lambda y, z: -np.sum(y * np.log(_softmax(z)), axis=-1), Arg("2x3", uniform(0, 1)),
         "2x3"),
    case("softmax_cross_entropy",
         lambda y, z: sg.nn.softmax_cross_entropy_with_logits(labels=y, logits=z, axis=0),
         lambda y, z: -np.sum(y * np.log(_softmax(z, 0)), axis=0), Arg("3x2?", uniform(0, 1)),
         "3x2", label="0"),
    case("sparse_softmax_cross_entropy",
         lambda y, z: sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z),
         lambda y, z: -np.log(_softmax(z))[np.arange(4), y],
         Arg("4", uniform(0, 2), dtype=sg.int32, wrt=False), "4x3"),
    case("sparse_softmax_cross_entropy",
         lambda y, z: sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z),
         lambda y, z: -np.log(_softmax(z))[np.arange(2)[:, None], np.arange(3), y],
         Arg("2?x3", uniform(0, 3), dtype=sg.int64, wrt=False), "2x3x4", label="i64"),
    # -- convolution: strides 1 and 2, SAME (symmetric and one-sided padding) and VALID,
    # dilation 2, unequal strides on a non-square filter, an unknown batch dimension
    *_conv_cases("2x5x5x3", "3x3x3x2"),
    *_conv_cases("2x5x5x3", "3x3x3x2", strides=(2, 2), padding="VALID"),
    *_conv_cases("1x6x6x2", "3x3x2x2", strides=(2, 2)),
    *_conv_cases("1x5x5x2", "3x3x2x2", dilations=(2, 2)),
    *_conv_cases("2?x5x4x2", "2x3x2x3", strides=(2, 1), padding="VALID"),
    # one input channel (W3's first layer), odd size, stride 2 VALID; deeper channels than
    # taps; a 1x1 filter (its patches are the input itself); dilation with one-sided SAME
    *_conv_cases("1x7x7x1", "3x3x1x4", strides=(2, 2), padding="VALID"),
    *_conv_cases("1x3x3x8", "2x2x8x3"),
    *_conv_cases("1x4x5x3", "1x1x3x2"),
    *_conv_cases("1x6x5x1", "2x3x1x2", dilations=(2, 1)),
    # -- pooling
    *_pool_cases("2x5x5x3", (3, 3), (1, 1), "SAME"),
    *_pool_cases("2x5x5x3", (2, 2), (2, 2), "VALID"),
    *_pool_cases("1x6x6x2", (3, 3), (2, 2), "SAME"),
    *_pool_cases("2?x5x4x2", (2, 3), (1, 2), "SAME"),
    # odd sizes: VALID leaves the last row out, SAME pads after only
    *_pool_cases("1x7x7x2", (3, 3), (2, 2), "VALID"),
    *_pool_cases("1x5x5x1", (2, 2), (2, 2), "SAME"),
    # strides past the window: rows and columns no window reads (their gradient is 0)
    *_pool_cases("1x8x7x2", (2, 1), (3, 2), "SAME"),
]

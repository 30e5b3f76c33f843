"""Differential tests: device "cpu" (optimized graph, fused Numba kernels) computes what the
"reference" device (NumPy, node by node) computes, on random graphs drawn by hypothesis and on a
few training steps of an MLP and of a CNN.

A random graph is a `Spec`: plain tuples, so that a failing example can be kept as an `@example`.
`nodes` lists inputs and ops in order; an op names its operands by their index in that list.

    ("input", "placeholder" | "constant", static shape (None: unknown), fed shape)
    ("unary", name, i)                    name in UNARY (log, sqrt: of |x| + c; exp: bounded x)
    ("cast", name, i)                     cast(UNARY[name](cast(x, the other float)), dtype)
    ("binary", name, i, j)                name in BINARY (divide: x / (|y| + 0.5))
    ("scalar", name, i, value, left)      BINARY[name](value, x_i) if left else (x_i, value)
    ("where", comparison, i, j, k)        where(comparison(x_i, x_j), x_i, x_k)
    ("reduce", name, i, axes | None, keepdims)
    ("reshape", i, target)    ("transpose", i, perm)    ("expand_dims", i, axis)
    ("squeeze", i, axes)      ("slice", i, key)         ("concat", i, j, axis)
    ("matmul", i, j, transpose_a, transpose_b)

A slice key holds ("s", start, stop, step) and ("i", index) items. The last node is the output;
`extra` names another node also fetched (or None). The loss is the sum of each fetched value
times a fixed random tensor; its gradients with respect to every placeholder are compared too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
from agreement import TOLERANCE, assert_agrees
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import symgraph as sg
from runtime import executor
from symgraph.shapes import broadcast_shapes

MAX_DIM = 4
MAX_RANK = 3
MAX_OPS = 8
BOUND = 16.0  # the largest |value| an op may produce: tanh squashes operands that would exceed it
INPUT_BOUND = 2.0  # inputs are uniform in [-2, 2]

UNARY = {
    "negative": sg.negative,
    "tanh": sg.tanh,
    "sigmoid": sg.sigmoid,
    "relu": sg.nn.relu,
    "abs": sg.abs,
    "square": sg.square,
    "exp": sg.exp,
    "log": lambda x: sg.log(sg.abs(x) + 0.5),
    "sqrt": lambda x: sg.sqrt(sg.abs(x) + 0.25),
}
BINARY = {
    "add": sg.add,
    "subtract": sg.subtract,
    "multiply": sg.multiply,
    "divide": lambda x, y: sg.divide(x, sg.abs(y) + 0.5),
    "maximum": sg.maximum,
    "minimum": sg.minimum,
}
COMPARISONS = {"less": sg.less, "greater": sg.greater, "less_equal": sg.less_equal,
               "greater_equal": sg.greater_equal}
SCALARS = (0.0, 1.0, -1.0, 0.5, 2.0)  # 0 and 1: the neutral elements that simplify removes
REDUCTIONS = {"sum": sg.reduce_sum, "mean": sg.reduce_mean, "max": sg.reduce_max,
              "min": sg.reduce_min}
# cast(op(cast(x, other)), dtype): in float64 graphs the float32 op and its gradient must be exact
# (a float32 tanh may differ by an ulp, 6e-8, from NumPy's, and fastmath may reassociate the
# float32 products of a chain of gradients: both far more than float64's tolerance)
CAST_INNER = {"float32": ("tanh", "square", "sigmoid", "negative"),
              "float64": ("negative", "abs", "relu")}
# nodes whose operands follow a name
NAMED = ("unary", "cast", "binary", "scalar", "where", "reduce")


class Spec(NamedTuple):
    dtype: str  # "float32" or "float64"
    seed: int  # the fed values, constants and loss weights
    nodes: tuple
    extra: int | None = None


# ---- shapes: what each node gives, statically and when fed ------------------------------------


class Shape(NamedTuple):
    static: tuple  # ints and None
    fed: tuple  # ints
    bound: float  # an upper bound of |value|
    stretched: bool = False  # a None dim fed 1 was broadcast against a bigger size


def _broadcast(shapes: list[Shape]) -> tuple[tuple, bool]:
    """The broadcast fed shape, and whether a None dim fed 1 stretched to a bigger one."""
    fed = np.broadcast_shapes(*[s.fed for s in shapes])
    stretched = False
    for s in shapes:
        pad = len(fed) - len(s.fed)
        for j, (st_dim, f) in enumerate(zip(s.static, s.fed)):
            stretched |= st_dim is None and f == 1 and fed[pad + j] > 1
    return tuple(fed), stretched


def _static_broadcast(shapes: list[Shape]) -> tuple:
    return tuple(broadcast_shapes([sg.TensorShape(list(s.static)) for s in shapes]).dims)


def _slice_len(n: int, item: tuple) -> int:
    return len(range(*slice(*item[1:]).indices(n)))


def infer(node: tuple, shapes: list[Shape]) -> Shape:
    """The Shape of one spec node, from the Shapes of the nodes before it."""
    kind = node[0]
    if kind == "input":
        return Shape(tuple(node[2]), tuple(node[3]), INPUT_BOUND)
    x = shapes[node[2] if kind in NAMED else node[1]]
    late = x.stretched
    if kind == "unary":
        b = {"tanh": 1.0, "sigmoid": 1.0, "square": x.bound ** 2, "exp": float(np.exp(x.bound)),
             "log": max(np.log(2.0), float(np.log(x.bound + 0.5))),
             "sqrt": float(np.sqrt(x.bound + 0.25))}.get(node[1], x.bound)
        return x._replace(bound=b)
    if kind == "cast":
        b = {"tanh": 1.0, "sigmoid": 1.0, "square": x.bound ** 2}.get(node[1], x.bound)
        return x._replace(bound=b)
    if kind == "scalar":
        name, left = node[1], node[4]
        b = {"add": x.bound + 2, "subtract": x.bound + 2, "multiply": 2 * x.bound,
             "divide": 4.0 if left else 2 * x.bound}.get(name, max(x.bound, 2.0))
        return x._replace(bound=b)
    if kind in ("binary", "where"):
        operands = [shapes[i] for i in node[2:]]
        fed, stretched = _broadcast(operands)
        b1, b2 = operands[0].bound, operands[-1].bound
        b = {"add": b1 + b2, "subtract": b1 + b2, "multiply": b1 * b2,
             "divide": 2 * b1}.get(node[1], max(b1, b2))
        return Shape(_static_broadcast(operands), fed, b,
                     stretched or any(s.stretched for s in operands))
    if kind == "reduce":
        _, name, _, axes, keepdims = node
        rank = len(x.fed)
        axes = tuple(range(rank)) if axes is None else axes
        count = int(np.prod([x.fed[a] for a in axes]))
        keep = [d for d in range(rank) if d not in axes]
        if keepdims:
            static = tuple(1 if d in axes else x.static[d] for d in range(rank))
            fed = tuple(1 if d in axes else x.fed[d] for d in range(rank))
        else:
            static = tuple(x.static[d] for d in keep)
            fed = tuple(x.fed[d] for d in keep)
        return Shape(static, fed, x.bound * (count if name == "sum" else 1), late)
    if kind == "reshape":
        target = node[2]
        fed_size = int(np.prod(x.fed))
        known = int(np.prod([d for d in target if d != -1]))
        fed = tuple(fed_size // known if d == -1 else d for d in target)
        static_known = all(d is not None for d in x.static)
        static = tuple(None if d == -1 and not static_known else f for d, f in zip(target, fed))
        return Shape(static, fed, x.bound, late)
    if kind == "transpose":
        perm = node[2]
        return Shape(tuple(x.static[p] for p in perm), tuple(x.fed[p] for p in perm), x.bound,
                     late)
    if kind == "expand_dims":
        a = node[2] % (len(x.fed) + 1)
        return Shape(x.static[:a] + (1,) + x.static[a:], x.fed[:a] + (1,) + x.fed[a:], x.bound,
                     late)
    if kind == "squeeze":
        axes = node[2]
        return Shape(tuple(d for i, d in enumerate(x.static) if i not in axes),
                     tuple(d for i, d in enumerate(x.fed) if i not in axes), x.bound, late)
    if kind == "slice":
        static, fed = [], []
        for item, s, f in zip(node[2], x.static, x.fed):
            if item[0] == "s":
                static.append(None if s is None else _slice_len(s, item))
                fed.append(_slice_len(f, item))
        return Shape(tuple(static), tuple(fed), x.bound, late)
    if kind == "concat":
        y, axis = shapes[node[2]], node[3]
        static = tuple(
            (None if a is None or b is None else a + b) if d == axis else (a if a is not None
                                                                            else b)
            for d, (a, b) in enumerate(zip(x.static, y.static)))
        fed = tuple(a + b if d == axis else a for d, (a, b) in enumerate(zip(x.fed, y.fed)))
        return Shape(static, fed, max(x.bound, y.bound), late or y.stretched)
    if kind == "matmul":
        _, _, j, ta, tb = node
        y = shapes[j]

        def mat(s: tuple, t: bool) -> tuple:
            return (s[-1], s[-2]) if t else (s[-2], s[-1])

        (m_s, _), (_, n_s) = mat(x.static, ta), mat(y.static, tb)
        (m_f, k_f), (_, n_f) = mat(x.fed, ta), mat(y.fed, tb)
        bx = Shape(x.static[:-2], x.fed[:-2], 0.0)
        by = Shape(y.static[:-2], y.fed[:-2], 0.0)
        batch_fed, stretched = _broadcast([bx, by])
        batch_static = _static_broadcast([bx, by])
        return Shape(batch_static + (m_s, n_s), batch_fed + (m_f, n_f),
                     x.bound * y.bound * k_f, late or y.stretched or stretched)
    raise ValueError(f"unknown spec node {node!r}")


def shapes_of(spec: Spec) -> list[Shape]:
    shapes: list[Shape] = []
    for node in spec.nodes:
        shapes.append(infer(node, shapes))
    return shapes


# ---- the strategy -----------------------------------------------------------------------------


class _Drawer:
    """Builds a spec's nodes one draw at a time, keeping every value's Shape."""

    def __init__(self, draw: Any, dtype: str) -> None:
        self.draw = draw
        self.dtype = dtype
        self.nodes: list[tuple] = []
        self.shapes: list[Shape] = []

    def add(self, node: tuple) -> int:
        self.shapes.append(infer(node, self.shapes))
        self.nodes.append(node)
        return len(self.nodes) - 1

    def dim(self, lo: int = 1) -> int:
        return self.draw(st.integers(lo, MAX_DIM))

    def fresh(self, fed: tuple) -> int:
        """A new input fed `fed`: a placeholder (some dims None) or a constant."""
        kind = self.draw(st.sampled_from(["placeholder", "placeholder", "constant"]))
        if kind == "constant":
            static = fed
        else:
            static = tuple(self.draw(st.sampled_from([d, None])) for d in fed)
        return self.add(("input", kind, static, tuple(fed)))

    def fresh_shape(self) -> tuple:
        rank = self.draw(st.integers(0, MAX_RANK))
        return tuple(self.dim() for _ in range(rank))

    def bounded(self, i: int, limit: float) -> int:
        """i, or tanh(i) when |value i| may exceed `limit`."""
        return i if self.shapes[i].bound <= limit else self.add(("unary", "tanh", i))

    def value(self) -> int:
        return self.draw(st.integers(0, len(self.nodes) - 1))

    def partner(self, fed: tuple) -> int:
        """An operand that broadcasts with shape `fed`: an earlier value, or a new input."""
        fits = [j for j, s in enumerate(self.shapes) if _broadcastable(fed, s.fed)]
        if fits and self.draw(st.booleans()):
            return self.draw(st.sampled_from(fits))
        rank = self.draw(st.integers(0, MAX_RANK))
        shape = []
        for k in range(rank):
            j = len(fed) - rank + k
            if j < 0:
                shape.append(self.dim())
            elif fed[j] == 1:
                shape.append(self.dim())
            else:
                shape.append(self.draw(st.sampled_from([fed[j], fed[j], 1])))
        return self.fresh(tuple(shape))

    # one method per kind of op; each appends the nodes it needs and returns nothing
    def unary(self) -> None:
        name = self.draw(st.sampled_from(sorted(UNARY)))
        limit = {"exp": 3.0, "square": BOUND ** 0.5}.get(name, BOUND)
        self.add(("unary", name, self.bounded(self.value(), limit)))

    def cast(self) -> None:
        name = self.draw(st.sampled_from(CAST_INNER[self.dtype]))
        self.add(("cast", name, self.bounded(self.value(), BOUND ** 0.5)))

    def binary(self) -> None:
        name = self.draw(st.sampled_from(sorted(BINARY)))
        i = self.value()
        j = self.partner(self.shapes[i].fed)
        limit = {"multiply": BOUND ** 0.5, "divide": BOUND / 2, "add": BOUND / 2,
                 "subtract": BOUND / 2}.get(name, BOUND)
        self.add(("binary", name, self.bounded(i, limit), self.bounded(j, limit)))

    def scalar(self) -> None:
        name = self.draw(st.sampled_from(sorted(BINARY)))
        left = self.draw(st.booleans())
        value = self.draw(st.sampled_from(SCALARS[1:] if name == "divide" and not left
                                          else SCALARS))
        limit = BOUND / 2 - 2
        self.add(("scalar", name, self.bounded(self.value(), limit), value, left))

    def where(self) -> None:
        name = self.draw(st.sampled_from(sorted(COMPARISONS)))
        i = self.value()
        j = self.partner(self.shapes[i].fed)
        k = self.partner(_broadcast([self.shapes[i], self.shapes[j]])[0])
        self.add(("where", name, i, j, k))

    def reduce(self) -> None:
        name = self.draw(st.sampled_from(sorted(REDUCTIONS)))
        i = self.value()
        rank = len(self.shapes[i].fed)
        if self.draw(st.booleans()) or rank == 0:
            axes = None
        else:
            axes = tuple(sorted(self.draw(st.sets(st.integers(0, rank - 1), min_size=1))))
        keepdims = self.draw(st.booleans())
        if name == "sum":
            fed = self.shapes[i].fed
            count = int(np.prod([fed[a] for a in (range(rank) if axes is None else axes)]))
            i = self.bounded(i, BOUND / count)
        self.add(("reduce", name, i, axes, keepdims))

    def reshape(self) -> None:
        i = self.value()
        size = int(np.prod(self.shapes[i].fed))
        rank = self.draw(st.integers(0 if size == 1 else 1, MAX_RANK))
        target, left = [], size
        for _ in range(rank - 1):
            d = self.draw(st.sampled_from([k for k in range(1, left + 1) if left % k == 0]))
            target.append(d)
            left //= d
        if rank:
            target.append(left)
        target = self.draw(st.permutations(target)) if target else []
        if target and self.draw(st.booleans()):
            target[self.draw(st.integers(0, len(target) - 1))] = -1
        self.add(("reshape", i, tuple(target)))

    def transpose(self) -> None:
        i = self.value()
        perm = self.draw(st.permutations(range(len(self.shapes[i].fed))))
        self.add(("transpose", i, tuple(perm)))

    def expand_dims(self) -> None:
        i = self.value()
        rank = len(self.shapes[i].fed)
        if rank == MAX_RANK:
            return False
        self.add(("expand_dims", i, self.draw(st.integers(-rank - 1, rank))))

    def squeeze(self) -> None:
        i = self.value()
        ones = [a for a, d in enumerate(self.shapes[i].static) if d == 1]
        if not ones:
            return False
        axes = self.draw(st.sets(st.sampled_from(ones), min_size=1))
        self.add(("squeeze", i, tuple(sorted(axes))))

    def slice(self) -> None:
        i = self.value()
        key = []
        for n in self.shapes[i].fed:
            how = self.draw(st.sampled_from(["all", "range", "range", "index"]))
            if how == "index":
                key.append(("i", self.draw(st.integers(-n, n - 1))))
                continue
            item = ("s", None, None, 1)
            if how == "range":
                start = self.draw(st.one_of(st.none(), st.integers(-n, n - 1)))
                stop = self.draw(st.one_of(st.none(), st.integers(-n, n)))
                step = self.draw(st.sampled_from([1, 1, 2, -1]))
                if _slice_len(n, ("s", start, stop, step)) > 0:
                    item = ("s", start, stop, step)
            key.append(item)
        self.add(("slice", i, tuple(key)))

    def of_rank(self, rank: int) -> int | None:
        """A value of at least `rank` dims, or None when there is none."""
        fits = [k for k, s in enumerate(self.shapes) if len(s.fed) >= rank]
        return self.draw(st.sampled_from(fits)) if fits else None

    def concat(self) -> None:
        i = self.of_rank(1)
        if i is None:
            return False
        fed = self.shapes[i].fed
        axis = self.draw(st.integers(0, len(fed) - 1))
        fits = [j for j, s in enumerate(self.shapes) if len(s.fed) == len(fed) and all(
            a == b for d, (a, b) in enumerate(zip(s.fed, fed)) if d != axis)]
        if self.draw(st.booleans()):
            j = self.draw(st.sampled_from(fits))
        else:
            j = self.fresh(fed[:axis] + (self.dim(),) + fed[axis + 1:])
        self.add(("concat", i, j, axis))

    def matmul(self) -> None:
        i = self.of_rank(2)
        if i is None:
            return False
        fed = self.shapes[i].fed
        ta, tb = self.draw(st.booleans()), self.draw(st.booleans())
        k = fed[-2] if ta else fed[-1]
        n = self.dim()
        batch = self.draw(st.sampled_from([(), fed[:-2], (1,) * len(fed[:-2])]))
        j = self.fresh(batch + ((n, k) if tb else (k, n)))
        limit = (BOUND / k) ** 0.5
        self.add(("matmul", self.bounded(i, limit), self.bounded(j, limit), ta, tb))


def _broadcastable(a: tuple, b: tuple) -> bool:
    try:
        return len(np.broadcast_shapes(a, b)) <= MAX_RANK
    except ValueError:
        return False


OPS = ("unary", "unary", "cast", "binary", "binary", "scalar", "where", "reduce", "reduce",
       "reshape", "transpose", "expand_dims", "squeeze", "slice", "concat", "matmul")


@st.composite
def specs(draw: Any) -> Spec:
    """A random graph of at most MAX_OPS ops (plus the tanh that keeps values bounded)."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    d = _Drawer(draw, dtype)
    d.fresh(d.fresh_shape())
    for _ in range(draw(st.integers(1, MAX_OPS))):
        if getattr(d, draw(st.sampled_from(OPS)))() is False:  # it does not apply here
            d.binary()
    if d.nodes[-1][0] == "input":
        d.add(("unary", "tanh", len(d.nodes) - 1))
    ops = [k for k, n in enumerate(d.nodes[:-1]) if n[0] != "input"]
    extra = draw(st.one_of(st.none(), st.sampled_from(ops))) if ops else None
    return Spec(dtype, draw(st.integers(0, 2**16)), tuple(d.nodes), extra)


# ---- building and checking --------------------------------------------------------------------


def _index(key: tuple) -> tuple:
    return tuple(item[1] if item[0] == "i" else slice(*item[1:]) for item in key)


def build(spec: Spec, rng: np.random.Generator, dtype: sg.DType,
          cast_through: sg.DType | None = None) -> tuple[list, dict, list]:
    """The spec's graph in the default graph, computed in `dtype` (the spec's own, or float64
    throughout for the exact values): the fetched tensors, the feeds, and the placeholders (the
    gradients are taken with respect to them). Values are drawn in the spec's dtype."""
    other = cast_through or (sg.float32 if spec.dtype == "float64" else sg.float64)
    values: list[sg.Tensor] = []
    feeds: dict = {}
    for node in spec.nodes:
        kind, args = node[0], node[1:]
        if kind == "input":
            value = rng.uniform(-INPUT_BOUND, INPUT_BOUND, size=node[3]).astype(spec.dtype)
            value = value.astype(dtype.np)
            if args[0] == "constant":
                t = sg.constant(value, dtype=dtype)
            else:
                t = sg.placeholder(dtype, list(node[2]))
                feeds[t] = value
        elif kind == "unary":
            t = UNARY[args[0]](values[args[1]])
        elif kind == "cast":
            t = sg.cast(UNARY[args[0]](sg.cast(values[args[1]], other)), dtype)
        elif kind == "binary":
            t = BINARY[args[0]](values[args[1]], values[args[2]])
        elif kind == "scalar":
            x, value = values[args[1]], args[2]
            if args[0] == "divide" and not args[3]:
                t = sg.divide(x, value)
            else:
                t = BINARY[args[0]](*((value, x) if args[3] else (x, value)))
        elif kind == "where":
            x, y, z = (values[i] for i in args[1:])
            t = sg.where(COMPARISONS[args[0]](x, y), x, z)
        elif kind == "reduce":
            t = REDUCTIONS[args[0]](values[args[1]], axis=args[2], keepdims=args[3])
        elif kind == "reshape":
            t = sg.reshape(values[args[0]], list(args[1]))
        elif kind == "transpose":
            t = sg.transpose(values[args[0]], list(args[1]))
        elif kind == "expand_dims":
            t = sg.expand_dims(values[args[0]], args[1])
        elif kind == "squeeze":
            t = sg.squeeze(values[args[0]], list(args[1]))
        elif kind == "slice":
            t = values[args[0]][_index(args[1])]
        elif kind == "concat":
            t = sg.concat([values[args[0]], values[args[1]]], args[2])
        elif kind == "matmul":
            t = sg.matmul(values[args[0]], values[args[1]], transpose_a=args[2],
                          transpose_b=args[3])
        else:
            raise ValueError(f"unknown spec node {node!r}")
        values.append(t)
    fetched = [values[-1]] + ([] if spec.extra is None else [values[spec.extra]])
    return fetched, feeds, list(feeds)


def evaluate(spec: Spec, dtype: sg.DType, devices: tuple[str, ...]) -> list[list[np.ndarray]]:
    """The fetched values and then the gradients, computed on each device; on "cpu", no kernel
    may refuse its inputs unless a None dim fed 1 was broadcast (the documented fallback)."""
    shapes = shapes_of(spec)
    rng = np.random.default_rng(spec.seed)
    results = []
    with sg.Graph().as_default() as graph:
        fetched, feeds, xs = build(spec, rng, dtype)
        outputs = [len(shapes) - 1] + ([] if spec.extra is None else [spec.extra])
        for t, i in zip(fetched, outputs):
            assert t.shape.is_compatible_with(shapes[i].fed), (t, shapes[i])
        weights = [sg.constant(rng.standard_normal(shapes[i].fed).astype(spec.dtype), dtype=dtype)
                   for i in outputs]
        loss = sg.add_n([sg.reduce_sum(t * w) for t, w in zip(fetched, weights)])
        fetches = fetched + [g for g in sg.gradients(loss, xs) if g is not None]
        for device in devices:
            before = executor.fallbacks
            results.append(sg.Session(graph=graph, device=device).run(fetches, feeds))
            if device == "cpu" and not any(s.stretched for s in shapes):
                assert executor.fallbacks == before, "a kernel refused its inputs"
    assert results[0][0].shape == shapes[-1].fed
    return results


def check_spec(spec: Spec) -> None:
    """Forward values and gradients agree on "cpu" and "reference" (tests/agreement.py: in
    float32, within 4x the reference's distance from the exact float64 value, too)."""
    want, got = evaluate(spec, sg.as_dtype(spec.dtype), ("reference", "cpu"))
    exact = want
    if spec.dtype == "float32":
        (exact,) = evaluate(spec, sg.float64, ("reference",))
    assert_agrees(got, want, exact, spec.dtype, "fetch")


def check_gradients_numerically(spec: Spec, probes: int = 3, h: float = 1e-6) -> None:
    """The symbolic gradient of the loss (reference device, float64 throughout) matches central
    differences at a few elements of each placeholder: the gradient graphs of random
    compositions are right, not only equal on both devices."""
    shapes = shapes_of(spec)
    rng = np.random.default_rng(spec.seed)
    with sg.Graph().as_default() as graph:
        fetched, feeds, xs = build(spec, rng, sg.float64, cast_through=sg.float64)
        if not xs:
            return
        outputs = [len(shapes) - 1] + ([] if spec.extra is None else [spec.extra])
        weights = [sg.constant(rng.standard_normal(shapes[i].fed), dtype=sg.float64)
                   for i in outputs]
        loss = sg.add_n([sg.reduce_sum(t * w) for t, w in zip(fetched, weights)])
        grads = sg.gradients(loss, xs)
        sess = sg.Session(graph=graph, device="reference")
        symbolic = sess.run([g if g is not None else loss for g in grads], feeds)
        for x, g, sym in zip(xs, grads, symbolic):
            base = feeds[x]
            if base.size == 0:
                continue
            for flat in rng.choice(base.size, size=min(probes, base.size), replace=False):
                index = np.unravel_index(flat, base.shape)
                values = []
                for step in (h, -h):
                    moved = base.copy()
                    moved[index] += step
                    values.append(float(sess.run(loss, {**feeds, x: moved})))
                numeric = (values[0] - values[1]) / (2 * h)
                analytic = 0.0 if g is None else float(sym[index])
                scale = max(1.0, abs(numeric), abs(analytic))
                assert abs(numeric - analytic) <= 1e-5 * scale, (
                    f"d loss / d {x.name}{list(index)}: symbolic {analytic}, central "
                    f"differences {numeric}")


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
# fusion joined abs(x) and abs(transpose(x)), both (None, None), in one loop: fed (3, 1), the
# kernel refused on every run (fusion.can_join now asks for a shared value of the group's shape)
@example(Spec("float32", 0, (("input", "placeholder", (None, None), (3, 1)), ("unary", "abs", 0),
                             ("transpose", 0, (1, 0)), ("unary", "abs", 2)), extra=1))
def test_random_graphs_match_reference(spec: Spec) -> None:
    check_spec(spec)
    check_gradients_numerically(spec)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_many_random_graphs_match_reference(spec: Spec) -> None:
    check_spec(spec)
    check_gradients_numerically(spec)


def test_every_kind_of_node() -> None:
    """One spec with every kind of node, its shapes worked out by hand."""
    spec = Spec("float64", 0, (
        ("input", "placeholder", (None, 3), (2, 3)),
        ("input", "constant", (3, 1), (3, 1)),
        ("matmul", 0, 1, False, False),
        ("binary", "divide", 2, 0),
        ("reduce", "max", 3, (1,), True),
        ("reshape", 3, (3, -1)),
        ("transpose", 5, (1, 0)),
        ("expand_dims", 6, -1),
        ("squeeze", 7, (2,)),
        ("slice", 8, (("s", None, None, -1), ("i", 1))),
        ("concat", 0, 8, 1),
        ("where", "less", 10, 4, 10),
        ("unary", "log", 11),
        ("cast", "square", 12),
    ), extra=4)
    fed = [s.fed for s in shapes_of(spec)]
    assert fed[2:] == [(2, 1), (2, 3), (2, 1), (3, 2), (2, 3), (2, 3, 1), (2, 3), (2,), (2, 6),
                       (2, 6), (2, 6), (2, 6)]
    check_spec(spec)


# ---- training: a few steps on "cpu" follow the reference step for step ------------------------


def _train_both(build_model: Any, batches: list[tuple[np.ndarray, np.ndarray]],
                dtype: str) -> None:
    """Runs the same steps in a reference and a cpu session, from the same initial values;
    the losses of every step and all variables at the end (optimizer slots included) agree."""
    with sg.Graph().as_default() as graph:
        sg.set_random_seed(1)
        x, labels, loss, train_op = build_model()
        variables = sg.global_variables()
        ref = sg.Session(graph=graph, device="reference")
        cpu = sg.Session(graph=graph, device="cpu")
        ref.run(sg.global_variables_initializer())
        cpu.run(sg.global_variables_initializer())
        for v, value in zip(variables, ref.run(variables)):
            cpu.load_variable(v, value)
        before = executor.fallbacks
        for step, (xb, yb) in enumerate(batches):
            feed = {x: xb, labels: yb}
            want, _ = ref.run([loss, train_op], feed)
            got, _ = cpu.run([loss, train_op], feed)
            np.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=f"step {step}")
        assert executor.fallbacks == before, "a kernel refused its inputs"
        # the steps after the first wrote every weight and slot in place, in the session's
        # own buffers (compiler.plan.Update): the path compared here
        plan = cpu.plan_for([loss, train_op], feed)
        in_place = {u.var.name for updates in plan.updates for u in updates if u.reuse}
        assert {v.node.name for v in variables if v.shape.rank} <= in_place
        for v, got, want in zip(variables, cpu.run(variables), ref.run(variables)):
            np.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=v.name)


def _batches(shape: tuple, classes: int, steps: int = 5, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [(rng.uniform(0, 1, shape).astype(np.float32),
             np.eye(classes, dtype=np.float32)[rng.integers(0, classes, shape[0])])
            for _ in range(steps)]


def test_mlp_training_steps_match_reference() -> None:
    """784 -> 64 (ReLU, dropout off) -> 10, softmax cross-entropy, Adam: 5 steps."""

    def model():
        x = sg.placeholder(sg.float32, [None, 784])
        labels = sg.placeholder(sg.float32, [None, 10])
        h = sg.layers.dense(x, 64, activation=sg.nn.relu)
        h = sg.layers.dropout(h, rate=0.5, training=False)
        logits = sg.layers.dense(h, 10)
        loss = sg.reduce_mean(sg.nn.softmax_cross_entropy_with_logits(labels=labels,
                                                                       logits=logits))
        return x, labels, loss, sg.train.AdamOptimizer(1e-3).minimize(loss)

    _train_both(model, _batches((32, 784), 10), "float32")


def test_cnn_training_steps_match_reference() -> None:
    """conv 3x3 -> max-pool -> conv 3x3 -> max-pool -> dense -> dense on 12x12x1, Momentum."""

    def model():
        x = sg.placeholder(sg.float32, [None, 12, 12, 1])
        labels = sg.placeholder(sg.float32, [None, 10])
        h = sg.layers.conv2d(x, 8, 3, padding="same", activation=sg.nn.relu)
        h = sg.layers.max_pooling2d(h, 2, 2)
        h = sg.layers.conv2d(h, 16, 3, padding="same", activation=sg.nn.relu)
        h = sg.layers.max_pooling2d(h, 2, 2)
        h = sg.layers.dense(sg.layers.flatten(h), 32, activation=sg.nn.relu)
        logits = sg.layers.dense(h, 10)
        loss = sg.reduce_mean(sg.nn.softmax_cross_entropy_with_logits(labels=labels,
                                                                       logits=logits))
        return x, labels, loss, sg.train.MomentumOptimizer(0.05, 0.9).minimize(loss)

    _train_both(model, _batches((16, 12, 12, 1), 10), "float32")

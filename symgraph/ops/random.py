"""Random ops: normal, truncated normal and uniform draws of a static shape.

Each op is a source whose `effect` draws from the session's per-node generator
(`state.rng(node)`), so every run gives new values and a seeded graph replays the same sequence
in a new session. Seeds follow TF1's rule (see `get_seed`); the node's `seed` attr is the pair
(graph seed, op seed), or None for fresh entropy.

Mean, stddev and bounds are attrs when they are Python numbers; when one is a tensor the op draws
the standard distribution and the scaling is ordinary graph arithmetic, so gradients flow to the
tensor parameters (the reparameterization TF1 also builds) but never to the draw itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.graph import Graph, Tensor, apply, convert_to_tensor, get_default_graph
from symgraph.registry import NOT_DIFFERENTIABLE, OpDef, OpKind, TensorType, register
from symgraph.shapes import TensorShape

# TF1's graph seed when only an op seed is given (random_seed.DEFAULT_GRAPH_SEED).
DEFAULT_GRAPH_SEED = 87654321
# TF1 resamples values more than this many standard deviations from the mean.
TRUNCATION = 2.0


def set_random_seed(seed: int | None) -> None:
    """Sets the default graph's seed: every random op created after it gets a derived seed."""
    get_default_graph().seed = None if seed is None else int(seed)


set_seed = set_random_seed


def get_seed(op_seed: int | None, graph: Graph | None = None) -> tuple[int, int] | None:
    """The (graph seed, op seed) pair of a new random op, by TF1's rule.

    Graph seed set and op seed None: the op seed is the node's position in the graph, so the same
    program builds the same seeds. Only an op seed: the graph seed is DEFAULT_GRAPH_SEED. Neither:
    None (nondeterministic).
    """
    graph = graph or get_default_graph()
    graph_seed = graph.seed
    if graph_seed is None and op_seed is None:
        return None
    if graph_seed is None:
        graph_seed = DEFAULT_GRAPH_SEED
    if op_seed is None:
        op_seed = graph.version  # the id the next node gets
    return int(graph_seed), int(op_seed)


def op_seed(graph: Graph, seed: int | None) -> tuple[int, int] | None:
    """`get_seed` with the graph first, for ops that draw in their own effect (dropout)."""
    return get_seed(seed, graph)


def _random_infer(inputs: list, attrs: dict) -> TensorType:
    dtype, shape = attrs["dtype"], attrs["shape"]
    if not shape.is_fully_defined():
        raise ValueError(f"a random op needs a fully known shape, got {shape}")
    return TensorType(dtype, shape)


def _float_draw(draw: Any, dtype: _dt.DType) -> Any:
    """Draws in float32 or float64 (NumPy's generators have no float16); the executor casts."""
    return draw(np.float64 if dtype == _dt.float64 else np.float32)


def _normal(state: Any, node: Any) -> np.ndarray:
    a = node.attrs
    gen = state.rng(node)
    z = _float_draw(lambda t: gen.standard_normal(a["shape"].dims, dtype=t), a["dtype"])
    return z * z.dtype.type(a["stddev"]) + z.dtype.type(a["mean"])


def _truncated_normal(state: Any, node: Any) -> np.ndarray:
    a = node.attrs
    gen = state.rng(node)
    dims = a["shape"].dims
    z = _float_draw(lambda t: gen.standard_normal(dims, dtype=t), a["dtype"])
    # resample every value beyond 2 stddev until none is left (TF1's truncated_normal)
    bad = np.abs(z) > TRUNCATION
    while bad.any():
        z[bad] = gen.standard_normal(int(bad.sum()), dtype=z.dtype)
        bad = np.abs(z) > TRUNCATION
    return z * z.dtype.type(a["stddev"]) + z.dtype.type(a["mean"])


def _uniform(state: Any, node: Any) -> np.ndarray:
    a = node.attrs
    gen = state.rng(node)
    dtype, dims = a["dtype"], a["shape"].dims
    if dtype.is_integer:
        return gen.integers(a["minval"], a["maxval"], size=dims, dtype=dtype.np)
    u = _float_draw(lambda t: gen.random(dims, dtype=t), dtype)
    lo, hi = u.dtype.type(a["minval"]), u.dtype.type(a["maxval"])
    return u * (hi - lo) + lo  # in [minval, maxval)


RANDOM_NORMAL = register(OpDef("random_normal", OpKind.SOURCE, _random_infer, None,
                               grad=NOT_DIFFERENTIABLE, effect=_normal))
TRUNCATED_NORMAL = register(OpDef("truncated_normal", OpKind.SOURCE, _random_infer, None,
                                  grad=NOT_DIFFERENTIABLE, effect=_truncated_normal))
RANDOM_UNIFORM = register(OpDef("random_uniform", OpKind.SOURCE, _random_infer, None,
                                grad=NOT_DIFFERENTIABLE, effect=_uniform))


# ---- user functions --------------------------------------------------------------------------


def _static_shape(shape: Any) -> TensorShape:
    if isinstance(shape, Tensor):
        raise TypeError(f"random ops need a static shape (a list of ints), got {shape.describe()}")
    out = TensorShape(shape)
    if not out.is_fully_defined():
        raise ValueError(f"random ops need a fully known shape, got {out}")
    return out


def _float_dtype(dtype: Any, what: str) -> _dt.DType:
    dtype = _dt.as_dtype(dtype)
    if not dtype.is_floating:
        raise TypeError(f"{what} draws floating values; got dtype {dtype.name}")
    return dtype


def _scaled(opdef: OpDef, shape: TensorShape, dtype: _dt.DType, loc: Any, scale: Any,
            seed: int | None, name: str | None, loc_attr: str, scale_attr: str) -> Tensor:
    """One random op; tensor parameters become `draw * scale + loc` in the graph."""
    if not isinstance(loc, Tensor) and not isinstance(scale, Tensor):
        return apply(opdef, name=name, shape=shape, dtype=dtype, seed=get_seed(seed),
                     **{loc_attr: float(loc), scale_attr: float(scale)})
    from symgraph.ops.elementwise import add, multiply

    loc = convert_to_tensor(loc, dtype=dtype)
    scale = convert_to_tensor(scale, dtype=dtype)
    for t in (loc, scale):
        if t.shape.rank != 0:
            raise ValueError(f"random parameters must be scalars, got {t.describe()}")
    draw = apply(opdef, shape=shape, dtype=dtype, seed=get_seed(seed),
                 **{loc_attr: 0.0, scale_attr: 1.0})
    return add(multiply(draw, scale), loc, name=name)


def random_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = _dt.float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Values drawn from N(mean, stddev^2), of a static `shape`; new values every run."""
    dtype = _float_dtype(dtype, "random_normal")
    return _scaled(RANDOM_NORMAL, _static_shape(shape), dtype, mean, stddev, seed, name,
                   "mean", "stddev")


def truncated_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = _dt.float32,
                     seed: int | None = None, name: str | None = None) -> Tensor:
    """Normal values with those beyond 2 stddev from the mean redrawn (TF1's truncated_normal).

    The result's standard deviation is about 0.88 * stddev.
    """
    dtype = _float_dtype(dtype, "truncated_normal")
    return _scaled(TRUNCATED_NORMAL, _static_shape(shape), dtype, mean, stddev, seed, name,
                   "mean", "stddev")


def random_uniform(shape: Any, minval: Any = 0, maxval: Any = None, dtype: Any = _dt.float32,
                   seed: int | None = None, name: str | None = None) -> Tensor:
    """Uniform values in [minval, maxval); maxval defaults to 1 for floats and is required for
    integer dtypes (Python ints then)."""
    dtype = _dt.as_dtype(dtype)
    shape = _static_shape(shape)
    if dtype.is_integer:
        if maxval is None:
            raise ValueError(f"random_uniform of dtype {dtype.name} needs maxval")
        if isinstance(minval, Tensor) or isinstance(maxval, Tensor):
            raise TypeError("random_uniform of an integer dtype takes Python int bounds")
        lo, hi = int(minval), int(maxval)
        if lo >= hi:
            raise ValueError(f"random_uniform needs minval < maxval, got [{lo}, {hi})")
        info = np.iinfo(dtype.np)
        if lo < info.min or hi - 1 > info.max:
            raise ValueError(f"random_uniform bounds [{lo}, {hi}) overflow {dtype.name}")
        return apply(RANDOM_UNIFORM, name=name, shape=shape, dtype=dtype, seed=get_seed(seed),
                     minval=lo, maxval=hi)
    if not dtype.is_floating:
        raise TypeError(f"random_uniform draws numbers; got dtype {dtype.name}")
    maxval = 1.0 if maxval is None else maxval
    if isinstance(minval, Tensor) or isinstance(maxval, Tensor):
        from symgraph.ops.elementwise import subtract

        minval = convert_to_tensor(minval, dtype=dtype)
        maxval = convert_to_tensor(maxval, dtype=dtype)
        return _scaled(RANDOM_UNIFORM, shape, dtype, minval, subtract(maxval, minval), seed,
                       name, "minval", "maxval")
    if not float(minval) < float(maxval):
        raise ValueError(f"random_uniform needs minval < maxval, got [{minval}, {maxval})")
    return apply(RANDOM_UNIFORM, name=name, shape=shape, dtype=dtype, seed=get_seed(seed),
                 minval=float(minval), maxval=float(maxval))


def _uniform_like(state: Any, node: Any, x: np.ndarray) -> np.ndarray:
    return _float_draw(lambda t: state.rng(node).random(np.shape(x), dtype=t), node.dtype)


# U[0, 1) of another tensor's run-time shape: the noise of dropout with a tensor keep_prob, whose
# input has a batch dimension known only when fed (a static-shape draw cannot be used there).
RANDOM_UNIFORM_LIKE = register(OpDef(
    "random_uniform_like", OpKind.STATE, lambda i, a: TensorType(a["dtype"], i[0].shape), None,
    grad=NOT_DIFFERENTIABLE, shape_inputs=(0,), effect=_uniform_like))


def random_uniform_like(x: Any, dtype: Any = _dt.float32, seed: int | None = None,
                        name: str | None = None) -> Tensor:
    """Uniform values in [0, 1) of `x`'s run-time shape (None dims allowed); new every run."""
    x = convert_to_tensor(x)
    dtype = _float_dtype(dtype, "random_uniform_like")
    return apply(RANDOM_UNIFORM_LIKE, x, name=name, dtype=dtype, seed=get_seed(seed, x.graph))


# TF2-style names, for `sg.random.normal(...)`.
normal = random_normal
uniform = random_uniform

"""TensorFlow 1's graph-mode API on symgraph: change only the import line of a TF1 script.

    import symgraph.compat.v1 as tf
    x = tf.placeholder("float", [None, 784])
    W = tf.Variable(tf.zeros([784, 10]))
    y = tf.nn.softmax(tf.matmul(x, W))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        ...

Names keep TF1's arguments and positional orders; where symgraph's own function differs (the
`reduction_indices=` spelling, argmax's third argument, `tf.Variable`'s, `constant`'s padding
of short lists) the adaptation is here, and the submodules (`tf.nn`, `tf.train`, `tf.summary`,
`tf.app`, `tf.io.gfile`, `tf.losses`, `tf.layers`, `tf.random`, `tf.logging`) do the same. A
TF1 name that symgraph does not offer raises `UnsupportedError` (an AttributeError) naming it,
e.g. "tf.contrib is not supported". See the README section "TensorFlow 1 compatibility".
"""

from __future__ import annotations

import builtins
import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

import symgraph as _sg

# ---- names symgraph has with TF1's meaning and signature ----------------------------------------
from symgraph import (  # noqa: F401 - the re-exported TF1 surface (tf.errors, tf.Session, ...)
    AUTO_REUSE,
    DType,
    Graph,
    GraphKeys,
    InteractiveSession,
    Operation,
    Session,
    TensorShape,
    VariableScope,
    abs,
    add,
    add_n,
    add_to_collection,
    as_dtype,
    assign,
    assign_add,
    assign_sub,
    bool,
    cast,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    concat,
    constant_initializer,
    control_dependencies,
    cos,
    divide,
    equal,
    errors,
    exp,
    expand_dims,
    expm1,
    fill,
    float16,
    float32,
    float64,
    floordiv,
    floormod,
    get_collection,
    get_default_graph,
    get_default_session,
    get_variable_scope,
    global_norm,
    global_variables,
    global_variables_initializer,
    glorot_normal_initializer,
    glorot_uniform_initializer,
    gradients,
    greater,
    greater_equal,
    group,
    identity,
    initialize_all_variables,
    initializers,
    int8,
    int16,
    int32,
    int64,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    matmul,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    newaxis,
    no_op,
    not_equal,
    one_hot,
    ones_initializer,
    ones_like,
    pad,
    placeholder,
    placeholder_with_default,
    pow,
    random_normal,
    random_normal_initializer,
    random_uniform,
    random_uniform_initializer,
    reciprocal,
    reset_default_graph,
    reshape,
    rsqrt,
    set_random_seed,
    sigmoid,
    sign,
    sin,
    size,
    sqrt,
    square,
    stack,
    stop_gradient,
    subtract,
    tanh,
    tile,
    trainable_variables,
    transpose,
    truediv,
    truncated_normal,
    truncated_normal_initializer,
    tuple,
    uint8,
    variables_initializer,
    variance_scaling_initializer,
    where,
    zeros_initializer,
    zeros_like,
)
from symgraph.compat.v1 import (  # noqa: F401 - TF1's submodules
    app,
    examples,
    flags,
    gfile,
    io,
    layers,
    logging,
    losses,
    nn,
    random,
    summary,
    train,
)
from symgraph.compat.v1._names import (  # noqa: F401 - tf.UnsupportedError
    UnsupportedError,
    refuse_argument,
    unsupported,
)
from symgraph.compat.v1.summary import Summary  # noqa: F401 - tf.Summary
from symgraph.graph import Tensor, convert_to_tensor

double = float64
half = float16
compat = sys.modules["symgraph.compat"]  # tf.compat.v1 is this module: `compat.v1` is set
# when this module finishes importing, as for any submodule

__version__ = "1.15.5"  # the TF1 API level this module follows (scripts print or compare it)
VERSION = __version__


# ---- eager mode: symgraph has graphs only, which is TF1's default ------------------------------


def disable_eager_execution() -> None:
    """Nothing to do: symgraph always builds graphs (TF1's mode)."""


def disable_v2_behavior() -> None:
    """Nothing to do: symgraph always behaves as TF1 (graphs, sessions, variables by name)."""


def executing_eagerly() -> bool:
    return False


def enable_eager_execution(*args: Any, **kwargs: Any) -> None:
    raise UnsupportedError("tf.enable_eager_execution is not supported by symgraph.compat.v1: "
                           "symgraph builds graphs and runs them in a Session")


# ---- graph building with TF1's argument orders ---------------------------------------------------


class _VariableType(type):
    """So that `isinstance(v, tf.Variable)` holds for every symgraph variable (get_variable's,
    the optimizers' slots), not only those made by calling tf.Variable."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _sg.Variable)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _sg.Variable)


class Variable(_sg.Variable, metaclass=_VariableType):
    """TF1's `tf.Variable(initial_value, trainable, collections, validate_shape, caching_device,
    name, variable_def, dtype, ...)`: the initial value a tensor, a number, an array or a
    callable; `trainable` defaults to True."""

    __slots__ = ()

    def __init__(self, initial_value: Any = None, trainable: bool | None = None,
                 collections: Iterable[str] | None = None, validate_shape: bool = True,
                 caching_device: Any = None, name: str | None = None, variable_def: Any = None,
                 dtype: Any = None, expected_shape: Any = None, import_scope: str | None = None,
                 constraint: Any = None, use_resource: bool | None = None,
                 synchronization: Any = None, aggregation: Any = None, shape: Any = None) -> None:
        for arg, value in (("variable_def", variable_def), ("import_scope", import_scope),
                           ("constraint", constraint), ("shape", shape)):
            if value is not None:
                refuse_argument("tf.Variable", arg, value)
        super().__init__(initial_value, trainable=True if trainable is None else trainable,
                         name=name, dtype=dtype, collections=collections,
                         validate_shape=validate_shape)


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                 regularizer: Any = None, trainable: bool | None = None,
                 collections: Iterable[str] | None = None, caching_device: Any = None,
                 partitioner: Any = None, validate_shape: bool = True,
                 use_resource: bool | None = None, custom_getter: Any = None,
                 constraint: Any = None, synchronization: Any = None,
                 aggregation: Any = None) -> _sg.Variable:
    """The variable `scope/name`: made, or found when the scope reuses (TF1's order)."""
    for arg, value in (("partitioner", partitioner), ("custom_getter", custom_getter),
                       ("constraint", constraint)):
        if value is not None:
            refuse_argument("tf.get_variable", arg, value)
    return _sg.get_variable(name, shape=shape, dtype=dtype, initializer=initializer,
                            regularizer=regularizer,
                            trainable=True if trainable is None else trainable,
                            collections=collections, validate_shape=validate_shape)


def variable_scope(name_or_scope: Any, default_name: str | None = None, values: Any = None,
                   initializer: Any = None, regularizer: Any = None, caching_device: Any = None,
                   partitioner: Any = None, custom_getter: Any = None, reuse: Any = None,
                   dtype: Any = None, use_resource: bool | None = None, constraint: Any = None,
                   auxiliary_name_scope: bool = True) -> Any:
    """A variable scope (and the name scope of the same name), TF1's argument order."""
    for arg, value in (("partitioner", partitioner), ("custom_getter", custom_getter),
                       ("constraint", constraint)):
        if value is not None:
            refuse_argument("tf.variable_scope", arg, value)
    if not auxiliary_name_scope:
        refuse_argument("tf.variable_scope", "auxiliary_name_scope", auxiliary_name_scope)
    return _sg.variable_scope(name_or_scope, default_name=default_name, values=values,
                              initializer=initializer, regularizer=regularizer, reuse=reuse,
                              dtype=dtype)


def name_scope(name: str | None, default_name: str | None = None, values: Any = None) -> Any:
    """Prefixes the names of ops made inside (`name`, else `default_name`)."""
    return _sg.name_scope(name if name is not None else default_name)


def constant(value: Any, dtype: Any = None, shape: Any = None, name: str = "Const",
             verify_shape: bool = False) -> Tensor:
    """A constant. With `shape`, TF1 fills a list shorter than the shape with its last element
    (`tf.constant([1, 2], shape=[4])` is [1, 2, 2, 2]); `verify_shape` forbids any reshaping."""
    if shape is not None and not isinstance(value, (Tensor, np.ndarray)):
        flat = np.asarray(value).ravel()
        target = TensorShape(shape)
        n = target.num_elements()
        if verify_shape and builtins.tuple(np.shape(value)) != builtins.tuple(target.dims or ()):
            raise TypeError(f"tf.constant: expected shape {target}, got {np.shape(value)}")
        if n is not None and 1 < flat.size < n:
            value = np.concatenate([flat, np.repeat(flat[-1:], n - flat.size)]).tolist()
        elif n is not None and flat.size > n:
            raise TypeError(f"tf.constant: too many elements provided, needed at most {n}, "
                            f"got {flat.size}")
    return _sg.constant(value, dtype=dtype, shape=shape, name=name)


def zeros(shape: Any, dtype: Any = float32, name: str | None = None) -> Tensor:
    """Zeros of a static shape (a list, a tuple or an int)."""
    return _sg.zeros(list(TensorShape(shape)), dtype=dtype, name=name)


def ones(shape: Any, dtype: Any = float32, name: str | None = None) -> Tensor:
    return _sg.ones(list(TensorShape(shape)), dtype=dtype, name=name)


def _reduce(fn: Any, input_tensor: Any, axis: Any, keepdims: Any, name: str | None,
            reduction_indices: Any, keep_dims: Any) -> Tensor:
    if axis is not None and reduction_indices is not None:
        raise ValueError("give axis or reduction_indices, not both")
    axis = axis if axis is not None else reduction_indices
    keep = keepdims if keepdims is not None else keep_dims
    return fn(input_tensor, axis, keepdims=builtins.bool(keep), name=name)


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: bool | None = None) -> Tensor:
    """Sum over `axis` (TF1 also spells it `reduction_indices`); None sums everything."""
    return _reduce(_sg.reduce_sum, input_tensor, axis, keepdims, name, reduction_indices,
                   keep_dims)


def reduce_mean(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
                name: str | None = None, reduction_indices: Any = None,
                keep_dims: bool | None = None) -> Tensor:
    """Mean over `axis`; an integer tensor gives an integer mean, as in TF1."""
    return _reduce(_sg.reduce_mean, input_tensor, axis, keepdims, name, reduction_indices,
                   keep_dims)


def reduce_max(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: bool | None = None) -> Tensor:
    return _reduce(_sg.reduce_max, input_tensor, axis, keepdims, name, reduction_indices,
                   keep_dims)


def reduce_min(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: bool | None = None) -> Tensor:
    return _reduce(_sg.reduce_min, input_tensor, axis, keepdims, name, reduction_indices,
                   keep_dims)


def reduce_prod(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
                name: str | None = None, reduction_indices: Any = None,
                keep_dims: bool | None = None) -> Tensor:
    return _reduce(_sg.reduce_prod, input_tensor, axis, keepdims, name, reduction_indices,
                   keep_dims)


def argmax(input: Any, axis: int | None = None, name: str | None = None,  # noqa: A002
           dimension: int | None = None, output_type: Any = int64) -> Tensor:
    """Index of the largest value along `axis` (or `dimension`; default 0), int64."""
    return _sg.argmax(input, axis if axis is not None else dimension, output_type=output_type,
                      name=name)


def argmin(input: Any, axis: int | None = None, name: str | None = None,  # noqa: A002
           dimension: int | None = None, output_type: Any = int64) -> Tensor:
    return _sg.argmin(input, axis if axis is not None else dimension, output_type=output_type,
                      name=name)


def squeeze(input: Any, axis: Any = None, name: str | None = None,  # noqa: A002
            squeeze_dims: Any = None) -> Tensor:
    return _sg.squeeze(input, axis if axis is not None else squeeze_dims, name=name)


def div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1's `tf.div`: Python 2 division, floor division for integers, true division for
    floats."""
    x = convert_to_tensor(x)
    return _sg.floordiv(x, y, name=name) if x.dtype.is_integer else _sg.divide(x, y, name=name)


def to_float(x: Any, name: str = "ToFloat") -> Tensor:
    return _sg.cast(x, float32, name=name)


def to_double(x: Any, name: str = "ToDouble") -> Tensor:
    return _sg.cast(x, float64, name=name)


def to_int32(x: Any, name: str = "ToInt32") -> Tensor:
    return _sg.cast(x, int32, name=name)


def to_int64(x: Any, name: str = "ToInt64") -> Tensor:
    return _sg.cast(x, int64, name=name)


def local_variables_initializer() -> Any:
    """Initializes the LOCAL_VARIABLES collection (an op that does nothing when it is empty)."""
    return _sg.variables_initializer(_sg.get_collection(GraphKeys.LOCAL_VARIABLES),
                                     name="init_local")


@contextlib.contextmanager
def device(device_name_or_function: Any) -> Iterator[None]:
    """TF1's device placement: accepted and ignored, since a symgraph Session runs its whole
    graph on its own `device` ("cpu" or "reference"); placement never changes results."""
    yield


class ConfigProto:
    """TF1's session configuration. symgraph runs on the Session's `device` and has no thread,
    placement or GPU-memory options, so these settings are kept but do not change anything
    (none of them changes results in TF1 either)."""

    def __init__(self, **options: Any) -> None:
        self.__dict__.update(options)


class GPUOptions(ConfigProto):
    """Kept for `ConfigProto(gpu_options=tf.GPUOptions(allow_growth=True))`."""


shape = _sg.shape  # bound here, after the functions whose `shape` argument would shadow it

__getattr__ = unsupported("tf")

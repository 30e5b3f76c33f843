"""`sg.layers`: TF1's functional layers, each creating its variables under its own scope.

The first dense layer's variables are `dense/kernel` and `dense/bias`, the second's
`dense_1/kernel`, and so on, as in TF1; `name=` picks the scope and `reuse=True` shares it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from symgraph import dtypes as _dt
from symgraph import initializers as _init
from symgraph import nn
from symgraph.graph import Tensor, convert_to_tensor, get_default_graph
from symgraph.ops.elementwise import cast, where
from symgraph.ops.inference import rank_of
from symgraph.ops.shape_ops import reshape
from symgraph.shapes import normalize_axis
from symgraph.variable_scope import (
    AUTO_REUSE,
    VariableScope,
    get_variable,
    get_variable_scope,
    variable_scope,
)
from symgraph.variables import GraphKeys, add_to_collection

__all__ = ["dense", "conv2d", "max_pooling2d", "average_pooling2d", "flatten", "dropout",
           "batch_normalization"]


def _scope_name(name: str | None, default: str) -> str:
    """`name`, or the first of default, default_1, ... not yet taken in this variable scope.

    As in TF1, names count per entry of the enclosing variable scope: re-entering it with reuse
    (`with sg.variable_scope("model", reuse=True)`) names its layers dense, dense_1, ... again,
    so they share the variables made on the first entry. Without reuse, a name whose variables
    already exist is skipped too. The variable scope (not the name scope) sets the prefix.
    """
    scope = get_variable_scope()
    taken = _TAKEN.setdefault(scope, set())
    if name:
        taken.add(name)
        return name
    prefix = f"{scope.name}/" if scope.name else ""
    reusing = scope.reuse is True or scope.reuse is AUTO_REUSE
    used = [] if reusing else [v.var_name for v in
                               get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES)]
    candidate, i = default, 0
    while candidate in taken or any(n.startswith(f"{prefix}{candidate}/") for n in used):
        i += 1
        candidate = f"{default}_{i}"
    taken.add(candidate)
    return candidate


# The layer names taken in each entry of a variable scope (each `with` makes a new scope object).
_TAKEN: weakref.WeakKeyDictionary[VariableScope, set[str]] = weakref.WeakKeyDictionary()


def _or_default(initializer: Any, default: Any) -> Any:
    return default if initializer is None else initializer


def _activate(x: Tensor, activation: Callable | None) -> Tensor:
    return activation(x) if activation is not None else x


def dense(inputs: Any, units: int, activation: Callable | None = None, use_bias: bool = True,
          kernel_initializer: Any = None, bias_initializer: Any = None,
          kernel_regularizer: Any = None, bias_regularizer: Any = None, trainable: bool = True,
          name: str | None = None, reuse: Any = None) -> Tensor:
    """activation(inputs @ kernel + bias) over the last axis; kernel is (in, units)."""
    x = convert_to_tensor(inputs)
    fan_in = x.shape[-1] if x.shape.rank else None
    if fan_in is None:
        raise ValueError(f"dense needs inputs with a known last dimension, got {x.describe()}")
    with variable_scope(_scope_name(name, "dense"), reuse=reuse):
        kernel = get_variable("kernel", [fan_in, int(units)], dtype=x.dtype,
                              initializer=_or_default(kernel_initializer,
                                                      _init.glorot_uniform()),
                              regularizer=kernel_regularizer, trainable=trainable)
        y = x @ kernel
        if use_bias:
            bias = get_variable("bias", [int(units)], dtype=x.dtype,
                                initializer=_or_default(bias_initializer, _init.zeros()),
                                regularizer=bias_regularizer, trainable=trainable)
            y = nn.bias_add(y, bias)
        return _activate(y, activation)


def conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
           padding: str = "valid", dilation_rate: Any = (1, 1), activation: Callable | None = None,
           use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = None,
           kernel_regularizer: Any = None, bias_regularizer: Any = None, trainable: bool = True,
           name: str | None = None, reuse: Any = None) -> Tensor:
    """A 2-D convolution layer on NHWC inputs; the kernel is (kh, kw, in_channels, filters)."""
    x = convert_to_tensor(inputs)
    if rank_of(x) != 4 or x.shape[3] is None:
        raise ValueError(f"conv2d needs NHWC inputs with known channels, got {x.describe()}")
    kh, kw = nn._pair(kernel_size, "kernel_size", four_ok=False)
    with variable_scope(_scope_name(name, "conv2d"), reuse=reuse):
        kernel = get_variable("kernel", [kh, kw, x.shape[3], int(filters)], dtype=x.dtype,
                              initializer=_or_default(kernel_initializer,
                                                      _init.glorot_uniform()),
                              regularizer=kernel_regularizer, trainable=trainable)
        y = nn.conv2d(x, kernel, nn._pair(strides, "strides"), padding,
                      dilations=nn._pair(dilation_rate, "dilation_rate"))
        if use_bias:
            bias = get_variable("bias", [int(filters)], dtype=x.dtype,
                                initializer=_or_default(bias_initializer, _init.zeros()),
                                regularizer=bias_regularizer, trainable=trainable)
            y = nn.bias_add(y, bias)
        return _activate(y, activation)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  name: str | None = None) -> Tensor:
    return nn.max_pool2d(inputs, nn._pair(pool_size, "pool_size", False),
                         nn._pair(strides, "strides", False), padding, name=name)


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      name: str | None = None) -> Tensor:
    return nn.avg_pool2d(inputs, nn._pair(pool_size, "pool_size", False),
                         nn._pair(strides, "strides", False), padding, name=name)


def flatten(inputs: Any, name: str | None = None) -> Tensor:
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); the non-batch dims must be known."""
    x = convert_to_tensor(inputs)
    rest = x.shape[1:]
    if rank_of(x) < 1 or not rest.is_fully_defined():
        raise ValueError(f"flatten needs known non-batch dimensions, got {x.describe()}")
    size = 1
    for d in rest:
        size *= d
    return reshape(x, [-1 if x.shape[0] is None else x.shape[0], size], name=name)


def dropout(inputs: Any, rate: float = 0.5, training: Any = False, seed: int | None = None,
            name: str | None = None) -> Tensor:
    """Inverted dropout when `training` (a bool or a bool tensor) is true; identity otherwise.

    As in TF1's tf.layers.dropout, `training` defaults to False.
    """
    return nn.dropout(inputs, rate, training=training, seed=seed, name=name)


def batch_normalization(inputs: Any, axis: int = -1, momentum: float = 0.99,
                        epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                        beta_initializer: Any = None, gamma_initializer: Any = None,
                        moving_mean_initializer: Any = None,
                        moving_variance_initializer: Any = None, training: Any = False,
                        trainable: bool = True, name: str | None = None,
                        reuse: Any = None) -> Tensor:
    """Batch normalization over every axis but `axis` (the features).

    In training it normalizes with the batch's mean and variance and puts the updates of the
    moving statistics (moving = momentum * moving + (1 - momentum) * batch) into
    `GraphKeys.UPDATE_OPS`; run them with the train op (`sg.control_dependencies`). In inference
    it uses the moving statistics. `training` may be a bool tensor: one graph serves both.
    """
    x = convert_to_tensor(inputs)
    rank = rank_of(x)
    axis = normalize_axis(int(axis), rank)
    features = x.shape[axis]
    if features is None:
        raise ValueError(f"batch_normalization needs a known size on axis {axis}: "
                         f"{x.describe()}")
    reduce_axes = [i for i in range(rank) if i != axis]
    param_shape = [features]
    broadcast_shape = [1] * rank
    broadcast_shape[axis] = features
    with variable_scope(_scope_name(name, "batch_normalization"), reuse=reuse):
        gamma = get_variable("gamma", param_shape, x.dtype,
                             _or_default(gamma_initializer, _init.ones()),
                             trainable=trainable) if scale else None
        beta = get_variable("beta", param_shape, x.dtype,
                            _or_default(beta_initializer, _init.zeros()),
                            trainable=trainable) if center else None
        moving_mean = get_variable("moving_mean", param_shape, x.dtype,
                                   _or_default(moving_mean_initializer, _init.zeros()),
                                   trainable=False)
        moving_var = get_variable("moving_variance", param_shape, x.dtype,
                                  _or_default(moving_variance_initializer, _init.ones()),
                                  trainable=False)

        def shaped(t: Tensor | None) -> Tensor | None:
            # (features,) -> broadcastable against x; the last axis broadcasts as it is
            return t if t is None or axis == rank - 1 else reshape(t, broadcast_shape)

        def normalize(mean: Tensor, var: Tensor) -> Tensor:
            return nn.batch_normalization(x, shaped(mean), shaped(var), shaped(beta),
                                          shaped(gamma), epsilon)

        if training is False:
            return normalize(moving_mean, moving_var)
        mean, var = nn.moments(x, reduce_axes)
        train_out = normalize(mean, var)
        rate = 1 - momentum
        if training is not True:
            flag = convert_to_tensor(training, dtype=_dt.bool_)
            rate = cast(flag, x.dtype) * rate  # no update when the flag is false
        updates = [moving_mean.assign_sub((moving_mean - mean) * rate),
                   moving_var.assign_sub((moving_var - var) * rate)]
        for u in updates:
            add_to_collection(GraphKeys.UPDATE_OPS, u.op)
        if training is True:
            return train_out
        return where(flag, train_out, normalize(moving_mean, moving_var))

"""`tf.nn` of TF1: activations, cross-entropies, convolution, pooling, dropout, in_top_k.

Most names are symgraph's own (sg.nn follows TF1); this module adapts the signatures that
differ: `dropout(x, keep_prob)`, `conv2d`'s `use_cudnn_on_gpu` slot, `bias_add`'s
`data_format`, `softmax(dim=)`, `moments(x, axes, shift)`, and the `_sentinel` that makes the
cross-entropies keyword-only.
"""

from __future__ import annotations

from typing import Any

import symgraph as _sg
from symgraph import nn as _nn
from symgraph.compat.v1._names import refuse_argument, unsupported
from symgraph.graph import Tensor, convert_to_tensor, graph_of
from symgraph.nn import (  # noqa: F401 - re-exported under TF1's names
    avg_pool,
    batch_normalization,
    elu,
    in_top_k,
    l2_loss,
    leaky_relu,
    max_pool,
    relu,
    relu6,
    selu,
    sigmoid,
    softplus,
    softsign,
    tanh,
)
from symgraph.ops import random as _random

__all__ = [
    "relu", "relu6", "elu", "selu", "leaky_relu", "softplus", "softsign", "sigmoid", "tanh",
    "softmax", "log_softmax", "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2", "sparse_softmax_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits", "l2_loss", "bias_add", "dropout", "conv2d", "max_pool",
    "avg_pool", "moments", "batch_normalization", "in_top_k",
]


def _axis(axis: int | None, dim: int | None) -> int:
    return -1 if axis is None and dim is None else int(axis if axis is not None else dim)


def softmax(logits: Any, axis: int | None = None, name: str | None = None,
            dim: int | None = None) -> Tensor:
    """e^x / sum(e^x) along `axis` (TF1 also spells it `dim`); default the last axis."""
    return _nn.softmax(logits, _axis(axis, dim), name=name)


def log_softmax(logits: Any, axis: int | None = None, name: str | None = None,
                dim: int | None = None) -> Tensor:
    return _nn.log_softmax(logits, _axis(axis, dim), name=name)


def _keywords_only(function: str, sentinel: Any) -> None:
    if sentinel is not None:  # TF1's own rule: positional labels/logits are too easy to swap
        raise ValueError(f"only call `{function}` with named arguments (labels=..., logits=..., "
                         "...)")


def softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, dim: int = -1,
                                      name: str | None = None, axis: int | None = None) -> Tensor:
    """TF1's v1 cross-entropy: per example, with no gradient into `labels` (the v1 meaning;
    `softmax_cross_entropy_with_logits_v2` lets gradients reach the labels)."""
    _keywords_only("softmax_cross_entropy_with_logits", _sentinel)
    if labels is None or logits is None:
        raise ValueError("softmax_cross_entropy_with_logits needs labels= and logits=")
    graph = graph_of((labels, logits))
    logits = convert_to_tensor(logits, graph=graph)
    labels = _sg.stop_gradient(convert_to_tensor(labels, dtype=logits.dtype, graph=graph))
    return _nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits,
                                                 axis=_axis(axis, dim), name=name)


def softmax_cross_entropy_with_logits_v2(_sentinel: Any = None, labels: Any = None,
                                         logits: Any = None, axis: int | None = None,
                                         name: str | None = None, dim: int | None = None
                                         ) -> Tensor:
    """Per-example cross-entropy; gradients flow into both labels and logits."""
    _keywords_only("softmax_cross_entropy_with_logits_v2", _sentinel)
    return _nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits,
                                                 axis=_axis(axis, dim), name=name)


def sparse_softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                             logits: Any = None, name: str | None = None
                                             ) -> Tensor:
    """Per-example cross-entropy against integer class ids."""
    _keywords_only("sparse_softmax_cross_entropy_with_logits", _sentinel)
    return _nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits, name=name)


def sigmoid_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, name: str | None = None) -> Tensor:
    _keywords_only("sigmoid_cross_entropy_with_logits", _sentinel)
    return _nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits, name=name)


def bias_add(value: Any, bias: Any, data_format: str | None = None,
             name: str | None = None) -> Tensor:
    """value + bias over the last (channel) axis; only NHWC-style layouts, as in symgraph."""
    if data_format not in (None, "NHWC", "N...C"):
        refuse_argument("tf.nn.bias_add", "data_format", data_format)
    return _nn.bias_add(value, bias, name=name)


def conv2d(input: Any, filter: Any = None, strides: Any = None,  # noqa: A002 - TF1's names
           padding: str | None = None, use_cudnn_on_gpu: bool = True,
           data_format: str = "NHWC", dilations: Any = (1, 1, 1, 1), name: str | None = None,
           filters: Any = None) -> Tensor:
    """2-D convolution, NHWC input and HWIO filter; strides as [1, s, s, 1]."""
    if strides is None or padding is None:
        raise ValueError("tf.nn.conv2d needs strides= and padding= (TF1 requires both)")
    return _nn.conv2d(input, filter if filter is not None else filters, strides=strides,
                      padding=padding, data_format=data_format, dilations=dilations, name=name)


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: int | None = None,
            name: str | None = None, rate: Any = None) -> Tensor:
    """TF1's dropout: keeps each element with probability `keep_prob` (a number or a tensor,
    often a placeholder fed 0.5 for training and 1.0 for evaluation) and scales kept ones by
    1 / keep_prob; `rate=` (= 1 - keep_prob) is the newer spelling. A new mask every run.
    """
    if noise_shape is not None:
        refuse_argument("tf.nn.dropout", "noise_shape", noise_shape)
    if (keep_prob is None) == (rate is None):
        raise ValueError("tf.nn.dropout needs exactly one of keep_prob and rate")
    x = convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(f"tf.nn.dropout needs a floating tensor, got {x.describe()}")
    if keep_prob is None:
        if not isinstance(rate, Tensor):
            return _nn.dropout(x, float(rate), training=True, seed=seed, name=name)
        keep_prob = 1 - convert_to_tensor(rate, dtype=x.dtype, graph=x.graph)
    if not isinstance(keep_prob, Tensor):
        keep = float(keep_prob)
        if not 0 < keep <= 1:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep}")
        return _nn.dropout(x, 1 - keep, training=True, seed=seed, name=name)
    keep_prob = convert_to_tensor(keep_prob, dtype=x.dtype, graph=x.graph)
    if keep_prob.shape.rank is None:  # tf.placeholder(tf.float32): a scalar when it is fed
        keep_prob = _sg.reshape(keep_prob, [])
    if keep_prob.shape.rank != 0:
        raise ValueError(f"keep_prob must be a scalar, got {keep_prob.describe()}")
    # TF1's construction: floor(keep_prob + U[0, 1)) is 1 with probability keep_prob
    noise = _random.random_uniform_like(x, dtype=x.dtype, seed=seed)
    kept = _sg.cast(_sg.greater_equal(noise + keep_prob, 1), x.dtype)
    return _sg.multiply(_sg.divide(x, keep_prob), kept, name=name)


def moments(x: Any, axes: Any, shift: Any = None, name: str | None = None,
            keep_dims: bool | None = None, keepdims: bool | None = None
            ) -> tuple[Tensor, Tensor]:
    """Mean and variance over `axes` (`shift` was only a numerical hint in TF1; ignored)."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    return _nn.moments(x, axes, keepdims=keep, name=name)


__getattr__ = unsupported("tf.nn")

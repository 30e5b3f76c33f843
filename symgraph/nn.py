"""`sg.nn`: activations, softmax, cross-entropies, convolution, pooling, dropout, batch norm.

Names and argument orders follow TF1's `tf.nn` (NHWC images, HWIO filters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from symgraph import dtypes as _dt
from symgraph.graph import Tensor, apply, convert_to_tensor, graph_of
from symgraph.ops import nn as _ops
from symgraph.ops.elementwise import (
    abs,
    exp,
    log1p,
    maximum,
    rsqrt,
    sigmoid,
    square,
    tanh,
    where,
)
from symgraph.ops.inference import rank_of
from symgraph.ops.nn import conv_output_size, log_softmax, softmax
from symgraph.ops.reduce import in_top_k, reduce_mean, reduce_sum
from symgraph.ops.shape_ops import squeeze
from symgraph.shapes import normalize_axes, normalize_axis

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "softplus", "softsign", "sigmoid", "tanh",
    "softmax", "log_softmax", "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2", "sparse_softmax_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits", "l2_loss", "bias_add", "dropout", "conv2d",
    "max_pool2d", "avg_pool2d", "max_pool", "avg_pool", "moments", "batch_normalization",
    "conv_output_size", "in_top_k",
]


def _float(x: Any) -> Tensor:
    return convert_to_tensor(x)


def relu(features: Any, name: str | None = None) -> Tensor:
    """max(x, 0)."""
    return apply(_ops.RELU, _float(features), name=name)


def relu6(features: Any, name: str | None = None) -> Tensor:
    """min(max(x, 0), 6)."""
    return apply(_ops.RELU6, _float(features), name=name)


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """x for x > 0, alpha * x otherwise."""
    return apply(_ops.LEAKY_RELU, _float(features), name=name, alpha=float(alpha))


def elu(features: Any, name: str | None = None) -> Tensor:
    """x for x > 0, e^x - 1 otherwise."""
    return apply(_ops.ELU, _float(features), name=name)


def selu(features: Any, name: str | None = None) -> Tensor:
    """Scaled ELU with the self-normalizing constants of Klambauer et al."""
    return apply(_ops.SELU, _float(features), name=name)


def softplus(features: Any, name: str | None = None) -> Tensor:
    """log(1 + e^x), computed without overflow."""
    return apply(_ops.SOFTPLUS, _float(features), name=name)


def softsign(features: Any, name: str | None = None) -> Tensor:
    """x / (1 + |x|)."""
    return apply(_ops.SOFTSIGN, _float(features), name=name)


# ---- losses --------------------------------------------------------------------------------------


def softmax_cross_entropy_with_logits(labels: Any = None, logits: Any = None, axis: int = -1,
                                      name: str | None = None, dim: int | None = None) -> Tensor:
    """-sum(labels * log_softmax(logits)) along `axis`, per example, computed stably.

    `labels` are probabilities (one-hot or soft) of the logits' shape. Gradients flow into both.
    """
    if labels is None or logits is None:
        raise ValueError("softmax_cross_entropy_with_logits needs labels= and logits=")
    graph = graph_of((labels, logits))
    logits = convert_to_tensor(logits, graph=graph)
    labels = convert_to_tensor(labels, dtype=logits.dtype, graph=graph)
    axis = normalize_axis(int(dim if dim is not None else axis), rank_of(logits, "logits"))
    return apply(_ops.SOFTMAX_CROSS_ENTROPY, labels, logits, name=name, axis=axis)


softmax_cross_entropy_with_logits_v2 = softmax_cross_entropy_with_logits


def sparse_softmax_cross_entropy_with_logits(labels: Any = None, logits: Any = None,
                                             name: str | None = None) -> Tensor:
    """Cross-entropy with integer class labels: -log_softmax(logits)[label], per example.

    A label outside [0, classes) is an error at run time (never a silent zero loss).
    """
    if labels is None or logits is None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits needs labels= and logits=")
    graph = graph_of((labels, logits))
    logits = convert_to_tensor(logits, graph=graph)
    labels = convert_to_tensor(labels, graph=graph)
    return apply(_ops.SPARSE_SOFTMAX_CROSS_ENTROPY, labels, logits, name=name)


def sigmoid_cross_entropy_with_logits(labels: Any = None, logits: Any = None,
                                      name: str | None = None) -> Tensor:
    """Elementwise -z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x)), for logits x, labels z.

    Computed as max(x, 0) - x z + log(1 + e^-|x|), which never overflows.
    """
    if labels is None or logits is None:
        raise ValueError("sigmoid_cross_entropy_with_logits needs labels= and logits=")
    graph = graph_of((labels, logits))
    x = convert_to_tensor(logits, graph=graph)
    z = convert_to_tensor(labels, dtype=x.dtype, graph=graph)
    return maximum(x, 0) - x * z + log1p(exp(-abs(x)))


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """sum(t ** 2) / 2."""
    t = _float(t)
    return reduce_sum(square(t)) * 0.5


def bias_add(value: Any, bias: Any, name: str | None = None) -> Tensor:
    """value + bias along the last axis; bias must be 1-D with the last axis' size."""
    graph = graph_of((value, bias))
    value = convert_to_tensor(value, graph=graph)
    bias = convert_to_tensor(bias, dtype=value.dtype, graph=graph)
    if bias.shape.rank != 1 or rank_of(value) < 1 or not bias.shape.is_compatible_with(
            [value.shape[-1]]):
        raise ValueError(f"bias_add needs a 1-D bias of the last axis' size: {bias.describe()} "
                         f"for {value.describe()}")
    return value + bias


# ---- dropout -------------------------------------------------------------------------------------


def dropout(x: Any, rate: float = 0.5, training: Any = True, seed: int | None = None,
            name: str | None = None) -> Tensor:
    """Inverted dropout: zeroes each element with probability `rate` and scales the rest by
    1 / (1 - rate) in training; the identity otherwise.

    `training` is a Python bool or a bool tensor (a `placeholder_with_default(False, [])`, say),
    so one graph serves training and inference.
    """
    x = _float(x)
    rate = float(rate)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if training is False or rate == 0:
        return x
    mask = apply(_ops.DROPOUT_MASK, x, rate=rate, seed=_op_seed(x.graph, seed))
    dropped = x * mask
    if training is True:
        return dropped
    training = convert_to_tensor(training, dtype=_dt.bool_, graph=x.graph)
    return where(training, dropped, x, name=name)


def _op_seed(graph, seed: int | None):
    """TF1's rule: with neither seed set draws are fresh; with either, they are reproducible."""
    from symgraph.ops.random import op_seed

    return op_seed(graph, seed)


# ---- convolution and pooling ---------------------------------------------------------------------


def _pair(value: Any, what: str, four_ok: bool = True) -> tuple[int, int]:
    """An int, a pair, or TF's [1, h, w, 1] list, as an (h, w) pair."""
    if isinstance(value, int):
        return (value, value)
    v = [int(a) for a in value]
    if len(v) == 2:
        return (v[0], v[1])
    if four_ok and len(v) == 4:
        if v[0] != 1 or v[3] != 1:
            raise ValueError(f"{what} {v}: the batch and channel entries must be 1")
        return (v[1], v[2])
    raise ValueError(f"{what} must be an int, [h, w] or [1, h, w, 1], got {value!r}")


def _padding(padding: str) -> str:
    p = str(padding).upper()
    if p not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return p


def _nhwc(data_format: str) -> None:
    if data_format not in ("NHWC", None):
        raise ValueError(f"data_format {data_format!r} is not offered; symgraph uses NHWC")


def conv2d(input: Any, filters: Any = None, strides: Any = 1, padding: str = "VALID",  # noqa: A002
           data_format: str = "NHWC", dilations: Any = 1, name: str | None = None,
           filter: Any = None) -> Tensor:  # noqa: A002 - TF1 spells it `filter`
    """2-D convolution (cross-correlation, as in TF): NHWC input, HWIO filters -> NHWO."""
    _nhwc(data_format)
    filters = filters if filters is not None else filter
    if filters is None:
        raise ValueError("conv2d needs filters")
    graph = graph_of((input, filters))
    x = convert_to_tensor(input, graph=graph)
    w = convert_to_tensor(filters, dtype=x.dtype, graph=graph)
    return apply(_ops.CONV2D, x, w, name=name, strides=_pair(strides, "strides"),
                 dilations=_pair(dilations, "dilations"), padding=_padding(padding))


def _pool(opdef, input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
          data_format: str, name: str | None) -> Tensor:
    _nhwc(data_format)
    return apply(opdef, _float(input), name=name, ksize=_pair(ksize, "ksize"),
                 strides=_pair(strides, "strides"), padding=_padding(padding))


def max_pool2d(input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
               data_format: str = "NHWC", name: str | None = None) -> Tensor:
    """Maximum over each window; padding never wins (it counts as -inf)."""
    return _pool(_ops.MAX_POOL, input, ksize, strides, padding, data_format, name)


def avg_pool2d(input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
               data_format: str = "NHWC", name: str | None = None) -> Tensor:
    """Mean over each window, counting only real (unpadded) elements, as TF does."""
    return _pool(_ops.AVG_POOL, input, ksize, strides, padding, data_format, name)


def max_pool(value: Any, ksize: Any, strides: Any, padding: str, data_format: str = "NHWC",
             name: str | None = None) -> Tensor:
    """TF1's spelling: ksize and strides as [1, h, w, 1]."""
    return max_pool2d(value, ksize, strides, padding, data_format, name)


def avg_pool(value: Any, ksize: Any, strides: Any, padding: str, data_format: str = "NHWC",
             name: str | None = None) -> Tensor:
    return avg_pool2d(value, ksize, strides, padding, data_format, name)


# ---- normalization -------------------------------------------------------------------------------


def moments(x: Any, axes: Sequence[int], keepdims: bool = False, name: str | None = None,
            keep_dims: bool | None = None) -> tuple[Tensor, Tensor]:
    """Mean and variance of x over `axes` (the variance about the mean, divided by n)."""
    x = _float(x)
    keep = keepdims if keep_dims is None else keep_dims
    axes = normalize_axes(axes, rank_of(x))
    mean = reduce_mean(x, axes, keepdims=True)
    # TF1 wraps the mean in stop_gradient here: that leaves first derivatives unchanged (the
    # deviations sum to zero) but makes second derivatives wrong, so symgraph does not
    variance = reduce_mean(square(x - mean), axes, keepdims=True)
    if not keep:
        mean, variance = squeeze(mean, list(axes)), squeeze(variance, list(axes))
    return mean, variance


def batch_normalization(x: Any, mean: Any, variance: Any, offset: Any, scale: Any,
                        variance_epsilon: float, name: str | None = None) -> Tensor:
    """(x - mean) / sqrt(variance + eps) * scale + offset; offset and scale may be None."""
    x = _float(x)
    inv = rsqrt(variance + variance_epsilon)
    if scale is not None:
        inv = inv * scale
    out = x * inv + ((offset - mean * inv) if offset is not None else -mean * inv)
    return out


"""Neural-network ops: activations, softmax and cross-entropies, convolution, pooling.

Ops that are a line of existing ops (l2_loss, bias_add, batch normalization) are composed in
`symgraph/nn.py` instead; the ones here are registered because their gradient has a simpler or
more stable form than the composition's, or (convolution, pooling) because no composition exists.
Every gradient is built from registered ops, so second derivatives work.
"""

from __future__ import annotations

import numpy as np

from symgraph.graph import apply
from symgraph.ops.elementwise import exp, greater, less, logical_and, sigmoid, where
from symgraph.ops.inference import check_kind, elementwise, rank_of, same_dtype
from symgraph.ops.reduce import reduce_sum
from symgraph.ops.shape_ops import expand_dims, fill_like
from symgraph.registry import NOT_DIFFERENTIABLE, OpDef, OpKind, TensorType, register
from symgraph.shapes import TensorShape

E = OpKind.ELEMENTWISE
FLOAT = "f"


def _zeros(g):
    return fill_like(g, 0)


# ---- activations ---------------------------------------------------------------------------------

RELU = register(OpDef("relu", E, elementwise(FLOAT), lambda x: np.maximum(x, 0),
                      scalar="maximum_({0}, 0)",
                      grad=lambda n, g: (where(greater(n.inputs[0], 0), g, _zeros(g)),)))
RELU6 = register(OpDef(
    "relu6", E, elementwise(FLOAT), lambda x: np.minimum(np.maximum(x, 0), 6),
    scalar="minimum_(maximum_({0}, 0), 6)",
    grad=lambda n, g: (where(logical_and(greater(n.inputs[0], 0), less(n.inputs[0], 6)), g,
                             _zeros(g)),)))
# leaky_relu(x) = x for x > 0, alpha x otherwise
LEAKY_RELU = register(OpDef(
    "leaky_relu", E, elementwise(FLOAT),
    lambda x, alpha: np.where(x > 0, x, x * np.asarray(alpha, x.dtype)),
    scalar="({0} if {0} > 0 else {alpha} * {0})",
    grad=lambda n, g: (where(greater(n.inputs[0], 0), g, g * n.attrs["alpha"]),)))
# elu(x) = x for x > 0, e^x - 1 otherwise; its derivative there is e^x = elu(x) + 1
ELU = register(OpDef(
    "elu", E, elementwise(FLOAT), lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    scalar="({0} if {0} > 0 else math.expm1({0}))",
    grad=lambda n, g: (where(greater(n.inputs[0], 0), g, g * (n.output + 1)),)))
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# selu(x) = scale * (x for x > 0, alpha (e^x - 1) otherwise)
SELU = register(OpDef(
    "selu", E, elementwise(FLOAT),
    lambda x: (SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))))
    .astype(x.dtype),
    scalar="(1.0507009873554805 * ({0} if {0} > 0 else 1.6732632423543772 * math.expm1({0})))",
    grad=lambda n, g: (where(greater(n.inputs[0], 0), g * SELU_SCALE,
                             g * (n.output + SELU_SCALE * SELU_ALPHA)),)))
# softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|) (no overflow); its derivative is sigmoid
SOFTPLUS = register(OpDef(
    "softplus", E, elementwise(FLOAT),
    lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
    scalar="(maximum_({0}, 0) + math.log1p(math.exp(-abs({0}))))",
    grad=lambda n, g: (g * sigmoid(n.inputs[0]),)))
# softsign(x) = x / (1 + |x|); derivative 1 / (1 + |x|)^2
SOFTSIGN = register(OpDef(
    "softsign", E, elementwise(FLOAT), lambda x: x / (1 + np.abs(x)),
    scalar="({0} / (1 + abs({0})))",
    grad=lambda n, g: (g / ((1 + abs(n.inputs[0])) * (1 + abs(n.inputs[0]))),)))


# ---- softmax and cross-entropies ---------------------------------------------------------------


def _axis_infer(inputs: list, attrs: dict) -> TensorType:
    x = inputs[0]
    check_kind(x, FLOAT)
    rank_of(x)
    return TensorType(x.dtype, x.shape)


def _softmax_np(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_np(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _softmax_grad(n, g):
    # y = softmax(x): dx = y * (g - sum(g * y))
    y, axis = n.output, n.attrs["axis"]
    return (y * (g - reduce_sum(g * y, axis, keepdims=True)),)


def _log_softmax_grad(n, g):
    # y = log_softmax(x): dx = g - softmax(x) * sum(g)
    axis = n.attrs["axis"]
    return (g - exp(n.output) * reduce_sum(g, axis, keepdims=True),)


SOFTMAX = register(OpDef("softmax", OpKind.REDUCTION, _axis_infer, _softmax_np,
                         grad=_softmax_grad))
LOG_SOFTMAX = register(OpDef("log_softmax", OpKind.REDUCTION, _axis_infer, _log_softmax_np,
                             grad=_log_softmax_grad))


def _xent_infer(inputs: list, attrs: dict) -> TensorType:
    labels, logits = inputs
    dtype = same_dtype(inputs)
    check_kind(logits, FLOAT)
    rank = rank_of(logits, "logits")
    if not labels.shape.is_compatible_with(logits.shape):
        raise ValueError(f"labels {labels.describe()} and logits {logits.describe()} must have "
                         "one shape")
    axis = attrs["axis"]
    return TensorType(dtype, TensorShape([d for i, d in enumerate(logits.shape) if i != axis])
                      if rank else logits.shape)


def _xent_np(labels: np.ndarray, logits: np.ndarray, axis: int) -> np.ndarray:
    return -np.sum(labels * _log_softmax_np(logits, axis), axis=axis)


def _xent_grad(n, g):
    # loss = -sum(labels * log_softmax(logits)):
    #   d/dlogits = softmax(logits) * sum(labels) - labels  (softmax - labels for distributions)
    #   d/dlabels = -log_softmax(logits)
    labels, logits = n.inputs
    axis = n.attrs["axis"]
    g = expand_dims(g, axis)
    total = reduce_sum(labels, axis, keepdims=True)
    return (-g * log_softmax(logits, axis), g * (softmax(logits, axis) * total - labels))


SOFTMAX_CROSS_ENTROPY = register(OpDef(
    "softmax_cross_entropy", OpKind.REDUCTION, _xent_infer, _xent_np, grad=_xent_grad))


def _sparse_xent_infer(inputs: list, attrs: dict) -> TensorType:
    labels, logits = inputs
    check_kind(labels, "iu")
    check_kind(logits, FLOAT)
    if rank_of(logits, "logits") != rank_of(labels, "labels") + 1 or \
            not labels.shape.is_compatible_with(logits.shape[:-1]):
        raise ValueError(f"labels {labels.describe()} must have the shape of logits "
                         f"{logits.describe()} without its last axis")
    return TensorType(logits.dtype, logits.shape[:-1])


def _sparse_xent_np(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)].ravel()[0]
        raise ValueError(f"label {bad} is outside the valid range [0, {classes})")
    logp = _log_softmax_np(logits, -1)
    return -np.take_along_axis(logp, labels[..., None].astype(np.intp), axis=-1)[..., 0]


def _sparse_xent_grad(n, g):
    from symgraph.ops.reduce import one_hot

    labels, logits = n.inputs
    hot = one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return (None, expand_dims(g, -1) * (softmax(logits, -1) - hot))


SPARSE_SOFTMAX_CROSS_ENTROPY = register(OpDef(
    "sparse_softmax_cross_entropy", OpKind.REDUCTION, _sparse_xent_infer, _sparse_xent_np,
    grad=_sparse_xent_grad))


def softmax(logits, axis: int = -1, name: str | None = None):
    from symgraph.graph import convert_to_tensor
    from symgraph.shapes import normalize_axis

    x = convert_to_tensor(logits)
    return apply(SOFTMAX, x, name=name, axis=normalize_axis(int(axis), rank_of(x)))


def log_softmax(logits, axis: int = -1, name: str | None = None):
    from symgraph.graph import convert_to_tensor
    from symgraph.shapes import normalize_axis

    x = convert_to_tensor(logits)
    return apply(LOG_SOFTMAX, x, name=name, axis=normalize_axis(int(axis), rank_of(x)))


# ---- convolution ---------------------------------------------------------------------------------
# NHWC inputs, HWIO filters, TF1's padding rules. Attrs: strides (sh, sw), dilations (dh, dw),
# padding "SAME" or "VALID".


def conv_output_size(size: int | None, k: int, stride: int, dilation: int, padding: str):
    """Output length of one spatial axis, and (pad_before, pad_after), as TF computes them."""
    if size is None:
        return None, None
    eff = (k - 1) * dilation + 1
    if padding == "VALID":
        return max((size - eff) // stride + 1, 0), (0, 0)
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return out, (total // 2, total - total // 2)


def window(h: int, w: int, kh: int, kw: int, strides: tuple, dilations: tuple,
           padding: str) -> tuple[int, int, int, int]:
    """(oh, ow, top, left): output size and padding before the input of a convolution or pooling
    window over an h x w image, by TF's rules (the kernels of every backend use this)."""
    oh, (top, _) = conv_output_size(h, kh, strides[0], dilations[0], padding)
    ow, (left, _) = conv_output_size(w, kw, strides[1], dilations[1], padding)
    return oh, ow, top, left


def _geometry(x_shape: tuple, k_shape: tuple, attrs: dict):
    (sh, sw), (dh, dw), pad = attrs["strides"], attrs["dilations"], attrs["padding"]
    oh, ph = conv_output_size(x_shape[1], k_shape[0], sh, dh, pad)
    ow, pw = conv_output_size(x_shape[2], k_shape[1], sw, dw, pad)
    return oh, ow, ph, pw


def _conv_infer(inputs: list, attrs: dict) -> TensorType:
    x, w = inputs
    dtype = same_dtype(inputs)
    check_kind(x, FLOAT)
    if rank_of(x) != 4 or rank_of(w, "filters") != 4:
        raise ValueError(f"conv2d needs a 4-D NHWC input and 4-D HWIO filters, got "
                         f"{x.describe()} and {w.describe()}")
    if x.shape[3] is not None and w.shape[2] is not None and x.shape[3] != w.shape[2]:
        raise ValueError(f"input channels differ: {x.describe()} has {x.shape[3]}, filters "
                         f"{w.describe()} expect {w.shape[2]}")
    if w.shape[0] is None or w.shape[1] is None:
        raise ValueError(f"conv2d needs filters of known height and width, got {w.describe()}")
    oh, ow, _, _ = _geometry(x.shape.dims, w.shape.dims, attrs)
    if 0 in (oh, ow):
        raise ValueError(f"the filters {w.describe()} do not fit in the input {x.describe()} "
                         f"with padding {attrs['padding']}")
    return TensorType(dtype, TensorShape([x.shape[0], oh, ow, w.shape[3]]))


def _windows(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, attrs: dict) -> np.ndarray:
    """The input patch that filter tap (kh, kw) sees for every output position: (N, oh, ow, C)."""
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    return xp[:, kh * dh:kh * dh + (oh - 1) * sh + 1:sh, kw * dw:kw * dw + (ow - 1) * sw + 1:sw, :]


def _pad_input(x: np.ndarray, ph: tuple, pw: tuple, value: float = 0) -> np.ndarray:
    if ph == (0, 0) and pw == (0, 0):
        return x
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def _conv_np(x: np.ndarray, w: np.ndarray, **attrs) -> np.ndarray:
    oh, ow, ph, pw = _geometry(x.shape, w.shape, attrs)
    xp = _pad_input(x, ph, pw)
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]), x.dtype)
    for kh in range(w.shape[0]):
        for kw in range(w.shape[1]):
            out += _windows(xp, kh, kw, oh, ow, attrs) @ w[kh, kw]
    return out


def _conv_input_grad_np(g: np.ndarray, w: np.ndarray, like: np.ndarray, **attrs) -> np.ndarray:
    oh, ow, ph, pw = _geometry(like.shape, w.shape, attrs)
    n, h, wd, c = like.shape
    xp = np.zeros((n, h + sum(ph), wd + sum(pw), c), g.dtype)
    for kh in range(w.shape[0]):
        for kw in range(w.shape[1]):
            _windows(xp, kh, kw, oh, ow, attrs)[...] += g @ w[kh, kw].T
    return xp[:, ph[0]:ph[0] + h, pw[0]:pw[0] + wd, :]


def _conv_filter_grad_np(x: np.ndarray, g: np.ndarray, like: np.ndarray, **attrs) -> np.ndarray:
    oh, ow, ph, pw = _geometry(x.shape, like.shape, attrs)
    xp = _pad_input(x, ph, pw)
    dw = np.zeros(like.shape, g.dtype)
    g2 = g.reshape(-1, g.shape[-1])
    for kh in range(like.shape[0]):
        for kw in range(like.shape[1]):
            patch = _windows(xp, kh, kw, oh, ow, attrs).reshape(-1, x.shape[-1])
            dw[kh, kw] = patch.T @ g2
    return dw


def _conv_attrs(n) -> dict:
    return {k: n.attrs[k] for k in ("strides", "dilations", "padding")}


def _conv_grad(n, g):
    x, w = n.inputs
    a = _conv_attrs(n)
    return (apply(CONV2D_INPUT_GRAD, g, w, x, **a), apply(CONV2D_FILTER_GRAD, x, g, w, **a))


def _conv_input_grad_grad(n, h):
    # dx = B(g, w) is bilinear and the adjoint of conv in x: <B(g, w), h> = <g, conv(h, w)>
    g, w, _ = n.inputs
    a = _conv_attrs(n)
    return (apply(CONV2D, h, w, **a), apply(CONV2D_FILTER_GRAD, h, g, w, **a), None)


def _conv_filter_grad_grad(n, h):
    # dw = F(x, g): <F(x, g), h> = <conv(x, h), g>
    x, g, _ = n.inputs
    a = _conv_attrs(n)
    return (apply(CONV2D_INPUT_GRAD, g, h, x, **a), apply(CONV2D, x, h, **a), None)


CONV2D = register(OpDef("conv2d", OpKind.MATMUL, _conv_infer, _conv_np, grad=_conv_grad))
# The gradient of conv2d with respect to its input; `like` (the input) gives the run-time shape.
CONV2D_INPUT_GRAD = register(OpDef(
    "conv2d_input_grad", OpKind.MATMUL, lambda i, a: TensorType(i[0].dtype, i[2].shape),
    _conv_input_grad_np, grad=_conv_input_grad_grad))
# The gradient of conv2d with respect to its filters; `like` (the filters) gives the shape.
CONV2D_FILTER_GRAD = register(OpDef(
    "conv2d_filter_grad", OpKind.MATMUL, lambda i, a: TensorType(i[0].dtype, i[2].shape),
    _conv_filter_grad_np, grad=_conv_filter_grad_grad))


# ---- pooling -------------------------------------------------------------------------------------
# Attrs: ksize (kh, kw), strides (sh, sw), padding. Max pooling pads with -inf (pads never win);
# average pooling divides by the number of real (unpadded) elements in each window, as TF does.


def _pool_infer(inputs: list, attrs: dict) -> TensorType:
    x = inputs[0]
    check_kind(x, FLOAT)
    if rank_of(x) != 4:
        raise ValueError(f"pooling needs a 4-D NHWC input, got {x.describe()}")
    oh, ow, _, _ = _pool_geometry(x.shape.dims, attrs)
    if 0 in (oh, ow):
        raise ValueError(f"the pooling window {attrs['ksize']} does not fit in {x.describe()}")
    return TensorType(x.dtype, TensorShape([x.shape[0], oh, ow, x.shape[3]]))


def _pool_geometry(x_shape: tuple, attrs: dict):
    (kh, kw), (sh, sw), pad = attrs["ksize"], attrs["strides"], attrs["padding"]
    oh, ph = conv_output_size(x_shape[1], kh, sh, 1, pad)
    ow, pw = conv_output_size(x_shape[2], kw, sw, 1, pad)
    return oh, ow, ph, pw


def _pool_taps(x: np.ndarray, attrs: dict, fill: float):
    """Every window tap as a view (N, oh, ow, C), in row-major window order."""
    oh, ow, ph, pw = _pool_geometry(x.shape, attrs)
    xp = _pad_input(x, ph, pw, fill)
    a = {"strides": attrs["strides"], "dilations": (1, 1)}
    kh, kw = attrs["ksize"]
    return [_windows(xp, i, j, oh, ow, a) for i in range(kh) for j in range(kw)], (oh, ow, ph, pw)


def _argmax_tap(x: np.ndarray, attrs: dict) -> np.ndarray:
    """For each output, the index of the first window tap holding the maximum."""
    taps, _ = _pool_taps(x, attrs, -np.inf)
    return np.argmax(np.stack(taps), axis=0)


def _max_pool_np(x: np.ndarray, **attrs) -> np.ndarray:
    taps, _ = _pool_taps(x, attrs, -np.inf)
    return np.max(np.stack(taps), axis=0)


def _max_pool_grad_np(x: np.ndarray, g: np.ndarray, **attrs) -> np.ndarray:
    best = _argmax_tap(x, attrs)
    oh, ow, ph, pw = _pool_geometry(x.shape, attrs)
    n, h, w, c = x.shape
    xp = np.zeros((n, h + sum(ph), w + sum(pw), c), g.dtype)
    kh, kw = attrs["ksize"]
    a = {"strides": attrs["strides"], "dilations": (1, 1)}
    for t in range(kh * kw):
        _windows(xp, t // kw, t % kw, oh, ow, a)[...] += np.where(best == t, g, 0)
    return xp[:, ph[0]:ph[0] + h, pw[0]:pw[0] + w, :]


def _max_pool_gather_np(x: np.ndarray, h: np.ndarray, **attrs) -> np.ndarray:
    best = _argmax_tap(x, attrs)
    taps, _ = _pool_taps(h, attrs, 0)
    return np.take_along_axis(np.stack(taps), best[None], axis=0)[0]


def _pool_attrs(n) -> dict:
    return {k: n.attrs[k] for k in ("ksize", "strides", "padding")}


# The winners of each window are piecewise constant in x, so derivatives with respect to x beyond
# the first are zero almost everywhere: the x entries below are None on purpose, and exact.
MAX_POOL = register(OpDef(
    "max_pool2d", OpKind.REDUCTION, _pool_infer, _max_pool_np,
    grad=lambda n, g: (apply(MAX_POOL_GRAD, n.inputs[0], g, **_pool_attrs(n)),)))
# Routes each output gradient to the window's (first) maximum: linear in g.
MAX_POOL_GRAD = register(OpDef(
    "max_pool2d_grad", OpKind.REDUCTION, lambda i, a: TensorType(i[1].dtype, i[0].shape),
    _max_pool_grad_np,
    grad=lambda n, h: (None, apply(MAX_POOL_GATHER, n.inputs[0], h, **_pool_attrs(n)))))
# The adjoint of max_pool2d_grad: reads h at each window's maximum of x.
MAX_POOL_GATHER = register(OpDef(
    "max_pool2d_gather", OpKind.REDUCTION,
    lambda i, a: _pool_infer([i[0]], a), _max_pool_gather_np,
    grad=lambda n, gg: (None, apply(MAX_POOL_GRAD, n.inputs[0], gg, **_pool_attrs(n)))))


def _window_counts(shape: tuple, attrs: dict) -> np.ndarray:
    ones = np.ones((1,) + tuple(shape[1:3]) + (1,))
    taps, _ = _pool_taps(ones, attrs, 0)
    return np.sum(np.stack(taps), axis=0)


def _avg_pool_np(x: np.ndarray, **attrs) -> np.ndarray:
    taps, _ = _pool_taps(x, attrs, 0)
    return (np.sum(np.stack(taps), axis=0) / _window_counts(x.shape, attrs)).astype(x.dtype)


def _avg_pool_grad_np(g: np.ndarray, like: np.ndarray, **attrs) -> np.ndarray:
    oh, ow, ph, pw = _pool_geometry(like.shape, attrs)
    n, h, w, c = like.shape
    share = (g / _window_counts(like.shape, attrs)).astype(g.dtype)
    xp = np.zeros((n, h + sum(ph), w + sum(pw), c), g.dtype)
    kh, kw = attrs["ksize"]
    a = {"strides": attrs["strides"], "dilations": (1, 1)}
    for t in range(kh * kw):
        _windows(xp, t // kw, t % kw, oh, ow, a)[...] += share
    return xp[:, ph[0]:ph[0] + h, pw[0]:pw[0] + w, :]


AVG_POOL = register(OpDef(
    "avg_pool2d", OpKind.REDUCTION, _pool_infer, _avg_pool_np,
    grad=lambda n, g: (apply(AVG_POOL_GRAD, g, n.inputs[0], **_pool_attrs(n)),)))
# avg_pool2d is linear; this is its adjoint, and avg_pool2d is the adjoint of this.
AVG_POOL_GRAD = register(OpDef(
    "avg_pool2d_grad", OpKind.REDUCTION, lambda i, a: TensorType(i[0].dtype, i[1].shape),
    _avg_pool_grad_np,
    grad=lambda n, h: (apply(AVG_POOL, h, **_pool_attrs(n)), None)))


# ---- dropout -------------------------------------------------------------------------------------


def _dropout_mask(state, node, x: np.ndarray) -> np.ndarray:
    rate = node.attrs["rate"]
    keep = state.rng(node).random(x.shape) >= rate
    return keep.astype(x.dtype) / np.asarray(1 - rate, x.dtype)


# Inverted dropout's mask, already scaled by 1/(1 - rate): a new draw in every run.
DROPOUT_MASK = register(OpDef(
    "dropout_mask", OpKind.STATE, lambda i, a: TensorType(i[0].dtype, i[0].shape), None,
    grad=NOT_DIFFERENTIABLE, effect=_dropout_mask))


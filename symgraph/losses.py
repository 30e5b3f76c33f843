"""`sg.losses`: batch losses (means over examples) and the regularization-loss collection.

As in TF1, each loss is also added to the `GraphKeys.LOSSES` collection, and regularizers
attached to variables put their terms in `GraphKeys.REGULARIZATION_LOSSES`.
"""

from __future__ import annotations

from typing import Any

from symgraph import nn
from symgraph.graph import Tensor, convert_to_tensor, graph_of
from symgraph.ops.elementwise import add_n, cast, maximum, not_equal, square
from symgraph.ops.reduce import reduce_mean, reduce_sum
from symgraph.ops.shape_ops import broadcast_like
from symgraph.ops.state import constant
from symgraph.variables import GraphKeys, add_to_collection, get_collection


def _weighted_mean(per_example: Tensor, weights: Any) -> Tensor:
    """mean(weights * losses) over all elements, TF1's default reduction for scalar weights.

    With a weights tensor, the sum of weighted losses divided by the number of nonzero weights
    (TF1's SUM_BY_NONZERO_WEIGHTS).
    """
    if isinstance(weights, (int, float)):
        return reduce_mean(per_example) * weights if weights != 1 else reduce_mean(per_example)
    w = broadcast_like(convert_to_tensor(weights, dtype=per_example.dtype), per_example)
    nonzero = reduce_sum(cast(not_equal(w, 0), per_example.dtype))
    return reduce_sum(per_example * w) / maximum(nonzero, 1)


def _add_loss(loss: Tensor, loss_collection: str | None) -> Tensor:
    if loss_collection:
        add_to_collection(loss_collection, loss)
    return loss


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0, scope: Any = None,
                       loss_collection: str | None = GraphKeys.LOSSES) -> Tensor:
    """mean((predictions - labels) ** 2)."""
    graph = graph_of((labels, predictions))
    predictions = convert_to_tensor(predictions, graph=graph)
    labels = convert_to_tensor(labels, dtype=predictions.dtype, graph=graph)
    return _add_loss(_weighted_mean(square(predictions - labels), weights), loss_collection)


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: Any = None,
                          loss_collection: str | None = GraphKeys.LOSSES) -> Tensor:
    """Mean over the batch of the softmax cross-entropy with one-hot (or soft) labels.

    `label_smoothing` s replaces labels by labels * (1 - s) + s / classes, as in TF1.
    """
    graph = graph_of((onehot_labels, logits))
    logits = convert_to_tensor(logits, graph=graph)
    labels = convert_to_tensor(onehot_labels, graph=graph)
    if labels.dtype != logits.dtype:
        labels = cast(labels, logits.dtype)
    if label_smoothing:
        classes = logits.shape[-1]
        if classes is None:
            raise ValueError(f"label smoothing needs a known number of classes: "
                             f"{logits.describe()}")
        labels = labels * (1 - label_smoothing) + label_smoothing / classes
    per_example = nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _add_loss(_weighted_mean(per_example, weights), loss_collection)


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0,
                                 scope: Any = None,
                                 loss_collection: str | None = GraphKeys.LOSSES) -> Tensor:
    """Mean over the batch of the softmax cross-entropy with integer class labels."""
    per_example = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _add_loss(_weighted_mean(per_example, weights), loss_collection)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0,
                          scope: Any = None,
                          loss_collection: str | None = GraphKeys.LOSSES) -> Tensor:
    """Mean of the elementwise sigmoid cross-entropy."""
    per_element = nn.sigmoid_cross_entropy_with_logits(labels=multi_class_labels, logits=logits)
    return _add_loss(_weighted_mean(per_element, weights), loss_collection)


def add_loss(loss: Tensor, loss_collection: str = GraphKeys.LOSSES) -> None:
    add_to_collection(loss_collection, loss)


def get_losses(scope: str | None = None, loss_collection: str = GraphKeys.LOSSES) -> list:
    return get_collection(loss_collection, scope)


def get_regularization_losses(scope: str | None = None) -> list:
    return get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope: str | None = None, name: str = "total_regularization_loss"
                            ) -> Tensor:
    """The sum of the regularization terms of the variables (0.0 when there are none)."""
    terms = get_regularization_losses(scope)
    return add_n(terms, name=name) if terms else constant(0.0, name=name)


def get_total_loss(add_regularization_losses: bool = True, scope: str | None = None,
                   name: str = "total_loss") -> Tensor:
    """The sum of the collected losses, plus the regularization terms by default."""
    terms = get_losses(scope)
    if add_regularization_losses:
        terms = terms + get_regularization_losses(scope)
    if not terms:
        raise ValueError("no losses have been collected: build a loss with sg.losses first")
    return add_n(terms, name=name)

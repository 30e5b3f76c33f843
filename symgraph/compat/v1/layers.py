"""`tf.layers` of TF1 (the functional layers): symgraph's own, with TF1's names and defaults
(`dropout`'s `training` defaults to False, as in TF1). The layer classes (`tf.layers.Dense`)
are not offered."""

from symgraph.compat.v1._names import unsupported
from symgraph.layers import (
    average_pooling2d,
    batch_normalization,
    conv2d,
    dense,
    dropout,
    flatten,
    max_pooling2d,
)

__all__ = ["average_pooling2d", "batch_normalization", "conv2d", "dense", "dropout", "flatten",
           "max_pooling2d"]

__getattr__ = unsupported("tf.layers")

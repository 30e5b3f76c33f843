"""`tf.random` of TF1: the draws under their short names, and the graph seed."""

from symgraph.compat.v1._names import unsupported
from symgraph.ops.random import random_normal as normal
from symgraph.ops.random import random_uniform as uniform
from symgraph.ops.random import set_random_seed, truncated_normal

set_seed = set_random_seed

__all__ = ["normal", "set_random_seed", "set_seed", "truncated_normal", "uniform"]

__getattr__ = unsupported("tf.random")

"""All registered ops; importing this package registers every entry and installs operators."""

from symgraph.ops import (
    elementwise,
    linalg,
    nn,
    numerics,
    operators,
    random,
    reduce,
    shape_ops,
    state,
)

operators.install()

__all__ = ["elementwise", "linalg", "nn", "numerics", "random", "reduce", "shape_ops", "state"]

"""`tf.io` of TF1: only `tf.io.gfile`, the file helpers tutorial scripts use for their log and
checkpoint directories (local files only)."""

from symgraph.compat.v1._names import unsupported
from symgraph.compat.v1.io import gfile

__all__ = ["gfile"]

__getattr__ = unsupported("tf.io")

"""`tensorflow.examples.tutorials.mnist` of TF1: `input_data.read_data_sets`."""

from symgraph.compat.v1.examples.tutorials.mnist import input_data

__all__ = ["input_data"]

"""`sg.datasets`: real data sets, read offline, and a batch iterator.

    mnist = sg.datasets.mnist.load_data()
    for images, labels in mnist.train.batches(128, seed=0):
        ...
"""

from symgraph.datasets import idx, mnist
from symgraph.datasets.batching import DataSet, batches

__all__ = ["DataSet", "batches", "idx", "mnist"]

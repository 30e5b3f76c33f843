"""Minibatches of in-memory arrays: a seeded shuffle per epoch, never a copy of the whole set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


def batches(*arrays: np.ndarray, batch_size: int, shuffle: bool = True, seed: int | None = None,
            drop_remainder: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Yields tuples of aligned batches, one row range of every array each.

    With `shuffle`, one permutation of the indices (from `seed`) is drawn and each batch is
    gathered by its slice of it, so only a batch is ever copied. The last batch is smaller when
    the size does not divide the set, unless `drop_remainder`. Without shuffle the batches are
    views in order.

    Args:
      arrays: arrays sharing their first dimension (examples), e.g. images and labels.
      batch_size: examples per batch (>= 1).
      shuffle: visit the examples in a random order.
      seed: seed of that order; the same seed gives the same batches (pass seed + epoch for a
        fresh, reproducible order each epoch).
    """
    if not arrays:
        raise ValueError("batches needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"batches needs arrays of one length, got {[len(a) for a in arrays]}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_remainder else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield tuple(a[start:start + batch_size] for a in arrays)
        else:
            index = order[start:start + batch_size]
            yield tuple(a[index] for a in arrays)


@dataclass(frozen=True)
class DataSet:
    """Images and labels of one split (train, validation or test), as TF1's mnist tutorials had.

    Attributes:
      images: float32, (n, 784) or (n, 28, 28, 1), values in [0, 1].
      labels: int64 (n,) class ids, or float32 (n, 10) one-hot rows.
    """

    images: np.ndarray
    labels: np.ndarray

    @property
    def num_examples(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int | None = None,
                drop_remainder: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images, labels) batches; see `sg.datasets.batches`."""
        return batches(self.images, self.labels, batch_size=batch_size, shuffle=shuffle,
                       seed=seed, drop_remainder=drop_remainder)

    def __iter__(self) -> Iterator[np.ndarray]:  # `images, labels = mnist.train`
        return iter((self.images, self.labels))

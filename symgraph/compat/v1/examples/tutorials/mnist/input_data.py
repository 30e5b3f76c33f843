"""TF1's MNIST tutorial reader, `input_data.read_data_sets(dir, one_hot=True)`, offline.

    from symgraph.compat.v1.examples.tutorials.mnist import input_data
    mnist = input_data.read_data_sets("MNIST_data/", one_hot=True)
    batch_xs, batch_ys = mnist.train.next_batch(100)

The digits come from `sg.datasets.mnist` (the IDX files in `train_dir` if they are there, else
the offline copies it knows; nothing is downloaded). The split is TF's: the first 5,000 of the
60,000 training images are the validation set, the other 55,000 `train`, and `test` the 10,000
test images. As in TF: images float32 in [0, 1] (or the raw bytes with dtype=uint8), rows of
784 unless reshape=False (then 28x28x1); labels uint8 class ids, or float64 one-hot rows.
`next_batch` shuffles with NumPy's global generator at the start of every epoch and carries the
last partial batch of an epoch over into the next, exactly as TF's DataSet did.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from symgraph import dtypes as _dt
from symgraph.datasets import mnist as _mnist

__all__ = ["DataSet", "Datasets", "read_data_sets", "dense_to_one_hot"]

DEFAULT_SOURCE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"


def dense_to_one_hot(labels_dense: np.ndarray, num_classes: int) -> np.ndarray:
    """Class ids (n,) -> one-hot rows (n, num_classes), float64 as TF's helper made them."""
    labels_dense = np.asarray(labels_dense)
    out = np.zeros((labels_dense.shape[0], num_classes))
    out[np.arange(labels_dense.shape[0]), labels_dense.ravel()] = 1
    return out


class DataSet:
    """One split, with TF1's `next_batch` (see the module docstring)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, fake_data: bool = False,
                 one_hot: bool = False, dtype: Any = _dt.float32, reshape: bool = True,
                 seed: int | None = None) -> None:
        dtype = _dt.as_dtype(dtype)
        if dtype not in (_dt.uint8, _dt.float32):
            raise TypeError(f"invalid image dtype {dtype.name}, expected uint8 or float32")
        if seed is not None:  # TF seeded NumPy's global generator here; only when asked to
            np.random.seed(seed)
        if fake_data:
            self._num_examples = 10000
            self.one_hot = one_hot
        else:
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"images.shape: {images.shape} labels.shape: {labels.shape}")
            self._num_examples = images.shape[0]
            if reshape:
                images = images.reshape(images.shape[0], -1)
            if dtype == _dt.float32:
                images = images.astype(np.float32) * np.float32(1.0 / 255.0)
        self._images = images
        self._labels = labels
        self._epochs_completed = 0
        self._index_in_epoch = 0

    @property
    def images(self) -> np.ndarray:
        return self._images

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def num_examples(self) -> int:
        return self._num_examples

    @property
    def epochs_completed(self) -> int:
        return self._epochs_completed

    def next_batch(self, batch_size: int, fake_data: bool = False,
                   shuffle: bool = True) -> tuple[Any, Any]:
        """The next `batch_size` examples (images, labels), TF's order (module docstring)."""
        if fake_data:
            fake_image = [1] * 784
            fake_label = [1] + [0] * 9 if self.one_hot else 0
            return ([fake_image for _ in range(batch_size)],
                    [fake_label for _ in range(batch_size)])
        start = self._index_in_epoch
        if self._epochs_completed == 0 and start == 0 and shuffle:  # first epoch
            perm0 = np.arange(self._num_examples)
            np.random.shuffle(perm0)
            self._images = self.images[perm0]
            self._labels = self.labels[perm0]
        if start + batch_size > self._num_examples:
            self._epochs_completed += 1
            rest = self._num_examples - start
            images_rest = self._images[start:self._num_examples]
            labels_rest = self._labels[start:self._num_examples]
            if shuffle:
                perm = np.arange(self._num_examples)
                np.random.shuffle(perm)
                self._images = self.images[perm]
                self._labels = self.labels[perm]
            self._index_in_epoch = batch_size - rest
            end = self._index_in_epoch
            return (np.concatenate((images_rest, self._images[0:end]), axis=0),
                    np.concatenate((labels_rest, self._labels[0:end]), axis=0))
        self._index_in_epoch += batch_size
        end = self._index_in_epoch
        return self._images[start:end], self._labels[start:end]


class Datasets(NamedTuple):
    train: DataSet
    validation: DataSet
    test: DataSet


_raw_cache: dict[str, tuple] = {}


def _raw(train_dir: str | None) -> tuple:
    """(train bytes (60000, 28, 28, 1) uint8, labels uint8, test bytes, test labels), read
    once per process and directory (tests and notebooks call read_data_sets many times)."""
    key = os.path.abspath(train_dir) if train_dir else ""
    if key not in _raw_cache:
        (train_x, train_y), (test_x, test_y) = _mnist.load_raw(train_dir if train_dir else None)
        _raw_cache[key] = (train_x.reshape(-1, 28, 28, 1), np.asarray(train_y, np.uint8),
                           test_x.reshape(-1, 28, 28, 1), np.asarray(test_y, np.uint8))
    return _raw_cache[key]


def read_data_sets(train_dir: str | None = None, fake_data: bool = False,
                   one_hot: bool = False, dtype: Any = _dt.float32, reshape: bool = True,
                   validation_size: int = 5000, seed: int | None = None,
                   source_url: str = DEFAULT_SOURCE_URL) -> Datasets:
    """MNIST as TF1's tutorials read it: Datasets(train 55k, validation 5k, test 10k).

    Args:
      train_dir: where TF downloaded the files; used here if it holds the four IDX files,
        otherwise the offline copies are read (nothing is downloaded or created).
      fake_data: DataSets whose next_batch gives constant images (TF's smoke-test mode).
      one_hot: labels as one-hot rows instead of class ids.
      dtype: float32 (pixels / 255) or uint8 (the bytes).
      reshape: rows of 784 pixels; False keeps (28, 28, 1).
      validation_size: how many of the first training images form the validation set.
      seed: seeds NumPy's global generator, which next_batch shuffles with.
    """
    if fake_data:
        def fake() -> DataSet:
            return DataSet([], [], fake_data=True, one_hot=one_hot, dtype=dtype, seed=seed)

        return Datasets(fake(), fake(), fake())
    train_images, train_labels, test_images, test_labels = _raw(train_dir)
    if not 0 <= validation_size <= len(train_images):
        raise ValueError(f"validation size should be between 0 and {len(train_images)}. "
                         f"Received: {validation_size}.")
    if one_hot:
        train_labels = dense_to_one_hot(train_labels, _mnist.NUM_CLASSES)
        test_labels = dense_to_one_hot(test_labels, _mnist.NUM_CLASSES)
    options = dict(dtype=dtype, reshape=reshape, seed=seed)
    return Datasets(
        DataSet(train_images[validation_size:], train_labels[validation_size:], **options),
        DataSet(train_images[:validation_size], train_labels[:validation_size], **options),
        DataSet(test_images, test_labels, **options))


def load_mnist(train_dir: str = "MNIST-data") -> Datasets:
    """TF's shorthand: read_data_sets(train_dir)."""
    return read_data_sets(train_dir)

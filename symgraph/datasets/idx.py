"""The IDX format of the MNIST files (`train-images-idx3-ubyte.gz` and friends).

An IDX file is: two zero bytes, a type byte, a byte with the number of dimensions d, then d
big-endian uint32 sizes, then the values, big-endian, in C order. Files ending in `.gz` are
gzip-compressed. See http://yann.lecun.com/exdb/mnist/ (section "FILE FORMATS").
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

# type byte -> big-endian NumPy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


def _open(path: str | os.PathLike, mode: str):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped when the name ends in `.gz`), native byte order.

    Raises:
      ValueError: the file is not IDX, or its size does not match its header (truncated).
    """
    with _open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{os.fspath(path)!r} is not an IDX file: its first bytes are "
                         f"{data[:4].hex()}, expected 0000 then a type byte "
                         f"({', '.join(hex(c) for c in IDX_DTYPES)}) and the rank")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{os.fspath(path)!r} is truncated: its header needs {header} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{os.fspath(path)!r} holds {len(data) - header} bytes of values, but "
                         f"its header says shape {shape} of {dtype.name} ({expected} bytes)")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes `array` (uint8, int8, int16, int32, float32 or float64) as an IDX file."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; use one of "
                        f"{', '.join(dt.newbyteorder('=').name for dt in IDX_DTYPES.values())}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with _open(path, "wb") as f:
        f.write(header + array.astype(IDX_DTYPES[code]).tobytes())
